"""A linear classifier that tells source embeddings from target ones, and what it measures.

Two questions of domain adaptation are answered by one such classifier: how far apart the
domains are (the proxy A-distance of Ben-David et al. 2007 / Ganin et al. 2016:
``2 (1 - 2 ε)`` with ε its cross-validated error, 0 when the domains cannot be told apart,
2 when they always can), and how much more target-like one source example is than another
(the density ratio ``p_t(x) / p_s(x) = P(target | x) / P(source | x)`` when both domains
weigh the same in its fit — what importance-weighted validation needs).

Embeddings are power-normalised as the linear heads see them, standardised, and reduced to
their first ``MAX_DIMS`` principal directions (of both domains together) before a logistic
regression: a 1280-d embedding on a few hundred rows separates any two samples perfectly,
which says nothing about the domains, and the reduction keeps every fit to milliseconds.
"""

from __future__ import annotations

import warnings

import numpy as np

from transferkit.heads.linear import power_normalize

MAX_DIMS = 64
MAX_ROWS = 1000  # per domain, for the A-distance (a subsample of larger domains)
FOLDS = 5
CS = (0.01, 0.1, 1.0, 10.0)
LIKENESS_FOLDS = 3  # for the density ratio, fitted once per candidate and half


def _features(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both domains in the classifier's space (fitted on both together)."""
    from sklearn.utils.extmath import randomized_svd
    from threadpoolctl import threadpool_limits

    both = power_normalize(np.vstack([source, target]).astype(np.float64))
    both = both - both.mean(axis=0)
    # one BLAS thread: on a busy 2-core machine a threaded full SVD of 600 x 1280 embeddings
    # was measured at 2.7 s a call (most of a validation); the randomized top directions
    # cost milliseconds
    with threadpool_limits(1):
        if min(both.shape) > 2 * MAX_DIMS:
            _, _, vt = randomized_svd(both, MAX_DIMS, random_state=0)
        else:
            _, _, vt = np.linalg.svd(both, full_matrices=False)
    z = both @ vt[:MAX_DIMS].T
    # one scale for all directions (not whitened): scaled each to unit variance, the weakest
    # directions (noise, on a few dozen rows) weighed as much as the one the domains differ
    # along, and 48 movie reviews vs 10 product reviews (MiniLM) came out indistinguishable
    z /= max(float(z.std()), 1e-12)
    return z[: len(source)], z[len(source) :]


def _balanced_weights(domain: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
    """Row weights under which both domains weigh the same (source rows by ``weight``)."""
    w = np.ones(len(domain)) if weight is None else np.asarray(weight, dtype=np.float64)
    out = np.empty(len(domain))
    for d in (0, 1):
        part = domain == d
        out[part] = w[part] * (len(domain) / 2) / max(w[part].sum(), 1e-12)
    return out


def _logistic(C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def proxy_a_distance(
    source: np.ndarray,
    target: np.ndarray,
    *,
    source_weight: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The proxy A-distance between two sets of embeddings, with the error it comes from.

    ``source_weight``: one weight per source row (an instance-based method's weights): the
    distance of the source as re-weighted. Each domain counts half whatever its size, and
    more than ``MAX_ROWS`` rows of one are subsampled; ε is the smallest 5-fold error over a
    small grid of regularisation strengths, and the distance is clipped to [0, 2] (ε above
    0.5 is chance, not closeness).
    """
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(seed)
    keep_s = _subsample(len(source), rng)
    keep_t = _subsample(len(target), rng)
    zs, zt = _features(source[keep_s], target[keep_t])
    X = np.vstack([zs, zt])
    domain = np.r_[np.zeros(len(zs), dtype=int), np.ones(len(zt), dtype=int)]
    sw = None if source_weight is None else np.asarray(source_weight, np.float64)[keep_s]
    w = _balanced_weights(domain, None if sw is None else np.r_[sw, np.ones(len(zt))])
    folds = min(FOLDS, len(zs), len(zt))
    if folds < 2:
        raise ValueError("the A-distance needs at least 2 rows of each domain")
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, domain))
    errors = []
    for C in CS:
        wrong = 0.0
        for train, test in splits:
            model = _logistic(C).fit(X[train], domain[train], sample_weight=w[train])
            wrong += float(w[test] @ (model.predict(X[test]) != domain[test]))
        errors.append(wrong / w.sum())
    error = min(errors)
    return {
        "a_distance": float(np.clip(2 * (1 - 2 * error), 0.0, 2.0)),
        "domain_error": error,
        "n_source": len(zs),
        "n_target": len(zt),
    }


def _subsample(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, MAX_ROWS, replace=False)) if n > MAX_ROWS else np.arange(n)


def target_likeness(
    fit_source: np.ndarray, target: np.ndarray, apply_to: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """``P(target | x)`` of the rows ``apply_to`` (default: ``fit_source``, out of fold), by a
    domain classifier fitted on ``fit_source`` against ``target`` (both domains weighing the
    same, C by cross-validated log-loss), and that classifier's balanced accuracy on its own
    training rows' held-out folds — how well it tells the domains apart."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    extra = 0 if apply_to is None else len(apply_to)
    stacked = fit_source if apply_to is None else np.vstack([fit_source, apply_to])
    zs, zt = _features(stacked, target)
    z_fit, z_apply = zs[: len(fit_source)], zs[len(fit_source) :]
    X = np.vstack([z_fit, zt])
    domain = np.r_[np.zeros(len(z_fit), dtype=int), np.ones(len(zt), dtype=int)]
    w = _balanced_weights(domain, None)
    folds = StratifiedKFold(min(LIKENESS_FOLDS, len(z_fit), len(zt)), shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn's renamed attributes
        model = LogisticRegressionCV(
            Cs=list(CS), cv=folds, scoring="neg_log_loss", max_iter=2000
        ).fit(X, domain, sample_weight=w)
    C = float(np.ravel(model.C_)[0])
    held_out = cross_val_predict(
        _logistic(C), X, domain, cv=folds, method="predict_proba", params={"sample_weight": w}
    )[:, 1]
    accuracy = float(w @ ((held_out > 0.5) == domain) / w.sum())
    if extra:
        return model.predict_proba(z_apply)[:, 1], accuracy
    return held_out[: len(z_fit)], accuracy
