"""Classification metrics in the shape of metrics.json (see docs/architecture.md).

Plain numpy (the definitions are a few lines): evaluating a model must not cost the import of
scikit-learn, which takes seconds on a small machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Z_95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0, 1 and small n)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows are true labels, columns predicted ones."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def _macro_f1_from_counts(cm: np.ndarray) -> np.ndarray:
    """Macro F1 of confusion matrices (..., K, K), over the classes present in each."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    support, predicted = cm.sum(axis=-1), cm.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    present = (support > 0) | (predicted > 0)
    return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def macro_f1_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_classes: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of macro F1: the test set resampled with replacement.

    A small test set gives one noisy number; this says how far it may be off. All resamples'
    confusion matrices come from one ``bincount`` per chunk (no per-resample Python loop).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n, k = len(y_true), n_classes
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    codes = y_true * k + y_pred
    chunk = max(1, min(n_boot, 2_000_000 // n))  # bounded memory on big test sets
    scores = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        picks = codes[rng.integers(0, n, size=(b, n))] + (np.arange(b) * k * k)[:, None]
        cm = np.bincount(picks.ravel(), minlength=b * k * k).reshape(b, k, k)
        scores.append(_macro_f1_from_counts(cm))
    scores = np.concatenate(scores)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """accuracy, macro_f1, per_class, confusion_matrix, labels, n_test for integer label indices.

    Precision, recall and F1 are 0 where undefined (no predictions / no examples), as sklearn's
    ``zero_division=0``. Macro F1 averages over the classes present in the test set or
    predicted, so a model's label that never occurs in a small test set does not drag the
    average to zero.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    present = (support > 0) | (predicted > 0)
    correct = int((y_true == y_pred).sum())
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        # 95 % intervals: Wilson for accuracy, bootstrap for macro F1
        "accuracy_ci95": list(wilson_interval(correct, len(y_true))) if len(y_true) else None,
        "macro_f1_ci95": list(macro_f1_interval(y_true, y_pred, len(labels))),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": cm.astype(int).tolist(),
        "labels": list(labels),
        "n_test": int(len(y_true)),
    }
