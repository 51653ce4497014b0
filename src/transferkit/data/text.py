"""Reading labelled text: CSV, TSV, JSONL, Parquet, or a folder of ``.txt`` files per class.

Every reader returns plain ``(text, label, where)`` records — ``where`` names the file and row or
line so that any message can point at it — and :func:`load_text_dataset` turns them into a
:class:`~transferkit.data.dataset.Dataset` of modality ``"text"``.

Decisions a user would otherwise trip over:

- the text and label columns are found by their usual names (case-insensitive), or given;
  a missing column is an error that lists the columns the file has;
- labels stay strings exactly as written: ``1`` and ``01`` are different labels, and ``1`` is
  never turned into ``1.0`` (CSV cells are read as text, JSON numbers keep their spelling);
- files are UTF-8 with or without a BOM; anything else is detected (charset-normalizer) and
  named in a warning, or refused with how to re-save the file;
- empty texts are dropped and duplicates counted, each with one warning naming rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from transferkit.errors import BadInputError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_FILE_SUFFIXES = (*TABLE_SUFFIXES, *JSONL_SUFFIXES, *PARQUET_SUFFIXES)
TXT_SUFFIX = ".txt"

# usual column names, most specific first; matched case-insensitively
TEXT_COLUMNS = ("text", "sentence", "review", "content", "comment", "body", "message", "document")
LABEL_COLUMNS = ("label", "labels", "category", "class", "sentiment", "target")

_MAX_LISTED = 10


class TextDataWarning(UserWarning):
    """Something in text data was dropped or looks wrong; the message names the rows."""


@dataclass(frozen=True)
class TextRecord:
    """One labelled (or unlabelled) text and where it came from (``file:row``)."""

    text: str
    label: str | None
    where: str


def is_text_data(path: Path) -> bool:
    """True when ``path`` is a text table file, or a folder whose class folders hold ``.txt``."""
    if path.is_file():
        return path.suffix.lower() in TEXT_FILE_SUFFIXES or path.suffix.lower() == TXT_SUFFIX
    if not path.is_dir():
        return False
    for child in sorted(path.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            for grandchild in child.iterdir():
                if grandchild.is_file() and not grandchild.name.startswith("."):
                    return grandchild.suffix.lower() == TXT_SUFFIX
    return False


# ----------------------------------------------------------------------------- decoding


def decode_bytes(raw: bytes, source: str) -> str:
    """UTF-8 (a BOM is dropped); otherwise the detected encoding, with a warning naming it.

    Raises ``BadInputError`` when the bytes are neither UTF-8 nor any encoding that can be told
    apart with confidence (binary data, or a mix of encodings).
    """
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    if b"\x00" in raw[:4096]:
        # UTF-16 files start with a BOM; other NULs mean binary data
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return raw.decode("utf-16")
        raise BadInputError(
            f"{source}: this is binary data, not text (it contains NUL bytes). Export the data "
            "as UTF-8 CSV, TSV or JSONL."
        )
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a dependency, but say what to do if it is missing
        from_bytes = None
    best = from_bytes(raw).best() if from_bytes is not None else None
    if best is None:
        raise BadInputError(
            f"{source}: not valid UTF-8 (first bad byte at offset {first_bad}) and its encoding "
            "could not be detected. Re-save the file as UTF-8 (in Excel: 'CSV UTF-8'; with "
            "iconv: iconv -f <encoding> -t UTF-8 in.csv > out.csv)."
        )
    warnings.warn(
        f"{source}: not UTF-8; read it as {best.encoding} (detected). If the text looks wrong, "
        "re-save the file as UTF-8.",
        TextDataWarning,
        stacklevel=3,
    )
    return str(best)


def read_text_file(path: Path) -> str:
    """A whole text file, decoded by :func:`decode_bytes`; a missing file names the path."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file; check the path.") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the file ({exc}).") from None
    return decode_bytes(raw, str(path))


# ----------------------------------------------------------------------------- tables


