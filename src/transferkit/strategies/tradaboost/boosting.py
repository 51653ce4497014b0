"""TrAdaBoost on arrays (Dai, Yang, Xue & Yu, "Boosting for Transfer Learning", ICML 2007).

Each round fits a learner on the source and target rows with their current weights; source rows
it gets wrong lose weight (they look unlike the target), target rows it gets wrong gain weight
(as in AdaBoost). Checked against ADAPT's ``TrAdaBoost`` (adapt-python/adapt,
``adapt/instance_based/_tradaboost.py`` at fd67cb7, read, not run: it needs tensorflow):

- weights start equal over all rows and sum to 1 after every update; the learner sees them
  divided by their mean, as in ADAPT, so a weight of 1 is an ordinary row and the head's
  regularisation means the same in every round;
- a row's error is 1 - the learner's probability of its class (ADAPT's error for learners with
  probabilities; the paper's 0/1 error is its limit for hard predictions);
- ``eps_t`` is the target rows' weighted mean error and ``beta_t = eps_t / (2 - eps_t)`` (ADAPT),
  not the paper's ``eps_t / (1 - eps_t)``: that needs ``eps_t < 1/2``, which a useful K-class
  learner need not reach, and past it ``beta_t > 1`` would lower the weight of the target rows
  it gets wrong. There is no clip at 0.49 (ADAPT has it commented out); ``eps_t`` is only kept
  above ``ERROR_FLOOR`` so that ``beta_t > 0`` keeps the update and the vote weight finite
  (ADAPT adds machine epsilon inside the logarithm instead);
- source rows: ``w *= beta ** e`` with ``beta = 1 / (1 + sqrt(2 ln n_source / N))``; target
  rows: ``w *= beta_t ** -e``; no update after the last round (the paper and ADAPT);
- the final classifier is the paper's: the learners of rounds ceil(N/2)..N (1-based) vote with
  weights ``ln(1 / beta_t)``; ADAPT starts one round later (index ``int(N/2)``, 0-based). They
  vote with probabilities (as ADAPT), so the vote has probabilities of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# the smallest target error kept: beta_t > 0, so ln(1 / beta_t) stays finite (~23.7)
ERROR_FLOOR = 1e-10


@dataclass
class BoostingResult:
    """Every round's learner, target error and ``beta_t``, and the weights after the rounds."""

    learners: list
    errors: np.ndarray
    betas: np.ndarray
    beta_source: float
    source_weight: np.ndarray  # the source rows' final weights (with the target's: sum 1)
    target_weight: np.ndarray
    # per round, the share of the total weight on the source rows (before its update)
    source_share: np.ndarray

    @property
    def first_voter(self) -> int:
        """0-based index of the first learner in the final vote (round ceil(N/2), 1-based)."""
        return math.ceil(len(self.learners) / 2) - 1

    @property
    def voters(self) -> list:
        return self.learners[self.first_voter :]

    @property
    def votes(self) -> np.ndarray:
        return np.log(1.0 / self.betas[self.first_voter :])


def row_errors(learner, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 - the learner's probability of each row's class, in [0, 1]."""
    proba = learner.predict_proba(X)
    return np.clip(1.0 - proba[np.arange(len(y)), y], 0.0, 1.0)


def tradaboost(
    fit_learner: Callable[[int, np.ndarray, np.ndarray, np.ndarray], object],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    yt: np.ndarray,
    *,
    rounds: int,
) -> BoostingResult:
    """Boost ``rounds`` learners on source rows ``Xs, ys`` and target rows ``Xt, yt``.

    ``fit_learner(round, X, y, sample_weight)`` returns a fitted learner with ``predict_proba``
    over class indices; ``X`` holds the source rows, then the target rows.
    """
    n_source = len(ys)
    w_source = np.ones(n_source)
    w_target = np.ones(len(yt))
    total = w_source.sum() + w_target.sum()
    w_source, w_target = w_source / total, w_target / total
    beta_source = 1.0 / (1.0 + math.sqrt(2.0 * math.log(n_source) / rounds))
    X, y = np.vstack([Xs, Xt]), np.concatenate([ys, yt])
    learners, errors, betas, shares = [], [], [], []
    for t in range(rounds):
        weight = np.concatenate([w_source, w_target])
        shares.append(w_source.sum())
        learner = fit_learner(t, X, y, weight / weight.mean())
        e = row_errors(learner, X, y)
        e_source, e_target = e[:n_source], e[n_source:]
        error = max(float(np.sum(w_target * e_target) / np.sum(w_target)), ERROR_FLOOR)
        beta = error / (2.0 - error)
        learners.append(learner)
        errors.append(error)
        betas.append(beta)
        if t < rounds - 1:
            w_source = w_source * beta_source**e_source
            w_target = w_target * beta ** (-e_target)
            total = w_source.sum() + w_target.sum()
            w_source, w_target = w_source / total, w_target / total
    return BoostingResult(
        learners=learners,
        errors=np.asarray(errors),
        betas=np.asarray(betas),
        beta_source=beta_source,
        source_weight=w_source,
        target_weight=w_target,
        source_share=np.asarray(shares),
    )
