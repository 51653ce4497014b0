"""``--learning-curve``: accuracy against examples per class from cached embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights, write_unreadable_images

from transferkit.cli import main
from transferkit.data import Dataset, Sample
from transferkit.errors import BadInputError
from transferkit.learning_curve import learning_curve, per_class_subset
from transferkit.report.curves import learning_curve_svg
from transferkit.strategies import Capabilities


def test_per_class_subset_takes_n_of_each_class_or_all_of_a_small_one():
    samples = [Sample(Path(f"{i}.png"), "a") for i in range(6)]
    samples += [Sample(Path(f"b{i}.png"), "b") for i in range(2)]
    ds = Dataset(tuple(samples), ("a", "b"))
    sub = per_class_subset(ds, 3, np.random.default_rng(0))
    assert sub.class_counts() == {"a": 3, "b": 2}


def test_files_the_full_fit_could_not_read_are_never_drawn():
    # a Dataset built in memory is not probed at load: the full fit's skipped files count
    samples = [Sample(Path(f"{c}{i}.png"), c) for c in "ab" for i in range(4)]
    ds = Dataset(tuple(samples), ("a", "b"))
    fitted = []

    class Model:
        def fit(self, data):
            fitted.append({p.name for p in data.paths})
            self.skipped_ = [(Path("a0.png"), "truncated"), (Path("b3.png"), "truncated")]
            return self

        def score(self, test):
            return 1.0

    curve = learning_curve(Model, ds, ds, seed=0)
    assert all("a0.png" not in names and "b3.png" not in names for names in fitted[1:])
    assert curve["points"][-1]["per_class"] == 3


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


@pytest.mark.parametrize("head", ["linear", "svm", "knn"])
def test_the_learning_curve_refits_every_head(tmp_path, capsys, head):
    """Every point keeps the full fit's C where the head chose one from a grid (logistic,
    svm); ``linear`` has a fixed C, ``knn`` none (``--head linear`` once crashed here)."""
    require_offline_weights("mobilenet_v2")
    data = make_shapes_folder(tmp_path / "shapes", per_class=10)
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--learning-curve", "--head", head]
    assert main([*args, "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["head"] == head
    assert [p["per_class"] for p in metrics["learning_curve"]["points"]][:2] == [1, 2]


@pytest.mark.e2e
def test_learning_curve_never_draws_files_that_cannot_be_read(tmp_path, capsys):
    require_offline_weights("mobilenet_v2")
    data = make_shapes_folder(tmp_path / "shapes", per_class=6)
    for kind in ("circle", "square", "triangle"):  # a draw of 1 per class often hit one
        write_unreadable_images(data / kind, bomb=kind == "square")
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--learning-curve", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_test"] == 18
    assert [p["per_class"] for p in metrics["learning_curve"]["points"]][:2] == [1, 2]


def test_learning_curve_is_refused_for_strategies_that_train_the_backbone():
    from transferkit.training import _learning_curve

    class Trained:
        class strategy_:  # noqa: N801 - mimics the fitted attribute
            capabilities = Capabilities(trains_backbone=True)
            name = "finetune"

    with pytest.raises(BadInputError, match="--strategy features"):
        _learning_curve(None, None, Trained(), seed=0)


def test_the_curve_and_cv_fit_with_the_weights_given_to_train(tmp_path, monkeypatch):
    """``--weights PATH``: every refit of the learning curve and of --cv uses those weights (it
    looked for the backbone's default ones, and failed or used other weights)."""
    from tiny_backbone import NAME, register_tiny, write_tiny_weights

    from transferkit.backbones import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_tiny()
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    data = make_shapes_folder(tmp_path / "data", per_class=6, classes=("circle", "square"))
    weights = write_tiny_weights(tmp_path / "tiny.safetensors")
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "--backbone", NAME, "--weights", str(weights)]
    assert main([*args, "--cv", "2", "--no-progress", "--runtime", "torch"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["learning_curve"]["points"] and len(metrics["cv"]["fold_accuracy"]) == 2
