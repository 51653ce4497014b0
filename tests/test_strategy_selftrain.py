"""``selftrain``: class-balanced picking, its effect on a real domain shift, and the strategy
end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from adapt_helpers import (
    digits_shift,
    domain_embeddings,
    image_world,
    run_cli,
    target_accuracy,
    train_argv,
)
from tiny_backbone import tiny_registered  # noqa: F401 (module fixture: registers it)

from transferkit.errors import BadInputError
from transferkit.strategies import make_strategy
from transferkit.strategies.selftrain.strategy import _balanced_pick


def test_a_confident_class_cannot_take_over_the_pseudo_labels():
    """Class 0 is sure of its 80 rows, class 1 timid on its 20: each gets the same share of
    the rows assigned to it, and none below the floor."""
    sure = np.column_stack([np.linspace(0.99, 0.95, 80), np.linspace(0.01, 0.05, 80)])
    timid = np.column_stack([np.linspace(0.45, 0.2, 20), np.linspace(0.55, 0.8, 20)])
    picked = _balanced_pick(np.vstack([sure, timid]), threshold=0.5, portion=0.5)
    assert (picked[:80] == 0).sum() == 40 and (picked[80:] == 1).sum() == 10
    # the most confident half of each class
    assert (picked[:40] == 0).all() and (picked[90:] == 1).all() and (picked[80:90] == -1).all()
    high_floor = _balanced_pick(np.vstack([sure, timid]), threshold=0.7, portion=0.5)
    # of its 10 most confident rows (0.68 to 0.80), the 2 under the floor are left out
    assert (high_floor[80:] == 1).sum() == 8 and (high_floor[90:92] == -1).all()


def test_self_training_gains_on_digits_seen_by_another_camera():
    """Real scans, the target half at 0.7x contrast and brighter: the source head already
    reads most of it; its balanced pseudo-labels teach the head the rest."""
    Xs, ys, Xt, yt = digits_shift(seed=0, gain=0.7, offset=2)
    emb = domain_embeddings(Xs, ys, Xt, labels=[f"d{i}" for i in range(10)])
    plain = target_accuracy(None, emb, yt)
    adapted = target_accuracy("selftrain", emb, yt)
    assert adapted >= plain + 0.03, (plain, adapted)  # measured 0.90 -> 0.95
    prepared = make_strategy("selftrain").prepare(emb, 0)
    info = prepared.info
    per_class = info["pseudo_labelled_per_class"]
    assert set(per_class) == {f"d{i}" for i in range(10)} and min(per_class.values()) > 0
    assert sum(per_class.values()) == info["pseudo_labelled"] == len(prepared.y) - len(ys)
    assert [r["round"] for r in info["history"]] == [1, 2, 3]
    # the share grows by round: 1/3, 2/3, 3/3 of half the target
    counts = [r["pseudo_labelled"] for r in info["history"]]
    assert counts[0] < counts[1] < counts[2] <= len(yt) // 2 + 10


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 0}, r"threshold \(--selftrain-threshold\) must be a number above 0"),
        ({"portion": 1.5}, r"portion \(--selftrain-portion\) must be .* at most 1"),
        ({"rounds": 0}, r"rounds \(--selftrain-rounds\) must be a whole number at least 1"),
        ({"rounds": 2.5}, r"rounds \(--selftrain-rounds\) must be a whole number"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(params, message):
    with pytest.raises(BadInputError, match=message):
        make_strategy("selftrain", **params)


def test_train_with_selftrain_writes_its_metrics_and_report(tmp_path, capsys, monkeypatch):
    world = image_world(tmp_path)
    out = tmp_path / "run"
    argv = train_argv(
        world, out, "--strategy", "selftrain", "--selftrain-rounds", "2",
        "--selftrain-threshold", "0.3",
    )  # fmt: skip
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["selftrain"]
    assert block["rounds"] == 2 and block["threshold"] == 0.3 and block["n_target"] == 12
    assert set(block["pseudo_labelled_per_class"]) == {"circle", "square"}
    assert block["pseudo_labelled"] == sum(block["pseudo_labelled_per_class"].values())
    report = (out / "report.html").read_text()
    assert '<a href="#selftrain">Self-training on the target</a>' in report
    assert "target inputs pseudo-labelled" in report


def test_the_heads_c_is_chosen_on_the_labelled_rows_not_on_pseudo_labels():
    """Rows selftrain labelled itself do not choose the head's C: the grid runs on the
    labelled source rows, and the head fits every row once with that C."""
    from sklearn.datasets import load_digits

    from transferkit.heads import make_head
    from transferkit.strategies.adapt.base import HeadTrainingSet, chosen_on_labelled_rows

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    labelled, pseudo = slice(0, 300), slice(300, 900)
    # the "pseudo-labels" are all one class: a grid run on them would choose for them
    rows = np.vstack([X[labelled], X[pseudo]])
    ys = np.concatenate([y[labelled], np.zeros(600, dtype=int)])
    source_rows = np.concatenate([np.arange(300), np.full(600, -1)])
    head = make_head("logistic")
    assert len(head.config.Cs) > 1
    on_labelled = make_head("logistic").fit(X[labelled], y[labelled], seed=0).info_["C"]
    prepared = HeadTrainingSet(rows, ys, source_rows=source_rows)
    chosen_on_labelled_rows(head, prepared, seed=0)
    assert head.config.Cs == (on_labelled,)
    # rows that are all labelled source rows keep the head's grid
    plain = make_head("logistic")
    chosen_on_labelled_rows(plain, HeadTrainingSet(X[labelled], y[labelled]), seed=0)
    assert len(plain.config.Cs) > 1


def test_the_run_fits_one_grid_and_warm_refits_rounds_minus_one(monkeypatch):
    """What a selftrain fit costs, counted on scikit-learn's own fits: with the run's logistic
    head, one cross-validated grid on the labelled rows (the labelling head and the run head's
    C both come from it), ``rounds - 1`` refits of the labelling head, each warm-started, and
    the final head once with that C. A second grid or cold refits made selftrain 3x
    source-only's fit time (benchmarks adapt)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    from transferkit.heads import make_head
    from transferkit.strategies.adapt.base import chosen_on_labelled_rows
    from transferkit.strategies.base import FitContext

    fits = {"grid": 0, "single": 0, "warm": 0}
    grid_fit, single_fit = LogisticRegressionCV.fit, LogisticRegression.fit

    def count_grid(self, *args, **kwargs):
        fits["grid"] += 1
        return grid_fit(self, *args, **kwargs)

    def count_single(self, *args, **kwargs):
        fits["single"] += 1
        fits["warm"] += bool(self.warm_start and hasattr(self, "coef_"))
        return single_fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegressionCV, "fit", count_grid)
    monkeypatch.setattr(LogisticRegression, "fit", count_single)
    Xs, ys, Xt, yt = digits_shift(seed=0, gain=0.7, offset=2, n_source=600)
    emb = domain_embeddings(Xs, ys, Xt)
    head = make_head("logistic")
    ctx = FitContext(embed=None, head=head, seed=0)
    rounds = 4
    prepared = make_strategy("selftrain", rounds=rounds).training_set(emb, ctx)
    assert fits == {"grid": 1, "single": rounds - 1, "warm": rounds - 1}, fits
    assert prepared.info["refits"] == rounds - 1
    # the run's head has its C already: no second grid on the labelled rows
    assert len(head.config.Cs) == 1 and head.config.Cs[0] == prepared.info["C"]
    chosen_on_labelled_rows(head, prepared, seed=0)
    head.fit(prepared.X, prepared.y, seed=0, groups=prepared.groups)
    assert fits == {"grid": 1, "single": rounds, "warm": rounds - 1}, fits
    # and it still adapts: the labelling head's choice is the head's grid on the labelled rows
    plain = make_head("logistic").fit(Xs.astype("float32"), ys, seed=0)
    assert plain.info_["C"] == prepared.info["C"]
    assert (head.predict(emb.target) == yt).mean() >= (plain.predict(emb.target) == yt).mean()
