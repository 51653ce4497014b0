"""Subspace alignment (Fernando, Habrard, Sebban & Tuytelaars, "Unsupervised Visual Domain
Adaptation Using Subspace Alignment", ICCV 2013).

Each domain is described by the d leading principal directions of its embeddings (``P_s``,
``P_t``, D × d); ``M = P_sᵀ P_t`` aligns the source's basis with the target's, and the paper
trains the classifier on ``X_s P_s M`` (source coordinates expressed in the target's basis)
and applies it to ``X_t P_t``.

Here the bundle must stay "frozen backbone + head" — the head meets raw target embeddings at
predict time, not ``X_t P_t``. So the aligned source rows are mapped back into embedding
space through the target's basis: ``x_s' = μ_t + s_t · ((x_s − μ_s)/s_s) P_s M P_tᵀ``. Their
coordinates in the target subspace are exactly the paper's ``X_s P_s M``, and a target input
``x_t`` differs from its own projection ``μ_t + (x_t − μ_t) P_t P_tᵀ`` only by the part of
least variance the PCA left out; a linear head fitted on rows that lie in the target's
subspace learns weights in that subspace (its L2 penalty pushes the rest to 0), so scoring
raw ``x_t`` equals the paper's scoring of ``X_t P_t``, up to the head's power-normalisation.

The paper z-scores each domain; here each domain is centred (μ) and scaled as a whole (s: the
root mean variance of its dimensions) rather than per dimension, because deep embeddings have
many nearly constant dimensions whose per-dimension z-scores would be amplified noise leading
the PCA; a whole-domain scale still matches the two domains' spread.
"""

from __future__ import annotations

import numpy as np

from transferkit.errors import BadInputError
from transferkit.strategies.adapt.base import DomainEmbeddings, FeatureAdaptation, HeadTrainingSet
from transferkit.strategies.adapt.config import SOURCE_SELECT
from transferkit.strategies.adapt.threads import one_blas_thread
from transferkit.strategies.base import Option
from transferkit.strategies.registry import register_strategy
from transferkit.strategies.subspace.config import SubspaceConfig


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centred rows scaled by the root mean variance of the dimensions, the mean and scale."""
    mean = x.mean(axis=0)
    scale = float(np.sqrt(((x - mean) ** 2).mean(axis=0).mean()))
    scale = scale if scale > 0 else 1.0
    return (x - mean) / scale, mean, scale


def _principal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions (D, r) of centred rows ``z`` and the share of variance of each."""
    _, sing, vt = np.linalg.svd(z, full_matrices=False)
    var = sing**2
    return vt.T, var / max(var.sum(), 1e-300)


def subspace_align(
    source: np.ndarray, target: np.ndarray, dim: int | None = None, variance: float = 0.9
) -> tuple[np.ndarray, dict]:
    """Source rows aligned into the target's d-dimensional PCA subspace, in embedding
    coordinates (see the module docstring), and what the alignment found."""
    zs, mu_s, s_s = _standardise(source.astype(np.float64))
    zt, mu_t, s_t = _standardise(target.astype(np.float64))
    ps, share_s = _principal(zs)
    pt, share_t = _principal(zt)
    most = min(ps.shape[1], pt.shape[1])
    if dim is None:
        dim = int(np.searchsorted(np.cumsum(share_t), variance) + 1)
    if dim > most:
        raise BadInputError(
            f"--subspace-dim {dim} is more than the {most} principal directions the data have "
            f"({len(source)} training rows, {len(target)} target inputs, {source.shape[1]} "
            f"embedding dimensions); ask for at most {most}."
        )
    ps, pt = ps[:, :dim], pt[:, :dim]
    alignment = ps.T @ pt  # M
    aligned = mu_t + s_t * (zs @ ps @ alignment @ pt.T)
    info = {
        "dim": dim,
        "target_variance_kept": float(share_t[:dim].sum()),
        "source_variance_kept": float(share_s[:dim].sum()),
        # ||M||_F² / d: mean squared cosine of the principal angles (1: the same subspace)
        "subspace_similarity": float((alignment**2).sum() / dim),
    }
    return aligned, info


@register_strategy
class SubspaceStrategy(FeatureAdaptation):
    """Frozen embeddings, the training ones aligned into the target domain's PCA subspace
    (subspace alignment), then a head; --target gives the target domain's unlabelled inputs."""

    name = "subspace"
    Config = SubspaceConfig
    title = "Subspace alignment"
    options = (
        Option(
            "--subspace-dim",
            "dim",
            int,
            "subspace: principal directions per domain (default: as many as explain "
            "--subspace-variance of the target's variance)",
            valid=lambda v: v >= 1,
            must_be="at least 1",
        ),
        Option(
            "--subspace-variance",
            "variance",
            float,
            "subspace: share of the target's variance the directions explain when "
            "--subspace-dim is not given (default 0.9)",
            valid=lambda v: 0 < v <= 1,
            must_be="above 0 and at most 1",
        ),
        SOURCE_SELECT,
    )

    def prepare(self, emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
        X = emb.source.X
        with one_blas_thread():
            aligned, info = subspace_align(X, emb.target, self.config.dim, self.config.variance)
        info["relative_shift"] = float(np.linalg.norm(aligned - X) / np.linalg.norm(X))
        return HeadTrainingSet(
            aligned.astype(np.float32), emb.source.y, emb.source_weight, emb.source.groups, info
        )

    def report_facts(self, block: dict) -> dict:
        return {
            "subspace dimensions": block.get("dim"),
            "target variance they explain": block.get("target_variance_kept"),
            "source / target subspace similarity (1: same)": block.get("subspace_similarity"),
            "relative shift of the training embeddings": block.get("relative_shift"),
        }
