"""The strategy registry: strategies by name, the options they declare, the data they take.

A strategy registers itself with ``@register_strategy`` on its class; ``strategies/__init__.py``
imports each strategy's module (one line per strategy), as ``timm.models`` does.
"""

from __future__ import annotations

from typing import Any

from transferkit.errors import BadInputError
from transferkit.naming import lookup
from transferkit.strategies.base import FitData, Option, Strategy

STRATEGIES: dict[str, type[Strategy]] = {}
DEFAULT_STRATEGY = "features"


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Make ``cls`` available by its name (to ``make_strategy``, the CLI and the tests); a class
    decorator, as timm's ``register_model``."""
    if cls.name in STRATEGIES or cls.name == "auto":
        raise ValueError(f"a strategy named {cls.name!r} is registered already")
    STRATEGIES[cls.name] = cls
    return cls


def make_strategy(name: str = DEFAULT_STRATEGY, **params: Any) -> Strategy:
    if name == "auto":  # without data to look at (see strategies/auto.py), the default
        name = DEFAULT_STRATEGY
    return strategy_class(name)(**params)


def strategy_class(name: str) -> type[Strategy]:
    return lookup("strategy", DEFAULT_STRATEGY if name == "auto" else name, STRATEGIES)


def strategy_options() -> dict[str, tuple[Option, list[str]]]:
    """Every registered strategy's options by flag: (the option, the strategies that take it).

    Strategies that share a flag must give it the same meaning (field, type, choices).
    """
    found: dict[str, tuple[Option, list[str]]] = {}
    for cls in STRATEGIES.values():
        for option in cls.options:
            first, takers = found.setdefault(option.flag, (option, []))
            if (first.field, first.type, first.choices) != (
                option.field,
                option.type,
                option.choices,
            ):
                raise ValueError(f"{cls.name} gives {option.flag} another meaning than {takers}")
            takers.append(cls.name)
    return found


# what a strategy must declare to be given each optional part of FitData
_DATA_CAPABILITY = {
    "target": ("needs_target", "unlabelled target-domain inputs (--target)"),
    "source": ("accepts_source", "a labelled source domain"),
    "sample_weight": ("accepts_sample_weight", "sample weights"),
}


def check_fit_data(name: str, data: FitData) -> None:
    """Refuse the parts of ``data`` the strategy ``name`` does not use, and a missing target
    it needs, naming the strategies that take them."""
    cls = strategy_class(name)
    for part, (capability, what) in _DATA_CAPABILITY.items():
        takers = [s.name for s in STRATEGIES.values() if getattr(s.capabilities, capability)]
        given = getattr(data, part) is not None
        if given and not getattr(cls.capabilities, capability):
            where = f"--strategy {' or '.join(takers)}" if takers else "no strategy yet"
            raise BadInputError(
                f"the {cls.name} strategy does not use {what}; {where} does. Leave them out, "
                f"or pick {'that strategy' if takers else 'another way'}."
            )
    if cls.capabilities.needs_target and data.target is None:
        raise BadInputError(
            f"--strategy {cls.name} adapts to a target domain and needs its unlabelled inputs: "
            "pass them with --target PATH (a file or folder), or target= to fit()."
        )
