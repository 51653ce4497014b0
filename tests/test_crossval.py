"""``--cv K``: K-fold cross-validated accuracy with a 95 % interval, on cached embeddings."""

from __future__ import annotations

import json

import pytest
from conftest import make_shapes_folder, require_offline_weights

from transferkit.cli import main
from transferkit.errors import BadInputError
from transferkit.strategies import Capabilities


@pytest.mark.e2e
def test_train_with_cv_reports_folds_mean_and_interval(tmp_path, capsys):
    require_offline_weights("mobilenet_v2")
    data = make_shapes_folder(tmp_path / "shapes", per_class=6)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--cv", "3", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cv = json.loads((run / "metrics.json").read_text())["cv"]
    assert cv["folds"] == 3 and len(cv["fold_accuracy"]) == 3 and cv["n"] == 18
    assert cv["mean_accuracy"] == pytest.approx(sum(cv["fold_accuracy"]) / 3)
    low, high = cv["ci95_accuracy"]
    assert low <= cv["pooled_accuracy"] <= high
    assert summary["cv_accuracy"] == round(cv["mean_accuracy"], 4)
    assert "3-fold CV accuracy" in (run / "report.html").read_text(encoding="utf-8")


def test_cv_refuses_more_folds_than_a_class_has(tmp_path, capsys):
    data = make_shapes_folder(tmp_path / "shapes", per_class=3)
    code = main(["train", str(data), "--out", str(tmp_path / "r"), "--cv", "5", "--no-progress"])
    assert code == 2
    assert "--cv 5 needs at least 5 examples of every class" in capsys.readouterr().err


def test_cv_is_refused_for_strategies_that_train_the_backbone(tmp_path):
    from transferkit.training import _cross_validation

    class Trained:
        class strategy_:  # noqa: N801 - mimics the fitted attribute
            capabilities = Capabilities(trains_backbone=True)
            name = "finetune"

    with pytest.raises(BadInputError, match="--strategy features"):
        _cross_validation(None, 3, Trained(), seed=0)
