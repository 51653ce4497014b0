"""``dann``: the features learn to fool a domain discriminator through gradient reversal."""

from __future__ import annotations

from transferkit.strategies.deep_adaptation import DeepAdaptation
from transferkit.strategies.registry import register_strategy


@register_strategy
class DannStrategy(DeepAdaptation):
    """Fine-tuning plus DANN's domain-adversarial loss on --target batches (gradient reversal
    with the paper's warm-up, kept in the checkpoint)."""

    name = "dann"
    method = "dann"
