"""Self-training: the target inputs the head is sure of join the training set with the class it
gives them, for a few rounds.

Class-balanced as in CBST (Zou et al., ECCV 2018): each class has its own confidence cut, the
one that keeps its most confident ``portion`` of the target inputs the head assigns to it (a
share that grows over the rounds, r/R of ``portion`` in round r of R), above the floor
``threshold``. One cut for all classes would not do: a head trained on another domain is
over-confident on some classes and timid on others, so a single cut fills the pseudo-labels
with the confident classes — on digits with a brightness/contrast shift, a 0.9 cut left 4 of 10
classes without a pseudo-label and the head then lost 26 points. Labels are chosen afresh each
round (an early wrong label can be dropped). The labelling head is a logistic regression whose
C is chosen once by cross-validation on the labelled rows; the final head is the one the run
asks for, fitted on the labelled and pseudo-labelled rows (a pseudo-labelled row counts as much
as the mean labelled row).

What it costs: one cross-validated fit on the labelled rows, then ``rounds - 1`` refits with
that C, each warm-started from the one before (the first from the labelling head), and the final
head once. With the run's own logistic head, its grid on the labelled rows *is* the labelling
head's (the fit the head needs anyway to choose C without the pseudo-labels), so it runs once:
a separate labelling grid, cold refits and a second grid made selftrain 3.03x source-only's fit
time on the adaptation benchmark (MNIST 120/class, all pairs and seeds).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from transferkit.heads.linear import LogisticHead, power_normalize
from transferkit.strategies.adapt.base import DomainEmbeddings, FeatureAdaptation, HeadTrainingSet
from transferkit.strategies.adapt.config import SOURCE_SELECT
from transferkit.strategies.adapt.threads import one_blas_thread
from transferkit.strategies.base import FitContext, Option
from transferkit.strategies.registry import register_strategy
from transferkit.strategies.selftrain.config import SelfTrainConfig

# the grid the labelling head's C is chosen from (small: it is fitted once per round)
_CS = (0.1, 1.0, 10.0, 100.0)


def _balanced_pick(proba: np.ndarray, threshold: float, portion: float) -> np.ndarray:
    """Pseudo-label of each target row (-1: none): per class, the most confident ``portion``
    of the rows the head assigns to it, each with probability at least ``threshold``."""
    chosen = np.full(len(proba), -1)
    label, sure = proba.argmax(axis=1), proba.max(axis=1)
    for c in range(proba.shape[1]):
        rows = np.flatnonzero(label == c)
        best = rows[np.argsort(-sure[rows], kind="stable")][: math.ceil(portion * len(rows))]
        chosen[best[sure[best] >= threshold]] = c
    return chosen


def pseudo_label(
    emb: DomainEmbeddings,
    threshold: float,
    portion: float,
    rounds: int,
    seed: int,
    labeller: LogisticHead | None = None,
) -> tuple[np.ndarray, dict]:
    """The pseudo-label of each target row (-1: left out) and the history of the rounds.

    ``labeller``: a logistic head already fitted on the labelled rows, C chosen by its grid
    (None: one is fitted here, C from a small grid)."""
    if labeller is None:
        source = emb.source
        labeller = LogisticHead(Cs=_CS, cv=3)
        labeller.fit(source.X, source.y, emb.source_weight, seed=seed, groups=source.groups)
    C = float(labeller.info_["C"])
    refit = _Refit(labeller, C, emb.target)
    labels = np.full(len(emb.target), -1)
    history = []
    proba = labeller.predict_proba(emb.target)
    for r in range(1, rounds + 1):
        new = _balanced_pick(proba, threshold, r / rounds * portion)
        history.append(
            {
                "round": r,
                "pseudo_labelled": int((new >= 0).sum()),
                "mean_confidence": float(proba.max(axis=1)[new >= 0].mean())
                if (new >= 0).any()
                else None,
                "changed": int((new != labels).sum()),
            }
        )
        labels = new
        if r == rounds:
            break
        proba = refit(_training_rows(emb, labels))
    return labels, {"C": C, "history": history, "refits": refit.fits}


class _Refit:
    """The labelling head refitted on new training rows with its C fixed, warm-started from
    its last solution, in the labelling head's space (power-normalised, centred on the
    labelled rows): the pseudo-labels change a little from round to round, so the optimum
    does too. The labelling head and a refit are both plain L2 logistic regressions on those
    rows, so the warm start changes where lbfgs starts, not where it ends."""

    def __init__(self, labeller: LogisticHead, C: float, target: np.ndarray):
        from sklearn.linear_model import LogisticRegression

        self.center = labeller.mean_
        self.target = self._space(target)
        self.model = LogisticRegression(C=C, max_iter=labeller.config.max_iter, warm_start=True)
        # the labelling head's own solution (stored in this same space) is the first start
        self.model.coef_ = labeller.coef_.astype(np.float64)
        self.model.intercept_ = labeller.intercept_.astype(np.float64)
        self.fits = 0

    def _space(self, X: np.ndarray) -> np.ndarray:
        return (power_normalize(X) - self.center).astype(np.float64)

    def __call__(self, rows: HeadTrainingSet) -> np.ndarray:
        """Refit on ``rows``; the target rows' class probabilities."""
        self.model.fit(self._space(rows.X), rows.y, sample_weight=rows.weight)
        self.fits += 1
        return self.model.predict_proba(self.target)


