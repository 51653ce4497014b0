"""Deep Embedded Validation: a method's target accuracy estimated without target labels.

Three families could choose between adaptation methods without target labels:

- IWV (importance-weighted validation, Sugiyama et al. 2007): held-out labelled source rows,
  each weighted by the density ratio ``p_t(x) / p_s(x)`` from a domain classifier, give an
  unbiased estimate of the target risk under covariate shift — but its variance explodes when
  a few source rows carry most of the weight, which is the normal case for two domains a
  linear classifier separates well (the issue's MNIST → 8×8 digits).
- DEV (You et al., ICML 2019) is IWV plus a control variate: the weights have a known mean
  (1), so ``risk = mean(w·l) + η·mean(w) − η`` with the η that minimises the variance stays
  unbiased and is never worse than IWV; it is what ``pytorch-adapt``'s
  ``DeepEmbeddedValidator`` computes (``get_dev_risk``, from the authors' code).
- SND (Saito et al., ICCV 2021) needs no source rows at all: the entropy of each target
  prediction's soft neighbourhood. It scores how clustered the target predictions are, and
  rewards a head that puts every target input in one confident class (all neighbourhoods
  then look alike: maximal entropy), which is exactly the harm a guard must catch here.

We use DEV. Its estimate is in the units the guard needs (an accuracy, comparable with
source-only's, so "beats it by a margin" means points), it rests on held-out source labels
rather than on a heuristic about cluster structure, and each candidate is judged in its own
space: the rows it trains the head on (CORAL's re-coloured embeddings, importance weights'
unchanged ones) against the target rows the head will meet.

One change to DEV as published (see ``estimated_accuracy``): DEV estimates the target risk
on the part of the target the source covers and extrapolates it to the rest; where the
domains barely overlap (the normal case here: a linear classifier separates MNIST from 8x8
digits in MobileNetV2's embeddings every time) it then rates every head near its source
accuracy. Here the uncovered share (half the proxy A-distance of the candidate's rows and
the target) counts at chance. Measured
(MobileNetV2, MNIST 30/class -> 300 sklearn digits, seeds 0/1/2): coral, subspace, subspace
chosen, estimated 0.24/0.27/0.23 vs source-only 0.10; measured on the target's labels
0.43/0.48/0.52 vs 0.28/0.38/0.24. The estimates are low (conservative); each choice was the
best method or within 2.3 points of it, and the methods that did harm (importance, kmm: down
to 0.21 against source-only's 0.28) were scored no higher than source-only and never chosen.

Held-out rows come from 2-fold cross-fitting over training examples (their views stay
together): each candidate ``prepare``s each half on its own, the head fitted on one half's
prepared rows is scored on the other half's — no validation label reaches the training side,
not even through self-training's pseudo-labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from transferkit.strategies.adapt.domain_classifier import target_likeness
from transferkit.strategies.features import TrainingEmbeddings

FOLDS = 2


def estimated_accuracy(
    weight: np.ndarray, wrong: np.ndarray, domain_accuracy: float, n_classes: int
) -> tuple[float, float]:
    """(estimated target accuracy, target coverage) from held-out source rows' density ratios
    ``weight``, their 0-1 losses ``wrong``, and the balanced held-out accuracy of the domain
    classifier that gave the ratios.

    The share of the target the source covers is estimated as ``2 (1 - domain_accuracy)``
    (1 - half the proxy A-distance: the overlap of the two distributions, as far as a linear
    classifier sees it); on it, the error is DEV's; nothing in the source tells the error on
    the rest, so it is counted at chance (``1 - 1/n_classes``). DEV alone extrapolates the
    covered error to all of the target: on a synthetic shift it gave 1.0 to a source-only
    head whose target accuracy was 0.5, every source row being unlike the target. The mean
    density ratio would estimate the coverage too, but a few rows with large ratios swing it:
    on MNIST -> 8x8 digits it put CORAL's coverage at 0.24 on one draw and 0.96 on the next
    (0.965 estimated accuracy, 0.483 measured), where the domain classifier's accuracy stayed
    near 0.9.
    """
    coverage = float(np.clip(2 * (1 - domain_accuracy), 0.0, 1.0))
    covered = float(np.clip(dev_risk(weight, wrong), 0.0, 1.0))
    risk = coverage * covered + (1 - coverage) * (1 - 1 / max(n_classes, 1))
    return float(np.clip(1 - risk, 0.0, 1.0)), coverage


def dev_risk(weight: np.ndarray, loss: np.ndarray) -> float:
    """DEV's control-variate estimate of the target risk (You et al. 2019, Algorithm 1):
    ``mean(w·l) + η·mean(w) − η`` with ``η = −cov(w·l, w) / var(w)``; IWV's ``mean(w·l)``
    when the weights do not vary."""
    weight = np.asarray(weight, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    weighted = weight * loss
    var_w = np.var(weight, ddof=1) if len(weight) > 1 else 0.0
    if var_w <= 1e-12:
        return float(weighted.mean())
    eta = -np.cov(weighted, weight)[0, 1] / var_w
    return float(weighted.mean() + eta * weight.mean() - eta)


@dataclass
class Validation:
    """What the validator found for one candidate."""

    name: str
    dev_accuracy: float | None = None  # 1 - DEV risk (0-1 loss): the estimated target accuracy
    source_accuracy: float | None = None  # plain accuracy on the held-out source rows
    domain_accuracy: float | None = None  # how well a classifier told its rows from the target
    coverage: float | None = None  # the share of the target its rows cover
    n_validation: int = 0
    skipped: str | None = None  # why it could not be validated

    def record(self) -> dict[str, Any]:
        if self.skipped:
            return {"skipped": self.skipped}
        return {
            "estimated_target_accuracy": self.dev_accuracy,
            "held_out_source_accuracy": self.source_accuracy,
            "domain_classifier_accuracy": self.domain_accuracy,
            "target_coverage": self.coverage,
            "n_validation_rows": self.n_validation,
        }


def example_folds(source: TrainingEmbeddings, seed: int) -> list[np.ndarray]:
    """``FOLDS`` masks over the rows of ``source``: training examples split stratified by
    class, every view of one example in the same fold."""
    samples, first = np.unique(source.rows, return_index=True)
    classes = source.y[first]
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(samples), dtype=int)
    for c in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == c))
        fold_of[members] = (np.arange(len(members)) + rng.integers(FOLDS)) % FOLDS
    row_fold = fold_of[np.searchsorted(samples, source.rows)]
    return [row_fold == k for k in range(FOLDS)]


def subset(emb, mask: np.ndarray):
    """``emb`` (DomainEmbeddings) with only the source rows in ``mask``."""
    s = emb.source
    source = TrainingEmbeddings(
        X=s.X[mask],
        y=s.y[mask],
        groups=None if s.groups is None else s.groups[mask],
        rows=s.rows[mask],
        n_train=len(np.unique(s.rows[mask])),
        info=s.info,
    )
    weight = None if emb.source_weight is None else emb.source_weight[mask]
    return replace(emb, source=source, source_weight=weight)


def validate(name: str, prepare, emb, make_head, seed: int) -> Validation:
    """DEV of one candidate: ``prepare(emb, seed) -> HeadTrainingSet`` on each half of the
    training examples, a head (``make_head()``) fitted on one half's rows, scored on the
    other's, their density ratio from a domain classifier of the training half's rows."""
    masks = example_folds(emb.source, seed)
    halves = [subset(emb, m) for m in masks]
    classes = np.unique(emb.source.y)
    if any(not np.array_equal(np.unique(h.source.y), classes) for h in halves):
        return Validation(
            name, skipped=f"too few training examples to validate: every class needs {FOLDS}"
        )
    try:
        prepared = [prepare(half, seed) for half in halves]
        parts = [p.source_part(len(h.source.X)) for p, h in zip(prepared, halves)]
    except ValueError as exc:  # a method that cannot run on half the data, or maps no rows
        return Validation(name, skipped=str(exc))
    try:
        return _cross_fit(name, prepared, parts, halves, emb, make_head, seed)
    except ValueError as exc:  # e.g. weights that leave a class of a half without weight
        return Validation(name, skipped=f"its head could not be fitted on half the data: {exc}")


def _cross_fit(name, prepared, parts, halves, emb, make_head, seed: int) -> Validation:
    weights, losses, plain, domain_acc = [], [], [], []
    for k in range(FOLDS):
        train, held = prepared[k], prepared[(k + 1) % FOLDS]
        rows, truth = parts[(k + 1) % FOLDS]
        train_rows, _ = parts[k]
        head = make_head()
        fit_weight = {} if train.weight is None else {"sample_weight": train.weight}
        head.fit(train.X, train.y, seed=seed, groups=train.groups, **fit_weight)
        # the example's own label, whatever the candidate did to its copy
        wrong = head.predict(held.X[rows]) != halves[(k + 1) % FOLDS].source.y[truth]
        p_target, accuracy = target_likeness(train.X[train_rows], emb.target, held.X[rows])
        p_target = np.clip(p_target, 1e-6, 1 - 1e-6)
        weights.append(p_target / (1 - p_target))
        losses.append(wrong.astype(np.float64))
        plain.append(wrong)
        domain_acc.append(accuracy)
    w, loss = np.concatenate(weights), np.concatenate(losses)
    domain = float(np.mean(domain_acc))
    accuracy, coverage = estimated_accuracy(w, loss, domain, len(np.unique(emb.source.y)))
    return Validation(
        name,
        dev_accuracy=accuracy,
        coverage=coverage,
        source_accuracy=float(1 - np.concatenate(plain).mean()),
        domain_accuracy=domain,
        n_validation=len(w),
    )


@dataclass
class Choice:
    """The chooser's verdict: every candidate's validation, the pick and why."""

    chosen: str
    reason: str
    guarded: bool  # True: a method scored best but not by the margin, so source-only was kept
    validations: list[Validation]
    margin: float

    def record(self) -> dict[str, Any]:
        return {
            "validator": "DEV (You et al. 2019): importance-weighted held-out source error with "
            "a control variate; target mass the source does not cover counted at chance",
            "candidates": {v.name: v.record() for v in self.validations},
            "chosen": self.chosen,
            "reason": self.reason,
            "kept_source_only": self.chosen == SOURCE_ONLY,
            "guard_margin": self.margin,
        }


SOURCE_ONLY = "source-only"


def choose(validations: list[Validation], margin: float) -> Choice:
    """Source-only unless a method's estimated target accuracy beats it by ``margin``."""
    scored = [v for v in validations if v.dev_accuracy is not None]
    base = next((v for v in scored if v.name == SOURCE_ONLY), None)
    methods = [v for v in scored if v.name != SOURCE_ONLY]
    if base is None or not methods:
        why = next(v.skipped for v in validations if v.name == SOURCE_ONLY) or (
            "no adaptation method could be validated"
        )
        reason = f"adaptation not expected to help: kept source-only ({why})"
        return Choice(SOURCE_ONLY, reason, True, validations, margin)
    best = max(methods, key=lambda v: v.dev_accuracy)
    gain = best.dev_accuracy - base.dev_accuracy
    if gain >= margin:
        reason = (
            f"{best.name}: estimated target accuracy {best.dev_accuracy:.3f} vs source-only "
            f"{base.dev_accuracy:.3f} (+{gain:.3f}, margin {margin:.3f})"
        )
        return Choice(best.name, reason, False, validations, margin)
    reason = (
        f"adaptation not expected to help: kept source-only (best method {best.name}: "
        f"estimated target accuracy {best.dev_accuracy:.3f} vs source-only "
        f"{base.dev_accuracy:.3f}, {gain:+.3f}, below the margin of {margin:.3f})"
    )
    return Choice(SOURCE_ONLY, reason, True, validations, margin)
