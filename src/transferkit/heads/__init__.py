"""Heads: the classifier trained on top of a backbone's embeddings, by name."""

from __future__ import annotations

import difflib
from typing import Any

from transferkit.errors import BadInputError
from transferkit.heads.base import Head
from transferkit.heads.linear import LinearSVMHead, LogisticHead
from transferkit.heads.neighbours import KNNHead, NearestCentroidHead

HEADS: dict[str, type[Head]] = {
    h.name: h for h in (LogisticHead, LinearSVMHead, KNNHead, NearestCentroidHead)
}
DEFAULT_HEAD = "logistic"


def head_class(name: str) -> type[Head]:
    """Look a head up by name, with a did-you-mean for typos."""
    try:
        return HEADS[name]
    except KeyError:
        close = difflib.get_close_matches(name, HEADS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BadInputError(
            f"unknown head {name!r}; choose one of {', '.join(HEADS)}.{hint}"
        ) from None


def make_head(name: str = DEFAULT_HEAD, **params: Any) -> Head:
    return head_class(name)(**params)


__all__ = ["DEFAULT_HEAD", "HEADS", "Head", "head_class", "make_head"]
