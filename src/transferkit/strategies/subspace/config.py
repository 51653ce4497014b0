"""Settings of the ``subspace`` strategy."""

from __future__ import annotations

from dataclasses import dataclass

from transferkit.strategies.adapt.config import AdaptConfig, check_number


@dataclass
class SubspaceConfig(AdaptConfig):
    """``dim``: components of each domain's PCA subspace (None: as many as explain
    ``variance`` of the target's variance). ``augment``, ``source_select``: as for every
    adaptation strategy."""

    dim: int | None = None
    variance: float = 0.9

    strategy = "subspace"

    def __post_init__(self) -> None:
        if self.dim is not None:
            check_number("dim", "--subspace-dim", self.dim, low=1, whole=True)
        check_number("variance", "--subspace-variance", self.variance, low=0, high=1, low_open=True)
        super().__post_init__()
