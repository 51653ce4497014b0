"""``--learning-curve``: test accuracy against the number of training examples per class.

Answers "is collecting more data worth it?": the same classifier (backbone, strategy, head) is
trained on 1, 2, 5, 10, 20, … examples per class drawn from the training split (a few seeded
draws per size; the last point is all of it) and scored on the same test set. Embeddings come
from the cache, so the curve costs head fits only; ``transferkit train`` draws it by default
when that is cheap (``CHEAP_LEARNING_CURVE_MAX_TRAIN``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIZES = (1, 2, 5, 10, 20, 50, 100, 200)
# drawn by default when the model's encoder is frozen (only head fits, on cached embeddings) and
# the training set is at most this big: a few seconds, worth it for the question it answers
CHEAP_LEARNING_CURVE_MAX_TRAIN = 2000
DRAWS = 3  # seeded draws per size below "all": one draw of 2 examples is mostly luck


def per_class_subset(dataset, n: int, rng: np.random.Generator):
    """``n`` examples of every class (or all of a smaller class), drawn without replacement."""
    y = dataset.targets
    picked = [
        rng.choice(members, size=min(n, len(members)), replace=False)
        for members in (np.flatnonzero(y == c) for c in np.unique(y))
    ]
    return dataset.subset(np.sort(np.concatenate(picked)))


def learning_curve(
    make_classifier, train, test, *, seed: int = 0, fit_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Points ``{per_class, accuracy, std, draws}`` from 1 example per class to all.

    ``fit_params`` go to every ``fit`` (e.g. the unlabelled ``target`` of an adapting strategy).
    """
    fit_params = fit_params or {}
    full_model = make_classifier().fit(train, **fit_params)
    # Loading leaves out unreadable files; any the full fit still could not read (a Dataset
    # built in memory, a file broken since) are left out of the draws too, or a draw of one
    # example per class could hold none that reads
    unread = {str(path) for path, _ in getattr(full_model, "skipped_", ())}
    if unread:
        train = train.subset([str(path) not in unread for path in train.paths])
    counts = [c for c in train.class_counts().values() if c]
    largest = max(counts)
    sizes = [n for n in SIZES if n < largest]
    points = []
    rng = np.random.default_rng(seed)
    for n in sizes:
        scores = []
        for _ in range(DRAWS):
            subset = per_class_subset(train, n, rng)
            scores.append(float(make_classifier().fit(subset, **fit_params).score(test)))
        points.append(
            {"per_class": n, "accuracy": float(np.mean(scores)), "std": float(np.std(scores)),
             "draws": DRAWS}
        )  # fmt: skip
    full = float(full_model.score(test))
    points.append({"per_class": largest, "accuracy": full, "std": 0.0, "draws": 1, "all": True})
    gain = points[-1]["accuracy"] - points[-2]["accuracy"] if len(points) > 1 else 0.0
    return {"points": points, "last_step_gain": gain, "advice": _advice(points, gain)}


def _advice(points: list[dict[str, Any]], gain: float) -> str:
    if len(points) < 2:
        return "Too few examples per class to draw a curve."
    before = points[-2]["per_class"]
    if gain > 0.02:
        return (
            f"Accuracy still rose by {gain:+.1%} from {before} examples per class to all of "
            "them: more labelled data is likely to help."
        )
    return (
        f"Accuracy changed by only {gain:+.1%} from {before} examples per class to all of them: "
        "the curve is flattening; more data of the same kind may help little."
    )
