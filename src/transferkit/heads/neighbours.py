"""Distance-based heads: k-nearest-neighbours and nearest centroid (cosine geometry).

Pretrained embeddings are compared by angle, not length, so both heads work on L2-normalised
vectors; neither has hyper-parameters worth cross-validating on tiny data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.heads.base import Head, l2_normalize


@dataclass
class KNNConfig:
    k: int = 5

    def __post_init__(self):
        if int(self.k) < 1:
            raise BadInputError(f"k must be at least 1; got {self.k}")
        self.k = int(self.k)


class KNNHead(Head):
    """Cosine k-NN with similarity-weighted votes; scores are vote shares."""

    name = "knn"
    Config = KNNConfig
    state_arrays = ("X", "y")
    # a weighted vote is not a repeated row (a copy also takes one of the k places), so
    # weights are refused rather than given a meaning of their own
    accepts_sample_weight = False

    def _fit(self, X, y, *, seed, groups=None, sample_weight=None):
        self.X_ = l2_normalize(X).astype(np.float32)
        self.y_ = y.astype(np.int64)

    @classmethod
    def _stored_classes(cls, arrays):
        # fit takes every class 0..max to have examples, so the neighbours' labels say it
        return int(arrays["y"].max()) + 1 if len(arrays["y"]) else 0

    def _scores(self, X):
        sims = l2_normalize(X) @ self.X_.T
        k = min(self.config.k, sims.shape[1])
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(X), self.n_classes_), dtype=np.float64)
        rows = np.arange(len(X))[:, None]
        # weights in (0, 2]: closer neighbours count more, none counts negatively
        np.add.at(votes, (rows, self.y_[idx]), 1.0 + sims[rows, idx])
        return votes

    def predict_proba(self, X):
        votes = self.decision_function(X)
        return votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-12)


@dataclass
class CentroidConfig:
    temperature: float = 0.05  # turns cosine similarities into confident-but-honest softmax scores

    def __post_init__(self):
        if float(self.temperature) <= 0:
            raise BadInputError(f"temperature must be > 0; got {self.temperature}")


class NearestCentroidHead(Head):
    """Class means of normalised embeddings; predicts the most similar mean."""

    name = "centroid"
    Config = CentroidConfig
    state_arrays = ("centroids",)

    def _fit(self, X, y, *, seed, groups=None, sample_weight=None):
        Z, w = l2_normalize(X), sample_weight
        rows = [y == c for c in range(int(y.max()) + 1)]
        means = [np.average(Z[r], axis=0, weights=None if w is None else w[r]) for r in rows]
        self.centroids_ = l2_normalize(np.stack(means)).astype(np.float32)

    @classmethod
    def _stored_classes(cls, arrays):
        return len(arrays["centroids"])

    def _scores(self, X):
        return (l2_normalize(X) @ self.centroids_.T) / self.config.temperature
