"""``subspace``: subspace alignment of the training embeddings to the target's (Fernando et al.,
ICCV 2013)."""

from transferkit.strategies.subspace.config import SubspaceConfig
from transferkit.strategies.subspace.strategy import SubspaceStrategy, subspace_align

__all__ = ["SubspaceConfig", "SubspaceStrategy", "subspace_align"]
