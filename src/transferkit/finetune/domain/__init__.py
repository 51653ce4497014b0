"""Deep domain adaptation losses (tllib-style standalone modules) and the engine hook using them.

Each loss takes source and target features (CDAN also the classifier's logits) and knows nothing
of the model, so a training loop adds one to its classification loss; ``hook.py`` is that loop's
part for the fine-tuning engine.

Names are imported on first use (as the rest of ``transferkit.finetune``), so that the
strategies' settings can read ``domain.estimates`` without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ConditionalDomainAdversarialLoss": "adversarial",
    "DomainAdversarialLoss": "adversarial",
    "MultiLinearMap": "adversarial",
    "RandomizedMultiLinearMap": "adversarial",
    "entropy": "adversarial",
    "DomainDiscriminator": "discriminator",
    "GradientReverseLayer": "grl",
    "warm_up_coefficient": "grl",
    "GaussianKernels": "mmd",
    "MultipleKernelMMD": "mmd",
}


__all__ = [
    "ConditionalDomainAdversarialLoss",
    "DomainAdversarialLoss",
    "DomainDiscriminator",
    "GaussianKernels",
    "GradientReverseLayer",
    "MultiLinearMap",
    "MultipleKernelMMD",
    "RandomizedMultiLinearMap",
    "entropy",
    "warm_up_coefficient",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module = importlib.import_module(f"transferkit.finetune.domain.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'transferkit.finetune.domain' has no attribute {name!r}")
