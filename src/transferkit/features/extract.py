"""The extraction loop: content keys, the embedding cache, progress and bookkeeping, once.

Every modality's extractor (``image_extract.py``, ``text_extract.py``, ``audio_extract.py``)
gives only its ``EncodingStep``: how its samples are keyed in the cache and how the ones not
cached yet are decoded and encoded. Which step a dataset needs is for its modality
(``transferkit.modalities``) to say; nothing here knows one modality from another.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import (
    EmbeddingCache,
    file_digest,
    known_file_digest,
    open_store,
    release_store,
)


@dataclass
class ExtractionResult:
    """Embeddings of a dataset, row-aligned with its samples."""

    embeddings: np.ndarray  # (N, D) float32; rows of unreadable samples are zero
    ok: np.ndarray  # (N,) bool: False where the file could not be read
    problems: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    runtime: str = "cache"
    n_cached: int = 0
    # modality-specific facts for the report (audio: seconds of audio, clips split in windows)
    info: dict = field(default_factory=dict)


class Delivery(Protocol):
    """Where an encoding step puts what it made of the samples it was given."""

    def done(self, rows: Sequence[int], vectors: np.ndarray) -> None:
        """``vectors[k]`` is the embedding of sample ``rows[k]``."""

    def failed(self, row: int, reason: str) -> None:
        """Sample ``row`` cannot be read; ``reason`` says why (without the path)."""


class EncodingStep(Protocol):
    """One modality's part of the loop."""

    view: str  # the cache variant its vectors are kept under ("identity", "hflip", "text", ...)
    unit: str  # what the progress counts ("img", "text", "clip")

    def digests(self, samples: Sequence) -> list[str | Exception]:
        """Each sample's content key in the cache, or the error that kept it from being read."""

    def encode(self, todo: list[int], delivery: Delivery) -> str:
        """Encode the samples at ``todo``, handing results to ``delivery``; the runtime used."""

    def info(self, seconds: float) -> dict:
        """Facts for the report once the loop has run for ``seconds``."""


def run_extraction(
    step: EncodingStep,
    backbone,
    samples: Sequence,
    *,
    cache: bool | EmbeddingCache = True,
    events: Events = NULL_EVENTS,
) -> ExtractionResult:
    """Embeddings of ``samples`` by ``backbone``: from the cache where it has them, the rest
    through ``step`` (and into the cache).

    Unreadable samples do not stop the run: they are reported in ``problems`` (in sample order)
    and flagged in ``ok``; the caller decides whether that is fatal (``--strict``). ``events``
    gets a progress counter over the samples (those not cached yet are what moves it).
    """
    start = time.perf_counter()
    rows = _Rows(len(samples), int(backbone.num_features))
    store = open_store(backbone, cache, step.view, rows.dim)
    try:
        digests = _fill_from_cache(store, step, samples, rows)
        n_cached = int(rows.ok.sum())
        todo = [i for i in range(len(samples)) if not rows.ok[i] and i not in rows.problems]
        runtime = "cache"
        if todo:
            desc = f"Encoding ({backbone.name})"
            with events.progress(len(samples), desc, step.unit, initial=n_cached) as bar:
                runtime = step.encode(todo, _Delivery(rows, samples, store, digests, bar))
    finally:
        release_store(store, cache)
    seconds = time.perf_counter() - start
    return ExtractionResult(
        embeddings=rows.embeddings,
        ok=rows.ok,
        problems=[rows.problems[i] for i in sorted(rows.problems)],
        seconds=seconds,
        runtime=runtime,
        n_cached=n_cached,
        info=step.info(seconds),
    )


def content_digests(samples: Sequence, workers: int) -> list[str | Exception]:
    """sha256 of each sample's file, or of its bytes when it came in memory (the same key, so
    an upload of a cached file is a cache hit); hashed in ``workers`` threads."""
    digests: list[str | Exception | None] = [
        None if sample.content is not None else known_file_digest(sample.path) for sample in samples
    ]
    # files hashed earlier in this process are known without a thread hop each (a learning
    # curve embeds the same test files once per point)
    todo = [i for i, digest in enumerate(digests) if digest is None]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, digest in zip(todo, pool.map(_content_digest, [samples[i] for i in todo])):
            digests[i] = digest
    return digests


def _content_digest(sample) -> str | Exception:
    if sample.content is not None:
        return hashlib.sha256(sample.content).hexdigest()
    try:
        return file_digest(sample.path)
    except OSError as exc:
        return exc


class _Rows:
    """The result being filled in: embeddings, which rows are done, and why others are not."""

    def __init__(self, n: int, dim: int) -> None:
        self.dim = dim
        self.embeddings = np.zeros((n, dim), dtype=np.float32)
        self.ok = np.zeros(n, dtype=bool)
        self.problems: dict[int, tuple[Path, str]] = {}


def _fill_from_cache(store, step: EncodingStep, samples: Sequence, rows: _Rows) -> list:
    """Key every sample and copy the embeddings the cache already has into place; each
    sample's digest (None where unread or caching is off)."""
    if store is None or not len(samples):
        return [None] * len(samples)
    digests: list[str | None] = []
    for i, digest in enumerate(step.digests(samples)):
        if isinstance(digest, Exception):
            reason = f"cannot read file ({digest.__class__.__name__}: {digest})"
            rows.problems[i] = (samples[i].path, reason)
            digest = None
        digests.append(digest)
    hits = store.get_many([d for d in digests if d])
    for i, digest in enumerate(digests):
        if digest in hits:
            rows.embeddings[i] = hits[digest]
            rows.ok[i] = True
    return digests


class _Delivery:
    """What an encoding step hands back lands in the rows, the cache and the progress count."""

    def __init__(self, rows: _Rows, samples, store, digests, bar) -> None:
        self.rows = rows
        self.samples = samples
        self.store = store
        self.digests = digests
        self.bar = bar

    def done(self, rows: Sequence[int], vectors: np.ndarray) -> None:
        rows = list(rows)
        vectors = np.asarray(vectors, dtype=np.float32)
        self.rows.embeddings[rows] = vectors
        self.rows.ok[rows] = True
        if self.store is not None:
            self.store.put_many(
                (self.digests[i], vectors[k])
                for k, i in enumerate(rows)
                if self.digests[i] is not None
            )
        self.bar.update(len(rows))

    def failed(self, row: int, reason: str) -> None:
        self.rows.problems[row] = (self.samples[row].path, reason)
        self.bar.update(1)
