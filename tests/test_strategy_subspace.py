"""``subspace``: the alignment against the paper's formulation written with scikit-learn's PCA,
its effect on a real domain shift (digits seen by another 'camera'), and the strategy end to
end through the CLI."""

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
from sklearn.decomposition import PCA
from tiny_backbone import tiny_registered  # noqa: F401 (module fixture: registers it)

from transferkit.errors import BadInputError
from transferkit.strategies.subspace import subspace_align


def _paper_alignment(source, target, dim):
    """Fernando et al. (2013), Algorithm 1 with scikit-learn's PCA: X_s P_s M, M = P_sᵀ P_t,
    on each domain centred and scaled as a whole; then through the target's basis back into
    embedding coordinates, where the head meets raw target embeddings."""

    def standardised(x):
        centred = x - x.mean(0)
        return centred / np.sqrt(centred.var(0).mean())

    zs, zt = standardised(source), standardised(target)
    ps = PCA(dim, svd_solver="full").fit(zs).components_.T
    pt = PCA(dim, svd_solver="full").fit(zt).components_.T
    in_target_basis = zs @ ps @ (ps.T @ pt)
    return (
        target.mean(0) + np.sqrt((target - target.mean(0)).var(0).mean()) * in_target_basis @ pt.T
    )


@pytest.mark.parametrize(("n_source", "n_target", "dim", "d"), [(200, 150, 12, 5), (30, 25, 40, 8)])
def test_alignment_matches_the_papers_formulation(n_source, n_target, dim, d):
    rng = np.random.default_rng(dim)
    source = rng.normal(size=(n_source, dim)) @ rng.normal(size=(dim, dim)) + 2
    target = rng.normal(size=(n_target, dim)) @ rng.normal(size=(dim, dim)) * 3 - 1
    aligned, info = subspace_align(source, target, dim=d)
    np.testing.assert_allclose(aligned, _paper_alignment(source, target, d), atol=1e-8)
    assert info["dim"] == d and 0 < info["subspace_similarity"] <= 1
    assert 0 < info["target_variance_kept"] < 1


def test_a_domain_aligned_to_itself_with_every_direction_is_unchanged():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    aligned, info = subspace_align(source, source, dim=6)
    np.testing.assert_allclose(aligned, source, atol=1e-9)
    assert info["subspace_similarity"] == pytest.approx(1.0)


def test_the_default_dimension_explains_the_asked_share_of_the_target_variance():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(100, 10))
    target = rng.normal(size=(100, 10)) * np.array([10, 5, 1, 1, 1, 1, 1, 1, 1, 1])
    _, info = subspace_align(source, target, variance=0.8)
    assert info["target_variance_kept"] >= 0.8
    _, fewer = subspace_align(source, target, dim=info["dim"] - 1)
    assert fewer["target_variance_kept"] < 0.8


def test_more_dimensions_than_the_data_have_is_refused():
    rng = np.random.default_rng(2)
    with pytest.raises(BadInputError, match="--subspace-dim 9 is more than the 6 principal"):
        subspace_align(rng.normal(size=(6, 12)), rng.normal(size=(20, 12)), dim=9)


def test_subspace_alignment_recovers_digits_seen_by_another_camera():
    """Real scans, the target half at 0.4x contrast and brighter: the head trained on the raw
    source misreads most of the target; aligned, it reads it almost as well as the source."""
    Xs, ys, Xt, yt = digits_shift(seed=0, gain=0.4, offset=6)
    emb = domain_embeddings(Xs, ys, Xt)
    plain = target_accuracy(None, emb, yt)
    aligned = target_accuracy("subspace", emb, yt)
    assert aligned >= plain + 0.3, (plain, aligned)  # measured 0.37 -> 0.93
    assert aligned >= 0.85


def test_train_with_subspace_writes_its_metrics_and_report(tmp_path, capsys, monkeypatch):
    world = image_world(tmp_path)
    out = tmp_path / "run"
    argv = train_argv(world, out, "--strategy", "subspace", "--subspace-dim", "3")
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["subspace"]
    assert metrics["strategy"] == "subspace" and block["dim"] == 3 and block["n_target"] == 12
    assert 0 < block["target_variance_kept"] <= 1 and block["relative_shift"] > 0
    report = (out / "report.html").read_text()
    assert '<a href="#subspace">Subspace alignment</a>' in report
    assert "subspace dimensions" in report
    code, err = run_cli(
        train_argv(world, tmp_path / "bad", "--strategy", "subspace", "--subspace-variance", "2"),
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--subspace-variance: must be above 0 and at most 1, got 2" in err
