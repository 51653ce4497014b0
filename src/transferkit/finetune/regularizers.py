"""The engine hooks that each ``--regularize`` choice (``FinetuneConfig.regularize``) adds.

``config.REGULARIZERS`` lists the names without importing torch (a config is checked before
anything loads); this module maps each to its hooks.
"""

from __future__ import annotations

from collections.abc import Callable

from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.hooks import EngineHook
from transferkit.finetune.l2sp import L2SPHook

REGULARIZER_HOOKS: dict[str, Callable[[FinetuneConfig], list[EngineHook]]] = {
    "none": lambda config: [],
    "l2sp": lambda config: [L2SPHook(alpha=config.l2sp_alpha, beta=config.l2sp_beta)],
}


def regularizer_hooks(config: FinetuneConfig) -> list[EngineHook]:
    """The hooks that implement ``config.regularize`` (none for "none")."""
    return REGULARIZER_HOOKS[config.regularize](config)
