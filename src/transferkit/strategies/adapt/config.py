"""Settings every frozen-embedding adaptation strategy shares, and their flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from transferkit.errors import BadInputError
from transferkit.strategies.base import Option
from transferkit.strategies.features import AUGMENTS

SOURCE_SELECT = Option(
    "--source-select",
    "source_select",
    int,
    "adaptation strategies: keep only the N training examples most like the target (mean "
    "cosine similarity to their nearest target embeddings); every class keeps at least 2",
    valid=lambda v: v >= 1,
    must_be="at least 1",
)


@dataclass
class AdaptConfig:
    """``augment``: as for ``features`` (mirrored training photos as second views).
    ``source_select``: keep only the N training examples nearest the target (None: all)."""

    augment: str = "light"
    source_select: int | None = None

    # the strategy these settings belong to, for the messages
    strategy: ClassVar[str] = "adaptation"

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise BadInputError(
                f"augment must be one of {', '.join(AUGMENTS)} for the {self.strategy} "
                f"strategy; got {self.augment!r}"
            )
        if self.source_select is not None and (
            isinstance(self.source_select, bool)
            or not isinstance(self.source_select, int)
            or self.source_select < 1
        ):
            raise BadInputError(
                "source_select (--source-select) must be a whole number of training examples "
                f"to keep, at least 1; got {self.source_select!r}"
            )


def check_number(
    name: str,
    flag: str,
    value,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    whole: bool = False,
) -> None:
    """Refuse ``value`` outside [low, high] (``*_open``: excluded), naming the field and flag."""
    import math

    kinds = int if whole else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kinds)
    ok = ok and math.isfinite(value) and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        bound = f"{'above' if low_open else 'at least'} {low}"
        if high is not None:
            bound += f" and {'below' if high_open else 'at most'} {high}"
        what = "a whole number" if whole else "a number"
        raise BadInputError(f"{name} ({flag}) must be {what} {bound}; got {value!r}")
