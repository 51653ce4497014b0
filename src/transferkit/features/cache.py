"""Content-addressed, on-disk cache of embeddings.

One SQLite file per backbone *variant* (name + weights sha256 + preprocessing fingerprint), one
row per input *content* (sha256 of the file's bytes). A second run with another head or another
split therefore re-encodes nothing, and renaming or moving files does not invalidate anything.
SQLite gives atomic commits and safe concurrent readers for free.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from transferkit.paths import cache_dir

# bump when the meaning of a stored vector changes (pooling, dtype...)
EMBEDDING_FORMAT = 1
_LOOKUP_CHUNK = 500  # stays under SQLite's bound-parameter limit


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
    one for this backbone variant, or None (caching off, or random weights with no identity)."""
    if isinstance(cache, EmbeddingCache):
        return cache
    if cache and backbone.weights_sha256:
        key = variant_key(
            backbone.name, backbone.weights_sha256, backbone.preprocess.fingerprint(), view
        )
        return EmbeddingCache(key, dim)
    return None


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks so big files never sit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EmbeddingCache:
    """Embeddings of one backbone variant, keyed by content digest."""

    def __init__(self, variant: str, dim: int, root: str | Path | None = None):
        self.dim = int(dim)
        self.path = Path(root or cache_dir()) / "embeddings" / f"{variant[:32]}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: extraction writes from the main thread only, but the
        # object may be created on another one.
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS emb (digest TEXT PRIMARY KEY, vec BLOB)")
        self._db.commit()

    def get_many(self, digests: Sequence[str]) -> dict[str, np.ndarray]:
        """Return the cached vectors for those digests that are present."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            chunk = unique[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT digest, vec FROM emb WHERE digest IN ({marks})", chunk)
            for digest, blob in rows:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape[0] == self.dim:  # a wrong-sized row is treated as a miss
                    found[digest] = vec
        return found

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors (float32) in one transaction."""
        rows = [(d, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for d, v in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb (digest, vec) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM emb").fetchone()[0]

    def close(self) -> None:
        self._db.close()
