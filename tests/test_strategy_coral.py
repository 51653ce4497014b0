"""``coral``: the alignment against the paper's Algorithm 1 written directly in numpy/scipy, and
the strategy end to end through the CLI (``--target``, ``--coral-eps``) on the tiny backbone."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from adapt_helpers import image_world, run_cli
from scipy.linalg import fractional_matrix_power
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
)

from transferkit.strategies.coral import coral_align, coral_transform


def _paper_coral(source: np.ndarray, target: np.ndarray, eps: float) -> np.ndarray:
    """Sun, Feng & Saenko (AAAI 2016), Algorithm 1, line by line (eps = 1 in the paper):
    C_S = cov(D_S) + eye; C_T = cov(D_T) + eye; D_S = D_S * C_S^(-1/2); D_S* = D_S * C_T^(1/2)."""
    c_s = np.cov(source, rowvar=False) + eps * np.eye(source.shape[1])
    c_t = np.cov(target, rowvar=False) + eps * np.eye(target.shape[1])
    whitened = source @ fractional_matrix_power(c_s, -0.5)
    return np.real(whitened @ fractional_matrix_power(c_t, 0.5))


def _paper_coral_centred(source: np.ndarray, target: np.ndarray, eps: float) -> np.ndarray:
    """Algorithm 1 on features of zero mean (as the paper normalises them), then placed at the
    target's mean, where target inputs are embedded at predict time."""
    centred = _paper_coral(source - source.mean(0), target - target.mean(0), eps)
    return centred + target.mean(0)


def _domains(seed: int, n_source: int, n_target: int, dim: int):
    rng = np.random.default_rng(seed)
    mix_s, mix_t = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim)) * 2
    source = rng.normal(size=(n_source, dim)) @ mix_s + 3.0
    target = rng.normal(size=(n_target, dim)) @ mix_t - 1.0
    return source, target


@pytest.mark.parametrize(
    ("n_source", "n_target", "dim", "eps"),
    [(200, 150, 12, 1.0), (30, 20, 40, 1.0), (500, 400, 8, 0.05)],  # incl. fewer rows than dims
)
def test_coral_transform_matches_the_papers_algorithm(n_source, n_target, dim, eps):
    source, target = _domains(dim, n_source, n_target, dim)
    ours = source @ coral_transform(source, target, eps)
    np.testing.assert_allclose(ours, _paper_coral(source, target, eps), rtol=1e-7, atol=1e-7)
    aligned = coral_align(source, target, eps)
    paper = _paper_coral_centred(source, target, eps)
    np.testing.assert_allclose(aligned, paper, rtol=1e-7, atol=1e-7)


def test_aligned_source_takes_the_target_mean_and_covariance():
    source, target = _domains(1, 4000, 4000, 6)
    aligned = coral_align(source, target, eps=1e-9)
    target_cov = np.cov(target, rowvar=False)
    np.testing.assert_allclose(np.cov(aligned, rowvar=False), target_cov, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(aligned.mean(0), target.mean(0), atol=1e-9)
    # before: far apart
    assert np.abs(np.cov(source, rowvar=False) - target_cov).max() > 1
    assert np.abs(source.mean(0) - target.mean(0)).max() > 1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return image_world(tmp_path_factory.mktemp("coral"))


def _train(world, out, *extra):
    return [
        "train", world["data"], "--test", world["test"], "--out", out, "--backbone", NAME,
        "--weights", world["weights"], "--no-progress", "--runtime", "torch", *extra,
    ]  # fmt: skip


def test_train_with_coral_and_a_target_writes_its_metrics_and_report(world, capsys, monkeypatch):
    out = world["root"] / "run"
    argv = _train(world, out, "--strategy", "coral", "--target", world["target"])
    code, err = run_cli([*argv, "--coral-eps", "0.5", "--augment", "none"], capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "coral"
    assert metrics["coral"]["n_target"] == 12 and metrics["coral"]["eps"] == 0.5
    assert metrics["coral"]["relative_shift"] > 0
    report = (out / "report.html").read_text()
    assert '<a href="#coral">CORAL alignment</a>' in report and "target inputs" in report
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["strategy"]["config"] == {"eps": 0.5, "augment": "none", "source_select": None}


def test_coral_without_a_target_and_a_target_without_coral_exit_2(world, capsys, monkeypatch):
    out = world["root"] / "refused"
    code, err = run_cli(_train(world, out, "--strategy", "coral"), capsys, monkeypatch)
    assert code == 2 and "--strategy coral adapts to a target domain" in err
    assert "--target PATH" in err and not out.exists()
    argv = _train(world, out, "--strategy", "features", "--target", world["target"])
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and "the features strategy does not use unlabelled target-domain" in err
    # every strategy that takes a target is named (others register theirs too)
    assert re.search(r"--strategy [a-z ]*\bcoral\b[a-z ]* does", err) and not out.exists()
    code, err = run_cli(_train(world, out, "--coral-eps", "1", "--strategy", "finetune"), capsys,
                      monkeypatch)  # fmt: skip
    assert code == 2 and "--coral-eps do not apply to the finetune strategy" in err
    assert "or use --strategy coral" in err
    code, err = run_cli(_train(world, out, "--strategy", "coral", "--coral-eps", "0"), capsys,
                      monkeypatch)  # fmt: skip
    assert code == 2 and "argument --coral-eps: must be greater than 0, got 0" in err


def test_coral_recovers_digits_seen_by_another_camera():
    """Real scans, the target half at 0.4x contrast and brighter (through prepare, as the
    adapt chooser calls it): aligned, the head reads the target almost as well as the source."""
    from adapt_helpers import digits_shift, domain_embeddings, target_accuracy

    Xs, ys, Xt, yt = digits_shift(seed=0, gain=0.4, offset=6)
    emb = domain_embeddings(Xs, ys, Xt)
    plain = target_accuracy(None, emb, yt)
    aligned = target_accuracy("coral", emb, yt)
    assert aligned >= plain + 0.3, (plain, aligned)  # measured 0.37 -> 0.94
