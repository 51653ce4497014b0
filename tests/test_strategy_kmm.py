"""``kmm``: the solver against scipy's SLSQP on the same QP, the weights against the paper's
formulas written out, their effect on a sample selection bias, and the strategy end to end
through the CLI."""

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
from scipy.optimize import minimize
from scipy.spatial.distance import cdist, pdist
from tiny_backbone import tiny_registered  # noqa: F401 (module fixture: registers it)

from transferkit.errors import BadInputError
from transferkit.strategies import make_strategy
from transferkit.strategies.kmm import kmm_weights, solve_box_band_qp
from transferkit.strategies.kmm import solver as kmm_solver


def _slsqp(K, kappa, upper, low, high):
    """The same QP by scipy's general constrained solver (the reference)."""
    n = len(K)
    band = [
        {"type": "ineq", "fun": lambda b: b.sum() - low, "jac": lambda b: np.ones(n)},
        {"type": "ineq", "fun": lambda b: high - b.sum(), "jac": lambda b: -np.ones(n)},
    ]
    return minimize(
        lambda b: 0.5 * b @ K @ b - kappa @ b,
        np.ones(n),
        jac=lambda b: K @ b - kappa,
        bounds=[(0, upper)] * n,
        constraints=band,
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 5000},
    )


def _paper_problem(source, target):
    """Huang et al. (2006) eq. (5)-(6), written out: Gaussian kernel with σ the median
    pairwise distance of the pooled rows, κ_i = n_s/n_t Σ_j k(x_i, t_j)."""
    sigma = np.median(pdist(np.vstack([source, target])))
    K = np.exp(-cdist(source, source, "sqeuclidean") / (2 * sigma**2))
    kappa = (
        len(source)
        / len(target)
        * np.exp(-cdist(source, target, "sqeuclidean") / (2 * sigma**2)).sum(axis=1)
    )
    return sigma, K, kappa


@pytest.mark.parametrize(
    ("n", "m", "dim", "B", "eps"),
    [(40, 30, 5, 10.0, 0.2), (60, 50, 12, 1000.0, None), (30, 60, 8, 3.0, 0.05)],
)
def test_weights_match_the_reference_solver(n, m, dim, B, eps):
    rng = np.random.default_rng(n + dim)
    source = rng.normal(size=(n, dim))
    target = rng.normal(size=(m, dim)) * 0.7 + 0.6
    ours, facts = kmm_weights(source, target, B=B, eps=eps)
    sigma, K, kappa = _paper_problem(source, target)
    assert facts["sigma"] == pytest.approx(sigma, rel=1e-9)
    eps = (np.sqrt(n) - 1) / np.sqrt(n) if eps is None else eps
    reference = _slsqp(K, kappa, B, n * (1 - eps), n * (1 + eps))
    assert reference.success, reference.message
    objective = 0.5 * ours @ K @ ours - kappa @ ours
    assert objective <= reference.fun + 1e-6 * abs(reference.fun)
    np.testing.assert_allclose(ours, reference.x, atol=2e-3 * max(1.0, ours.max()))
    assert (ours >= 0).all() and (ours <= B).all()
    assert n * (1 - eps) - 1e-6 <= ours.sum() <= n * (1 + eps) + 1e-6
    assert facts["converged"] and facts["mmd2_after"] < facts["mmd2_before"]


def test_a_nearly_flat_problem_reaches_the_reference_objective():
    """60 points in 3-D: K is nearly singular, many weight vectors are almost as good, so the
    objective is what must match, not the weights."""
    rng = np.random.default_rng(7)
    source, target = rng.normal(size=(60, 3)), rng.normal(size=(50, 3)) * 0.7 + 0.6
    ours, _ = kmm_weights(source, target)
    _, K, kappa = _paper_problem(source, target)
    eps = (np.sqrt(60) - 1) / np.sqrt(60)
    reference = _slsqp(K, kappa, 1000.0, 60 * (1 - eps), 60 * (1 + eps))
    objective = 0.5 * ours @ K @ ours - kappa @ ours
    assert objective == pytest.approx(reference.fun, rel=1e-6)


def test_the_band_binds_when_the_target_wants_other_totals():
    """A target far from most source rows pulls the weights' sum down to the band's edge."""
    K = np.eye(20)
    kappa = np.r_[np.full(5, 3.0), np.zeros(15)]  # 5 rows like the target, 15 unlike it
    beta, facts = solve_box_band_qp(K, kappa, 1000.0, 20 * 0.9, 20 * 1.1)
    reference = _slsqp(K, kappa, 1000.0, 18.0, 22.0)
    np.testing.assert_allclose(beta, reference.x, atol=1e-4)
    assert beta.sum() == pytest.approx(18.0) and facts["converged"]


@pytest.mark.parametrize("seed", [0, 1])
def test_kmm_weights_correct_a_sample_selection_bias(seed):
    Xs, ys, Xt, yt = covariate_shift(seed)
    emb = domain_embeddings(Xs, ys, Xt)
    plain = target_accuracy(None, emb, yt)
    weighted = target_accuracy("kmm", emb, yt)
    assert weighted >= plain + 0.15, (plain, weighted)  # measured 0.57 -> 0.95, 0.51 -> 0.95
    info = make_strategy("kmm").prepare(emb, 0).info
    assert info["mmd2_after"] < info["mmd2_before"] and info["weight_min"] >= 0.0099


def test_too_many_rows_for_the_kernel_matrix_are_refused():
    rows = np.zeros((kmm_solver.MAX_ROWS + 1, 2))
    with pytest.raises(BadInputError, match=r"--source-select .* or use --strategy importance"):
        kmm_weights(rows, rows[:5])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"B": 1}, r"B \(--kmm-b\) must be a number above 1"),
        ({"eps": 1}, r"eps \(--kmm-eps\) must be a number at least 0 and below 1"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(params, message):
    with pytest.raises(BadInputError, match=message):
        make_strategy("kmm", **params)


def test_train_with_kmm_writes_its_metrics_and_report(tmp_path, capsys, monkeypatch):
    world = image_world(tmp_path)
    out = tmp_path / "run"
    argv = train_argv(world, out, "--strategy", "kmm", "--kmm-b", "5", "--kmm-eps", "0.1")
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    block = json.loads((out / "metrics.json").read_text())["kmm"]
    assert block["B"] == 5 and block["eps"] == 0.1 and block["converged"]
    assert block["mmd2_after"] <= block["mmd2_before"] and block["n_target"] == 12
    report = (out / "report.html").read_text()
    assert '<a href="#kmm">Kernel mean matching</a>' in report and "squared MMD" in report
