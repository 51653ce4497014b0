"""``--cv K``: cross-validated accuracy for datasets too small for one honest test split.

Stratified K folds over the labelled data; each fold trains the same classifier (same backbone,
strategy and head) on the other folds and predicts its own. Embeddings come from the cache, so
K fits of a frozen-feature model cost seconds. Reported: per-fold accuracy, mean ± standard
deviation, and a 95 % confidence interval for the pooled out-of-fold accuracy (Wilson score
interval: every example is predicted exactly once by a model that did not see it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transferkit.errors import BadInputError
from transferkit.metrics import classification_metrics, wilson_interval


def check_folds(dataset, folds: int) -> None:
    """Refuse a fold count the data cannot fill (before anything is trained)."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise BadInputError(f"--cv needs a whole number of folds >= 2; got {folds!r}")
    counts = {k: v for k, v in dataset.class_counts().items() if v}
    smallest = min(counts, key=counts.get)
    if counts[smallest] < folds:
        raise BadInputError(
            f"--cv {folds} needs at least {folds} examples of every class; '{smallest}' has "
            f"{counts[smallest]}. Use --cv {max(2, counts[smallest])} or add examples."
        )


def cross_validate(
    make_classifier, dataset, folds: int, seed: int = 0, fit_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """K-fold cross-validation of ``make_classifier()`` (an unfitted TransferClassifier);
    ``fit_params`` go to every ``fit`` (e.g. the unlabelled ``target`` of an adapting strategy)."""
    from sklearn.model_selection import StratifiedKFold

    check_folds(dataset, folds)
    y = dataset.targets
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = np.full(len(dataset), -1)
    fold_accuracy = []
    labels = list(dataset.labels)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
        clf = make_classifier().fit(dataset.subset(train_idx), **(fit_params or {}))
        proba, ok, _, _ = clf.predict_details(dataset.subset(test_idx))
        # the fold's model may know fewer labels only if a class vanished; map by name
        cols = [labels.index(lab) for lab in clf.labels_]
        pred = np.array([cols[i] for i in np.nan_to_num(proba, nan=-1).argmax(axis=1)])
        pred[~ok] = -1
        predicted[test_idx] = pred
        fold_accuracy.append(float((pred == y[test_idx]).mean()))
    scored = predicted >= 0
    correct = int((predicted[scored] == y[scored]).sum())
    pooled = classification_metrics(y[scored], predicted[scored], labels)
    low, high = wilson_interval(correct, int(scored.sum()))
    return {
        "folds": folds,
        "seed": seed,
        "fold_accuracy": fold_accuracy,
        "mean_accuracy": float(np.mean(fold_accuracy)),
        "std_accuracy": float(np.std(fold_accuracy, ddof=1)),
        "pooled_accuracy": correct / max(int(scored.sum()), 1),
        "pooled_macro_f1": float(pooled["macro_f1"]),
        "ci95_accuracy": [low, high],
        "n": int(scored.sum()),
    }
