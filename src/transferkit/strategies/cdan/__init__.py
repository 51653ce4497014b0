"""``cdan``: fine-tuning with a conditional domain-adversarial loss (Long et al., NeurIPS 2018)."""

from transferkit.strategies.cdan.strategy import CdanConfig, CdanStrategy

__all__ = ["CdanConfig", "CdanStrategy"]
