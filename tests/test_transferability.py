"""Transferability scores: LogME against the published algorithm, and what each score ranks."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.transferability import h_score, knn_loo_accuracy, leep, logme, nce


def _published_logme(f: np.ndarray, y: np.ndarray) -> float:
    """The reference algorithm as published (thuml/LogME): D x D SVD, 11 fixed-point steps."""
    f = f.astype(np.float64)
    fh = f
    f = f.T
    d, n = f.shape
    v, s, vh = np.linalg.svd(f @ fh, full_matrices=True)
    evidences = []
    for c in np.unique(y):
        y_ = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        tmp = vh @ (f @ y_)
        for _ in range(11):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            alpha_de = (m * m).sum()
            alpha = gamma / (alpha_de + 1e-5)
            beta_de = ((y_ - fh @ m) ** 2).sum()
            beta = (n - gamma) / (beta_de + 1e-5)
            new_lam = alpha / beta
            if np.abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        evidence = (
            d / 2.0 * np.log(alpha)
            + n / 2.0 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * s))
            - beta / 2.0 * (beta_de + 1e-5)
            - alpha / 2.0 * (alpha_de + 1e-5)
            - n / 2.0 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def _blobs(n_per_class: int, dim: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * separation
    y = np.repeat(np.arange(3), n_per_class)
    return centres[y] + rng.normal(size=(len(y), dim)), y


@pytest.mark.parametrize("n_per_class,dim", [(40, 16), (5, 64)])  # N > D and N < D
def test_logme_matches_the_published_algorithm(n_per_class, dim):
    f, y = _blobs(n_per_class, dim, separation=1.0)
    assert logme(f, y) == pytest.approx(_published_logme(f, y), rel=2e-2, abs=2e-2)


def test_scores_rank_separable_features_above_noise():
    good, y = _blobs(20, 32, separation=3.0)
    noise = np.random.default_rng(1).normal(size=good.shape)
    assert logme(good, y) > logme(noise, y)
    assert h_score(good, y) > h_score(noise, y)
    assert knn_loo_accuracy(good, y) > 0.9 > knn_loo_accuracy(noise, y)


def test_knn_leave_one_out_never_counts_the_example_itself():
    f = np.array([[1.0, 0], [1.0, 0.01], [0, 1.0], [0.01, 1.0]])
    assert knn_loo_accuracy(f, np.array([0, 0, 1, 1]), k=1) == 1.0
    assert knn_loo_accuracy(f, np.array([0, 1, 0, 1]), k=1) == 0.0


def test_logme_needs_two_classes():
    with pytest.raises(ValueError, match="2 classes"):
        logme(np.ones((4, 3)), np.zeros(4))


def test_leep_and_nce_are_zero_for_a_source_that_predicts_the_target():
    y = np.repeat(np.arange(3), 10)
    theta = np.full((30, 5), 1e-9)
    theta[np.arange(30), y] = 1.0  # source class z == target class y
    assert leep(theta, y) == pytest.approx(0.0, abs=1e-6)
    assert nce(theta, y) == pytest.approx(0.0, abs=1e-9)


def test_leep_and_nce_of_an_uninformative_source_are_minus_the_label_entropy():
    y = np.repeat(np.arange(4), 25)
    theta = np.full((100, 7), 1 / 7)  # every example predicted the same way
    assert leep(theta, y) == pytest.approx(np.log(1 / 4))
    assert nce(theta, y) == pytest.approx(np.log(1 / 4))


def test_leep_prefers_the_source_whose_predictions_track_the_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=300)
    informative = rng.dirichlet(np.ones(10), size=300)
    informative[np.arange(300), y * 3] += 2.0  # mass on a source class tied to the label
    informative /= informative.sum(axis=1, keepdims=True)
    noise = rng.dirichlet(np.ones(10), size=300)
    assert leep(informative, y) > leep(noise, y)
    assert nce(informative, y) > nce(noise, y)
