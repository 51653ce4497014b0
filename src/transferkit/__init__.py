"""transferkit: transfer learning on small data.

Heavy libraries (torch, sklearn, onnxruntime) load lazily, so ``import transferkit`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access (PEP 562)
_LAZY = {
    "TransferClassifier": "transferkit.estimator",
    "Dataset": "transferkit.data.dataset",
    "load_dataset": "transferkit.modalities",
    "load_backbone": "transferkit.backbones",
    "list_backbones": "transferkit.backbones",
    "load_bundle": "transferkit.bundle",
}

if TYPE_CHECKING:  # pragma: no cover  (names for type checkers; resolved lazily below)
    from transferkit.backbones import list_backbones, load_backbone  # noqa: F401
    from transferkit.bundle import load_bundle  # noqa: F401
    from transferkit.data.dataset import Dataset  # noqa: F401
    from transferkit.estimator import TransferClassifier  # noqa: F401
    from transferkit.modalities import load_dataset  # noqa: F401

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transferkit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__
