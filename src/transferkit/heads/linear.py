"""Linear heads: logistic regression (the default) and a linear SVM.

Embeddings are power-normalised (signed square root) and L2-normalised, a classic recipe for
pooled CNN features that tames a few dominant activations; the regularisation strength C is
chosen by stratified cross-validation, because with 5-50 examples per class the right C varies
by orders of magnitude between datasets and a fixed default is a coin toss.

Sentence embeddings get the same power-normalisation. Plain L2 (the cosine geometry the
encoders were trained in) was measured against it on all-MiniLM-L6-v2's frozen embeddings, on
draws the text suite does not report (benchmarks/bench_text_auto.py's five datasets x K = 8 /
16 / 64, seeds 10-12, this head with only the normalisation swapped): +0.25 points on average,
higher on 9 of 15 dataset x K and lower on 5 (tweets K=64 -1.3), within the draws' noise,
so it was not adopted. Standardising measured +0.06.

With fewer examples than dimensions (the usual case here: 100 images, 1280-d embeddings) the
L2-regularised solution lies in the span of the training examples, so we fit in that span's
coordinates (an exact change of basis, not an approximation) — over 20x faster — and map the
weights back to embedding space, where they are stored.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.heads.base import Head, l2_normalize


def power_normalize(x: np.ndarray) -> np.ndarray:
    """Signed square root, then unit length."""
    return l2_normalize(np.sign(x) * np.sqrt(np.abs(x)))


def cv_splits(y: np.ndarray, groups: np.ndarray | None, max_folds: int, seed: int):
    """Stratified folds (as many as the rarest class allows); augmented copies share a group so
    an image and its flipped twin never sit on both sides of a split."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    per_class = (
        np.bincount(y)
        if groups is None
        else np.array([len(np.unique(groups[y == c])) for c in np.unique(y)])
    )
    folds = int(min(max_folds, per_class[per_class > 0].min()))
    if folds < 2:
        return None
    if groups is None:
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y))
    return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups))


