"""Several adapted models on one base in one process: the base's tensors are held once.

A server hosting five adapter bundles of one encoder needs the encoder's weights once, not five
times. ``shared_base(ref)`` keeps a process-wide base module per (backbone name, weights sha256);
``shared_copy(ref)`` returns a new module of the same structure whose parameters and buffers are
the very same tensor objects as the base's (only the module objects and their small state are
copied: 7 MB for MiniLM, its tokenizer), ready for one bundle's adapter to be injected. Each
bundle then owns its module — no ``set_adapter`` switching on a shared one — so two threads may
run two bundles at once.

The base tensors are frozen (``requires_grad`` False) and must never be trained in place: a copy
is for prediction. A base lives while any copy of it does (each copy holds it), then is freed.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
import weakref
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from transferkit.backbones import BackboneRef

_BASES: weakref.WeakValueDictionary[tuple[str, str], nn.Module] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()
# the attribute of a copy that keeps its base alive (not a submodule: it must not be walked)
_BASE_ATTRIBUTE = "_transferkit_shared_base"


def shared_base(ref: BackboneRef) -> nn.Module:
    """The process-wide base module of ``ref`` (built on first call, in eval mode, frozen)."""
    if ref.weights_sha256 is None:
        # two randomly initialised modules of one name are not the same weights
        raise ValueError(f"{ref.name}: only pretrained weights (known by their sha256) are shared")
    key = (ref.name, ref.weights_sha256)
    with _LOCK:
        base = _BASES.get(key)
        if base is None:
            # a module of its own: ``ref``'s may be in use, or carry runners built for it
            base = dataclasses.replace(ref, _module=None).materialize().eval()
            base.requires_grad_(False)
            _BASES[key] = base
        return base


def shared_copy(ref: BackboneRef) -> nn.Module:
    """A module like ``ref``'s base whose parameters and buffers ARE the base's (same tensor
    objects, same storage), everything else its own (mode, identity, injected modules)."""
    base = shared_base(ref)
    module = copy_sharing_tensors(base)
    object.__setattr__(module, _BASE_ATTRIBUTE, base)
    return module


def base_of(module: object) -> object:
    """The module whose tensors ``module`` runs on: its shared base, or itself."""
    return getattr(module, _BASE_ATTRIBUTE, module)


def copy_sharing_tensors(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` but for its parameters and buffers, which are the same
    objects in both.

    Everything else is copied, the tokenizer too (7 MB for MiniLM): an object outside the
    module tree may point into it (an audio backbone's feature encoder holds its ``net``), and
    a copy must then point into its own tree; a tokenizer changes its settings as it is used.
    """
    # deepcopy returns what the memo holds for an object it meets: the tensors themselves
    memo = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, memo)
