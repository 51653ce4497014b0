"""Transfer strategies by name (add one: a module here + one entry in STRATEGIES)."""

from __future__ import annotations

from typing import Any

from transferkit.naming import lookup
from transferkit.strategies.auto import choose_strategy, needs_separability
from transferkit.strategies.base import Strategy, StrategyResult
from transferkit.strategies.contrastive import ContrastiveStrategy
from transferkit.strategies.features import FeaturesStrategy
from transferkit.strategies.finetune import FinetuneStrategy, ScratchStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (FeaturesStrategy, FinetuneStrategy, ScratchStrategy, ContrastiveStrategy)
}
DEFAULT_STRATEGY = "features"


def make_strategy(name: str = DEFAULT_STRATEGY, **params: Any) -> Strategy:
    if name == "auto":  # without data to look at (see strategies/auto.py), the default
        name = DEFAULT_STRATEGY
    return strategy_class(name)(**params)


def strategy_class(name: str) -> type[Strategy]:
    return lookup("strategy", DEFAULT_STRATEGY if name == "auto" else name, STRATEGIES)


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Strategy",
    "StrategyResult",
    "choose_strategy",
    "make_strategy",
    "needs_separability",
    "strategy_class",
]
