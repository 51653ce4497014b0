"""``--learning-curve``: accuracy against examples per class from cached embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights

from transferkit.cli import main
from transferkit.data import Dataset, Sample
from transferkit.errors import BadInputError
from transferkit.learning_curve import per_class_subset
from transferkit.report.curves import learning_curve_svg


def test_per_class_subset_takes_n_of_each_class_or_all_of_a_small_one():
    samples = [Sample(Path(f"{i}.png"), "a") for i in range(6)]
    samples += [Sample(Path(f"b{i}.png"), "b") for i in range(2)]
    ds = Dataset(tuple(samples), ("a", "b"))
    sub = per_class_subset(ds, 3, np.random.default_rng(0))
    assert sub.class_counts() == {"a": 3, "b": 2}


def test_svg_needs_two_points_and_labels_the_last_as_all():
    assert learning_curve_svg({"points": [{"per_class": 1, "accuracy": 0.5}]}) == ""
    svg = learning_curve_svg(
        {"points": [{"per_class": 1, "accuracy": 0.4, "std": 0.1}, {"per_class": 8,
         "accuracy": 0.9, "all": True}]}
    )  # fmt: skip
    assert svg.count("<circle") == 2 and "8 (all)" in svg and "examples per class" in svg


@pytest.mark.e2e
def test_train_with_learning_curve_adds_points_and_a_report_section(tmp_path, capsys):
    require_offline_weights("mobilenet_v2")
    data = make_shapes_folder(tmp_path / "shapes", per_class=10)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--learning-curve", "--no-progress"]) == 0
    curve = json.loads((run / "metrics.json").read_text())["learning_curve"]
    sizes = [p["per_class"] for p in curve["points"]]
    assert sizes[:3] == [1, 2, 5] and curve["points"][-1]["all"] and sizes == sorted(sizes)
    assert all(0 <= p["accuracy"] <= 1 for p in curve["points"]) and curve["advice"]
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Learning curve" in html and 'href="#learning-curve"' in html


def test_learning_curve_is_refused_for_strategies_that_train_the_backbone():
    from transferkit.training import _learning_curve

    class Trained:
        class strategy_:  # noqa: N801 - mimics the fitted attribute
            trains_backbone = True
            name = "finetune"

    with pytest.raises(BadInputError, match="--strategy features"):
        _learning_curve(None, None, Trained(), seed=0)
