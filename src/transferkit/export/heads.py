"""Every head as a torch module: embeddings in, the head's own probabilities out.

Each module repeats its head's ``predict_proba`` arithmetic (``heads/``) with the fitted arrays
as constants, so that the exported graph computes what the bundle computes; the parity check
of ``export`` holds them to 1e-4. Keyed by the head's name; a head without a graph here is
refused with the names of those that have one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from transferkit.errors import BadInputError


def _const(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _unit(x: torch.Tensor) -> torch.Tensor:
    """``heads.base.l2_normalize``: rows scaled to unit length, zero rows stay zero."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class LinearHeadGraph(nn.Module):
    """``logistic`` and ``svm``: standardised or power-normalised, centred, linear, softmax."""

    def __init__(self, head):
        super().__init__()
        center = getattr(head, "center_", None)
        self.standardize = center is not None
        if self.standardize:
            self.register_buffer("center", _const(center))
            self.register_buffer("scale", _const(head.scale_))
        self.register_buffer("mean", _const(head.mean_))
        self.register_buffer("coef_t", _const(np.asarray(head.coef_).T))
        self.register_buffer("intercept", _const(head.intercept_))
        # binary models store one row: class 0 is the zero logit (heads/linear.py)
        self.binary = int(np.asarray(head.coef_).shape[0]) == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardize:
            z = (x - self.center) / self.scale
        else:  # signed square root, then unit length
            z = _unit(torch.sign(x) * torch.sqrt(torch.abs(x)))
        scores = (z - self.mean) @ self.coef_t + self.intercept
        if self.binary:
            scores = torch.cat([torch.zeros_like(scores), scores], dim=1)
        return torch.softmax(scores, dim=1)


class SoftmaxHeadGraph(nn.Module):
    """``linear``: ``softmax(x @ weight.T + bias)`` on the raw embedding."""

    def __init__(self, head):
        super().__init__()
        self.register_buffer("weight_t", _const(np.asarray(head.weight_).T))
        self.register_buffer("bias", _const(head.bias_))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x @ self.weight_t + self.bias, dim=1)


class CentroidHeadGraph(nn.Module):
    """``centroid``: cosine similarity to each class mean, over the temperature, softmax."""

    def __init__(self, head):
        super().__init__()
        self.register_buffer("centroids_t", _const(np.asarray(head.centroids_).T))
        self.temperature = float(head.config.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax((_unit(x) @ self.centroids_t) / self.temperature, dim=1)


class KNNHeadGraph(nn.Module):
    """``knn``: the k most similar training embeddings vote with weight 1 + similarity; the
    probabilities are the vote shares. The votes are gathered from one-hot rows of the
    training labels (TopK + Gather), since ONNX has no scatter-add that keeps a dynamic batch."""

    def __init__(self, head):
        super().__init__()
        self.register_buffer("train_t", _const(np.asarray(head.X_).T))
        onehot = np.eye(int(head.n_classes_), dtype=np.float32)[np.asarray(head.y_)]
        self.register_buffer("onehot", torch.from_numpy(onehot))
        self.k = min(int(head.config.k), len(head.y_))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sims = _unit(x) @ self.train_t
        top, index = torch.topk(sims, self.k, dim=1)
        votes = (nn.functional.embedding(index, self.onehot) * (1.0 + top).unsqueeze(-1)).sum(1)
        return votes / votes.sum(dim=1, keepdim=True).clamp_min(1e-12)


class VoteHeadGraph(nn.Module):
    """``vote`` (tradaboost): each member's linear graph, their probabilities averaged with the
    members' vote shares."""

    def __init__(self, head):
        super().__init__()
        self.members = nn.ModuleList(LinearHeadGraph(m) for m in head.members())
        votes = np.asarray(head.vote_, dtype=np.float64)
        self.register_buffer("share", _const(votes / votes.sum()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(self.share[i] * member(x) for i, member in enumerate(self.members))


HEAD_GRAPHS: dict[str, Callable[..., nn.Module]] = {
    "logistic": LinearHeadGraph,
    "svm": LinearHeadGraph,
    "linear": SoftmaxHeadGraph,
    "centroid": CentroidHeadGraph,
    "knn": KNNHeadGraph,
    "vote": VoteHeadGraph,
}


def head_graph(head) -> nn.Module:
    """The torch module computing ``head.predict_proba``; refused for a head without one."""
    build = HEAD_GRAPHS.get(head.name)
    if build is None:
        raise BadInputError(
            f"the '{head.name}' head has no ONNX graph; heads that export: "
            f"{', '.join(sorted(HEAD_GRAPHS))}. Re-train with one of them (--head NAME)."
        )
    return build(head).eval()
