"""Transferability scores: how well a frozen backbone's embeddings suit a labelled dataset,
computed from the embeddings alone, in seconds, before any training.

- **LogME** (You et al., ICML 2021): the log of the maximum Bayesian evidence of a linear model
  from the embeddings to each class's one-hot target, averaged over classes. Higher is better.
  Evidence is maximised by the paper's fixed-point iteration on (alpha, beta), all in the
  eigenbasis of ``F^T F`` (one symmetric eigendecomposition, no per-sample loop).
- **H-score** (Bao et al., ICIP 2019): ``tr(cov(f)^-1 cov(E[f|y]))``, the between-class share of
  the feature covariance; a shrinkage-regularised covariance keeps it stable when there are
  fewer examples than dimensions.
- **k-NN leave-one-out accuracy**: each example classified by the majority of its k nearest
  others (cosine), a direct, assumption-free probe.
- **LEEP** (Nguyen et al., ICML 2020) and **NCE** (Tran et al., ICCV 2019), for backbones that
  keep their source classifier (ImageNet's 1000 classes): how well the source model's
  predictions, through the empirical conditional P(target | source), explain the target labels.
  LEEP uses the soft predictions, NCE the hard ones (its value is -H(Y | Z)). Both are
  log-likelihoods per example: higher is better, 0 is perfect.
"""

from __future__ import annotations

import numpy as np


def _onehot(y: np.ndarray) -> tuple[np.ndarray, int]:
    classes, index = np.unique(np.asarray(y), return_inverse=True)
    return np.eye(len(classes))[index], len(classes)


def logme(features: np.ndarray, y: np.ndarray, max_iter: int = 11) -> float:
    """LogME score of ``features`` (N, D) for class labels ``y`` (N,)."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    targets, k = _onehot(y)
    if n < 2 or k < 2:
        raise ValueError("LogME needs at least 2 examples and 2 classes")
    # eigendecomposition of the D x D (or N x N) Gram matrix: s = squared singular values
    if n >= d:
        s, v = np.linalg.eigh(f.T @ f)
        proj = f @ v  # (N, D): the data in the eigenbasis
    else:
        s, u = np.linalg.eigh(f @ f.T)
        proj = u * np.sqrt(np.clip(s, 0, None))  # (N, N): f expressed in its own row space
    s = np.clip(s, 0, None)
    evidences = []
    for c in range(k):
        t = targets[:, c]
        tmp = proj.T @ t  # (r,)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            gamma = float((beta * s / (alpha + beta * s)).sum())
            m = beta * tmp / (alpha + beta * s)  # posterior mean in the eigenbasis
            alpha_de = float(m @ m)
            residual = float(((t - proj @ m) ** 2).sum())
            new_alpha = gamma / (alpha_de + 1e-5)
            new_beta = (n - gamma) / (residual + 1e-5)
            converged = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta) < 0.01
            alpha, beta = new_alpha, new_beta
            if converged:
                break
        m = beta * tmp / (alpha + beta * s)
        alpha_de = float(m @ m)
        residual = float(((t - proj @ m) ** 2).sum())
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.sum(np.log(alpha + beta * s))
            - (d - len(s)) / 2 * np.log(alpha)  # directions with s = 0 beyond the rank (N < D)
            - beta / 2 * residual
            - alpha / 2 * alpha_de
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def h_score(features: np.ndarray, y: np.ndarray) -> float:
    """H-score with a Ledoit-Wolf shrunk feature covariance (stable for N < D)."""
    from sklearn.covariance import LedoitWolf

    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0)
    cov = LedoitWolf().fit(f).covariance_
    y = np.asarray(y)
    class_means = np.zeros_like(f)
    for c in np.unique(y):
        class_means[y == c] = f[y == c].mean(axis=0)
    between = class_means.T @ class_means / len(f)
    return float(np.trace(np.linalg.solve(cov, between)))


def knn_loo_accuracy(
    features: np.ndarray, y: np.ndarray, k: int = 5, max_examples: int = 4000
) -> float:
    """Leave-one-out accuracy of a cosine k-NN vote (ties broken by the nearest).

    The similarity matrix is N x N, so above ``max_examples`` a fixed random subset (which keeps
    the class proportions in expectation) is probed: the accuracy estimate stays within about a
    point, and memory and time stay bounded on a large dataset.
    """
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(y)
    if len(f) > max_examples:
        keep = np.sort(np.random.default_rng(0).choice(len(f), max_examples, replace=False))
        f, y = f[keep], y[keep]
    f = f / np.clip(np.linalg.norm(f, axis=1, keepdims=True), 1e-12, None)
    sim = f @ f.T
    np.fill_diagonal(sim, -np.inf)
    k = max(1, min(k, len(f) - 1))
    nearest = np.argsort(-sim, axis=1)[:, :k]
    labels, index = np.unique(y, return_inverse=True)
    votes = np.zeros((len(f), len(labels)))
    weights = 1.0 + 1e-6 * np.arange(k, 0, -1)  # equal votes; the nearest breaks ties
    rows = np.repeat(np.arange(len(f)), k)
    np.add.at(votes, (rows, index[nearest].ravel()), np.tile(weights, len(f)))
    return float((votes.argmax(axis=1) == index).mean())


def _joint(source_proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(empirical joint P(y, z) (K, Z), target index per example)."""
    _, index = np.unique(np.asarray(y), return_inverse=True)
    onehot = np.eye(index.max() + 1)[index]
    return onehot.T @ source_proba / len(index), index


def leep(source_proba: np.ndarray, y: np.ndarray) -> float:
    """LEEP of source-class probabilities (N, Z) for target labels ``y`` (N,)."""
    theta = np.asarray(source_proba, dtype=np.float64)
    joint, index = _joint(theta, y)
    conditional = joint / np.clip(joint.sum(axis=0, keepdims=True), 1e-300, None)  # P(y | z)
    expected = theta @ conditional.T  # (N, K): the "expected empirical predictor"
    return float(np.mean(np.log(np.clip(expected[np.arange(len(index)), index], 1e-300, None))))


def nce(source_proba: np.ndarray, y: np.ndarray) -> float:
    """NCE = -H(Y | Z) with Z the source model's hard predictions (argmax of (N, Z))."""
    theta = np.asarray(source_proba)
    hard = np.eye(theta.shape[1])[theta.argmax(axis=1)]
    joint, _ = _joint(hard, y)
    p_z = joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / p_z), 0.0)
    return float(terms.sum())


# scores computed from the embeddings alone (every backbone) ...
SCORES = {"logme": logme, "h_score": h_score, "knn_loo": knn_loo_accuracy}
# ... and from the source classifier's probabilities (backbones that keep one)
SOURCE_SCORES = {"leep": leep, "nce": nce}


def cv_logistic_accuracy(features: np.ndarray, y: np.ndarray, seed: int = 0) -> float | None:
    """Stratified k-fold accuracy (k = min(5, the smallest class)) of a logistic regression
    at C=1 on the embeddings: what a head on them would score on unseen examples. None when a
    class has fewer than 2 examples (no fold could test it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    y = np.asarray(y)
    smallest = np.unique(y, return_counts=True)[1].min() if len(y) else 0
    if smallest < 2:
        return None
    folds = StratifiedKFold(n_splits=min(5, int(smallest)), shuffle=True, random_state=seed)
    # a few hundred rows gain nothing from BLAS threads (see heads/linear.py)
    with threadpool_limits(1):
        scores = cross_val_score(LogisticRegression(C=1.0, max_iter=2000), features, y, cv=folds)
    return float(np.mean(scores))
