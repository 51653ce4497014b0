"""Settings of the ``importance`` strategy."""

from __future__ import annotations

from dataclasses import dataclass

from transferkit.strategies.adapt.config import AdaptConfig, check_number


@dataclass
class ImportanceConfig(AdaptConfig):
    """``clip``: the largest weight, the weights having mean 1 (a few training rows that look
    very much like the target must not carry the whole head). ``folds``: cross-fitting folds
    of the domain classifier. ``augment``, ``source_select``: as for every adaptation
    strategy."""

    clip: float = 10.0
    folds: int = 5

    strategy = "importance"

    def __post_init__(self) -> None:
        check_number("clip", "--importance-clip", self.clip, low=1, low_open=True)
        check_number("folds", "--importance-folds", self.folds, low=2, high=20, whole=True)
        super().__post_init__()
