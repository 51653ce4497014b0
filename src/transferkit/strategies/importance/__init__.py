"""``importance``: training rows weighted by the density ratio target/source, from a domain
classifier."""

from transferkit.strategies.importance.config import ImportanceConfig
from transferkit.strategies.importance.strategy import ImportanceStrategy, domain_ratio

__all__ = ["ImportanceConfig", "ImportanceStrategy", "domain_ratio"]
