"""``transferkit rank DATA --engine ray``: the candidates' embeddings computed by a Ray pool.

Ranking a big labelled pool is mostly encoding it once per candidate backbone; the scores
(LogME, H-score, k-NN) are cheap matrix work on the driver. ``RayEmbeddings`` is the
``extract`` that ``rank_backbones`` calls for each candidate: the pool's samples go to the actor
pool of an open ``RayEngine`` (one Ray for every candidate), each worker holding the backbone,
and the embeddings come back in the dataset's order. They are not written to this machine's
embedding cache: they were computed elsewhere, and the cache keys files this machine read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.scale.engine import RayEngine
from transferkit.scale.models import resolve_model
from transferkit.scale.worker import input_table


@dataclass(frozen=True)
class PoolEmbeddings:
    """What ``rank_backbones`` reads of an extraction: rows of ``embeddings`` where ``ok``."""

    embeddings: np.ndarray
    ok: np.ndarray
    seconds: float
    n_cached: int = 0
    runtime: str = "ray"


class RayEmbeddings:
    """Embed a dataset with a backbone on the open ``engine``'s actor pool."""

    def __init__(self, engine: RayEngine, batch_size: int = 64, events: Events = NULL_EVENTS):
        self.engine = engine
        self.batch_size = batch_size
        self.events = events

    def __call__(self, backbone, dataset, **_local_options) -> PoolEmbeddings:
        # the local extractor's options (cache, runtime, threads) are this machine's business
        started = time.perf_counter()
        ref = resolve_model(backbone.spec.name, backbone_ok=True)
        samples = dataset.samples
        rows = {str(s.path): i for i, s in enumerate(samples)}
        embeddings: np.ndarray | None = None
        ok = np.zeros(len(samples), dtype=bool)
        desc = f"Embedding on Ray with {backbone.spec.name}"
        with self.events.progress(len(samples), desc, dataset.noun) as bar:
            tables = self.engine.run("embed", ref, input_table(samples), batch_size=self.batch_size)
            for table in tables:
                names = table.column("input").to_pylist()
                values = table.column("embedding").to_pylist()
                for name, value in zip(names, values):
                    if value is None:
                        continue
                    if embeddings is None:
                        embeddings = np.zeros((len(samples), len(value)), dtype=np.float32)
                    embeddings[rows[name]] = value
                    ok[rows[name]] = True
                bar.update(table.num_rows)
        if embeddings is None:
            embeddings = np.zeros((len(samples), 0), dtype=np.float32)
        return PoolEmbeddings(embeddings, ok, time.perf_counter() - started)
