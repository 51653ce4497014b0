"""The output's columns: one row per input, from a batch's probabilities or embeddings.

predict: ``input``, ``label``, ``confidence``, ``probabilities`` (a struct with one field per
class, in the model's label order) and ``error``; embed: ``input``, ``embedding`` (float32
list) and ``error``. An unreadable input has nulls and the reason in ``error``, as
``transferkit predict`` prints it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

KINDS = ("predict", "embed")


def schema(kind: str, labels: Sequence[str] = ()) -> pa.Schema:
    """The columns of a ``kind`` job's output (``labels``: the model's classes, for predict)."""
    if kind == "predict":
        return pa.schema(
            [
                ("input", pa.string()),
                ("label", pa.string()),
                ("confidence", pa.float64()),
                ("probabilities", pa.struct([(label, pa.float64()) for label in labels])),
                ("error", pa.string()),
            ]
        )
    return pa.schema(
        [("input", pa.string()), ("embedding", pa.list_(pa.float32())), ("error", pa.string())]
    )


def predict_rows(
    names: Sequence[str], proba: np.ndarray, ok: np.ndarray, problems, labels: Sequence[str]
) -> pa.Table:
    """A batch's predictions: the most probable class, its probability and every class's."""
    ok = np.asarray(ok, dtype=bool)
    proba = np.asarray(proba, dtype=np.float64).reshape(len(names), len(labels))
    # NaN rows (unreadable inputs) are masked below; argmax only needs them to be numbers
    best = np.nan_to_num(proba, nan=-1.0).argmax(axis=1)
    label = pa.array([labels[int(i)] if k else None for i, k in zip(best, ok)], pa.string())
    confidence = pa.array(proba[np.arange(len(names)), best], pa.float64(), mask=~ok)
    columns = [pa.array(proba[:, j], pa.float64()) for j in range(len(labels))]
    probabilities = pa.StructArray.from_arrays(
        columns,
        fields=list(schema("predict", labels).field("probabilities").type),
        mask=pa.array(~ok),
    )
    return pa.Table.from_arrays(
        [
            pa.array(list(names), pa.string()),
            label,
            confidence,
            probabilities,
            _errors(names, ok, problems),
        ],
        schema=schema("predict", labels),
    )


def embed_rows(names: Sequence[str], embeddings: np.ndarray, ok: np.ndarray, problems) -> pa.Table:
    """A batch's embeddings, null where an input could not be read."""
    ok = np.asarray(ok, dtype=bool)
    values = np.asarray(embeddings, dtype=np.float32)
    dim = values.shape[1] if values.ndim == 2 else 0
    offsets = pa.array(np.arange(len(names) + 1, dtype=np.int32) * dim)
    embedding = pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)), mask=pa.array(~ok))
    return pa.Table.from_arrays(
        [pa.array(list(names), pa.string()), embedding, _errors(names, ok, problems)],
        schema=schema("embed"),
    )


def _errors(names: Sequence[str], ok: np.ndarray, problems) -> pa.Array:
    """Why each input that is not ``ok`` could not be used (the model's reason, by input)."""
    reasons = {str(where): reason for where, reason in problems}
    return pa.array(
        [None if k else reasons.get(name, "unreadable") for name, k in zip(names, ok)],
        pa.string(),
    )
