"""Several adapted models on one base in one process: the base's tensors are held once.

A server hosting five adapter bundles of one encoder needs the encoder's weights once, not five
times. ``shared_base(ref)`` keeps a process-wide base module per (backbone name, weights sha256);
``shared_copy(ref)`` returns a new module of the same structure whose parameters and buffers are
the very same tensor objects as the base's (nothing copied but the small module objects), ready
for one bundle's adapter to be injected. Each bundle then owns its module — no ``set_adapter``
switching on a shared one — so two threads may run two bundles at once.

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

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from transferkit.backbones import BackboneRef

_BASES: weakref.WeakValueDictionary[tuple[str, str], nn.Module] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()
# the attribute of a copy that keeps its base alive (not a submodule: it must not be walked)
_BASE_ATTRIBUTE = "_transferkit_shared_base"
# a module's own state: its children, parameter and hook tables, flags and names
_COPIED = (dict, list, tuple, set, str, bytes, int, float, bool, type(None))


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
    objects, same storage), its other state its own (mode, identity, injected modules)."""
    base = shared_base(ref)
    # deepcopy returns what the memo holds for an object it meets: the tensors themselves, and
    # the read-only objects modules hold (tokenizer: 7 MB a copy for MiniLM; config; spec)
    memo = {id(t): t for t in itertools.chain(base.parameters(), base.buffers())}
    for sub in base.modules():
        for value in vars(sub).values():
            if not isinstance(value, (nn.Module, torch.Tensor, *_COPIED)):
                memo[id(value)] = value
    module = copy.deepcopy(base, memo)
    object.__setattr__(module, _BASE_ATTRIBUTE, base)
    return module
