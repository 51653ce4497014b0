"""Settings of the ``coral`` strategy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from transferkit.errors import BadInputError
from transferkit.strategies.features import AUGMENTS


@dataclass
class CoralConfig:
    """``eps``: added to both covariances' diagonals before the matrix roots (the paper's
    ``+ eye(d)``, eps = 1): it keeps them invertible when there are fewer examples than
    embedding dimensions, and the larger it is, the less the alignment moves the embeddings.
    ``augment``: as for ``features`` (mirrored training photos as second views)."""

    eps: float = 1.0
    augment: str = "light"

    def __post_init__(self) -> None:
        if isinstance(self.eps, bool) or not (
            isinstance(self.eps, int | float) and math.isfinite(self.eps) and self.eps > 0
        ):
            raise BadInputError(f"eps must be a positive number (e.g. 1.0); got {self.eps!r}")
        if self.augment not in AUGMENTS:
            raise BadInputError(
                f"augment must be one of {', '.join(AUGMENTS)} for the coral strategy; "
                f"got {self.augment!r}"
            )
