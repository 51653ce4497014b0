"""``tradaboost`` and ``--source``: the boosting on a synthetic shift (against pooling, against
the update rules written out from the paper and ADAPT), the vote head (bundle arrays, ONNX
graph) and the strategy end to end through the CLI on real PNG folders and the tiny backbone."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from adapt_helpers import run_cli
from conftest import make_shapes_folder
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.errors import BadInputError
from transferkit.export.folder import EXPORT_JSON
from transferkit.export.heads import head_graph
from transferkit.heads import head_class
from transferkit.heads.linear import LogisticHead
from transferkit.heads.vote import VoteHead
from transferkit.strategies.tradaboost import tradaboost

PARAMS = {"Cs": (0.01, 0.1, 1.0, 10.0), "cv": 3, "standardize": True}


def _shifted_world(seed: int, n_source=500, n_target=20, n_test=1000, dim=10, other=0.6):
    """Target: two classes split by a hyperplane (with a margin). Source: 40 % drawn as the
    target is; 60 % drawn from another region of the space and labelled the other way round,
    so that a head trained on everything pooled learns mostly the wrong rule."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    shift = rng.normal(size=dim)
    shift -= (shift @ w) * w
    shift *= 3 / np.linalg.norm(shift)

    def draw(n, offset):
        X = rng.normal(size=(4 * n, dim))
        X = X[np.abs(X @ w) > 0.5][:n]  # a margin around the boundary
        return X + offset, (X @ w > 0).astype(np.int64)

    n_other = int(other * n_source)
    X_match, y_match = draw(n_source - n_other, 0.0)
    X_other, y_other = draw(n_other, shift)
    Xs = np.vstack([X_match, X_other]).astype(np.float32)
    ys = np.concatenate([y_match, 1 - y_other])
    mismatched = np.arange(n_source) >= n_source - n_other
    Xt, yt = draw(n_target, 0.0)
    Xe, ye = draw(n_test, 0.0)
    return Xs, ys, mismatched, Xt.astype(np.float32), yt, Xe.astype(np.float32), ye


def _learner_factory(fitted: list):
    """Weighted logistic heads: C by cross-validation in round 0, kept afterwards."""

    def fit(round_, X, y, weight):
        params = PARAMS if round_ == 0 else {**PARAMS, "Cs": (fitted[0].info_["C"],)}
        head = LogisticHead(**params).fit(X, y, weight, seed=0)
        fitted.append(head)
        return head

    return fit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tradaboost_beats_pooling_and_fades_the_mismatched_source(seed):
    Xs, ys, mismatched, Xt, yt, Xe, ye = _shifted_world(seed)
    pooled = LogisticHead(**PARAMS).fit(np.vstack([Xs, Xt]), np.concatenate([ys, yt]), seed=0)
    boosted = tradaboost(_learner_factory([]), Xs, ys, Xt, yt, rounds=10)
    vote = VoteHead.from_members(boosted.voters, boosted.votes)
    pooled_accuracy = (pooled.predict(Xe) == ye).mean()
    boosted_accuracy = (vote.predict(Xe) == ye).mean()
    assert pooled_accuracy < 0.5  # the mismatched majority wins when pooled
    assert boosted_accuracy > pooled_accuracy + 0.3 and boosted_accuracy > 0.8
    # every row starts at 1 / (n_source + n_target): the mismatched rows lose far more
    start = 1.0 / (len(ys) + len(yt))
    kept = boosted.source_weight / start
    assert kept[mismatched].mean() < 0.6 * kept[~mismatched].mean()
    assert kept[mismatched].mean() < 0.1
    # the target's error falls as the weight moves off the mismatched source
    assert boosted.errors[-1] < boosted.errors[0]
    assert boosted.source_share[0] > boosted.source_share[-1]


