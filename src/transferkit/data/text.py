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
- empty texts are dropped and duplicates counted, each with one warning naming rows;
- an empty or NaN-looking label cell (``NaN``, ``null``, ``#N/A``, a JSON ``NaN``) is a missing
  label, never a class called "NaN";
- CSV follows CSV quoting; TSV honours quotes only when the file quotes its fields (its header
  is quoted, or every quote in it follows CSV rules), so a stray quote in a hand-written TSV stays
  a character; rows that a stray quote merged, and quotes that break CSV rules, are named;
- a text column that holds numbers rather than strings is named in a warning.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from transferkit.data.columns import LABEL_COLUMNS, find_column, missing_column
from transferkit.data.dataset import Dataset, Sample
from transferkit.errors import BadInputError

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_FILE_SUFFIXES = (*TABLE_SUFFIXES, *JSONL_SUFFIXES, *PARQUET_SUFFIXES)
TXT_SUFFIX = ".txt"

# usual column names, most specific first; matched case-insensitively
TEXT_COLUMNS = ("text", "sentence", "review", "content", "comment", "body", "message", "document")

_MAX_LISTED = 10

# label cells that spreadsheets and dataframes write for "no value" (compared casefolded);
# "none" and "na" are left out: they are plausible class names
MISSING_LABELS = frozenset({"nan", "-nan", "<na>", "null", "#n/a"})

# csv keeps its field-size limit in a C long, which is 32 bits on Windows
_MAX_FIELD_LIMIT = 2**31 - 1

_NUMBER = re.compile(r"[-+]?\d[\d.,]*(?:[eE][-+]?\d+)?")
_TABLE_ROW = re.compile(
    r"\.(?:" + "|".join(s.lstrip(".") for s in TEXT_FILE_SUFFIXES) + r"):(?:row )?\d+$",
    re.IGNORECASE,
)


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


def _text_of(path: Path, content: bytes | None) -> str:
    """The text of the file ``path``, or of ``content`` (its bytes, already in memory)."""
    return read_text_file(path) if content is None else decode_bytes(content, str(path))


# ----------------------------------------------------------------------------- tables


def _find_columns(
    columns: Sequence[str],
    *,
    source: str,
    text_col: str | None,
    label_col: str | None,
    need_labels: bool,
) -> tuple[str, str | None]:
    """The text column and the label column (None when absent and not needed)."""
    text_key = find_column(columns, text_col, TEXT_COLUMNS, flag="--text-col", source=source)
    if text_key is None:
        # a two-column file with one unknown name: the other column must be the label
        label_guess = find_column(
            columns, label_col, LABEL_COLUMNS, flag="--label-col", source=source
        )
        rest = [c for c in columns if c != label_guess]
        if label_guess is not None and len(rest) == 1:
            text_key = rest[0]
        else:
            raise missing_column("text", TEXT_COLUMNS, columns, flag="--text-col", source=source)
    label_key = find_column(columns, label_col, LABEL_COLUMNS, flag="--label-col", source=source)
    if label_key == text_key:
        raise BadInputError(
            f"{source}: the text and the label are both the column {text_key!r}; name them "
            "apart with --text-col and --label-col."
        )
    if label_key is None and need_labels:
        raise missing_column("label", LABEL_COLUMNS, columns, flag="--label-col", source=source)
    return text_key, label_key


def _records_from_rows(
    rows: Sequence[tuple[str, dict]],
    columns: Sequence[str],
    *,
    source: str,
    text_col: str | None,
    label_col: str | None,
    need_labels: bool,
    delimiter: str | None = None,
) -> tuple[list[TextRecord], str | None]:
    """The records of a table's rows, and the name of its label column."""
    try:
        text_key, label_key = _find_columns(
            columns,
            source=source,
            text_col=text_col,
            label_col=label_col,
            need_labels=need_labels,
        )
    except BadInputError:
        if delimiter is not None and _first_row_is_data(columns, rows):
            raise _no_header(source, columns, rows, delimiter) from None
        raise
    _warn_non_text(source, text_key, rows)
    records = []
    for where, row in rows:
        text = _cell(row.get(text_key), where, text_key)
        label = None
        if label_key is not None:
            label = _label(_cell(row.get(label_key), where, label_key))
        records.append(TextRecord(text if text is not None else "", label, where))
    return records, label_key


def _label(cell: str | None) -> str | None:
    """A label as written (trimmed, NFC); None for an empty or NaN-looking cell."""
    if cell is None:
        return None
    label = unicodedata.normalize("NFC", cell.strip())
    return None if not label or label.casefold() in MISSING_LABELS else label


def _cell(value, where: str, column: str) -> str | None:
    """A cell as the user wrote it: strings as is, numbers without float noise; NaN is None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return repr(value) if not value.is_integer() else str(int(value))
    raise BadInputError(
        f"{where}: column {column!r} holds a {type(value).__name__} ({str(value)[:40]!r}); "
        "expected text or a single label. Multi-label data is not supported: give one label "
        "per row."
    )


def _warn_non_text(source: str, column: str, rows: Sequence[tuple[str, dict]]) -> None:
    """Warn when the text column holds numbers (or other non-strings) instead of texts: a
    classifier would learn from the digits, which is rarely what was meant."""
    values = [(where, row.get(column)) for where, row in rows if row.get(column) is not None]
    odd = [(where, v) for where, v in values if not isinstance(v, str)]
    if odd:
        kinds = "/".join(sorted({type(v).__name__ for _, v in odd}))
        where, example = odd[0]
        what = f"{kinds} values, not strings, in {len(odd)} of {len(rows)} rows (e.g. {where}: "
        what += f"{example!r})"
    elif values and all(_NUMBER.fullmatch(v.strip()) for _, v in values if v.strip()):
        what = "only numbers"
    else:
        return
    warnings.warn(
        f"{source}: the text column {column!r} holds {what}; they are read as the texts they "
        "print as. If the texts are in another column, pass --text-col with a column of strings.",
        TextDataWarning,
        stacklevel=5,
    )


def _first_row_is_data(columns: Sequence[str], rows: Sequence[tuple[str, dict]]) -> bool:
    """True when the header looks like a row of data: a cell that is a sentence or a number,
    or that recurs as a value of its own column (a label)."""
    if not rows:  # a lone row gives nothing to compare it with
        return False
    for column in columns:
        below = {str(row.get(column, "")).strip() for _, row in rows}
        if len(column.split()) >= 4 or _NUMBER.fullmatch(column) or column in below:
            return True
    return False


def _no_header(
    source: str, columns: Sequence[str], rows: Sequence[tuple[str, dict]], delimiter: str
) -> BadInputError:
    """The error for a table without a header row, with a header line to add."""

    def mean_length(column: str) -> float:
        return sum(len(str(row.get(column) or "")) for _, row in rows) / len(rows)

    def distinct(column: str) -> int:
        return len({row.get(column) for _, row in rows})

    text = max(columns, key=mean_length)
    others = [c for c in columns if c != text]
    label = min(others, key=distinct) if others else None
    names = [
        "text" if c == text else "label" if c == label else f"column{i + 1}"
        for i, c in enumerate(columns)
    ]
    separated = "separated by a tab" if delimiter == "\t" else f"separated by {delimiter!r}"
    return BadInputError(
        f"{source}: the file has no header row: its first row {list(columns)} looks like data. "
        f"Add a header as the first line, the column names {separated}, e.g.\n"
        f"{delimiter.join(names)}\n(or other names, given with --text-col and --label-col)."
    )


def read_table(
    path: Path,
    *,
    text_col: str | None = None,
    label_col: str | None = None,
    need_labels: bool = True,
    content: bytes | None = None,
) -> tuple[list[TextRecord], str | None]:
    """Records from a CSV / TSV / JSONL / Parquet file (by its suffix), and its label column.

    ``content``: the file's bytes, already in memory (an upload named ``path``).
    """
    suffix = path.suffix.lower()
    delimiter = TABLE_SUFFIXES.get(suffix)
    if delimiter is not None:
        columns, rows = _csv_rows(path, delimiter, _text_of(path, content))
    elif suffix in JSONL_SUFFIXES:
        columns, rows = _jsonl_rows(path, _text_of(path, content))
    elif suffix in PARQUET_SUFFIXES:
        columns, rows = _parquet_rows(path, content)
    else:
        raise BadInputError(
            f"{path}: not a text table (supported: {', '.join(TEXT_FILE_SUFFIXES)}, or a folder "
            "with one sub-folder of .txt files per class)."
        )
    return _records_from_rows(
        rows,
        columns,
        source=str(path),
        text_col=text_col,
        label_col=label_col,
        need_labels=need_labels,
        delimiter=delimiter,
    )


@dataclass(frozen=True)
class _Record:
    """One parsed CSV record and the lines it spans (a quoted field may hold line breaks)."""

    first: int
    last: int
    cells: list[str]


class _QuoteError(Exception):
    """The file does not follow CSV quoting rules at ``line``."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line


@contextmanager
def _field_limit(size: int) -> Iterator[None]:
    """csv's field-size limit raised to ``size`` while reading, then restored: the limit is
    process-wide, and a caller's own csv reading should not change under them."""
    previous = csv.field_size_limit()
    csv.field_size_limit(min(max(size, previous), _MAX_FIELD_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _parse(text: str, delimiter: str, *, quoting: int, strict: bool) -> list[_Record]:
    """Every record of ``text``; ``strict`` raises ``_QuoteError`` where quotes break CSV rules."""
    # newline="" lets the csv module keep line breaks inside quoted fields
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=strict
    )
    records: list[_Record] = []
    # no field can be longer than the file (the default limit, 128 KiB, refuses long documents)
    with _field_limit(len(text) + 1):
        try:
            for cells in reader:
                start = records[-1].last + 1 if records else 1
                records.append(_Record(start, reader.line_num, cells))
        except csv.Error as exc:
            raise _QuoteError(reader.line_num, str(exc)) from None
    return records


def _read_records(path: Path, text: str, delimiter: str) -> list[_Record]:
    """The records of a CSV or TSV text, quotes honoured as the file uses them.

    CSV always honours quotes. TSV often has none and a stray ``"`` in a text would swallow
    the lines after it, so a TSV honours them only when its header is quoted or every quote in
    it follows CSV rules. Where a CSV breaks the rules, the first such line is named.
    """
    try:
        return _parse(text, delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    except _QuoteError as exc:
        broken = exc
    if delimiter == "\t" and not _quoted_header(text, delimiter):
        return _parse(text, delimiter, quoting=csv.QUOTE_NONE, strict=False)
    try:
        records = _parse(text, delimiter, quoting=csv.QUOTE_MINIMAL, strict=False)
    except _QuoteError as exc:
        raise BadInputError(f"{path}:{exc.line}: not valid CSV ({exc}).") from None
    if "expected after" in str(broken):  # an unclosed quote is reported as merged rows
        warnings.warn(
            f"{path}:{broken.line}: a field starts with a quote but goes on after its closing "
            "quote, so the quotes were dropped from the text. Quote the whole field and double "
            'the quotes inside it: "He said ""hi"" twice"',
            TextDataWarning,
            stacklevel=5,
        )
    return records


def _quoted_header(text: str, delimiter: str) -> bool:
    """True when every cell of the first line is wrapped in quotes."""
    first = text.split("\n", 1)[0].rstrip("\r")
    return all(len(c) >= 2 and c[0] == c[-1] == '"' for c in first.split(delimiter))


def _report_merged_rows(
    path: Path, records: Sequence[_Record], columns: Sequence[str], delimiter: str
) -> None:
    """Warn about records that span lines which look like rows of their own.

    A quoted field may legitimately hold line breaks (a review in paragraphs), so a record
    spanning several lines alone is no fault; it is when a line inside the field reads as a
    whole row of this file (as many fields as the header, one of them a value that recurs in
    its column, like a label) that a stray quote has swallowed rows.
    """
    data = [r for r in records[1:] if any(c.strip() for c in r.cells)]
    recurring = [
        Counter(r.cells[j].strip() for r in data if j < len(r.cells)) for j in range(len(columns))
    ]

    def looks_like_row(line: str) -> bool:
        cells = [c.strip().strip('"') for c in line.split(delimiter)]
        return len(cells) == len(columns) and any(
            c and recurring[j][c] >= 2 for j, c in enumerate(cells)
        )

    def swallows_rows(record: _Record) -> bool:
        lines = (line for cell in record.cells if "\n" in cell for line in cell.splitlines())
        return record.last > record.first and any(looks_like_row(line) for line in lines)

    merged = [r for r in data if swallows_rows(r)]
    if not merged:
        return
    n_lines = records[-1].last - records[0].last - (len(records) - 1 - len(data))
    spans = _listed(f"lines {r.first}-{r.last}" for r in merged)
    warnings.warn(
        f"{path}: {spans} {'were' if len(merged) == 1 else 'were each'} read as one row: a quote "
        f"at the start of a field opens a quoted field that runs on over lines that look like "
        f"rows of their own (the file has {n_lines} data lines but {len(data)} rows were read). "
        "Remove the stray quote, or quote the field properly: wrap the whole field in quotes "
        'and double any quote inside it ("He said ""hi""").',
        TextDataWarning,
        stacklevel=5,
    )


def _csv_rows(path: Path, delimiter: str, text: str) -> tuple[list[str], list[tuple[str, dict]]]:
    records = _read_records(path, text, delimiter)
    if not records:
        raise BadInputError(f"{path}: the file is empty; it needs a header row.")
    header, body = records[0], records[1:]
    columns = [c.strip() for c in header.cells]
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        raise BadInputError(f"{path}: the header repeats the columns {repeated}; rename them.")
    rows = []
    for record in body:
        if not any(cell.strip() for cell in record.cells):
            continue  # blank line
        where = f"{path}:{record.first}"
        if len(record.cells) > len(columns):
            raise BadInputError(
                f"{where}: {len(record.cells)} fields but the header has {len(columns)}; a field "
                f"probably holds an unquoted {'comma' if delimiter == ',' else 'tab'}. Quote "
                'fields that contain the delimiter ("...").'
            )
        rows.append((where, dict(zip(columns, record.cells))))
    _report_merged_rows(path, records, columns, delimiter)
    return columns, rows


def _jsonl_rows(path: Path, text: str) -> tuple[list[str], list[tuple[str, dict]]]:
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


def _parquet_rows(path: Path, content: bytes | None) -> tuple[list[str], list[tuple[str, dict]]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise BadInputError(
            f"{path}: reading Parquet needs pyarrow; pip install 'transferkit[text]' (or "
            "pyarrow), or export the data as CSV or JSONL."
        ) from None
    if content is None and not path.is_file():
        raise BadInputError(f"{path}: no such file; check the path.")
    try:
        table = pq.read_table(path if content is None else pa.BufferReader(content))
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


def read_txt_lines(path: Path, content: bytes | None = None) -> list[TextRecord]:
    """An unlabelled ``.txt`` file for prediction: one text per non-empty line.

    ``content``: the file's bytes, already in memory (an upload named ``path``).
    """
    text = _text_of(path, content)
    return [
        TextRecord(line, None, f"{path}:{n}")
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]


# ----------------------------------------------------------------------------- checks


def clean_records(
    records: list[TextRecord],
    source: str,
    *,
    need_labels: bool,
    label_column: str | None = None,
) -> list:
    """Drop empty texts and rows with no label (one warning each), warn about duplicates.

    ``label_column`` (a table's) is named in the warning about rows without a label.
    """
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
            cell = f" (column {label_column!r} is empty or NaN)" if label_column else ""
            warnings.warn(
                f"{source}: dropped {len(unlabelled)} row(s) with no label{cell}: "
                f"{_listed(r.where for r in unlabelled)}. Fill in their labels to learn from "
                "them.",
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


@dataclass(frozen=True, repr=False)
class TableDataset(Dataset):
    """A text Dataset read from a table, which knows the column its labels came from: messages
    about a label can then point at the cell to fix."""

    label_column: str | None = None

    def _too_small_to_split(self, label: str, members: list[int]) -> BadInputError:
        # rows of a table: name them, and fixes that fit a table
        error = too_few_rows_error(self, label, members)
        return error if error is not None else super()._too_small_to_split(label, members)


def too_few_rows_error(dataset: TableDataset, label: str, members: Sequence[int]):
    """The error for a class too small to split whose examples are table rows: it names the
    file, the rows and the label column, and fixes that fit a table. None for other data."""
    wheres = [dataset.samples[i].path.as_posix() for i in members]
    if not wheres or not all(_TABLE_ROW.search(w) for w in wheres):
        return None
    column = dataset.label_column
    cell = f", column {column!r}" if column else ""
    n = len(wheres)
    return BadInputError(
        f"class {label!r} has only {n} example{'' if n == 1 else 's'} ({_listed(wheres)}{cell}); "
        "holding out a test set needs at least 2 per class (1 to train on, 1 to test on). Fix: "
        f"correct the label if it is a typo, or drop the row; add rows labelled {label!r}; or "
        "pass --test with a separate test set."
    )


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
    del strict
    path = text_source(path)
    if path.is_dir():
        if text_col or label_col:
            raise BadInputError(
                f"{path} is a folder of .txt files (one sub-folder per class); --text-col and "
                "--label-col only apply to tables (CSV, TSV, JSONL, Parquet)."
            )
        records, label_column = read_txt_folder(path), None
        if not records:
            raise BadInputError(
                f"{path}: no .txt files in its class sub-folders; put one text per .txt file "
                "in a sub-folder named after its class, or pass a CSV/JSONL file."
            )
    else:
        records, label_column = read_table(
            path, text_col=text_col, label_col=label_col, need_labels=True
        )
    records = clean_records(records, str(path), need_labels=True, label_column=label_column)
    if not records:
        raise BadInputError(f"{path}: no labelled, non-empty texts to learn from.")
    labels = tuple(sorted({r.label for r in records}))
    samples = tuple(Sample(Path(r.where), r.label, r.text) for r in records)
    if label_column is None:
        return Dataset(samples, labels, source=str(path), modality="text")
    return TableDataset(
        samples, labels, source=str(path), modality="text", label_column=label_column
    )


def read_text_input(
    path: Path, *, text_col: str | None = None, content: bytes | None = None
) -> list[TextRecord]:
    """The unlabelled texts of one file to predict: a table's text column (its labels are
    ignored) or a ``.txt`` file's lines; ``content``: the file's bytes, already in memory."""
    if content is None:
        path = text_source(path)
        if path.is_dir():
            raise BadInputError(
                f"{path}: a folder; to predict texts pass CSV/TSV/JSONL/Parquet files or .txt "
                "files with one text per line."
            )
    if path.suffix.lower() == TXT_SUFFIX:
        records = read_txt_lines(path, content)
    else:
        records = read_table(path, text_col=text_col, need_labels=False, content=content)[0]
    records = [TextRecord(r.text, None, r.where) for r in records]
    records = clean_records(records, str(path), need_labels=False)
    if not records:
        raise BadInputError(f"{path}: no non-empty texts to predict.")
    return records


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
