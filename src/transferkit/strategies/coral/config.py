"""Settings of the ``coral`` strategy."""

from __future__ import annotations

from dataclasses import dataclass

from transferkit.strategies.adapt.config import AdaptConfig, check_number


@dataclass
class CoralConfig(AdaptConfig):
    """``eps``: added to both covariances' diagonals before the matrix roots (the paper's
    ``+ eye(d)``, eps = 1): it keeps them invertible when there are fewer examples than
    embedding dimensions, and the larger it is, the less the alignment moves the embeddings.
    ``augment``, ``source_select``: as for every adaptation strategy (adapt/config.py)."""

    eps: float = 1.0

    strategy = "coral"

    def __post_init__(self) -> None:
        check_number("eps", "--coral-eps", self.eps, low=0, low_open=True)
        super().__post_init__()
