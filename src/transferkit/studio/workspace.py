"""The studio's workspace: projects, classes, examples and runs in SQLite, example bytes in a
content-addressed blob store beside it, and folders for runs and exports.

An example is "confirmed" once ``add_examples`` returns: its blob was written and synced
first, then every row of the request was committed in one transaction (WAL, synchronous=FULL).
A process killed before that commit leaves no row, only a blob that ``sweep`` deletes at the
next start. Every id is made here (``secrets.token_urlsafe``); nothing a request names becomes
a path.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transferkit.atomic import fault_point
from transferkit.errors import BadInputError
from transferkit.studio.blobs import BlobStore
from transferkit.studio.uploads import (
    UploadLimits,
    check_source,
    display_name,
    refusal,
    studio_media,
)

SCHEMA_VERSION = 1
RUN_STATES = ("running", "done", "failed", "cancelled")
_MAX_NAME = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, modality TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS classes (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL, position INTEGER NOT NULL, UNIQUE (project_id, name));
CREATE TABLE IF NOT EXISTS examples (
    id TEXT PRIMARY KEY,
    class_id TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL, ext TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL,
    name TEXT NOT NULL, source TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS examples_by_class ON examples (class_id);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
    settings TEXT NOT NULL, created REAL NOT NULL, finished REAL, error TEXT);
CREATE INDEX IF NOT EXISTS runs_by_project ON runs (project_id);
"""


class NotFound(BadInputError):
    """No project, class, example or run has the id asked for (an HTTP 404)."""


class Conflict(BadInputError):
    """The request clashes with what the workspace holds: a name taken, a run going (409)."""


def new_id() -> str:
    """A short random id, safe in a URL and as a folder name."""
    return secrets.token_urlsafe(8)


