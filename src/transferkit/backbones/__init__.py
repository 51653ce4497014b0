"""Pretrained backbones: the registry, loading with verified weights, and the offline listing.

Importing this package registers the built-in backbones (``catalog.py``); timm is only imported
when a ``timm:<model>`` name is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferkit.backbones.catalog import get_spec
from transferkit.backbones.preprocess import ImagePreprocess, preprocess_image
from transferkit.backbones.registry import BackboneSpec, list_specs, register
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.errors import BadInputError
from transferkit.weights.resolver import (
    ResolvedWeights,
    find_offline_weights,
    load_state_dict_file,
    resolve_weights,
)

if TYPE_CHECKING:  # pragma: no cover
    from transferkit.backbones.base import Backbone

__all__ = [
    "Backbone",
    "BackboneRef",
    "BackboneSpec",
    "ImagePreprocess",
    "get_spec",
    "list_backbones",
    "list_specs",
    "load_backbone",
    "preprocess_image",
    "register",
    "resolve_backbone",
]


def __getattr__(name: str) -> Any:
    # Backbone is a torch module: importing it eagerly would cost every command ~3 s of torch
    if name == "Backbone":
        from transferkit.backbones.base import Backbone

        return Backbone
    raise AttributeError(f"module 'transferkit.backbones' has no attribute {name!r}")


@dataclass
class BackboneRef:
    """A backbone named and weight-verified, whose torch module is built only when needed.

    Everything that identifies the embeddings — name, weights sha256, preprocessing, dimension —
    is known without torch, so a run whose embeddings are all cached never imports it.
    """

    spec: BackboneSpec
    weights: ResolvedWeights | None
    preprocess: ImagePreprocess | TextPreprocess
    _module: Backbone | None = field(default=None, repr=False)
    # Hub text models: read from their config once the files are local
    embedding_dim: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_features(self) -> int:
        return self.spec.embedding_dim or int(self.embedding_dim or 0)

    @property
    def weights_sha256(self) -> str | None:
        return self.weights.sha256 if self.weights else None

    @property
    def weights_source(self) -> str:
        if not self.spec.needs_weights:
            return "none: classical features, nothing pretrained"
        return self.weights.source if self.weights else "random init (pretrained=False)"

    def materialize(self) -> Backbone:
        """The torch module (built and loaded on first call), in eval mode."""
        if self._module is None and self.spec.loader is not None:
            self._module = self.spec.loader(self.spec, self.weights, self.preprocess).eval()
        if self._module is None:
            from transferkit.backbones.base import Backbone

            model = self.spec.build()
            if self.weights is not None:
                model = self.spec.load_state(model, load_state_dict_file(self.weights.path))
            module = Backbone(self.spec.headless(model), spec=self.spec, weights=self.weights)
            module.preprocess = self.preprocess
            # eval by default: frozen-feature extraction is the common case
            self._module = module.eval()
        return self._module


def resolve_backbone(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool = True,
    allow_download: bool = True,
) -> BackboneRef:
    """Find and verify backbone ``name``'s weights without building it (see ``load_backbone``)."""
    if weights is not None and not pretrained:
        raise BadInputError(
            f"load_backbone({name!r}) got weights={str(weights)!r} and pretrained=False: pass "
            "one or the other (a weight file means pretrained)."
        )
    spec = get_spec(name)
    resolved = None
    if pretrained and spec.needs_weights:
        resolved = resolve_weights(
            spec.name,
            spec.weights,
            explicit=weights or spec.weights_path,
            allow_download=allow_download,
        )
    ref = BackboneRef(spec=spec, weights=resolved, preprocess=spec.preprocess)
    if spec.probe is not None:
        # pooling, length and width are whatever the model's files say
        ref.preprocess, ref.embedding_dim = spec.probe(spec, resolved)
    return ref


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
    return resolve_backbone(
        name, weights=weights, pretrained=pretrained, allow_download=allow_download
    ).materialize()


def list_backbones() -> list[dict]:
    """One dict per registered backbone: name, modality, source, embedding_dim, licence,
    non_commercial (its licence forbids commercial use), offline_available (verified weights
    present locally: a weights package or a cache)."""
    return [
        {
            "name": spec.name,
            "modality": spec.modality,
            "source": spec.source,
            "embedding_dim": spec.embedding_dim,
            "licence": spec.licence,
            "non_commercial": spec.non_commercial,
            "offline_available": not spec.needs_weights
            or find_offline_weights(spec.weights) is not None,
        }
        for spec in list_specs()
    ]
