"""Content-addressed, on-disk cache of embeddings.

One SQLite file per backbone *variant* (name + weights sha256 + preprocessing fingerprint), one
row per input *content* (sha256 of the file's bytes). A second run with another head or another
split therefore re-encodes nothing, and renaming or moving files does not invalidate anything.
SQLite gives atomic commits and safe concurrent readers for free.

A cache is a cache: nothing wrong with it may end a run or change a result. Each vector is stored
with a crc32 of its key and bytes, checked on read; a vector that fails is a miss, recomputed by
the caller. A file SQLite finds damaged is set aside as ``<name>.corrupt-<time>`` (with its -wal
and -shm files) and a fresh one started; a cache that cannot be written is only read, and one that
cannot be opened is skipped. Each of these says so once, with a ``CacheWarning`` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np

from transferkit.paths import cache_dir

log = logging.getLogger("transferkit")

# bump when the meaning of a stored vector changes (pooling, dtype...)
EMBEDDING_FORMAT = 1
_LOOKUP_CHUNK = 500  # stays under SQLite's bound-parameter limit
_SIDE_FILES = ("-wal", "-shm")  # SQLite's companions of a WAL-mode database file
_ELSEWHERE = " (TRANSFERKIT_CACHE_DIR=<a writable folder> puts the cache elsewhere)"

T = TypeVar("T")

# messages already given in this process: a run opens a variant's cache once per extraction
# (train, test, mirrored view...), and warnings' own once-per-message memory is reset whenever
# any code enters warnings.catch_warnings()
_TOLD: set[str] = set()


class CacheWarning(UserWarning):
    """The embedding cache is damaged or cannot be written; the run goes on without that part."""


def variant_key(
    name: str, weights_sha256: str, preprocess_fingerprint: str, view: str = "identity"
) -> str:
    """Key of one backbone variant: anything that changes the embedding changes the key."""
    blob = json.dumps(
        [EMBEDDING_FORMAT, name, weights_sha256, preprocess_fingerprint, view],
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def open_store(backbone, cache, view: str, dim: int):
    """The embedding cache an extraction reads and writes: the given ``EmbeddingCache``, a new
    one for this backbone variant, or None (caching off, random weights with no identity, or a
    cache that cannot be opened at all)."""
    if isinstance(cache, EmbeddingCache):
        store = cache
    elif cache and backbone.weights_sha256:
        key = variant_key(
            backbone.name, backbone.weights_sha256, backbone.preprocess.fingerprint(), view
        )
        store = EmbeddingCache(key, dim)
    else:
        return None
    return store if store.usable else None


def release_store(store, cache) -> None:
    """Close a store ``open_store`` opened (never one the caller passed in).

    A connection is otherwise freed only by the garbage collector (it is in a reference cycle
    with its statement cache), its WAL left un-checkpointed until then.
    """
    if store is not None and store is not cache:
        store.close()


# digests this process has computed, by what identifies a file's version: (path, inode, size,
# mtime in ns). A run embeds the same files many times (fit, test, every learning-curve point,
# every CV fold); hashing them again each time made a fully cached run 3x slower.
_KNOWN_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_KNOWN_DIGESTS_MAX = 1_000_000  # ~150 MB at most; forgotten all at once past that


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (remembered for this process while the file is unchanged)."""
    key = _version_key(path)
    digest = _KNOWN_DIGESTS.get(key)
    if digest is None:
        digest = _hash_file(path)
        if len(_KNOWN_DIGESTS) >= _KNOWN_DIGESTS_MAX:
            _KNOWN_DIGESTS.clear()
        _KNOWN_DIGESTS[key] = digest
    return digest


def known_file_digest(path: str | Path) -> str | None:
    """The digest ``file_digest`` gave for this version of the file, or None (no hashing)."""
    try:
        return _KNOWN_DIGESTS.get(_version_key(path))
    except OSError:
        return None  # file_digest will say what is wrong with it


