"""Settings of the ``selftrain`` strategy."""

from __future__ import annotations

from dataclasses import dataclass

from transferkit.strategies.adapt.config import AdaptConfig, check_number


@dataclass
class SelfTrainConfig(AdaptConfig):
    """``threshold``: the least probability the head must give a target input's class for it
    to be pseudo-labelled. ``portion``: the share of the target inputs the head assigns to a
    class that may be pseudo-labelled with it (its most confident ones), reached in the last
    of the ``rounds``. ``augment``, ``source_select``: as for every adaptation strategy."""

    threshold: float = 0.5
    portion: float = 0.5
    rounds: int = 3

    strategy = "selftrain"

    def __post_init__(self) -> None:
        check_number(
            "threshold", "--selftrain-threshold", self.threshold, low=0, high=1, low_open=True
        )
        check_number("portion", "--selftrain-portion", self.portion, low=0, high=1, low_open=True)
        check_number("rounds", "--selftrain-rounds", self.rounds, low=1, high=20, whole=True)
        super().__post_init__()
