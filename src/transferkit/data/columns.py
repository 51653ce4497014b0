"""Finding a table's columns: the one a flag names, or the first of the usual names present.

Shared by every table reader (texts in ``text.py``, audio clips in ``audio.py``), so that a
column is found by the same rules and a missing one is explained in the same words.
"""

from __future__ import annotations

from collections.abc import Sequence

from transferkit.errors import BadInputError

# usual names of a label column, most specific first; matched case-insensitively
LABEL_COLUMNS = ("label", "labels", "category", "class", "sentiment", "target")


def find_column(
    columns: Sequence[str],
    given: str | None,
    usual: Sequence[str],
    *,
    flag: str,
    source: str,
) -> str | None:
    """The column named ``given`` (exactly, else ignoring case), or the first of the ``usual``
    names present (ignoring case and surrounding spaces); None when none of them is.

    ``flag`` is the option that names this column (``--text-col``), for the message when
    ``given`` is not a column of ``source``.
    """
    if given is not None:
        if given in columns:
            return given
        folded = {c.casefold(): c for c in columns}
        if given.casefold() in folded:
            return folded[given.casefold()]
        raise BadInputError(
            f"{source}: no column {given!r}; the file has the columns {list(columns)}. Pass "
            f"{flag} with one of them."
        )
    folded = {c.strip().casefold(): c for c in columns}
    for name in usual:
        if name in folded:
            return folded[name]
    return None


def missing_column(
    what: str, usual: Sequence[str], columns: Sequence[str], *, flag: str, source: str
) -> BadInputError:
    """The error for a table none of whose columns has a usual name for ``what``."""
    return BadInputError(
        f"{source}: cannot tell which column holds the {what}; the file has the columns "
        f"{list(columns)}, and none is one of the usual names {list(usual)}. Pass "
        f"{flag} <column> to name it."
    )
