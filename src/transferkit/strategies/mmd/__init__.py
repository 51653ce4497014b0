"""``mmd``: fine-tuning with a multiple-kernel MMD loss (DAN, Long et al., ICML 2015)."""

from transferkit.strategies.mmd.strategy import MmdConfig, MmdStrategy

__all__ = ["MmdConfig", "MmdStrategy"]
