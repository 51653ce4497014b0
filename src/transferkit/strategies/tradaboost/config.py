"""Settings of the ``tradaboost`` strategy."""

from __future__ import annotations

from dataclasses import dataclass

from transferkit.errors import BadInputError
from transferkit.strategies.features import AUGMENTS


@dataclass
class TrAdaBoostConfig:
    """``rounds``: boosting rounds N, one weighted head each; the final vote is that of the
    later half (rounds ceil(N/2)..N, as in the paper). ``augment``: as for ``features``
    (mirrored training photos as second views; the source is embedded as it is)."""

    rounds: int = 10
    augment: str = "light"

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 2:
            raise BadInputError(
                f"rounds must be a whole number of at least 2 (the vote takes the later half of "
                f"them); got {self.rounds!r}"
            )
        if self.augment not in AUGMENTS:
            raise BadInputError(
                f"augment must be one of {', '.join(AUGMENTS)} for the tradaboost strategy; "
                f"got {self.augment!r}"
            )
