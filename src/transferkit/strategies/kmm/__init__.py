"""``kmm``: training rows weighted by kernel mean matching (Huang et al., NIPS 2006)."""

from transferkit.strategies.kmm.config import KMMConfig
from transferkit.strategies.kmm.solver import kmm_weights, solve_box_band_qp
from transferkit.strategies.kmm.strategy import KMMStrategy

__all__ = ["KMMConfig", "KMMStrategy", "kmm_weights", "solve_box_band_qp"]
