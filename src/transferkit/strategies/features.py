"""``features``: the frozen backbone encodes every example once; only a new head is trained.

The right default for tiny data: nothing pretrained can be damaged, embeddings are cached, and
training a head on a few hundred vectors takes seconds. ``augment="light"`` adds the mirror
image of every training photo as a second view (cheap: the training set is the small part),
which measured +0.5 points on Fashion-MNIST with 10 images per class; use ``none`` where
mirroring changes the meaning (text, digits, left/right classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.strategies.base import (
    Capabilities,
    FitContext,
    FitData,
    Strategy,
    StrategyResult,
)
from transferkit.strategies.registry import register_strategy

AUGMENTS = ("none", "light")


@dataclass
class FeaturesConfig:
    augment: str = "light"

    def __post_init__(self):
        if self.augment not in AUGMENTS:
            raise BadInputError(
                f"augment must be one of {', '.join(AUGMENTS)} for the features strategy; "
                f"got {self.augment!r}"
            )


@dataclass
class TrainingEmbeddings:
    """The rows a head fits on: embeddings ``X``, classes ``y``, ``groups`` (views of one
    example share a group), ``rows`` (the training sample of each row) and what embedding
    took (``info``, for the manifest and the report)."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None
    rows: np.ndarray
    n_train: int
    info: dict


def embed_training_set(backbone, train, embed, augment: str) -> TrainingEmbeddings:
    """Frozen embeddings of ``train``'s readable samples, with their mirror images as second
    views when ``augment`` is "light" and the data have them (images)."""
    from transferkit.modalities import get_modality

    result = embed(train)
    ok = result.ok
    rows = np.flatnonzero(ok)
    X, y = result.embeddings[ok], train.targets[ok]
    groups = None
    seconds = result.seconds
    views = ["identity"]
    if augment == "light" and "hflip" in get_modality(train.modality).views:
        mirrored = embed(train.subset(rows), view="hflip")
        seconds += mirrored.seconds
        keep = mirrored.ok
        groups = np.concatenate([np.arange(len(y)), np.flatnonzero(keep)])
        X = np.vstack([X, mirrored.embeddings[keep]])
        y = np.concatenate([y, y[keep]])
        rows = np.concatenate([rows, rows[keep]])
        views.append("hflip")
    info = {
        "seconds_extract": seconds,
        "runtime": result.runtime,
        "views": views,
        "n_cached": result.n_cached,
        "problems": result.problems,
        # what extraction tells of this modality (audio: windows, seconds), under its name
        **({"modality_facts": {train.modality: result.info}} if result.info else {}),
    }
    return TrainingEmbeddings(X, y, groups, rows, int(ok.sum()), info)


def head_params_for(spec, head_name: str, params: dict | None = None) -> dict:
    """``params`` for ``head_name`` on ``spec``'s embeddings: linear heads standardise
    classical features whose dimensions differ in scale (``spec.standardize_features``)."""
    params = dict(params or {})
    if spec.standardize_features and head_name in ("logistic", "svm"):
        params.setdefault("standardize", True)
    return params


def frozen_features_head(spec):
    """The head ``--strategy features`` fits by default on ``spec``'s embeddings (unfitted)."""
    from transferkit.heads import make_head

    name = FeaturesStrategy.default_head
    return make_head(name, **head_params_for(spec, name))


def fit_head(head, X: np.ndarray, emb: TrainingEmbeddings, sample_weight, seed: int) -> None:
    """Fit ``head`` on rows ``X`` of ``emb`` (each view weighted as its sample, if weighted)."""
    weights = {} if sample_weight is None else {"sample_weight": sample_weight[emb.rows]}
    head.fit(X, emb.y, seed=seed, groups=emb.groups, **weights)


@register_strategy
class FeaturesStrategy(Strategy):
    name = "features"
    Config = FeaturesConfig
    capabilities = Capabilities(accepts_sample_weight=True)

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        emb = embed_training_set(backbone, data.train, ctx.embed, self.config.augment)
        fit_head(ctx.head, emb.X, emb, data.sample_weight, ctx.seed)
        return StrategyResult(n_train=emb.n_train, info=emb.info)

    def metrics_block(self, result: StrategyResult) -> dict:
        # windows, seconds of audio, throughput: for the report
        return dict(result.info.get("modality_facts", {}))
