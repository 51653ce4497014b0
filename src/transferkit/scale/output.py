"""A job's output: part files while it runs, one file (Parquet or JSON lines) when it is done.

While a job runs, what comes back is written as Parquet parts in ``.OUT.parts/`` beside OUT,
each atomically (temporary name, then rename), with ``job.json`` saying which model and
command they belong to. A run that is stopped (killed, a lost cluster, Ctrl-C) leaves complete
parts only; the next run with the same model and output skips the inputs they hold. At the
end the parts are merged into OUT in one atomic step — rows of inputs no longer given are
left out, and the merge refuses to finish if any input would appear twice — and the parts
folder is removed. A finished OUT is never overwritten: remove it to run again.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from transferkit.atomic import recover, write_bytes_atomic, write_json_atomic
from transferkit.errors import BadInputError, TransferkitError

log = logging.getLogger("transferkit")

FORMATS = (".parquet", ".jsonl")
JOB_FILE = "job.json"
_PART = "part-{:06d}.parquet"
METADATA_KEY = b"transferkit"


def check_output(path: str | Path) -> Path:
    """``path`` if a job can write it, else a BadInputError saying why, before any work."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise BadInputError(
            f"--output {path}: the output is a .parquet or .jsonl file (one row per input); "
            "name it e.g. predictions.parquet."
        )
    if path.is_dir():
        raise BadInputError(f"--output {path} is a folder; name a .parquet or .jsonl file.")
    if path.exists() and not parts_folder(path).is_dir():
        raise BadInputError(
            f"--output {path} exists and is complete; remove it to run again, or choose "
            "another output."
        )
    folder = _existing_ancestor(path.parent)
    if not folder.is_dir():
        raise BadInputError(
            f"--output {path}: {folder} is a file, not a folder; choose another output path."
        )
    try:  # a real write: os.access misjudges read-only mounts and is always yes for root
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise BadInputError(
            f"--output {path}: cannot write in {folder} ({exc.strerror}); choose a folder you "
            "can write to, or fix its permissions."
        ) from None
    return path


def parts_folder(path: Path) -> Path:
    """Where the parts of OUT wait for the merge: ``.OUT.parts`` beside it."""
    return path.with_name(f".{path.name}.parts")


def _existing_ancestor(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (what the job would create it in)."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


@dataclass(frozen=True)
class Merged:
    """What the merge wrote: ``rows`` in OUT, ``errors`` among them, ``dropped`` (rows of
    inputs no longer given)."""

    rows: int
    errors: int
    dropped: int


class PartialOutput:
    """The parts of OUT written so far, for the job described by ``job`` (a JSON object)."""

    def __init__(self, path: Path, job: dict[str, Any]) -> None:
        self.path = path
        self.job = job
        self.parts = parts_folder(path)

    @classmethod
    def open(cls, path: str | Path, job: dict[str, Any]) -> PartialOutput:
        """Continue the parts of an interrupted run of the same job, or start them."""
        out = cls(check_output(path), job)
        recover(out.path)  # a merge that a kill interrupted: finished or undone
        found = out.parts / JOB_FILE
        if found.is_file():
            before = json.loads(found.read_text(encoding="utf-8"))
            if before != job:
                differ = sorted(k for k in {*before, *job} if before.get(k) != job.get(k))
                raise BadInputError(
                    f"{out.parts} holds the parts of an interrupted run of another job (its "
                    f"{', '.join(differ)} differ from this one's); rerun that command to finish "
                    f"it, or delete {out.parts} to start over."
                )
        else:
            out.parts.mkdir(parents=True, exist_ok=True)
            write_json_atomic(found, job)
        return out

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def written(self) -> set[str]:
        """The inputs the parts hold."""
        done: set[str] = set()
        for part in self._part_files():
            done.update(pq.read_table(part, columns=["input"]).column("input").to_pylist())
        return done

    def write(self, table: pa.Table) -> None:
        """Add ``table`` as a part, all or nothing."""
        if table.num_rows == 0:
            return
        number = len(self._part_files()) + 1
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        write_bytes_atomic(self.parts / _PART.format(number), buffer.getvalue())

    def merge(self, inputs: set[str], schema: pa.Schema) -> Merged:
        """Write the parts' rows of ``inputs`` into OUT in one step, then drop the parts."""
        metadata = {METADATA_KEY: json.dumps(self.job, ensure_ascii=False).encode("utf-8")}
        schema = schema.with_metadata(metadata)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.{os.getpid()}-", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        seen: set[str] = set()
        rows = errors = dropped = 0
        try:
            jsonl = self.path.suffix.lower() == ".jsonl"
            with _Writer(Path(tmp), schema, jsonl=jsonl) as writer:
                for part in self._part_files():
                    table = pq.read_table(part)
                    names = table.column("input").to_pylist()
                    keep = [name in inputs for name in names]
                    dropped += keep.count(False)
                    table = table.filter(pa.array(keep))
                    for name in table.column("input").to_pylist():
                        if name in seen:
                            raise TransferkitError(
                                f"{name} would appear twice in {self.path}; nothing was "
                                f"written (the parts stay in {self.parts}). This is a bug."
                            )
                        seen.add(name)
                    rows += table.num_rows
                    errors += table.num_rows - table.column("error").null_count
                    writer.write(table)
            if len(seen) != len(inputs):
                raise TransferkitError(
                    f"{len(inputs) - len(seen)} inputs have no row in the parts of "
                    f"{self.path}; nothing was written. This is a bug."
                )
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        shutil.rmtree(self.parts, ignore_errors=True)
        if dropped:
            log.info("%d rows of inputs no longer given were left out of %s", dropped, self.path)
        return Merged(rows=rows, errors=errors, dropped=dropped)


class _Writer:
    """Streams tables into a Parquet or JSON-lines file (by the output's suffix), synced."""

    def __init__(self, path: Path, schema: pa.Schema, *, jsonl: bool) -> None:
        self.path = path
        self.schema = schema
        self.jsonl = jsonl

    def __enter__(self) -> _Writer:
        self.file = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        self.parquet_writer = None if self.jsonl else pq.ParquetWriter(self.file, self.schema)
        return self

    def write(self, table: pa.Table) -> None:
        if self.parquet_writer is not None:
            self.parquet_writer.write_table(table)
            return
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_pylist())
        self.file.write("".join(lines).encode("utf-8"))

    def __exit__(self, *exc: object) -> None:
        if self.parquet_writer is not None:
            self.parquet_writer.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The job a Parquet output was written by (its model, kind and labels)."""
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw.get(METADATA_KEY, b"{}"))