def _pick_column(
    columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str, source: str
) -> str | None:
    """The column named ``given``, or the first usual name present; None when absent."""
    if given is not None:
        if given in columns:
            return given
        folded = {c.casefold(): c for c in columns}
        if given.casefold() in folded:
            return folded[given.casefold()]
        raise BadInputError(
            f"{source}: no column {given!r}; the file has the columns {list(columns)}. Pass "
            f"--{what}-col with one of them."
        )
    folded = {c.strip().casefold(): c for c in columns}
    for name in candidates:
        if name in folded:
            return folded[name]
    return None


def _missing_column(what: str, candidates: Sequence[str], columns: Sequence[str], source: str):
    return BadInputError(
        f"{source}: cannot tell which column holds the {what}; the file has the columns "
        f"{list(columns)}, and none is one of the usual names {list(candidates)}. Pass "
        f"--{what}-col <column> to name it."
    )


def _records_from_rows(
    rows: Iterable[tuple[str, dict]],
    columns: Sequence[str],
    *,
    source: str,
    text_col: str | None,
    label_col: str | None,
    need_labels: bool,
) -> list[TextRecord]:
    text_key = _pick_column(columns, text_col, TEXT_COLUMNS, "text", source)
    if text_key is None:
        # a two-column file with one unknown name: the other column must be the label
        label_guess = _pick_column(columns, label_col, LABEL_COLUMNS, "label", source)
        rest = [c for c in columns if c != label_guess]
        if label_guess is not None and len(rest) == 1:
            text_key = rest[0]
        else:
            raise _missing_column("text", TEXT_COLUMNS, columns, source)
    label_key = _pick_column(columns, label_col, LABEL_COLUMNS, "label", source)
    if label_key == text_key:
        raise BadInputError(
            f"{source}: the text and the label are both the column {text_key!r}; name them "
            "apart with --text-col and --label-col."
        )
    if label_key is None and need_labels:
        raise _missing_column("label", LABEL_COLUMNS, columns, source)
    records = []
    for where, row in rows:
        text = _cell(row.get(text_key), where, text_key)
        label = None
        if label_key is not None:
            label = _cell(row.get(label_key), where, label_key)
            label = unicodedata.normalize("NFC", label.strip()) or None
        records.append(TextRecord(text if text is not None else "", label, where))
    return records


