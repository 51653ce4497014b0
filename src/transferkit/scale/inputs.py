"""The inputs of a job over a big pool, listed once on the driver with nothing decoded.

Folders and files are listed as ``transferkit predict`` lists them (the modality's
``list_inputs``); a table of texts through the text modality's reader. For a modality of files
(images, audio), a ``.txt`` or ``.lst`` input is a file list: one path per line, relative to the
list's folder unless absolute; a ``.csv``, ``.tsv`` or ``.parquet`` input is a table of paths,
its path column named by ``--path-col`` or found by its usual name (path, file, image...),
relative paths again relative to the table's folder. Lines and rows are taken as they are,
unchecked, so a list of ten million files costs no stat: one naming no readable file becomes a
row with an error, as an unreadable image does.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transferkit.data.audio import PATH_COLUMNS
from transferkit.data.columns import find_column, missing_column
from transferkit.data.dataset import Sample
from transferkit.errors import BadInputError

log = logging.getLogger("transferkit")

FILE_LIST_SUFFIXES = (".txt", ".lst")
PATH_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
# the usual names of a column of file paths, in a table of images or of audio clips
FILE_COLUMNS = (*PATH_COLUMNS, "filepath", "image", "img", "image_path")


def list_job_inputs(items: Sequence[str | Path], modality, **options: Any) -> list[Sample]:
    """Every input of ``items`` for a model of ``modality``, in order, each once.

    ``options``: the table columns named on the command line (``text_col``...); None values
    mean "found by the usual name".
    """
    given = {k: v for k, v in options.items() if v is not None}
    path_col = None if modality.inline_inputs else given.pop("path_col", None)
    extra = [k for k in given if k not in modality.table_options]
    if extra:
        flags = ", ".join("--" + k.replace("_", "-") for k in extra)
        takes = [*modality.table_options, *(() if modality.inline_inputs else ("path_col",))]
        named = ", ".join("--" + k.replace("_", "-") for k in dict.fromkeys(takes)) or "none"
        raise BadInputError(
            f"{flags}: not a column option of a model that reads {modality.noun}s (its "
            f"tables take: {named})"
        )
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
        elif not modality.inline_inputs and path.suffix.lower() in PATH_TABLE_SUFFIXES:
            samples += _list_others(others, modality, given)
            others = []
            samples += [Sample(p, None) for p in read_path_table(path, path_col)]
        else:
            others.append(path)
    samples += _list_others(others, modality, given)
    return _once(samples)


def read_path_table(path: Path, column: str | None = None) -> list[Path]:
    """The paths in the path column of the table at ``path`` (empty cells skipped)."""
    if not path.is_file():
        raise BadInputError(f"{path}: no such table of file paths; check the path.")
    header, values = _read_columns(path)
    name = find_column(header, column, FILE_COLUMNS, flag="--path-col", source=str(path))
    if name is None:
        raise missing_column(
            "file paths", FILE_COLUMNS, header, flag="--path-col", source=str(path)
        )
    base = path.parent
    cells = (str(v).strip() for v in values(name) if v is not None)
    paths = [base / cell for cell in cells if cell]  # an absolute cell stays absolute
    if not paths:
        raise BadInputError(f"{path}: the column {name!r} names no files; fill it with paths.")
    return paths


def _read_columns(path: Path):
    """(header, values of a column by name) of a CSV/TSV or Parquet table."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several kinds for a file that is not Parquet
            raise BadInputError(f"{path}: not a readable Parquet file ({exc}).") from None
        return table.column_names, lambda name: table.column(name).to_pylist()
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as fp:
            rows = list(csv.reader(fp, delimiter=delimiter))
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path}: a table of file paths must be UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    except csv.Error as exc:
        raise BadInputError(f"{path}: not a readable CSV table ({exc}).") from None
    if not rows:
        raise BadInputError(f"{path}: the table is empty; write a header row, then one path a row.")
    header = [h.strip() for h in rows[0]]

    def values(name: str) -> list[str]:
        index = header.index(name)
        return [row[index] for row in rows[1:] if index < len(row)]

    return header, values


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
