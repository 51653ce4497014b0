"""Transfer strategies by name (add one: a module here + one entry in STRATEGIES)."""

from __future__ import annotations

from typing import Any

from transferkit.naming import lookup
from transferkit.strategies.base import Strategy, StrategyResult
from transferkit.strategies.features import FeaturesStrategy

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (FeaturesStrategy,)}
DEFAULT_STRATEGY = "features"


def make_strategy(name: str = DEFAULT_STRATEGY, **params: Any) -> Strategy:
    if name == "auto":  # only one strategy exists yet; auto will choose by data size later
        name = DEFAULT_STRATEGY
    return lookup("strategy", name, STRATEGIES)(**params)


__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "Strategy", "StrategyResult", "make_strategy"]
