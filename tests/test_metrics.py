"""Tests for transferkit.metrics.classification_metrics (the shape of metrics.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferkit.metrics import classification_metrics, macro_f1_interval, wilson_interval

KEYS = {
    "accuracy",
    "macro_f1",
    "accuracy_ci95",
    "macro_f1_ci95",
    "per_class",
    "confusion_matrix",
    "labels",
    "n_test",
}

# hand-computed example: rows of the confusion matrix are the true class
#   a: TP 1, FP 1 (the c predicted as a), FN 1 -> P 1/2, R 1/2, F1 1/2
#   b: TP 2, FP 1, FN 0                         -> P 2/3, R 1,   F1 4/5
#   c: TP 0, FN 1                               -> P 0,   R 0,   F1 0
Y_TRUE = [0, 0, 1, 1, 2]
Y_PRED = [0, 1, 1, 1, 0]
LABELS = ["a", "b", "c"]


def test_keys_and_types():
    m = classification_metrics(np.array(Y_TRUE), np.array(Y_PRED), LABELS)
    assert set(m) == KEYS
    assert isinstance(m["accuracy"], float) and isinstance(m["macro_f1"], float)
    assert isinstance(m["n_test"], int) and m["n_test"] == 5
    assert m["labels"] == LABELS and set(m["per_class"]) == set(LABELS)
    for stats in m["per_class"].values():
        assert set(stats) == {"precision", "recall", "f1", "support"}
        assert isinstance(stats["support"], int)
        assert all(isinstance(stats[k], float) for k in ("precision", "recall", "f1"))


def test_values_on_a_hand_computed_example():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)  # plain lists are fine too
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_a_label_absent_from_truth_and_predictions_does_not_drag_macro_f1():
    """By design (see the docstring): a label the small test set never shows is left out of the
    macro average instead of counting as an F1 of zero."""
    base = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    m = classification_metrics(Y_TRUE, Y_PRED, [*LABELS, "d"])
    assert m["macro_f1"] == pytest.approx(base["macro_f1"])
    assert m["accuracy"] == base["accuracy"]
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["labels"] == [*LABELS, "d"]


def test_a_label_only_predicted_still_counts_in_macro_f1():
    # class 2 is never true but is predicted once: a real mistake, so its F1 of 0 counts
    m = classification_metrics([0, 0, 1, 1], [0, 2, 1, 1], LABELS)
    f1_a = 2 * 1.0 * 0.5 / 1.5  # P 1, R 1/2
    assert m["macro_f1"] == pytest.approx((f1_a + 1.0 + 0.0) / 3)
    assert m["per_class"]["c"]["support"] == 0


def test_perfect_predictions():
    m = classification_metrics([0, 1, 2, 1], [0, 1, 2, 1], LABELS)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 2, 0], [0, 0, 1]]


def test_json_serialisable_with_non_ascii_labels():
    labels = ['猫 "cat"', "chien", "naïve"]
    m = classification_metrics(np.array(Y_TRUE, dtype=np.int32), np.array(Y_PRED), labels)
    text = json.dumps(m, ensure_ascii=False)
    back = json.loads(text)
    assert back == m
    assert back["labels"] == labels and '猫 "cat"' in back["per_class"]


def test_macro_f1_interval_brackets_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.integers(0, 3, size=n)
        pred = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, size=n))
        return y, pred

    y, pred = draw(60)
    low, high = macro_f1_interval(y, pred, 3)
    assert low < classification_metrics(y, pred, LABELS)["macro_f1"] < high
    y_big, pred_big = draw(3000)
    low_big, high_big = macro_f1_interval(y_big, pred_big, 3)
    assert high_big - low_big < (high - low) / 4  # ~1/sqrt(50) as wide
    assert macro_f1_interval(y, pred, 3) == (low, high)  # seeded: reproducible


def test_macro_f1_interval_of_a_perfect_model_is_a_point():
    y = np.array([0, 1, 2, 0, 1, 2])
    assert macro_f1_interval(y, y, 3) == (1.0, 1.0)


def test_wilson_interval_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