def test_one_round_of_weights_follows_the_update_rules():
    """The weights after round 1, written out from the rules (Dai et al. 2007 for the source,
    ADAPT's beta_t = eps / (2 - eps) for the target) from round 1's own probabilities."""
    Xs, ys, _, Xt, yt, _, _ = _shifted_world(3, n_source=200, n_target=15)
    fitted: list = []
    boosted = tradaboost(_learner_factory(fitted), Xs, ys, Xt, yt, rounds=2)
    first = fitted[0]
    e_s = 1 - first.predict_proba(Xs)[np.arange(len(ys)), ys].astype(np.float64)
    e_t = 1 - first.predict_proba(Xt)[np.arange(len(yt)), yt].astype(np.float64)
    eps = e_t.mean()  # the target rows' weights are all equal in round 1
    beta_t = eps / (2 - eps)
    beta_s = 1 / (1 + math.sqrt(2 * math.log(len(ys)) / 2))
    w_s, w_t = beta_s**e_s, beta_t ** (-e_t)
    total = w_s.sum() + w_t.sum()
    np.testing.assert_allclose(boosted.errors[0], eps, rtol=1e-6)
    np.testing.assert_allclose(boosted.beta_source, beta_s, rtol=1e-12)
    np.testing.assert_allclose(boosted.source_weight, w_s / total, rtol=1e-6)
    np.testing.assert_allclose(boosted.target_weight, w_t / total, rtol=1e-6)
    # the learner of round 2 was fitted on these weights (over their mean)
    assert len(fitted) == 2


@pytest.mark.parametrize(("rounds", "voters"), [(10, 6), (5, 3), (2, 2)])
def test_the_vote_is_the_later_half_weighted_by_log_one_over_beta(rounds, voters):
    """The paper's final classifier: rounds ceil(N/2)..N (1-based), weights ln(1/beta_t)."""
    Xs, ys, _, Xt, yt, Xe, _ = _shifted_world(4, n_source=150, n_target=12)
    boosted = tradaboost(_learner_factory([]), Xs, ys, Xt, yt, rounds=rounds)
    assert len(boosted.voters) == voters
    assert boosted.voters == boosted.learners[rounds - voters :]
    np.testing.assert_allclose(boosted.votes, np.log(1 / boosted.betas[rounds - voters :]))
    vote = VoteHead.from_members(boosted.voters, boosted.votes)
    share = boosted.votes / boosted.votes.sum()
    expected = sum(w * m.predict_proba(Xe) for w, m in zip(share, boosted.voters, strict=True))
    np.testing.assert_allclose(vote.predict_proba(Xe), expected, atol=1e-6)


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("standardize", [False, True])
def test_the_vote_head_round_trips_through_safetensors_and_exports_as_a_graph(classes, standardize):
    rng = np.random.default_rng(classes)
    X = rng.normal(size=(60, 12)).astype(np.float32) + 0.3
    y = np.arange(60) % classes
    members = [
        LogisticHead(Cs=(c,), standardize=standardize).fit(X, y, rng.uniform(0.2, 2, 60))
        for c in (0.1, 1.0, 10.0)
    ]
    vote = VoteHead.from_members(members, [0.5, 1.0, 2.0], info={"C": 1.0})
    Xn = rng.normal(size=(9, 12)).astype(np.float32)
    config, arrays = vote.get_state()
    assert arrays["coef"].shape[0] == 3 and ("center" in arrays) == standardize
    stored = st_load(st_save(arrays))
    again = head_class(config["name"]).from_state(json.loads(json.dumps(config)), stored)
    np.testing.assert_allclose(again.predict_proba(Xn), vote.predict_proba(Xn), atol=1e-7)
    with torch.no_grad():
        graph = head_graph(again)(torch.from_numpy(Xn)).numpy()
    np.testing.assert_allclose(graph, vote.predict_proba(Xn), atol=1e-5)
    # a 12-d head refuses other widths, as every head does
    with pytest.raises(BadInputError, match="trained on 12-d embeddings"):
        again.predict(np.zeros((2, 5), dtype=np.float32))


def test_the_vote_head_is_not_fitted_on_its_own():
    with pytest.raises(BadInputError, match="built by --strategy tradaboost"):
        VoteHead().fit(np.eye(4, dtype=np.float32), np.array([0, 1, 0, 1]))
    with pytest.raises(BadInputError, match="stacks logistic or svm heads"):
        VoteHead(member="knn")