def _version_key(path: str | Path) -> tuple[str, int, int, int]:
    st = os.stat(path)
    return (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _hash_file(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks so big files never sit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksum(digest: bytes, blob: bytes) -> int:
    """crc32 of a row's key and vector bytes: catches bit-rot, and a vector under another key.

    Not a cryptographic hash: the threat is a failing disk, not someone who could rewrite the
    sum as well; crc32 costs about 1 µs per 1280-d vector, blake2b four times that.
    """
    return zlib.crc32(blob, zlib.crc32(digest))


def _is_damage(exc: BaseException) -> bool:
    # SQLITE_CORRUPT and SQLITE_NOTADB arrive as DatabaseError itself; I/O, locking, read-only
    # and disk-full errors as its subclass OperationalError
    return type(exc) is sqlite3.DatabaseError


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _connect(target: str | Path, *, uri: bool = False) -> sqlite3.Connection:
    # check_same_thread=False: extraction writes from the main thread only, but the object may
    # be created on another one.
    return sqlite3.connect(target, uri=uri, timeout=60, check_same_thread=False)


def _has_checksums(db: sqlite3.Connection) -> bool:
    return any(row[1] == "crc" for row in db.execute("PRAGMA table_info(emb)"))


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """WAL mode and the table, with the checksum column added to a file from before it existed.

    The rows of such a file (crc NULL) read as misses and are rewritten as they are recomputed:
    a sum computed now would vouch for bytes that may have rotted already.
    """
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS emb (digest TEXT PRIMARY KEY, vec BLOB, crc INTEGER)")
    if not _has_checksums(db):
        try:
            db.execute("ALTER TABLE emb ADD COLUMN crc INTEGER")
        except sqlite3.OperationalError:
            if not _has_checksums(db):  # else another process added it first
                raise
        log.info("embedding cache %s predates checksums: its vectors are recomputed once", path)
    db.commit()


def _open_prepared(path: Path) -> sqlite3.Connection:
    """A read-write connection to ``path``, prepared; on failure nothing is left open."""
    db = _connect(path)
    try:
        _prepare(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _select(db: sqlite3.Connection, digests: list[str]) -> list[tuple[bytes, bytes, object]]:
    # CAST: bytes back whatever the storage class, so a damaged row cannot fail to decode
    rows: list[tuple[bytes, bytes, object]] = []
    for start in range(0, len(digests), _LOOKUP_CHUNK):
        chunk = digests[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        query = (
            "SELECT CAST(digest AS BLOB), CAST(vec AS BLOB), crc FROM emb "
            f"WHERE digest IN ({marks})"
        )
        rows += db.execute(query, chunk).fetchall()
    return rows


def _insert(db: sqlite3.Connection, rows: list[tuple[str, bytes, int]]) -> None:
    with db:
        db.executemany("INSERT OR REPLACE INTO emb (digest, vec, crc) VALUES (?, ?, ?)", rows)


class EmbeddingCache:
    """Embeddings of one backbone variant, keyed by content digest.

    No method raises for a problem of the cache itself (see the module docstring): the worst
    case is a run without it.
    """

    def __init__(self, variant: str, dim: int, root: str | Path | None = None):
        self.dim = int(dim)
        self.path = Path(root or cache_dir()) / "embeddings" / f"{variant[:32]}.sqlite"
        self._db: sqlite3.Connection | None = None  # None: running without the cache
        self._unwritable: str | None = None  # why writes are skipped, once known
        self._told_unwritable = False
        self._replaced = False  # a damaged file is replaced once at most
        self._open()

    @property
    def usable(self) -> bool:
        """False when the cache could not be opened at all: nothing is read or written."""
        return self._db is not None

    def get_many(self, digests: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors for those digests that are present and intact."""
        unique = list(dict.fromkeys(digests))
        rows = self._guarded("reading", lambda db: _select(db, unique), [])
        found: dict[str, np.ndarray] = {}
        bad = 0
        for digest, blob, crc in rows:
            if crc is None:  # stored before checksums existed: a miss, rewritten when recomputed
                continue
            if _checksum(digest, blob) != crc:
                bad += 1
            elif len(blob) == 4 * self.dim:  # a wrong-sized row is treated as a miss
                found[digest.decode()] = np.frombuffer(blob, dtype=np.float32)
        if bad:
            self._warn(
                f"{bad} cached embedding(s) in {self.path} failed their checksum (damaged on "
                "disk): they are recomputed"
            )
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors (float32) in one transaction."""
        if self._db is None:
            return
        if self._unwritable is not None:
            self._tell_unwritable()
            return
        rows = []
        for digest, vec in items:
            blob = np.ascontiguousarray(vec, dtype=np.float32).tobytes()
            rows.append((digest, blob, _checksum(digest.encode(), blob)))
        self._guarded("writing", lambda db: _insert(db, rows), None)

    def __len__(self) -> int:
        count = "SELECT COUNT(*) FROM emb"
        return self._guarded("counting", lambda db: db.execute(count).fetchone()[0], 0)

    def close(self) -> None:
        """Close the file; later calls read nothing and write nothing."""
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:  # closing a damaged file must not fail the run either
                pass
            self._db = None

    # -- what happens when something goes wrong ----------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = _open_prepared(self.path)
        except (OSError, sqlite3.Error) as exc:
            if _is_damage(exc):
                self._replace(exc, "opening it")
            else:
                self._open_read_only(exc)

    def _open_read_only(self, exc: BaseException) -> None:
        """Read what can be read when writing is impossible (read-only directory or file)."""
        if not self.path.is_file():
            self._turn_off(f"cannot be created ({_reason(exc)})")
            return
        try:
            # immutable: no -wal/-shm to create, which a read-only directory refuses; a writer
            # elsewhere could tear a read, which SQLite or the checksums catch
            db = _connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True)
            usable = _has_checksums(db)
        except sqlite3.Error as again:
            self._turn_off(f"cannot be opened ({_reason(exc)}; read-only: {_reason(again)})")
            return
        if not usable:
            db.close()
            self._turn_off(f"predates checksums and cannot be upgraded ({_reason(exc)})")
            return
        self._db, self._unwritable = db, f"opening it for writing: {_reason(exc)}"

    def _guarded(self, doing: str, action: Callable[[sqlite3.Connection], T], fallback: T) -> T:
        """``action(db)`` with SQLite errors handled (see ``_recover``); retried once when a
        fresh file replaced a damaged one."""
        for _ in range(2):
            if self._db is None:
                return fallback
            try:
                return action(self._db)
            except sqlite3.Error as exc:
                if not self._recover(exc, doing):
                    return fallback
        return fallback

    def _recover(self, exc: sqlite3.Error, doing: str) -> bool:
        """Deal with an error so that the run goes on; True when a fresh file replaced a damaged
        one (and ``doing`` is worth retrying)."""
        if _is_damage(exc) and self._unwritable is None and not self._replaced:
            return self._replace(exc, f"{doing} it")
        if doing == "writing" and not _is_damage(exc):  # read-only, disk full, locked...
            self._unwritable = _reason(exc)
            self._tell_unwritable()
            return False
        what = "is damaged" if _is_damage(exc) else "cannot be read"
        self._turn_off(f"{what} ({_reason(exc)}, found while {doing} it)")
        return False

    def _replace(self, exc: BaseException, doing: str) -> bool:
        """Set the damaged file aside and start a fresh one in its place."""
        self.close()
        self._replaced = True
        damage = f"damaged ({_reason(exc)}, found while {doing})"
        try:
            aside = self._set_aside()
            db = _open_prepared(self.path)
        except (OSError, sqlite3.Error) as again:
            self._turn_off(f"{damage} and cannot be replaced ({_reason(again)})")
            return False
        self._db = db
        self._warn(
            f"embedding cache {self.path} is {damage}: set aside as {aside.name}; a fresh "
            "cache is started and missing embeddings are recomputed"
        )
        return True

    def _set_aside(self) -> Path:
        """Rename the file and its -wal/-shm to ``<name>.corrupt-<time>[-wal|-shm]``."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        # companions first: a fresh file must never be paired with the old WAL
        for suffix in (*_SIDE_FILES, ""):
            src = self.path.with_name(self.path.name + suffix)
            if suffix and not src.exists():
                continue
            os.replace(src, aside.with_name(aside.name + suffix))
        return aside

    def _turn_off(self, what: str) -> None:
        self.close()
        self._warn(f"embedding cache {self.path} {what}; running without it{_ELSEWHERE}")

    def _tell_unwritable(self) -> None:
        if not self._told_unwritable:
            self._told_unwritable = True
            self._warn(
                f"cannot write the embedding cache {self.path} ({self._unwritable}): new "
                f"embeddings are not cached{_ELSEWHERE}; results are unaffected"
            )

    @staticmethod
    def _warn(message: str) -> None:
        if message not in _TOLD:
            _TOLD.add(message)
            warnings.warn(message, CacheWarning, stacklevel=2)
