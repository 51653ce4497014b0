"""Looking things up by name, with a "did you mean" for typos (one place for every registry)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

from transferkit.errors import BadInputError

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` for the closest known names, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def lookup(kind: str, name: str, table: Mapping[str, T]) -> T:
    """``table[name]``, or a BadInputError listing the choices and the likely typo."""
    try:
        return table[name]
    except KeyError:
        raise BadInputError(
            f"unknown {kind} {name!r}; choose one of {', '.join(table)}.{did_you_mean(name, table)}"
        ) from None
