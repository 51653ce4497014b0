"""The head contract: a new classifier on top of embeddings, with sklearn's estimator manners.

Keyword-only ``__init__`` that only stores; validation in ``fit``; ``fit`` returns ``self``;
learned state ends in ``_``. Unlike sklearn, the learned state is a handful of named arrays
(``get_state``/``from_state``) so a bundle stores it in safetensors — never in a pickle.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar

import numpy as np

from transferkit.errors import BadInputError, NotFittedError


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Head:
    """Base class: subclasses set ``name``, a ``Config`` dataclass, and implement the hooks."""

    name: ClassVar[str]
    Config: ClassVar[type]
    # arrays that make up the learned state; subclasses list theirs
    state_arrays: ClassVar[tuple[str, ...]] = ()
    # arrays only some fitted heads have (saved when present, loaded when stored)
    optional_state_arrays: ClassVar[tuple[str, ...]] = ()
    # whether ``fit`` takes ``sample_weight`` (False: it refuses, naming the heads that do)
    accepts_sample_weight: ClassVar[bool] = True

    def __init__(self, **params: Any):
        self.config = self.Config(**params)

    # -- sklearn-like surface -------------------------------------------------------------
    def load_libraries(self) -> None:
        """Import what ``fit`` needs now (a run times library loading apart from training,
        as it times building the encoder apart)."""

    def get_params(self) -> dict[str, Any]:
        return asdict(self.config)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        *,
        seed: int = 0,
        groups: np.ndarray | None = None,
    ) -> Head:
        """Fit on embeddings ``X`` and class indices ``y``.

        ``sample_weight``: how much each row counts (as sklearn's: a weight of 2 counts as the
        row twice); heads whose ``accepts_sample_weight`` is False refuse it.
        ``groups`` marks rows that are views of the same example (e.g. an image and its mirror
        image), so cross-validation never puts one view in training and another in validation.
        """
        X, y = self._validate_fit(X, y)
        if groups is not None and len(groups) != len(y):
            raise BadInputError(f"got {len(y)} labels but {len(groups)} groups; they must match")
        if sample_weight is not None:
            sample_weight = self._validate_sample_weight(sample_weight, y)
        self.n_classes_ = int(y.max()) + 1
        groups = None if groups is None else np.asarray(groups)
        self._fit(X, y, seed=seed, groups=groups, sample_weight=sample_weight)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Per-class scores (N, C); higher means more likely."""
        self._check_is_fitted()
        X = self._validate_X(X)
        expected = self._input_dim()
        if expected is not None and X.shape[1] != expected:
            raise BadInputError(
                f"this {self.name} head was trained on {expected}-d embeddings but got "
                f"{X.shape[1]}-d ones: use the backbone the model was trained with"
            )
        return self._scores(X)

    def _input_dim(self) -> int | None:
        """Embedding width the fitted state expects (from its first array), if it has one."""
        for name in self.state_arrays:
            arr = getattr(self, name + "_", None)
            if arr is not None and arr.ndim == 2:
                return int(arr.shape[1])
        return None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Per-class confidences in [0, 1] summing to 1 (calibrated only for ``logistic``)."""
        return softmax(self.decision_function(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.decision_function(X).argmax(axis=1)

    # -- persistence (safetensors-friendly) ------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (JSON-able config, named float32/int64 arrays) describing the fitted head."""
        self._check_is_fitted()
        arrays = {k: np.ascontiguousarray(getattr(self, k + "_")) for k in self.state_arrays}
        for k in self.optional_state_arrays:
            if getattr(self, k + "_", None) is not None:
                arrays[k] = np.ascontiguousarray(getattr(self, k + "_"))
        config = {"name": self.name, "params": self.get_params(), "n_classes": self.n_classes_}
        # what fitting chose (e.g. the cross-validated C): recorded for people, not needed to load
        config["fitted"] = getattr(self, "info_", {})
        return config, arrays

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Head:
        known = {f.name for f in fields(cls.Config)}
        head = cls(**{k: v for k, v in config.get("params", {}).items() if k in known})
        missing = [k for k in cls.state_arrays if k not in arrays]
        if missing:
            raise BadInputError(
                f"the stored '{cls.name}' head lacks arrays {missing}: the bundle is incomplete; "
                "re-train or re-export the model"
            )
        n_classes, stored = int(config["n_classes"]), cls._stored_classes(arrays)
        if stored != n_classes:
            # else predictions have the wrong number of columns for the labels (or an index
            # past the last label): refused at load, not a shape error at predict
            raise BadInputError(
                f"the stored '{cls.name}' head scores {stored} classes but its n_classes is "
                f"{n_classes}: its arrays and its config disagree; re-train or re-export the model"
            )
        for k in cls.state_arrays:
            setattr(head, k + "_", arrays[k])
        for k in cls.optional_state_arrays:
            setattr(head, k + "_", arrays.get(k))
        head.n_classes_ = n_classes
        return head

    @classmethod
    def _stored_classes(cls, arrays: dict[str, np.ndarray]) -> int:
        """How many classes the stored arrays score."""
        raise NotImplementedError

    # -- hooks ------------------------------------------------------------------------------
    def _fit(
        self, X: np.ndarray, y: np.ndarray, *, seed: int, groups=None, sample_weight=None
    ) -> None:
        raise NotImplementedError

    def _scores(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- validation ------------------------------------------------------------------------
    def _check_is_fitted(self) -> None:
        if not hasattr(self, "n_classes_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call 'fit' with embeddings and "
                "labels before using it."
            )

    @staticmethod
    def _validate_X(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise BadInputError(
                f"embeddings must be a 2-D array (samples, features); got {X.shape}"
            )
        if not np.isfinite(X).all():
            raise BadInputError("embeddings contain NaN or infinity; the backbone output is broken")
        return X

    def _validate_fit(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = self._validate_X(X)
        y = np.asarray(y)
        if y.ndim != 1:
            raise BadInputError(f"labels must be a 1-D array of class indices; got {y.shape}")
        if len(y) != len(X):
            raise BadInputError(f"got {len(X)} embeddings but {len(y)} labels; they must match")
        if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
            raise BadInputError("labels must be non-negative class indices")
        present = np.unique(y)
        if len(present) < 2:
            raise BadInputError("a head needs examples of at least two classes to learn from")
        # scores have one column per index 0..max: a gap would shift the linear heads' columns
        # (class 3 predicted as 2) and give the centroid head a NaN centroid
        empty = np.setdiff1d(np.arange(present[-1] + 1), present)
        if len(empty):
            raise BadInputError(
                f"labels must be class indices 0..{present[-1]} with examples of each; class "
                f"index(es) {empty.tolist()} have no examples. Drop the empty classes and "
                "renumber the labels (np.unique(y, return_inverse=True))"
            )
        return X, y.astype(np.int64)

    def _validate_sample_weight(self, sample_weight, y: np.ndarray) -> np.ndarray:
        if not self.accepts_sample_weight:
            raise BadInputError(
                f"the '{self.name}' head does not take sample weights; heads that do: "
                f"{', '.join(heads_taking_sample_weight())}"
            )
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim != 1 or len(w) != len(y):
            raise BadInputError(
                f"sample_weight must be one weight per row: got shape {w.shape} for {len(y)} rows"
            )
        if not np.isfinite(w).all() or (w < 0).any():
            raise BadInputError("sample weights must be finite and >= 0; got NaN, inf or < 0")
        unweighted = np.flatnonzero(np.bincount(y, weights=w) <= 0)
        if len(unweighted):
            raise BadInputError(
                f"class index(es) {unweighted.tolist()} have a total sample weight of 0: give "
                "some of their examples a positive weight, or drop the class"
            )
        return w


def heads_taking_sample_weight() -> list[str]:
    """Names of the heads defined so far whose ``fit`` takes ``sample_weight``."""
    names, todo = set(), [Head]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "name" in vars(cls) and cls.accepts_sample_weight:
            names.add(cls.name)
    return sorted(names)
