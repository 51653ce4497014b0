"""``dann``: fine-tuning with a domain-adversarial loss (Ganin et al., JMLR 2016)."""

from transferkit.strategies.dann.strategy import DannStrategy

__all__ = ["DannStrategy"]