class Workspace:
    """One studio workspace folder; thread-safe (one connection, used under a lock)."""

    def __init__(self, root: str | os.PathLike[str], limits: UploadLimits | None = None):
        self.root = Path(root).expanduser().resolve()
        self.limits = limits or UploadLimits()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(
                f"cannot create the workspace folder {self.root} ({exc}); pass --workspace DIR"
            ) from None
        self._lock_file = _exclusive(self.root / "studio.lock")
        self.blobs = BlobStore(self.root)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.root / "studio.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        self._migrate()
        # no request runs yet: what a killed upload left behind can go
        self.blobs.sweep(r[0] for r in self._db.execute("SELECT DISTINCT sha256 FROM examples"))

    def close(self) -> None:
        """Close the database and release the workspace for another studio."""
        with self._lock:
            self._db.close()
        self._lock_file.close()

    # -- projects -----------------------------------------------------------------------------
    def create_project(self, name: str, modality: str) -> dict:
        """A new empty project of ``modality`` ("image", "audio", "text")."""
        name = _name(name, "project name")
        studio_media(modality)
        pid = new_id()
        with self._write() as db:
            db.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?)", (pid, name, modality, time.time())
            )
        return self.project(pid)

    def projects(self) -> list[dict]:
        """Every project, newest first, with its numbers of classes and examples."""
        with self._lock:
            rows = self._db.execute(
                """SELECT p.*,
                       (SELECT COUNT(*) FROM classes c WHERE c.project_id = p.id) AS classes,
                       (SELECT COUNT(*) FROM examples e JOIN classes c ON e.class_id = c.id
                        WHERE c.project_id = p.id) AS examples
                   FROM projects p ORDER BY p.created DESC, p.id"""
            ).fetchall()
        return [dict(r) for r in rows]

    def project(self, pid: str) -> dict:
        """One project with its classes ({"id", "name", "count"}) in their order."""
        with self._lock:
            row = self._db.execute("SELECT * FROM projects WHERE id = ?", (pid,)).fetchone()
            if row is None:
                raise NotFound(f"no project with id {pid!r} (GET /api/projects lists them)")
            classes = self._db.execute(
                """SELECT c.id, c.name, COUNT(e.id) AS count FROM classes c
                   LEFT JOIN examples e ON e.class_id = c.id WHERE c.project_id = ?
                   GROUP BY c.id ORDER BY c.position, c.id""",
                (pid,),
            ).fetchall()
        return {**dict(row), "classes": [dict(c) for c in classes]}

    def rename_project(self, pid: str, name: str) -> dict:
        name = _name(name, "project name")
        with self._write() as db:
            self._require("projects", pid, "project")
            db.execute("UPDATE projects SET name = ? WHERE id = ?", (name, pid))
        return self.project(pid)

    def delete_project(self, pid: str) -> None:
        """Delete a project, its examples' rows and its runs' folders (refused while it trains)."""
        with self._write() as db:
            self._require("projects", pid, "project")
            runs = [r[0] for r in db.execute("SELECT id FROM runs WHERE project_id = ?", (pid,))]
            if db.execute(
                "SELECT 1 FROM runs WHERE project_id = ? AND state = 'running'", (pid,)
            ).fetchone():
                raise Conflict("the project is training; cancel the training, then delete it")
            db.execute("DELETE FROM projects WHERE id = ?", (pid,))
        for rid in runs:  # after the commit: a kill here leaves folders no row names, no rows
            shutil.rmtree(self.root / "runs" / rid, ignore_errors=True)
            shutil.rmtree(self.root / "exports" / rid, ignore_errors=True)

    # -- classes ------------------------------------------------------------------------------
    def add_class(self, pid: str, name: str) -> dict:
        """A new class at the end of the project's classes."""
        name = _class_name(name)
        cid = new_id()
        with self._write() as db:
            self._require("projects", pid, "project")
            self._name_free(pid, name, None)
            (last,) = db.execute(
                "SELECT COALESCE(MAX(position), -1) FROM classes WHERE project_id = ?", (pid,)
            ).fetchone()
            db.execute("INSERT INTO classes VALUES (?, ?, ?, ?)", (cid, pid, name, last + 1))
        return self.class_(cid)

    def class_(self, cid: str) -> dict:
        """One class: {"id", "project_id", "name", "count"}."""
        with self._lock:
            row = self._db.execute(
                """SELECT c.id, c.project_id, c.name, COUNT(e.id) AS count FROM classes c
                   LEFT JOIN examples e ON e.class_id = c.id WHERE c.id = ? GROUP BY c.id""",
                (cid,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no class with id {cid!r}; it may have been deleted (reload)")
        return dict(row)

    def rename_class(self, cid: str, name: str) -> dict:
        name = _class_name(name)
        with self._write() as db:
            pid = self.class_(cid)["project_id"]
            self._name_free(pid, name, cid)
            db.execute("UPDATE classes SET name = ? WHERE id = ?", (name, cid))
        return self.class_(cid)

    def delete_class(self, cid: str) -> None:
        """Delete a class and its examples' rows (their blobs go at the next start)."""
        with self._write() as db:
            self._require("classes", cid, "class")
            db.execute("DELETE FROM classes WHERE id = ?", (cid,))

    # -- examples -----------------------------------------------------------------------------
    def add_examples(self, cid: str, items: list[tuple[str, bytes]], source: str) -> dict:
        """Store the usable ``items`` ((display name, bytes)) as examples of class ``cid``.

        Returns {"added": [example...], "refused": [{"name", "reason"}]}. The blobs are on disk
        and synced before the one transaction that adds every row; until it commits, none is.
        """
        cls = self.class_(cid)
        modality = self.project(cls["project_id"])["modality"]
        check_source(modality, source)
        if len(items) > self.limits.max_files:
            raise BadInputError(
                f"{len(items)} examples were sent at once; send at most "
                f"{self.limits.max_files} per request"
            )
        rows, refused = [], []
        for i, (raw_name, data) in enumerate(items, 1):
            name = display_name(raw_name, f"example {i}")
            found = refusal(modality, name, data, self.limits)
            if isinstance(found, str):
                refused.append({"name": name, "reason": found})
                continue
            sha = self.blobs.put(data, found.ext)
            rows.append((new_id(), cid, sha, found.ext, found.media_type, len(data), name, source))
        fault_point("studio:blobs-written")
        now = time.time()
        with self._write() as db:
            self._require("classes", cid, "class")  # deleted while the blobs were written?
            db.executemany(
                "INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row, now) for row in rows],
            )
        added = [self.example(row[0]) for row in rows]
        return {"added": added, "refused": refused}

    def examples(self, cid: str) -> list[dict]:
        """The examples of class ``cid``, oldest first."""
        self._require("classes", cid, "class")
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM examples WHERE class_id = ? ORDER BY created, rowid", (cid,)
            ).fetchall()
        return [_example(r) for r in rows]

    def example(self, eid: str) -> dict:
        with self._lock:
            row = self._db.execute("SELECT * FROM examples WHERE id = ?", (eid,)).fetchone()
        if row is None:
            raise NotFound(f"no example with id {eid!r}; it may have been deleted (reload)")
        return _example(row)

    def move_example(self, eid: str, cid: str) -> dict:
        """Move an example to another class of the same project."""
        with self._write() as db:
            source = self.class_(self.example(eid)["class_id"])
            target = self.class_(cid)
            if source["project_id"] != target["project_id"]:
                raise BadInputError(
                    f"class {target['name']!r} belongs to another project; an example moves "
                    "only between the classes of its own project"
                )
            db.execute("UPDATE examples SET class_id = ? WHERE id = ?", (cid, eid))
        return self.example(eid)

    def delete_example(self, eid: str) -> None:
        """Delete an example's row (its blob goes at the next start if no other row uses it)."""
        with self._write() as db:
            self._require("examples", eid, "example")
            db.execute("DELETE FROM examples WHERE id = ?", (eid,))

    def blob_path(self, example: dict) -> Path:
        """The file holding ``example``'s bytes (always inside blobs/)."""
        return self.blobs.path(example["sha256"], example["ext"])

    def project_examples(self, pid: str) -> list[tuple[str, dict, Path]]:
        """(class name, example, blob path) of every example of project ``pid``, class by class
        in the classes' order."""
        self._require("projects", pid, "project")
        with self._lock:
            rows = self._db.execute(
                """SELECT c.name AS class_name, e.* FROM examples e
                   JOIN classes c ON e.class_id = c.id WHERE c.project_id = ?
                   ORDER BY c.position, c.id, e.created, e.rowid""",
                (pid,),
            ).fetchall()
        out = []
        for row in rows:
            example = _example(row)
            out.append((row["class_name"], example, self.blob_path(example)))
        return out

    # -- runs ---------------------------------------------------------------------------------
    def add_run(self, pid: str, settings: dict[str, Any]) -> dict:
        """A new run of project ``pid`` in state "running"."""
        rid = new_id()
        with self._write() as db:
            self._require("projects", pid, "project")
            db.execute(
                "INSERT INTO runs VALUES (?, ?, 'running', ?, ?, NULL, NULL)",
                (rid, pid, json.dumps(settings), time.time()),
            )
        return self.run(rid)

    def finish_run(self, rid: str, state: str, error: str | None = None) -> dict:
        """Record how run ``rid`` ended: "done", "failed" or "cancelled"."""
        if state not in RUN_STATES[1:]:
            raise BadInputError(f"a run ends as one of {RUN_STATES[1:]}; got {state!r}")
        with self._write() as db:
            self._require("runs", rid, "run")
            db.execute(
                "UPDATE runs SET state = ?, finished = ?, error = ? WHERE id = ?",
                (state, time.time(), error, rid),
            )
        return self.run(rid)

    def runs(self, pid: str) -> list[dict]:
        """The runs of project ``pid``, newest first."""
        self._require("projects", pid, "project")
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM runs WHERE project_id = ? ORDER BY created DESC, rowid DESC",
                (pid,),
            ).fetchall()
        return [_run(r) for r in rows]

    def running_runs(self) -> list[dict]:
        """Every run still marked "running" (at start-up: those a stop interrupted)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM runs WHERE state = 'running'").fetchall()
        return [_run(r) for r in rows]

    def run(self, rid: str) -> dict:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone()
        if row is None:
            raise NotFound(f"no run with id {rid!r}; it may have been deleted (reload)")
        return _run(row)

    def run_dir(self, rid: str) -> Path:
        """``runs/<rid>`` of a run the database knows (the id is never a request's text)."""
        return self.root / "runs" / self.run(rid)["id"]

    def export_dir(self, rid: str) -> Path:
        """``exports/<rid>`` of a run the database knows."""
        return self.root / "exports" / self.run(rid)["id"]

    # -- helpers ------------------------------------------------------------------------------
    @contextmanager
    def _write(self):
        """One transaction under the lock: committed whole, or rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _require(self, table: str, key: str, what: str) -> None:
        with self._lock:
            found = self._db.execute(f"SELECT 1 FROM {table} WHERE id = ?", (key,)).fetchone()
        if found is None:
            raise NotFound(f"no {what} with id {key!r}; it may have been deleted (reload)")

    def _name_free(self, pid: str, name: str, cid: str | None) -> None:
        for other_id, other in self._db.execute(
            "SELECT id, name FROM classes WHERE project_id = ?", (pid,)
        ):
            # case-insensitively: the classes become folders, and some file systems ignore case
            if other_id != cid and other.casefold() == name.casefold():
                raise Conflict(f"the project has a class named {other!r} already; pick another")

    def _migrate(self) -> None:
        with self._write() as db:  # executescript would commit: statement by statement
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise BadInputError(
                    f"the workspace {self.root} was written by a newer transferkit (schema "
                    f"{row[0]}, this one knows {SCHEMA_VERSION}); upgrade transferkit"
                )


def _exclusive(path: Path):
    """An open lock file held exclusively, so two studios never share one workspace."""
    handle = open(path, "a+b")  # noqa: SIM115 - held for the workspace's life
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks to take
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise BadInputError(
            f"another transferkit studio is using the workspace {path.parent}; stop it, or "
            "pass another --workspace DIR"
        ) from None
    return handle


def _name(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise BadInputError(f"the {what} must be a string")
    name = " ".join(text.split())
    if not name:
        raise BadInputError(f"the {what} is empty; give it a name")
    if len(name) > _MAX_NAME:
        raise BadInputError(f"the {what} is {len(name)} characters long; keep it to {_MAX_NAME}")
    if any(unicodedata.category(c)[0] == "C" for c in name):
        raise BadInputError(f"the {what} {name!r} holds control characters; remove them")
    return name


def _class_name(text: Any) -> str:
    """A class name, which becomes a folder name when the project is trained: no separators,
    no characters some file system refuses, not hidden."""
    name = _name(text, "class name")
    bad = sorted({c for c in name if c in '/\\<>:"|?*'})
    if bad or name.startswith(".") or name.endswith("."):
        raise BadInputError(
            f"the class name {name!r} cannot be a folder name (it becomes one when the project "
            f"is trained): leave out {' '.join(bad) or 'the leading or trailing dot'}"
        )
    return name


def _example(row: sqlite3.Row) -> dict:
    keys = ("id", "class_id", "name", "sha256", "ext", "media_type", "size", "source", "created")
    return {k: row[k] for k in keys}


def _run(row: sqlite3.Row) -> dict:
    out = dict(row)
    out["settings"] = json.loads(out["settings"])
    return out
