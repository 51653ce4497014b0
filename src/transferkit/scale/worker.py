"""The class Ray Data runs in each actor of the pool (and the local engine in this process).

An actor opens the model once, in ``__init__``, then turns each batch of inputs (columns
``input`` and, for texts, ``text``) into output rows (``rows.py``). It holds no other state,
so Ray may restart it and rerun a batch it was working on when it died.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from transferkit.data.dataset import Sample
from transferkit.scale.models import ModelRef, OpenModel
from transferkit.scale.rows import embed_rows, predict_rows


class Worker:
    """Predicts (``kind`` "predict") or embeds ("embed") batches with the model ``ref``."""

    def __init__(
        self, kind: str, ref: ModelRef, batch_size: int, threads: int, gpu: bool = False
    ) -> None:
        self.kind = kind
        self.ref = ref
        self.model = OpenModel(ref, batch_size=batch_size, threads=threads, gpu=gpu)

    def __call__(self, batch: pa.Table) -> pa.Table:
        names = batch.column("input").to_pylist()
        texts = batch.column("text").to_pylist()
        samples = tuple(Sample(Path(name), None, text) for name, text in zip(names, texts))
        if self.kind == "predict":
            proba, ok, problems = self.model.predict_proba(samples)
            return predict_rows(names, proba, ok, problems, self.ref.labels)
        embeddings, ok, problems = self.model.embed(samples)
        return embed_rows(names, embeddings, ok, problems)


def input_table(samples) -> pa.Table:
    """The inputs of a job as Ray Data's source rows: ``input`` (the name the output keeps) and
    ``text`` (the text itself for a text model, else null)."""
    return pa.table(
        {
            "input": pa.array([str(s.path) for s in samples], pa.string()),
            "text": pa.array([s.text for s in samples], pa.string()),
        }
    )
