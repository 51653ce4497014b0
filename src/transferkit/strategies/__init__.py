"""Transfer strategies by name (add one: a module here + one entry in STRATEGIES)."""

from __future__ import annotations

import difflib
from typing import Any

from transferkit.errors import BadInputError
from transferkit.strategies.base import Strategy, StrategyResult
from transferkit.strategies.features import FeaturesStrategy

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (FeaturesStrategy,)}
DEFAULT_STRATEGY = "features"


def make_strategy(name: str = DEFAULT_STRATEGY, **params: Any) -> Strategy:
    if name == "auto":  # only one strategy exists yet; auto will choose by data size later
        name = DEFAULT_STRATEGY
    try:
        return STRATEGIES[name](**params)
    except KeyError:
        close = difflib.get_close_matches(name, STRATEGIES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BadInputError(
            f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}.{hint}"
        ) from None


__all__ = ["DEFAULT_STRATEGY", "STRATEGIES", "Strategy", "StrategyResult", "make_strategy"]
