"""``tradaboost``: a few labelled target examples and a large labelled source, boosted."""

from transferkit.strategies.tradaboost.boosting import BoostingResult, tradaboost
from transferkit.strategies.tradaboost.config import TrAdaBoostConfig
from transferkit.strategies.tradaboost.strategy import TrAdaBoostStrategy

__all__ = ["BoostingResult", "TrAdaBoostConfig", "TrAdaBoostStrategy", "tradaboost"]
