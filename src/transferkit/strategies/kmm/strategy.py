"""The ``kmm`` strategy: training rows weighted by kernel mean matching (see solver.py), on the
embeddings as the linear heads see them (power-normalised); the weights reach the head as
``sample_weight``, scaled to mean 1, each at least ``MIN_WEIGHT``."""

from __future__ import annotations

import numpy as np

from transferkit.heads.linear import power_normalize
from transferkit.strategies.adapt.base import DomainEmbeddings, FeatureAdaptation, HeadTrainingSet
from transferkit.strategies.adapt.config import SOURCE_SELECT
from transferkit.strategies.adapt.threads import one_blas_thread
from transferkit.strategies.adapt.weights import spread_text, weight_facts, with_user_weights
from transferkit.strategies.base import Option
from transferkit.strategies.kmm.config import KMMConfig
from transferkit.strategies.kmm.solver import kmm_weights
from transferkit.strategies.registry import register_strategy

# KMM gives many rows a weight of exactly 0; they keep this much (the mean row weighs 1), so
# that no class and no fold of the head's cross-validation is left without weight
MIN_WEIGHT = 0.01


@register_strategy
class KMMStrategy(FeatureAdaptation):
    """Frozen embeddings; training rows weighted so that their kernel mean matches the target
    domain's (kernel mean matching), then a head; --target gives the target domain's
    unlabelled inputs."""

    name = "kmm"
    Config = KMMConfig
    family = "instance"
    title = "Kernel mean matching"
    options = (
        Option(
            "--kmm-b",
            "B",
            float,
            "kmm: the largest weight before scaling to mean 1 (default 1000, as in the paper)",
            valid=lambda v: v > 1,
            must_be="greater than 1",
        ),
        Option(
            "--kmm-eps",
            "eps",
            float,
            "kmm: how far the weights' mean may stray from 1 (default (√n − 1)/√n, as in the "
            "paper)",
            valid=lambda v: 0 <= v < 1,
            must_be="at least 0 and below 1",
        ),
        SOURCE_SELECT,
    )

    def prepare(self, emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
        source = emb.source
        with one_blas_thread():
            beta, facts = kmm_weights(
                power_normalize(source.X),
                power_normalize(emb.target),
                B=self.config.B,
                eps=self.config.eps,
                seed=seed,
            )
        zero = int((beta <= 0).sum())
        w = np.maximum(beta / beta.mean(), MIN_WEIGHT)
        w /= w.mean()
        info = {"B": self.config.B, "zero_weights": zero, **facts, **weight_facts(w, emb)}
        return HeadTrainingSet(source.X, source.y, with_user_weights(w, emb), source.groups, info)

    def report_facts(self, block: dict) -> dict:
        return {
            "RBF bandwidth σ (median heuristic)": block.get("sigma"),
            "squared MMD to the target, before / after": (
                f"{block.get('mmd2_before', 0):.4g} / {block.get('mmd2_after') or 0:.4g}"
            ),
            "effective sample size": block.get("effective_sample_size"),
            "rows KMM gave no weight (kept at 1%)": block.get("zero_weights"),
            "weights min / median / max": spread_text(block),
        }
