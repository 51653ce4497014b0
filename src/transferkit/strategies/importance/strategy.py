"""Importance weighting by a domain classifier (the density-ratio trick; Bickel, Brückner &
Scheffer, "Discriminative learning under covariate shift", JMLR 2009).

A logistic regression learns to tell training embeddings (source) from target ones; by Bayes,
``p_t(x) / p_s(x) = p(target|x) / p(source|x) · n_s / n_t``, the weight that makes the
training set stand for the target. Each training row's ``p(target|x)`` comes from a model that
did not see it (cross-fitting: an overfitted classifier would otherwise call every training row
"source" with certainty); the views of one example stay in one fold. C is the one of the best
held-out log-loss — the ratio needs calibrated probabilities, not just a good ranking.
The weights are scaled to mean 1 and clipped (``clip``), and reach the head as
``sample_weight``. The classifier sees the embeddings as the linear heads do (power-normalised).
"""

from __future__ import annotations

import numpy as np

from transferkit.heads.linear import power_normalize
from transferkit.strategies.adapt.base import DomainEmbeddings, FeatureAdaptation, HeadTrainingSet
from transferkit.strategies.adapt.config import SOURCE_SELECT
from transferkit.strategies.adapt.threads import one_blas_thread
from transferkit.strategies.adapt.weights import (
    clip_to_mean_one,
    spread_text,
    weight_facts,
    with_user_weights,
)
from transferkit.strategies.base import Option
from transferkit.strategies.importance.config import ImportanceConfig
from transferkit.strategies.registry import register_strategy

_CS = (0.01, 0.1, 1.0, 10.0, 100.0)


def _folds(n_source: int, n_target: int, groups, folds: int, seed: int):
    """Stratified (by domain) folds over source then target rows, one group per example."""
    from sklearn.model_selection import StratifiedGroupKFold

    domain = np.r_[np.zeros(n_source, int), np.ones(n_target, int)]
    source_groups = (
        np.arange(n_source) if groups is None else np.unique(groups, return_inverse=True)[1]
    )
    pooled = np.r_[source_groups, source_groups.max() + 1 + np.arange(n_target)]
    folds = min(folds, n_target, len(np.unique(source_groups)))
    split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    return domain, list(split.split(domain, domain, pooled))


def domain_ratio(
    source: np.ndarray, target: np.ndarray, *, groups=None, folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Cross-fitted ``p(target|x)/p(source|x) · n_s/n_t`` of each source row, and facts of the
    domain classifier (its C, its cross-fitted ROC AUC)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score

    Z = power_normalize(np.vstack([source, target]).astype(np.float32)).astype(np.float64)
    domain, splits = _folds(len(source), len(target), groups, folds, seed)
    # held-out p(target|x) for each C: every fold walks the C grid warm-started, and the C of
    # the best held-out log-loss gives the cross-fitted probabilities (no second pass)
    held = np.empty((len(_CS), len(Z)))
    with one_blas_thread():
        for fit_rows, held_out in splits:
            model = LogisticRegression(max_iter=2000, warm_start=True)
            for i, C in enumerate(_CS):
                model.set_params(C=C).fit(Z[fit_rows], domain[fit_rows])
                held[i, held_out] = model.predict_proba(Z[held_out])[:, 1]
    losses = [log_loss(domain, np.clip(p, 1e-12, 1 - 1e-12)) for p in held]
    best = int(np.argmin(losses))
    p_target = held[best]
    p = np.clip(p_target[: len(source)], 1e-6, 1 - 1e-6)
    ratio = p / (1 - p) * len(source) / len(target)
    facts = {
        "domain_classifier_C": _CS[best],
        "domain_auc": float(roc_auc_score(domain, p_target)),
    }
    return ratio, facts


@register_strategy
class ImportanceStrategy(FeatureAdaptation):
    """Frozen embeddings; each training row weighted by how much more likely it is under the
    target domain than the training data (a domain classifier's density ratio), then a head;
    --target gives the target domain's unlabelled inputs."""

    name = "importance"
    Config = ImportanceConfig
    family = "instance"
    title = "Importance weights"
    options = (
        Option(
            "--importance-clip",
            "clip",
            float,
            "importance: the largest weight, weights having mean 1 (default 10)",
            valid=lambda v: v > 1,
            must_be="greater than 1",
        ),
        Option(
            "--importance-folds",
            "folds",
            int,
            "importance: cross-fitting folds of the domain classifier (default 5)",
            valid=lambda v: 2 <= v <= 20,
            must_be="between 2 and 20",
        ),
        SOURCE_SELECT,
    )

    def prepare(self, emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
        source = emb.source
        ratio, facts = domain_ratio(
            source.X, emb.target, groups=source.groups, folds=self.config.folds, seed=seed
        )
        w, clipped = clip_to_mean_one(ratio, self.config.clip)
        info = {"clip": self.config.clip, "clipped": clipped, **facts, **weight_facts(w, emb)}
        weight = with_user_weights(w, emb)
        return HeadTrainingSet(source.X, source.y, weight, source.groups, info)

    def report_facts(self, block: dict) -> dict:
        return {
            "domain classifier ROC AUC (0.5: domains alike)": block.get("domain_auc"),
            "effective sample size": block.get("effective_sample_size"),
            "weights min / median / max": spread_text(block),
            "weights cut by the clip": block.get("clipped"),
        }
