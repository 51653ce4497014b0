"""Settings of the ``kmm`` strategy."""

from __future__ import annotations

from dataclasses import dataclass

from transferkit.strategies.adapt.config import AdaptConfig, check_number


@dataclass
class KMMConfig(AdaptConfig):
    """``B``: the largest weight (the paper's bound; 1000 as in its experiments). ``eps``: how
    far the weights' mean may stray from 1 (None: the paper's ``(√n − 1)/√n``). The weights
    reach the head scaled to mean 1. ``augment``, ``source_select``: as for every adaptation
    strategy."""

    B: float = 1000.0
    eps: float | None = None

    strategy = "kmm"

    def __post_init__(self) -> None:
        check_number("B", "--kmm-b", self.B, low=1, low_open=True)
        if self.eps is not None:
            check_number("eps", "--kmm-eps", self.eps, low=0, high=1, high_open=True)
        super().__post_init__()
