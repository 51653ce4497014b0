"""The inputs of a job over a big pool, listed once on the driver with nothing decoded.

Folders and files are listed as ``transferkit predict`` lists them (the modality's
``list_inputs``); a table of texts through the text modality's reader. For a modality of files
(images, audio), a ``.txt`` or ``.lst`` input is a file list: one path per line, relative to the
list's folder unless absolute. Its lines are taken as they are, unchecked, so a list of ten
million files costs no stat: a line naming no readable file becomes a row with an error, as an
unreadable image does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transferkit.data.dataset import Sample
from transferkit.errors import BadInputError

log = logging.getLogger("transferkit")

FILE_LIST_SUFFIXES = (".txt", ".lst")


def list_job_inputs(items: Sequence[str | Path], modality, **options: Any) -> list[Sample]:
    """Every input of ``items`` for a model of ``modality``, in order, each once.

    ``options``: the table columns named on the command line (``text_col``...); None values
    mean "found by the usual name".
    """
    given = {k: v for k, v in options.items() if v is not None}
    extra = [k for k in given if k not in modality.table_options]
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        raise BadInputError(f"{flags} apply to tables of texts; this model reads {modality.noun}s")
    if not items:
        raise BadInputError(
            f"no inputs given; pass {modality.noun}s, folders of them or a file list"
        )
    samples: list[Sample] = []
    others: list[Path] = []
    for item in items:
        path = Path(item)
        if not modality.inline_inputs and path.suffix.lower() in FILE_LIST_SUFFIXES:
            samples += _list_others(others, modality, given)
            others = []
            samples += [Sample(p, None) for p in read_file_list(path)]
        else:
            others.append(path)
    samples += _list_others(others, modality, given)
    return _once(samples)


def _list_others(paths: list[Path], modality, given: dict[str, Any]) -> list[Sample]:
    if not paths:
        return []
    if given:  # a table of texts: its reader takes the column options
        return list(modality.load_inputs(paths, **given).samples)
    return modality.list_inputs(paths)


def read_file_list(path: Path) -> list[Path]:
    """The paths a file list names, one per line (blank lines and ``#`` comments skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file list; check the path.") from None
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path}: a file list must be UTF-8 text, one path per line ({exc.reason} at byte "
            f"{exc.start})."
        ) from None
    base = path.parent
    lines = (line.strip() for line in text.splitlines())
    paths = [base / line for line in lines if line and not line.startswith("#")]
    if not paths:
        raise BadInputError(f"{path}: the file list names no files; write one path per line.")
    return paths


def _once(samples: list[Sample]) -> list[Sample]:
    """``samples`` without repeats of an input (the output has one row per input)."""
    seen: set[str] = set()
    kept = []
    for sample in samples:
        name = str(sample.path)
        if name not in seen:
            seen.add(name)
            kept.append(sample)
    if len(kept) < len(samples):
        log.info(
            "%d inputs were given more than once: each is predicted once", len(samples) - len(kept)
        )
    return kept
