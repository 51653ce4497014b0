"""Heads: the classifier trained on top of a backbone's embeddings, by name."""

from __future__ import annotations

from typing import Any

from transferkit.heads.base import Head
from transferkit.heads.linear import LinearSVMHead, LogisticHead
from transferkit.heads.neighbours import KNNHead, NearestCentroidHead
from transferkit.heads.softmax import LinearSoftmaxHead
from transferkit.heads.vote import VoteHead
from transferkit.naming import lookup

HEADS: dict[str, type[Head]] = {
    h.name: h
    for h in (LogisticHead, LinearSVMHead, KNNHead, NearestCentroidHead, LinearSoftmaxHead)
}
DEFAULT_HEAD = "logistic"
# heads a strategy builds from heads it fitted (tradaboost's vote): not fitted on their own, so
# not in HEADS (the ``--head`` choices), but bundles store and load them like the others
BUILT_HEADS: dict[str, type[Head]] = {VoteHead.name: VoteHead}


def head_class(name: str) -> type[Head]:
    """Look a head up by name, with a did-you-mean for typos."""
    return lookup("head", name, {**HEADS, **BUILT_HEADS})


def make_head(name: str = DEFAULT_HEAD, **params: Any) -> Head:
    return head_class(name)(**params)


__all__ = ["BUILT_HEADS", "DEFAULT_HEAD", "HEADS", "Head", "head_class", "make_head"]
