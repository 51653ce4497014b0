"""``--source-select N``: keep the N training examples most like the target domain.

An example's likeness is the mean cosine similarity of its embedding to its k nearest target
embeddings (in the power-normalised space the linear heads see). A nearest-neighbour score
rather than a domain classifier's: it asks "is there target data like this example", which is
what selection needs, and is not pulled by the one direction that best separates the domains
(a domain classifier is, and would then rank examples by an artefact such as background
colour). Every class keeps at least ``MIN_PER_CLASS`` examples: a selection that would drop a
class entirely would remove it from the model, which adaptation must never do silently.
"""

from __future__ import annotations

import numpy as np

from transferkit.errors import BadInputError
from transferkit.heads.linear import power_normalize
from transferkit.strategies.features import TrainingEmbeddings

NEIGHBOURS = 10
MIN_PER_CLASS = 2
_CHUNK = 1024  # source rows per similarity block: bounded memory for large targets


def target_likeness(source: np.ndarray, target: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Per source row: mean cosine similarity to its ``k`` most similar target rows."""
    zt = power_normalize(target.astype(np.float32))
    k = min(k, len(zt))
    scores = np.empty(len(source), dtype=np.float64)
    for start in range(0, len(source), _CHUNK):
        zs = power_normalize(source[start : start + _CHUNK].astype(np.float32))
        sim = zs @ zt.T
        top = np.partition(sim, len(zt) - k, axis=1)[:, len(zt) - k :]
        scores[start : start + len(zs)] = top.mean(axis=1)
    return scores


def select_source(
    source: TrainingEmbeddings, target: np.ndarray, n: int, labels
) -> tuple[TrainingEmbeddings, dict]:
    """The rows of the ``n`` training examples (all their views) most like ``target``, and
    what was kept and dropped per class (``labels``: the class names by index)."""
    samples, first = np.unique(source.rows, return_index=True)
    classes = source.y[first]
    present = np.unique(classes)
    needed = MIN_PER_CLASS * len(present)
    if n < needed:
        raise BadInputError(
            f"--source-select {n} keeps too few training examples: the {len(present)} classes "
            f"need at least {MIN_PER_CLASS} each, so ask for {needed} or more."
        )
    score = target_likeness(source.X[first], target)
    order = np.argsort(-score, kind="stable")
    plain = np.zeros(len(samples), dtype=bool)
    plain[order[:n]] = True
    # each class's most target-like examples first, then the best of the rest up to n
    guaranteed = [i for c in present for i in order[classes[order] == c][:MIN_PER_CLASS].tolist()]
    taken = set(guaranteed)
    rest = [i for i in order.tolist() if i not in taken]
    kept = np.zeros(len(samples), dtype=bool)
    kept[guaranteed + rest[: max(n - len(guaranteed), 0)]] = True
    # classes the plain top-N would have left with fewer than MIN_PER_CLASS: how many of
    # their examples were kept only so that the class stays in the model
    rescued = {}
    for c in present:
        floor = min(MIN_PER_CLASS, int((classes == c).sum()))
        in_plain = int((plain & (classes == c)).sum())
        if in_plain < floor:
            rescued[str(labels[c])] = floor - in_plain
    rows = np.isin(source.rows, samples[kept])
    selected = TrainingEmbeddings(
        X=source.X[rows],
        y=source.y[rows],
        groups=None if source.groups is None else source.groups[rows],
        rows=source.rows[rows],
        n_train=int(kept.sum()),
        info=source.info,
    )
    per_class = {
        str(labels[c]): {
            "kept": int((kept & (classes == c)).sum()),
            "dropped": int((~kept & (classes == c)).sum()),
        }
        for c in present
    }
    info = {
        "requested": n,
        "kept": int(kept.sum()),
        "dropped": int((~kept).sum()),
        "score": f"mean cosine similarity to the {min(NEIGHBOURS, len(target))} nearest target "
        "embeddings",
        "mean_score_kept": float(score[kept].mean()),
        "mean_score_dropped": float(score[~kept].mean()) if (~kept).any() else None,
        "per_class": per_class,
        "kept_to_keep_the_class": rescued,
    }
    if n >= len(samples):
        info["note"] = f"N >= the {len(samples)} training examples: nothing dropped"
    return selected, info


def describe_selection(info: dict) -> dict:
    """The report's facts of a selection."""
    facts = {
        "source examples kept / dropped (--source-select)": f"{info['kept']} / {info['dropped']}",
        "dropped per class": ", ".join(
            f"{label} {c['dropped']}" for label, c in info["per_class"].items()
        ),
    }
    if info.get("kept_to_keep_the_class"):
        facts[f"classes kept only by the {MIN_PER_CLASS}-per-class floor"] = ", ".join(
            f"{label} (+{m})" for label, m in info["kept_to_keep_the_class"].items()
        )
    return facts
