"""Transfer strategies by name (add one: a module or folder here whose class is decorated with
``@register_strategy``, and one line below that imports it)."""

from __future__ import annotations

import transferkit.strategies.adapt.strategy  # noqa: F401
import transferkit.strategies.adapter  # noqa: F401
import transferkit.strategies.cdan  # noqa: F401
import transferkit.strategies.contrastive  # noqa: F401 (registers itself)
import transferkit.strategies.coral  # noqa: F401
import transferkit.strategies.dann  # noqa: F401
import transferkit.strategies.features  # noqa: F401
import transferkit.strategies.finetune  # noqa: F401
import transferkit.strategies.importance  # noqa: F401
import transferkit.strategies.kmm  # noqa: F401
import transferkit.strategies.mmd  # noqa: F401
import transferkit.strategies.selftrain  # noqa: F401
import transferkit.strategies.subspace  # noqa: F401
import transferkit.strategies.tradaboost  # noqa: F401
from transferkit.strategies.auto import choose_strategy, needs_frozen_check, needs_separability
from transferkit.strategies.base import (
    Capabilities,
    FitContext,
    FitData,
    Option,
    ReportSection,
    Strategy,
    StrategyResult,
)
from transferkit.strategies.registry import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    check_fit_data,
    make_strategy,
    register_strategy,
    strategy_class,
    strategy_options,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Capabilities",
    "FitContext",
    "FitData",
    "Option",
    "ReportSection",
    "Strategy",
    "StrategyResult",
    "check_fit_data",
    "choose_strategy",
    "make_strategy",
    "needs_frozen_check",
    "needs_separability",
    "register_strategy",
    "strategy_class",
    "strategy_options",
]