# -- end to end -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tradaboost")
    two = ("circle", "square")
    return {
        "root": root,
        "data": make_shapes_folder(root / "target", per_class=5, seed=7, classes=two),
        "test": make_shapes_folder(root / "test", per_class=3, seed=5, classes=two),
        "source": make_shapes_folder(root / "source", per_class=12, seed=1, classes=two),
        "three": make_shapes_folder(root / "three", per_class=4, seed=2),
        "weights": write_tiny_weights(root / "tiny.safetensors"),
    }


def _train(world, out, *extra):
    return [
        "train", world["data"], "--test", world["test"], "--out", out, "--backbone", NAME,
        "--weights", world["weights"], "--no-progress", "--runtime", "torch", *extra,
    ]  # fmt: skip


def test_train_with_tradaboost_and_a_source_writes_a_vote_that_reloads_and_exports(
    world, capsys, monkeypatch
):
    from transferkit.estimator import TransferClassifier
    from transferkit.export import export_model

    out = world["root"] / "run"
    argv = _train(world, out, "--strategy", "tradaboost", "--source", world["source"])
    code, err = run_cli(
        [*argv, "--tradaboost-rounds", "4", "--augment", "none"], capsys, monkeypatch
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    boost = metrics["tradaboost"]
    assert metrics["strategy"] == "tradaboost" and metrics["head"] == "vote"
    assert boost["rounds"] == 4 and boost["voters"] == 3  # rounds 2..4
    assert boost["n_source"] == 24 and boost["n_target_rows"] == metrics["n_train"]
    assert len(boost["target_error"]) == 4 and set(boost["source_weight_by_class"]) == {
        "circle",
        "square",
    }
    assert "learning_curve" not in metrics  # not drawn by default with a source
    report = (out / "report.html").read_text()
    assert '<a href="#tradaboost">TrAdaBoost</a>' in report
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["head"]["name"] == "vote" and manifest["head"]["params"]["member"] == "logistic"

    clf = TransferClassifier.load(out / "model", weights=world["weights"], runtime="torch")
    proba = clf.predict_proba(world["test"])
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert clf.evaluate(world["test"])["accuracy"] == pytest.approx(metrics["accuracy"])
    onnx = world["root"] / "onnx"
    export_model(out / "model", out=onnx, weights=world["weights"])
    parity = json.loads((onnx / EXPORT_JSON).read_text())["parity"]
    assert parity["examples"] == 6 and parity["max_abs_diff_probabilities"] <= 1e-4


def test_source_whose_classes_differ_is_refused_naming_both_sides(world, capsys, monkeypatch):
    out = world["root"] / "refused"
    argv = _train(world, out, "--strategy", "tradaboost", "--source", world["three"])
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and not out.exists()
    assert f"--source {world['three']}" in err and "must hold the same classes" in err
    assert "only the source has 'triangle'" in err

    fewer = make_shapes_folder(world["root"] / "fewer", per_class=3, classes=("circle", "x"))
    code, err = run_cli(_train(world, out, "--strategy", "tradaboost", "--source", fewer), capsys,
                      monkeypatch)  # fmt: skip
    assert code == 2 and "only the training data have 'square'" in err
    assert "only the source has 'x'" in err


def test_source_of_another_kind_or_for_a_strategy_without_one_is_refused(
    world, capsys, monkeypatch
):
    out = world["root"] / "refused-kind"
    table = world["root"] / "reviews.csv"
    table.write_text("text,label\na round one,circle\na square one,square\n", encoding="utf-8")
    argv = _train(world, out, "--strategy", "tradaboost", "--source", table)
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and "holds texts but the training data" in err and "holds images" in err

    argv = _train(world, out, "--strategy", "features", "--source", world["source"])
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and "the features strategy does not use a labelled source domain" in err
    assert "--strategy tradaboost" in err

    code, err = run_cli(_train(world, out, "--strategy", "tradaboost"), capsys, monkeypatch)
    assert code == 2 and "pass it with --source PATH" in err and not out.exists()
