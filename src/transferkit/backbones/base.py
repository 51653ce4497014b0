"""The one interface every backbone speaks: images in, pooled embeddings out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from transferkit.backbones.preprocess import ImagePreprocess
    from transferkit.backbones.registry import BackboneSpec
    from transferkit.weights.resolver import ResolvedWeights


class TrainedIdentity:
    """``mark_trained``: how a backbone module takes on the identity of weights it now holds."""

    def mark_trained(self, *, state_sha256: str, source: str) -> None:
        """Name the weights this module holds now (after training, or as loaded from a bundle):
        the embedding cache keys vectors by ``weights_sha256``, and runners built for the
        previous weights (ONNX sessions, see features/runtime.py) must not serve these."""
        self.__dict__.pop("_transferkit_runners", None)
        self.weights_sha256 = state_sha256
        self.weights_source = source


class Backbone(TrainedIdentity, nn.Module):
    """A pretrained encoder with its classifier removed, its preprocessing and its provenance.

    ``forward(x)`` maps a batch of preprocessed images ``(B, 3, S, S)`` to pooled pre-logit
    embeddings ``(B, num_features)``, like timm's ``forward_head(pre_logits=True)``. The wrapped
    network lives in ``self.model``, so parameter names start with ``"model."``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        spec: BackboneSpec,
        weights: ResolvedWeights | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.name: str = spec.name
        self.preprocess: ImagePreprocess = spec.preprocess
        self.num_features: int = spec.embedding_dim
        self.weights_sha256: str | None = weights.sha256 if weights else None
        self.weights_source: str = weights.source if weights else "random init (pretrained=False)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``(B, num_features)`` of preprocessed images ``(B, 3, S, S)``."""
        return self.model(x)

    def materialize(self) -> Backbone:
        """Already a torch module (``BackboneRef.materialize`` builds one lazily)."""
        return self

    def layer_groups(self) -> list[list[str]]:
        """Parameter names in groups ordered from the input (stem) to the output (last stage).

        Every parameter is in exactly one group; used for gradual unfreezing and layer-wise
        learning rates.
        """
        return [[f"model.{n}" for n in group] for group in self.spec.layer_groups(self.model)]

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, num_features={self.num_features}, weights={self.weights_source!r}"
        )


def group_by_prefix(model: nn.Module, prefixes: Sequence[Iterable[str]]) -> list[list[str]]:
    """Group ``model``'s parameter names by module prefixes, one group per entry of ``prefixes``.

    A prefix matches a module name exactly or as a dotted parent (``"layer1"`` matches
    ``"layer1.0.conv1.weight"`` but not ``"layer10..."``). Groups that match no parameter are
    dropped; a parameter that no prefix matches is an internal error, so a new architecture
    cannot silently leave weights out of unfreezing.
    """
    names = [n for n, _ in model.named_parameters()]
    groups: list[list[str]] = []
    taken: set[str] = set()
    for group_prefixes in prefixes:
        group_prefixes = tuple(group_prefixes)
        group = [
            n
            for n in names
            if n not in taken and any(n == p or n.startswith(p + ".") for p in group_prefixes)
        ]
        taken.update(group)
        if group:
            groups.append(group)
    missing = [n for n in names if n not in taken]
    if missing:
        raise RuntimeError(
            f"layer groups leave parameters out: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    return groups


def children_prefixes(model: nn.Module, container: str) -> list[list[str]]:
    """One group per child of the sequential/list module named ``container`` (e.g. ``features``)."""
    parent = model.get_submodule(container)
    return [[f"{container}.{child}"] for child, _ in parent.named_children()]
