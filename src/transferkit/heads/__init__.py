"""Heads: the classifier trained on top of a backbone's embeddings, by name."""

from __future__ import annotations

from typing import Any

from transferkit.heads.base import Head
from transferkit.heads.linear import LinearSVMHead, LogisticHead
from transferkit.heads.neighbours import KNNHead, NearestCentroidHead
from transferkit.heads.softmax import LinearSoftmaxHead
from transferkit.naming import lookup

HEADS: dict[str, type[Head]] = {
    h.name: h
    for h in (LogisticHead, LinearSVMHead, KNNHead, NearestCentroidHead, LinearSoftmaxHead)
}
DEFAULT_HEAD = "logistic"


def head_class(name: str) -> type[Head]:
    """Look a head up by name, with a did-you-mean for typos."""
    return lookup("head", name, HEADS)


def make_head(name: str = DEFAULT_HEAD, **params: Any) -> Head:
    return head_class(name)(**params)


__all__ = ["DEFAULT_HEAD", "HEADS", "Head", "head_class", "make_head"]