def _moments(X: np.ndarray, sample_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations, each row counted by its weight (2 = twice)."""
    if sample_weight is None:
        return X.mean(axis=0), X.std(axis=0)
    mean = np.average(X, axis=0, weights=sample_weight)
    return mean, np.sqrt(np.average((X - mean) ** 2, axis=0, weights=sample_weight))


def _validate_grid(Cs: tuple[float, ...], cv: int) -> None:
    if not Cs or any(c <= 0 for c in Cs):
        raise BadInputError(f"Cs must be positive regularisation strengths; got {Cs}")
    if cv < 2:
        raise BadInputError(f"cv must be at least 2 folds; got {cv}")


class _LinearHead(Head):
    state_arrays = ("mean", "coef", "intercept")
    optional_state_arrays = ("center", "scale")

    def load_libraries(self) -> None:
        import sklearn.linear_model  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        import sklearn.svm  # noqa: F401
        import threadpoolctl  # noqa: F401

    def _normalize(self, X):
        """Standardised (``standardize``: classical features whose dimensions differ in scale
        by orders of magnitude, e.g. MFCC energy next to deltas) or power-normalised."""
        if getattr(self, "center_", None) is not None:
            return (X - self.center_) / self.scale_
        return power_normalize(X)

    def _fit(self, X, y, *, seed, groups=None, sample_weight=None):
        self.center_ = self.scale_ = None
        if self.config.standardize:
            center, spread = _moments(X, sample_weight)
            self.center_ = center.astype(np.float32)
            self.scale_ = np.maximum(spread, 1e-6).astype(np.float32)
        Z = self._normalize(X)
        self.mean_ = np.average(Z, axis=0, weights=sample_weight).astype(np.float32)
        Z = Z - self.mean_
        # one C given: nothing to choose between, so no folds
        folds = cv_splits(y, groups, self.config.cv, seed) if len(self.config.Cs) > 1 else None
        # after sklearn (cv_splits): without the train extra, its import names the extra to add
        from threadpoolctl import threadpool_limits

        basis = None
        small = len(Z) < Z.shape[1]
        # one BLAS thread: the solvers' matrix-vector products gain little from threads, and on
        # a busy 2-core machine their spinning turned a 0.3 s fit into 13 s, the SVD of 60
        # examples from 0.012 s into 0.13-0.78 s, and a logistic fit on 5,000 x 1,280
        # embeddings from 0.2-0.3 s (one thread) into 1.5-2.7 s (load 3; 24.7 s vs 1.6 s at 5)
        with threadpool_limits(1):
            if small:
                _, _, vt = np.linalg.svd(Z, full_matrices=False)
                basis = vt  # (n, d): orthonormal rows spanning the training examples
                Z = Z @ basis.T
            # lbfgs on float32 stops where rounding hides the fall of the loss, ~1e-4 short of
            # the optimum in probability (liblinear converts to float64 itself)
            Z = Z.astype(np.float64)
            coef, intercept, C = self._fit_linear(Z, y, folds, sample_weight)
        if basis is not None:
            coef = coef @ basis
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)
        self.info_ = {"C": float(C), "cv_folds": len(folds) if folds else 0}

    @classmethod
    def _stored_classes(cls, arrays):
        rows = len(arrays["coef"])
        return 2 if rows == 1 else rows  # binary: one row (see _scores)

    def _scores(self, X):
        scores = (self._normalize(X) - self.mean_) @ self.coef_.T + self.intercept_
        if scores.shape[1] == 1:  # binary models store one row: class 0 is the zero logit
            scores = np.hstack([np.zeros_like(scores), scores])
        return scores


@dataclass
class LogisticConfig:
    Cs: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 2, 11))
    cv: int = 5
    max_iter: int = 3000
    standardize: bool = False

    def __post_init__(self):
        self.Cs = tuple(float(c) for c in self.Cs)
        _validate_grid(self.Cs, self.cv)


class LogisticHead(_LinearHead):
    """Multinomial logistic regression; C by cross-validated log-loss (smooth on tiny data)."""

    name = "logistic"
    Config = LogisticConfig

    def _fit_linear(self, Z, y, folds, sample_weight):
        from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

        if folds is None or len(self.config.Cs) == 1:
            # one example in some class: no CV possible, take the middle of the grid (or the
            # one C given: nothing to choose between)
            C = self.config.Cs[len(self.config.Cs) // 2]
            model = LogisticRegression(C=C, max_iter=self.config.max_iter)
            model.fit(Z, y, sample_weight=sample_weight)
            return model.coef_, model.intercept_, C
        with warnings.catch_warnings():
            # sklearn 1.8+ announces renamed attributes; we read only coef_, intercept_, C_
            warnings.simplefilter("ignore", FutureWarning)
            # with weights, each fold trains on its weighted rows and is scored by their
            # weighted log-loss
            model = LogisticRegressionCV(
                Cs=list(self.config.Cs),
                cv=folds,
                scoring="neg_log_loss",
                max_iter=self.config.max_iter,
            ).fit(Z, y, sample_weight=sample_weight)
        return model.coef_, model.intercept_, float(np.ravel(model.C_)[0])


@dataclass
class SVMConfig:
    Cs: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 2, 11))
    cv: int = 5
    standardize: bool = False

    def __post_init__(self):
        self.Cs = tuple(float(c) for c in self.Cs)
        _validate_grid(self.Cs, self.cv)


class LinearSVMHead(_LinearHead):
    """Linear SVM (one-vs-rest, squared hinge); C by cross-validated accuracy."""

    name = "svm"
    Config = SVMConfig

    def _fit_linear(self, Z, y, folds, sample_weight):
        from sklearn.svm import LinearSVC

        grid = list(self.config.Cs)
        C = grid[len(grid) // 2]
        if folds is not None and len(grid) > 1:
            C = _svm_grid_search(Z, y, grid, folds, sample_weight)
        model = LinearSVC(C=C, max_iter=20000).fit(Z, y, sample_weight=sample_weight)
        return model.coef_, model.intercept_, C


def _svm_grid_search(Z, y, grid, folds, sample_weight) -> float:
    """The C of the best cross-validated accuracy (weighted: each fold trains on its weighted
    rows and is scored by their weighted accuracy)."""
    import sklearn
    from sklearn.metrics import accuracy_score, make_scorer
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import LinearSVC

    if sample_weight is None:
        search = GridSearchCV(
            LinearSVC(max_iter=20000), {"C": grid}, cv=folds, scoring="accuracy", n_jobs=1
        )
        return float(search.fit(Z, y).best_params_["C"])
    # sklearn hands weights to a search's fit and scorer only through metadata routing
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            LinearSVC(max_iter=20000).set_fit_request(sample_weight=True),
            {"C": grid},
            cv=folds,
            scoring=make_scorer(accuracy_score).set_score_request(sample_weight=True),
            n_jobs=1,
        )
        return float(search.fit(Z, y, sample_weight=sample_weight).best_params_["C"])
