"""``selftrain``: pseudo-labels of the confident target inputs join the training set."""

from transferkit.strategies.selftrain.config import SelfTrainConfig
from transferkit.strategies.selftrain.strategy import SelfTrainStrategy, pseudo_label

__all__ = ["SelfTrainConfig", "SelfTrainStrategy", "pseudo_label"]
