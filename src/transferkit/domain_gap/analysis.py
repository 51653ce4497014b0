"""How far apart two domains are in a backbone's frozen embedding space, and where.

Three views, each answering a question a person asks before adapting:
- the proxy A-distance (can a linear classifier tell the domains apart? 0: no, 2: always),
- the per-class mix: for each source class, the share of its examples' nearest neighbours
  (among both domains) that are target inputs, relative to the target's share of all points
  (1: the class sits among the target; 0: no target input near it), and how many target inputs
  have it as their nearest source class — which classes the target looks like, and which
  it never comes near,
- the source examples most and least like the target (by a domain classifier's out-of-fold
  ``P(target | x)``), to look at.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from transferkit.heads.linear import power_normalize
from transferkit.report.embedding_map import project_2d, sample_indices
from transferkit.strategies.adapt.domain_classifier import proxy_a_distance, target_likeness

log = logging.getLogger("transferkit")

NEIGHBOURS = 10
EXAMPLES = 8  # most and least like the target, each
_CHUNK = 1024


@dataclass
class Stages:
    """One progress line per stage: "gap: 2/5 embedding the target (40 inputs)"."""

    total: int
    done: int = 0

    def __call__(self, what: str) -> None:
        self.done += 1
        log.info("gap: %d/%d %s", self.done, self.total, what)


def neighbour_mix(
    source: np.ndarray, y: np.ndarray, target: np.ndarray, n_classes: int, k: int = NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
    """(per class: the target share of its examples' ``k`` nearest neighbours over the target
    share of all points; per class: the target inputs whose nearest source example is of it),
    by cosine similarity of power-normalised embeddings (as the heads see them)."""
    zs = power_normalize(source.astype(np.float32))
    zt = power_normalize(target.astype(np.float32))
    both = np.vstack([zs, zt])
    is_target = np.r_[np.zeros(len(zs), bool), np.ones(len(zt), bool)]
    k = min(k, len(both) - 1)
    share = np.empty(len(zs))
    for start in range(0, len(zs), _CHUNK):
        sim = zs[start : start + _CHUNK] @ both.T
        rows = np.arange(len(sim))
        sim[rows, start + rows] = -np.inf  # not its own neighbour
        nearest = np.argpartition(-sim, k, axis=1)[:, :k]
        share[start : start + len(sim)] = is_target[nearest].mean(axis=1)
    overall = len(zt) / (len(both) - 1)
    mix = np.array(
        [share[y == c].mean() / overall if (y == c).any() else np.nan for c in range(n_classes)]
    )
    closest = np.zeros(n_classes, dtype=int)
    for start in range(0, len(zt), _CHUNK):
        best = (zt[start : start + _CHUNK] @ zs.T).argmax(axis=1)
        np.add.at(closest, y[best], 1)
    return mix, closest


def measure_gap(
    source_ds, target_ds, xs: np.ndarray, xt: np.ndarray, *, seed: int
) -> dict[str, Any]:
    """gap.json's content from the readable samples of both domains and their embeddings."""
    from transferkit.modalities import get_modality

    labels = list(source_ds.labels)
    y = source_ds.targets
    distance = proxy_a_distance(xs, xt, seed=seed)
    likeness, domain_accuracy = target_likeness(xs, xt)
    mix, closest = neighbour_mix(xs, y, xt, len(labels))
    order = np.argsort(-likeness, kind="stable")
    modality = get_modality(source_ds.modality)

    def example(i: int) -> dict[str, Any]:
        sample = source_ds.samples[i]
        return {
            "path": str(sample.path),
            "label": sample.label,
            "p_target": float(likeness[i]),
            "preview": modality.preview(sample),
        }

    n = min(EXAMPLES, len(order) // 2 or 1)
    keep_s = sample_indices(y, limit=400, seed=seed)
    keep_t = sample_indices(np.zeros(len(xt), dtype=int), limit=200, seed=seed)
    points = project_2d(np.vstack([xs[keep_s], xt[keep_t]]), seed=seed)
    return {
        "source": str(source_ds.source),
        "target": str(target_ds.source),
        "n_source": len(xs),
        "n_target": len(xt),
        "labels": labels,
        "a_distance": distance["a_distance"],
        "domain_error": distance["domain_error"],
        "domain_classifier_accuracy": domain_accuracy,
        "per_class": {
            label: {
                "n_source": int((y == c).sum()),
                "mix": None if np.isnan(mix[c]) else round(float(mix[c]), 4),
                "target_nearest": int(closest[c]),
            }
            for c, label in enumerate(labels)
        },
        "most_like_target": [example(int(i)) for i in order[:n]],
        "least_like_target": [example(int(i)) for i in order[::-1][:n]],
        "map": {
            "points": np.round(points, 3).tolist(),
            "classes": [int(c) for c in y[keep_s]] + [-1] * len(keep_t),
        },
    }
