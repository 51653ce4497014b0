"""``cdan``: the discriminator reads features ⊗ predictions, so classes align with classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferkit.strategies.deep_adaptation import DeepAdaptation, DeepAdaptationConfig
from transferkit.strategies.registry import register_strategy


@dataclass
class CdanConfig(DeepAdaptationConfig):
    """``entropy_conditioning``: CDAN+E, rows weighted by the certainty of their prediction
    (the paper's better variant on every benchmark it reports)."""

    entropy_conditioning: bool = True


@register_strategy
class CdanStrategy(DeepAdaptation):
    """Fine-tuning plus CDAN(+E)'s conditional adversarial loss on --target batches
    (multilinear map, randomized above 4096 dimensions)."""

    name = "cdan"
    method = "cdan"
    Config = CdanConfig

    def loss_options(self) -> dict[str, Any]:
        return {**super().loss_options(), "entropy_conditioning": self.config.entropy_conditioning}
