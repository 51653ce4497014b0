"""What instance-weighting methods share: clipping to a ceiling at mean 1, and what the weights
did to the training set (effective sample size, weight per class)."""

from __future__ import annotations

import numpy as np

from transferkit.strategies.adapt.base import DomainEmbeddings


def clip_to_mean_one(w: np.ndarray, ceiling: float) -> tuple[np.ndarray, int]:
    """``w`` (positive) scaled to mean 1 with no weight above ``ceiling`` (> 1): the k largest
    set to the ceiling and the rest scaled up to keep mean 1, for the least k for which the
    scaled rest stays under it; and k."""
    w = np.asarray(w, dtype=np.float64)
    n = len(w)
    order = np.argsort(-w, kind="stable")
    ranked = w[order]
    # scale of the rest when the k largest are at the ceiling, for every k
    rest = np.cumsum(ranked[::-1])[::-1]
    k = np.arange(n)
    scale = (n - k * ceiling) / rest
    k = int(np.flatnonzero(scale * ranked <= ceiling)[0])
    out = np.empty(n)
    out[order[:k]] = ceiling
    out[order[k:]] = ranked[k:] * scale[k]
    return out, k


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size ``(Σw)² / Σw²``: how many equally weighted rows the
    weighted set is worth."""
    return float(w.sum() ** 2 / max((w**2).sum(), 1e-300))


def weight_facts(w: np.ndarray, emb: DomainEmbeddings) -> dict:
    """Metrics of the weights ``w`` (mean 1) of ``emb``'s training rows."""
    ess = effective_sample_size(w)
    y = emb.source.y
    return {
        "effective_sample_size": ess,
        "effective_share": ess / len(w),
        "weight_min": float(w.min()),
        "weight_median": float(np.median(w)),
        "weight_max": float(w.max()),
        "mean_weight_per_class": {emb.label(int(c)): float(w[y == c].mean()) for c in np.unique(y)},
    }


def with_user_weights(w: np.ndarray, emb: DomainEmbeddings) -> np.ndarray:
    """The method's weights times the user's own (--sample-weight), where given."""
    return w if emb.source_weight is None else w * emb.source_weight


def spread_text(block: dict) -> str:
    """'min / median / max' of the weights in a metrics block, for the report."""
    values = [block.get(k) for k in ("weight_min", "weight_median", "weight_max")]
    return " / ".join("?" if v is None else f"{v:.3g}" for v in values)
