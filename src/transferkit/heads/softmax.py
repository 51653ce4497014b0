"""``linear``: a plain softmax layer, the head that fine-tuning trains together with the backbone.

Unlike ``logistic`` it sees the raw embeddings (no power normalisation), because the layer the
backbone is trained against must be the layer used at prediction. Used on its own (``--head
linear`` with ``features``), it is the same softmax layer fitted by L-BFGS (sklearn's
multinomial logistic regression, L2 strength ``C``) on the raw embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferkit.errors import BadInputError
from transferkit.heads.base import Head


@dataclass
class LinearSoftmaxConfig:
    C: float = 1.0
    max_iter: int = 3000

    def __post_init__(self):
        if not self.C > 0:
            raise BadInputError(f"C must be > 0 (inverse L2 strength); got {self.C}")


class LinearSoftmaxHead(Head):
    """``softmax(X @ weight.T + bias)``; state = ``weight`` (C, D) and ``bias`` (C,)."""

    name = "linear"
    Config = LinearSoftmaxConfig
    state_arrays = ("weight", "bias")

    @classmethod
    def from_torch(cls, layer, n_classes: int, info: dict | None = None) -> LinearSoftmaxHead:
        """Wrap a trained ``torch.nn.Linear`` (e.g. fine-tuning's head) as a fitted head."""
        head = cls()
        head.weight_ = layer.weight.detach().cpu().float().numpy().copy()
        head.bias_ = layer.bias.detach().cpu().float().numpy().copy()
        head.n_classes_ = int(n_classes)
        head.info_ = dict(info or {})
        return head

    def _fit(self, X, y, *, seed, groups=None, sample_weight=None):
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        model = LogisticRegression(C=self.config.C, max_iter=self.config.max_iter)
        # tiny problems gain nothing from BLAS threads (see heads/linear.py)
        with threadpool_limits(1):
            model.fit(X, y, sample_weight=sample_weight)
        coef, intercept = model.coef_, model.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row; a softmax layer needs two
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        self.weight_ = coef.astype(np.float32)
        self.bias_ = intercept.astype(np.float32)
        self.info_ = {"C": self.config.C}

    @classmethod
    def _stored_classes(cls, arrays):
        return len(arrays["weight"])

    def _scores(self, X):
        return X @ self.weight_.T + self.bias_