def _training_rows(emb: DomainEmbeddings, labels: np.ndarray) -> HeadTrainingSet:
    """The labelled rows and the pseudo-labelled target rows, as one training set."""
    picked = labels >= 0
    source = emb.source
    X = np.vstack([source.X, emb.target[picked]]).astype(np.float32)
    y = np.concatenate([source.y, labels[picked]])
    weight = groups = None
    if emb.source_weight is not None:
        extra = np.full(picked.sum(), emb.source_weight.mean())
        weight = np.concatenate([emb.source_weight, extra])
    if source.groups is not None:  # each target row is an example of its own
        first = source.groups.max() + 1
        groups = np.concatenate([source.groups, first + np.arange(picked.sum())])
    # the labelled rows are the source's, in order; -1: a pseudo-labelled target row
    source_rows = np.concatenate([np.arange(len(source.X)), np.full(int(picked.sum()), -1)])
    return HeadTrainingSet(X, y, weight, groups, source_rows=source_rows)


@register_strategy
class SelfTrainStrategy(FeatureAdaptation):
    """Frozen embeddings; target inputs the head is confident about join the training set
    with their predicted class (class-balanced, a few rounds), then a head; --target gives the
    target domain's unlabelled inputs."""

    name = "selftrain"
    Config = SelfTrainConfig
    title = "Self-training on the target"
    options = (
        Option(
            "--selftrain-threshold",
            "threshold",
            float,
            "selftrain: least probability of a pseudo-labelled target input's class (default 0.5)",
            valid=lambda v: 0 < v <= 1,
            must_be="above 0 and at most 1",
        ),
        Option(
            "--selftrain-portion",
            "portion",
            float,
            "selftrain: share of the target inputs assigned to a class that may be "
            "pseudo-labelled with it, its most confident first (default 0.5)",
            valid=lambda v: 0 < v <= 1,
            must_be="above 0 and at most 1",
        ),
        Option(
            "--selftrain-rounds",
            "rounds",
            int,
            "selftrain: label-and-refit rounds (default 3)",
            valid=lambda v: 1 <= v <= 20,
            must_be="between 1 and 20",
        ),
        SOURCE_SELECT,
    )

    def prepare(self, emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
        return self._pseudo_labelled(emb, seed, None)

    def training_set(self, emb: DomainEmbeddings, ctx: FitContext) -> HeadTrainingSet:
        """With a logistic head of the default normalisation, its grid on the labelled rows
        is the labelling head, and the C it chose is fixed on the run's head (what
        ``chosen_on_labelled_rows`` would choose, by the same fit); another head keeps its own
        choice there and the labelling head its small grid."""
        head = ctx.head
        grid = getattr(head.config, "Cs", ())
        if head.name != LogisticHead.name or head.config.standardize or len(grid) <= 1:
            return self._pseudo_labelled(emb, ctx.seed, None)
        source = emb.source
        labeller = LogisticHead(**head.get_params())
        # fitted as the run's head would fit it (its own BLAS threads), as source-only fits it
        labeller.fit(source.X, source.y, emb.source_weight, seed=ctx.seed, groups=source.groups)
        head.config = replace(head.config, Cs=(float(labeller.info_["C"]),))
        return self._pseudo_labelled(emb, ctx.seed, labeller)

    def _pseudo_labelled(
        self, emb: DomainEmbeddings, seed: int, labeller: LogisticHead | None
    ) -> HeadTrainingSet:
        config = self.config
        with one_blas_thread():
            labels, info = pseudo_label(
                emb, config.threshold, config.portion, config.rounds, seed, labeller
            )
        rows = _training_rows(emb, labels)
        picked = labels[labels >= 0]
        info.update(
            threshold=config.threshold,
            portion=config.portion,
            rounds=config.rounds,
            pseudo_labelled=int(len(picked)),
            pseudo_labelled_per_class={
                emb.label(c): int((picked == c).sum()) for c in np.unique(emb.source.y)
            },
        )
        return HeadTrainingSet(
            rows.X, rows.y, rows.weight, rows.groups, info, source_rows=rows.source_rows
        )

    def report_facts(self, block: dict) -> dict:
        per_class = block.get("pseudo_labelled_per_class") or {}
        return {
            "confidence floor": block.get("threshold"),
            "share of each class's target inputs (last round)": block.get("portion"),
            "rounds": block.get("rounds"),
            "target inputs pseudo-labelled": block.get("pseudo_labelled"),
            "pseudo-labelled per class": ", ".join(f"{k} {v}" for k, v in per_class.items()),
        }
