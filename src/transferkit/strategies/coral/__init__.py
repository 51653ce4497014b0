"""``coral``: frozen-feature CORAL alignment to an unlabelled target domain (Sun et al., 2016)."""

from transferkit.strategies.coral.config import CoralConfig
from transferkit.strategies.coral.strategy import CoralStrategy, coral_align, coral_transform

__all__ = ["CoralConfig", "CoralStrategy", "coral_align", "coral_transform"]