def _cell(value, where: str, column: str) -> str | None:
    """A cell as the user wrote it: strings as is, numbers without float noise."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    raise BadInputError(
        f"{where}: column {column!r} holds a {type(value).__name__} ({str(value)[:40]!r}); "
        "expected text or a single label. Multi-label data is not supported: give one label "
        "per row."
    )


def read_table(
    path: Path,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    need_labels: bool = True,
) -> list[TextRecord]:
    """Records from a CSV / TSV / JSONL / Parquet file (by its suffix)."""
    suffix = path.suffix.lower()
    source = str(path)
    if suffix in TABLE_SUFFIXES:
        columns, rows = _csv_rows(path, TABLE_SUFFIXES[suffix])
    elif suffix in JSONL_SUFFIXES:
        columns, rows = _jsonl_rows(path)
    elif suffix in PARQUET_SUFFIXES:
        columns, rows = _parquet_rows(path)
    else:
        raise BadInputError(
            f"{path}: not a text table (supported: {', '.join(TEXT_FILE_SUFFIXES)}, or a folder "
            "with one sub-folder of .txt files per class)."
        )
    return _records_from_rows(
        rows,
        columns,
        source=source,
        text_col=text_col,
        label_col=label_col,
        need_labels=need_labels,
    )


def _csv_rows(path: Path, delimiter: str) -> tuple[list[str], list[tuple[str, dict]]]:
    text = read_text_file(path)
    # newline="" lets the csv module keep line breaks inside quoted fields
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise BadInputError(f"{path}: the file is empty; it needs a header row.") from None
    except csv.Error as exc:
        raise BadInputError(f"{path}: not valid CSV ({exc}).") from None
    columns = [c.strip() for c in header]
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        raise BadInputError(f"{path}: the header repeats the columns {repeated}; rename them.")
    rows = []
    try:
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            where = f"{path}:{reader.line_num}"
            if len(row) > len(columns):
                raise BadInputError(
                    f"{where}: {len(row)} fields but the header has {len(columns)}; a field "
                    f"probably holds an unquoted {'comma' if delimiter == ',' else 'tab'}. Quote "
                    'fields that contain the delimiter ("...").'
                )
            rows.append((where, dict(zip(columns, row))))
    except csv.Error as exc:
        raise BadInputError(f"{path}:{reader.line_num}: not valid CSV ({exc}).") from None
    return columns, rows


def _jsonl_rows(path: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    text = read_text_file(path)
    columns: dict[str, None] = {}
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInputError(
                f"{where}: not valid JSON ({exc.msg}); JSONL needs one JSON object per line."
            ) from None
        if not isinstance(obj, dict):
            raise BadInputError(
                f"{where}: a JSON {type(obj).__name__}, not an object; write each line as "
                '{"text": "...", "label": "..."}.'
            )
        columns.update(dict.fromkeys(obj))
        rows.append((where, obj))
    if not rows:
        raise BadInputError(f"{path}: the file has no JSON lines.")
    return list(columns), rows


def _parquet_rows(path: Path) -> tuple[list[str], list[tuple[str, dict]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError(
            f"{path}: reading Parquet needs pyarrow; pip install 'transferkit[text]' (or "
            "pyarrow), or export the data as CSV or JSONL."
        ) from None
    if not path.is_file():
        raise BadInputError(f"{path}: no such file; check the path.")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise BadInputError(f"{path}: not a readable Parquet file ({exc}).") from None
    columns = list(table.column_names)
    data = table.to_pydict()
    rows = [
        (f"{path}:row {i + 1}", {c: data[c][i] for c in columns}) for i in range(table.num_rows)
    ]
    return columns, rows


# ----------------------------------------------------------------------------- folders


def read_txt_folder(root: Path) -> list[TextRecord]:
    """``root/<class>/*.txt``: one text per file, the folder name is the label."""
    records = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = unicodedata.normalize("NFC", folder.name)
        for file in sorted(folder.rglob("*")):
            if file.name.startswith(".") or not file.is_file():
                continue
            if file.suffix.lower() != TXT_SUFFIX:
                continue
            records.append(TextRecord(read_text_file(file), label, str(file)))
    return records


def read_txt_lines(path: Path) -> list[TextRecord]:
    """An unlabelled ``.txt`` file for prediction: one text per non-empty line."""
    text = read_text_file(path)
    return [
        TextRecord(line, None, f"{path}:{n}")
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


# ----------------------------------------------------------------------------- checks


def clean_records(records: list[TextRecord], source: str, *, need_labels: bool) -> list:
    """Drop empty texts and rows with no label (one warning each), warn about duplicates."""
    empty = [r for r in records if not r.text.strip()]
    if empty:
        warnings.warn(
            f"{source}: dropped {len(empty)} row(s) with an empty text: "
            f"{_listed(r.where for r in empty)}",
            TextDataWarning,
            stacklevel=3,
        )
    kept = [r for r in records if r.text.strip()]
    if need_labels:
        unlabelled = [r for r in kept if r.label is None]
        if unlabelled:
            warnings.warn(
                f"{source}: dropped {len(unlabelled)} row(s) with no label: "
                f"{_listed(r.where for r in unlabelled)}",
                TextDataWarning,
                stacklevel=3,
            )
            kept = [r for r in kept if r.label is not None]
    seen: dict[str, TextRecord] = {}
    duplicates, conflicts = [], []
    for r in kept:
        key = normalise_for_duplicates(r.text)
        first = seen.setdefault(key, r)
        if first is not r:
            (conflicts if first.label != r.label else duplicates).append((r, first))
    if duplicates:
        warnings.warn(
            f"{source}: {len(duplicates)} text(s) repeat an earlier one with the same label "
            f"(kept; they weigh double in training): "
            f"{_listed(f'{r.where} = {f.where}' for r, f in duplicates)}",
            TextDataWarning,
            stacklevel=3,
        )
    if conflicts:
        pairs = _listed(f"{r.where} ({r.label!r}) vs {f.where} ({f.label!r})" for r, f in conflicts)
        warnings.warn(
            f"{source}: {len(conflicts)} text(s) appear again with a different label: {pairs}. "
            "Check the labels: a classifier cannot learn both.",
            TextDataWarning,
            stacklevel=3,
        )
    return kept


def non_latin_share(texts, limit: int = 2000) -> float:
    """Share of letters outside the Latin script in (up to ``limit`` of) ``texts``: a hint
    that an English-only encoder is the wrong default."""
    letters = non_latin = 0
    for text in list(texts)[:limit]:
        for ch in text:
            if ch.isalpha():
                letters += 1
                non_latin += "LATIN" not in unicodedata.name(ch, "LATIN")
    return non_latin / letters if letters else 0.0


def normalise_for_duplicates(text: str) -> str:
    """Case, Unicode form and whitespace do not make two texts different."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    shown = "; ".join(items[:_MAX_LISTED])
    return shown + (f"; and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def text_source(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path that exists, or a clear error."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: no such file or folder; check the path.")
    return path


# ----------------------------------------------------------------------------- datasets


def load_text_dataset(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    text_col: str | None = None,
    label_col: str | None = None,
):
    """A labelled text Dataset from a table file or a folder of ``.txt`` files per class.

    ``strict`` is accepted for the common reader signature; text has no unreadable files to
    skip (a file that cannot be decoded is an error either way).
    """
    from transferkit.data.dataset import Dataset, Sample

    del strict
    path = text_source(path)
    if path.is_dir():
        if text_col or label_col:
            raise BadInputError(
                f"{path} is a folder of .txt files (one sub-folder per class); --text-col and "
                "--label-col only apply to tables (CSV, TSV, JSONL, Parquet)."
            )
        records = read_txt_folder(path)
        if not records:
            raise BadInputError(
                f"{path}: no .txt files in its class sub-folders; put one text per .txt file "
                "in a sub-folder named after its class, or pass a CSV/JSONL file."
            )
    else:
        records = read_table(path, text_col=text_col, label_col=label_col, need_labels=True)
    records = clean_records(records, str(path), need_labels=True)
    if not records:
        raise BadInputError(f"{path}: no labelled, non-empty texts to learn from.")
    labels = tuple(sorted({r.label for r in records}))
    samples = tuple(Sample(Path(r.where), r.label, r.text) for r in records)
    return Dataset(samples, labels, source=str(path), modality="text")


def load_text_inputs(paths: Sequence[str | os.PathLike[str]], *, text_col: str | None = None):
    """Unlabelled texts to predict: table files (their text column) or ``.txt`` files (a text
    per line). Labels in a table are ignored."""
    from transferkit.data.dataset import Dataset, Sample

    records: list[TextRecord] = []
    for raw in paths:
        path = text_source(raw)
        if path.is_dir():
            raise BadInputError(
                f"{path}: a folder; to predict texts pass CSV/TSV/JSONL/Parquet files or .txt "
                "files with one text per line."
            )
        if path.suffix.lower() == TXT_SUFFIX:
            records += read_txt_lines(path)
        else:
            records += read_table(path, text_col=text_col, need_labels=False)
    source = str(paths[0]) if len(paths) == 1 else f"{len(paths)} inputs"
    records = [TextRecord(r.text, None, r.where) for r in records]
    records = clean_records(records, source, need_labels=False)
    if not records:
        raise BadInputError(f"{source}: no non-empty texts to predict.")
    samples = tuple(Sample(Path(r.where), None, r.text) for r in records)
    return Dataset(samples, (), source=source, modality="text")


def report_overlap(train, test) -> int:
    """Warn when test texts also occur in the training data (they inflate accuracy)."""
    seen = {normalise_for_duplicates(t) for t in train.texts}
    shared = [
        s.path.as_posix() for s in test.samples if normalise_for_duplicates(s.text or "") in seen
    ]
    if shared:
        warnings.warn(
            f"{len(shared)} of {len(test)} test text(s) also appear in the training data, which "
            f"inflates the measured accuracy: {_listed(shared)}. Remove them from one side.",
            TextDataWarning,
            stacklevel=2,
        )
    return len(shared)
