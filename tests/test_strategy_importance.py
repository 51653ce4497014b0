"""``importance``: the domain classifier's weights against the true density ratio of two
Gaussians, their effect on a sample selection bias a linear head cannot ignore, and the
strategy end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from adapt_helpers import (
    covariate_shift,
    domain_embeddings,
    image_world,
    run_cli,
    target_accuracy,
    train_argv,
)
from scipy.stats import spearmanr
from tiny_backbone import tiny_registered  # noqa: F401 (module fixture: registers it)

from transferkit.errors import BadInputError
from transferkit.strategies import make_strategy
from transferkit.strategies.adapt.weights import clip_to_mean_one, effective_sample_size
from transferkit.strategies.importance import domain_ratio
from transferkit.strategies.importance.strategy import _folds


def test_weights_follow_the_true_density_ratio():
    """Source N(0, I), target N(μ, I): the ratio p_t/p_s is exp(μ·x − |μ|²/2); the estimate
    ranks the source rows as it does."""
    rng = np.random.default_rng(0)
    mu = np.r_[1.0, -0.5, np.zeros(6)]
    source = rng.normal(size=(600, 8)) + 10  # positive, as pooled CNN embeddings are
    target = rng.normal(size=(400, 8)) + mu + 10
    ratio, facts = domain_ratio(source, target, seed=0)
    truth = np.exp((source - 10) @ mu - mu @ mu / 2)
    assert spearmanr(ratio, truth).statistic > 0.9
    # the scale too: mean p_t/p_s over the source is 1
    assert ratio.mean() == pytest.approx(1.0, abs=0.35)
    assert 0.6 < facts["domain_auc"] < 0.95


def test_views_of_one_example_stay_in_one_fold():
    """A mirrored view nearly equal to its twin would let a classifier that saw one call the
    other 'source' with certainty: cross-fitting never splits an example's views."""
    groups = np.r_[np.arange(30), np.arange(30)]  # 30 examples, two views each
    domain, splits = _folds(60, 20, groups, folds=5, seed=0)
    assert (domain == np.r_[np.zeros(60), np.ones(20)]).all() and len(splits) == 5
    for fit_rows, held_out in splits:
        held_source = held_out[held_out < 60]
        assert not set(groups[held_source]) & set(groups[fit_rows[fit_rows < 60]])
        assert 0 < (held_out >= 60).sum() < 20  # target rows on both sides


def test_clipping_keeps_mean_one_and_the_ceiling():
    w, cut = clip_to_mean_one(np.r_[np.ones(98), 50.0, 80.0], ceiling=5.0)
    assert w.mean() == pytest.approx(1.0) and w.max() == pytest.approx(5.0) and cut == 2
    np.testing.assert_allclose(w[:98], (100 - 10) / 98)  # the rest keeps its proportions
    w, cut = clip_to_mean_one(np.r_[1.0, 2.0, 3.0], ceiling=5.0)
    np.testing.assert_allclose(w, [0.5, 1.0, 1.5])
    assert cut == 0
    assert effective_sample_size(np.ones(10)) == pytest.approx(10)
    assert effective_sample_size(np.r_[1.0, np.zeros(9)]) == pytest.approx(1)


@pytest.mark.parametrize("seed", [0, 1])
def test_importance_weights_correct_a_sample_selection_bias(seed):
    Xs, ys, Xt, yt = covariate_shift(seed)
    emb = domain_embeddings(Xs, ys, Xt, labels=("a", "b"))
    plain = target_accuracy(None, emb, yt)
    weighted = target_accuracy("importance", emb, yt)
    assert weighted >= plain + 0.15, (plain, weighted)  # measured 0.57 -> 0.98, 0.51 -> 0.94
    info = make_strategy("importance").prepare(emb, 0).info
    assert info["weight_max"] <= 10 + 1e-6 and info["effective_sample_size"] < len(ys)
    assert set(info["mean_weight_per_class"]) == {"a", "b"}


def test_user_weights_multiply_the_importance_weights():
    Xs, ys, Xt, _ = covariate_shift(0)
    user = np.where(ys == 0, 2.0, 1.0)
    plain = make_strategy("importance").prepare(domain_embeddings(Xs, ys, Xt), 0)
    both = make_strategy("importance").prepare(domain_embeddings(Xs, ys, Xt, weight=user), 0)
    np.testing.assert_allclose(both.weight, plain.weight * user)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"clip": 1}, r"clip \(--importance-clip\) must be a number above 1"),
        ({"folds": 1}, r"folds \(--importance-folds\) must be a whole number at least 2"),
        ({"source_select": 0}, r"source_select \(--source-select\) must be a whole number"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(params, message):
    with pytest.raises(BadInputError, match=message):
        make_strategy("importance", **params)


def test_train_with_importance_writes_its_metrics_and_report(tmp_path, capsys, monkeypatch):
    world = image_world(tmp_path)
    out = tmp_path / "run"
    argv = train_argv(world, out, "--strategy", "importance", "--importance-clip", "4")
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    block = json.loads((out / "metrics.json").read_text())["importance"]
    assert block["clip"] == 4 and block["weight_max"] <= 4 + 1e-6 and block["n_target"] == 12
    assert 0 < block["effective_sample_size"] <= 12 and 0 <= block["domain_auc"] <= 1
    report = (out / "report.html").read_text()
    assert '<a href="#importance">Importance weights</a>' in report
    assert "effective sample size" in report
