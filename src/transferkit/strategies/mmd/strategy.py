"""``mmd``: the source and target features are pulled together by their kernel mean distance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferkit.errors import BadInputError
from transferkit.finetune.domain.estimates import ESTIMATES
from transferkit.strategies.base import Option
from transferkit.strategies.deep_adaptation import DeepAdaptation, DeepAdaptationConfig
from transferkit.strategies.registry import register_strategy


@dataclass
class MmdConfig(DeepAdaptationConfig):
    """``mmd_estimate``: ``quadratic`` (every pair of a batch) or ``linear`` (DAN's
    linear-time estimate over disjoint pairs: cheaper, noisier)."""

    mmd_estimate: str = "quadratic"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mmd_estimate not in ESTIMATES:
            raise BadInputError(
                f"mmd-estimate must be one of {', '.join(ESTIMATES)}; got {self.mmd_estimate!r}"
            )


@register_strategy
class MmdStrategy(DeepAdaptation):
    """Fine-tuning plus DAN's multiple-kernel MMD between source and --target features."""

    name = "mmd"
    method = "mmd"
    Config = MmdConfig
    options = (
        *DeepAdaptation.options,
        Option(
            "--mmd-estimate",
            "mmd_estimate",
            str,
            "mmd: quadratic (every pair in a batch, default) or linear (DAN's linear-time "
            "estimate)",
            choices=ESTIMATES,
        ),
    )

    def loss_options(self) -> dict[str, Any]:
        return {"estimate": self.config.mmd_estimate}
