"""Pretrained backbones: the registry, loading with verified weights, and the offline listing.

Importing this package registers the built-in backbones; timm is only imported when a
``timm:<model>`` name is used.
"""

from __future__ import annotations

from pathlib import Path

from transferkit.backbones import efficientnet_lite as _efficientnet_lite  # noqa: F401 (registers)
from transferkit.backbones import torchvision_models as _torchvision_models  # noqa: F401
from transferkit.backbones.base import Backbone
from transferkit.backbones.preprocess import ImagePreprocess, preprocess_image
from transferkit.backbones.registry import BackboneSpec, get_spec, list_specs, register
from transferkit.errors import BadInputError
from transferkit.weights.resolver import (
    find_offline_weights,
    load_state_dict_file,
    resolve_weights,
)

__all__ = [
    "Backbone",
    "BackboneSpec",
    "ImagePreprocess",
    "get_spec",
    "list_backbones",
    "list_specs",
    "load_backbone",
    "preprocess_image",
    "register",
]


def load_backbone(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool = True,
    allow_download: bool = True,
) -> Backbone:
    """Build backbone ``name`` with verified pretrained weights (or random init), in eval mode.

    Args:
        name: a registered name (see ``list_backbones()``) or ``"timm:<model>"``.
        weights: a local weight file to use instead of searching; its hash must match the
            published one when that is known.
        pretrained: False builds the same architecture with random weights (the from-scratch
            baseline); no weight file is looked for.
        allow_download: False never touches the network (package and cache only).

    Raises:
        BadInputError: unknown name, or an explicit weight file that is missing or altered.
        WeightsUnavailableError: no source could provide the weights; the message lists what
            was tried and the fix.
    """
    if weights is not None and not pretrained:
        raise BadInputError(
            f"load_backbone({name!r}) got weights={str(weights)!r} and pretrained=False: pass "
            "one or the other (a weight file means pretrained)."
        )
    spec = get_spec(name)
    resolved = None
    if pretrained:
        # resolve before building: a missing file should fail before seconds of model setup
        resolved = resolve_weights(
            spec.name, spec.weights, explicit=weights, allow_download=allow_download
        )
    model = spec.build()
    if resolved is not None:
        model = spec.load_state(model, load_state_dict_file(resolved.path))
    backbone = Backbone(spec.headless(model), spec=spec, weights=resolved)
    # eval by default: frozen-feature extraction is the common case; finetune calls .train()
    return backbone.eval()


def list_backbones() -> list[dict]:
    """One dict per registered backbone: name, modality, source, embedding_dim, licence,
    offline_available (verified weights present locally: a weights package or a cache)."""
    return [
        {
            "name": spec.name,
            "modality": spec.modality,
            "source": spec.source,
            "embedding_dim": spec.embedding_dim,
            "licence": spec.licence,
            "offline_available": find_offline_weights(spec.weights) is not None,
        }
        for spec in list_specs()
    ]
