"""Adversarial domain losses: DANN (Ganin et al., JMLR 2016) and CDAN (Long et al., NeurIPS 2018).

Both train a discriminator ``D`` to tell source features (label 1) from target ones (label 0)
through a gradient reversal layer, so the same backward pass trains the features to fool it:

    DANN:  ½ · [BCE(D(f_s), 1) + BCE(D(f_t), 0)]
    CDAN:  BCE(D(T(f, softmax(g))), domain), over the source and target rows together

CDAN conditions the discriminator on the classifier's predictions through the multilinear map
``T(f, g) = g ⊗ f`` (flattened outer product), or, when ``features × classes`` is large, its
randomized approximation ``(R_f f) ⊙ (R_g g) / √d``. CDAN+E (``entropy_conditioning``) weighs
each row by ``1 + exp(-H(g))`` (normalised to mean 1), so confident predictions count more.
Formulas and defaults follow tllib (``tllib/alignment/dann.py``, ``cdan.py``); see
tests/test_domain_losses.py for the comparison.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.finetune.domain.grl import GradientReverseLayer

# the CDAN paper uses the multilinear map up to this many dimensions, the randomized one above
MULTILINEAR_MAX_DIM = 4096
RANDOMIZED_DIM = 1024
_ENTROPY_EPS = 1e-5  # tllib's: log(p + eps), so a zero probability costs nothing


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Per-row entropy ``-Σ p log(p + 1e-5)`` of ``(N, C)`` probabilities (tllib's)."""
    return -(probabilities * torch.log(probabilities + _ENTROPY_EPS)).sum(dim=1)


def _domain_labels(n_source: int, n_target: int, like: torch.Tensor) -> torch.Tensor:
    return torch.cat([like.new_ones(n_source, 1), like.new_zeros(n_target, 1)])


def _balanced_accuracy(logits: torch.Tensor, n_source: int) -> float:
    """Mean of the source and the target accuracy of the discriminator (threshold at p = ½)."""
    with torch.no_grad():
        says_source = logits.detach().view(-1) >= 0
        source, target = says_source[:n_source], ~says_source[n_source:]
        return 0.5 * (float(source.float().mean()) + float(target.float().mean()))


class DomainAdversarialLoss(nn.Module):
    """DANN's loss of source features ``f_s`` and target features ``f_t`` (``(N, F)`` each).

    ``discriminator`` maps features to one logit per row; ``grl`` (default: coefficient 1) sits
    between them, its ``coefficient`` set by the training loop. ``w_s``/``w_t``: optional
    per-row weights. After each call, ``discriminator_accuracy`` holds the discriminator's
    balanced accuracy on that batch.
    """

    def __init__(self, discriminator: nn.Module, grl: GradientReverseLayer | None = None) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.grl = grl if grl is not None else GradientReverseLayer()
        self.discriminator_accuracy: float | None = None

    def forward(
        self,
        f_s: torch.Tensor,
        f_t: torch.Tensor,
        w_s: torch.Tensor | None = None,
        w_t: torch.Tensor | None = None,
    ) -> torch.Tensor:
        d = self.discriminator(self.grl(torch.cat([f_s, f_t])))
        d_s, d_t = d[: len(f_s)], d[len(f_s) :]
        self.discriminator_accuracy = _balanced_accuracy(d, len(f_s))
        loss_s = F.binary_cross_entropy_with_logits(
            d_s, torch.ones_like(d_s), weight=None if w_s is None else w_s.view_as(d_s)
        )
        loss_t = F.binary_cross_entropy_with_logits(
            d_t, torch.zeros_like(d_t), weight=None if w_t is None else w_t.view_as(d_t)
        )
        return 0.5 * (loss_s + loss_t)


class MultiLinearMap(nn.Module):
    """``(f, g)`` → the flattened outer product ``g ⊗ f``, ``(N, C·F)``."""

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


class RandomizedMultiLinearMap(nn.Module):
    """``(f, g)`` → ``(f R_f) ⊙ (g R_g) / √d``, ``(N, d)``: an unbiased estimate of the
    multilinear map's inner products in ``d`` dimensions (CDAN paper, Theorem 1).

    ``R_f``, ``R_g`` are drawn once from standard normals (``generator``) and kept as buffers,
    so a checkpoint holds them and a resumed run uses the same map.
    """

    def __init__(
        self,
        features_dim: int,
        num_classes: int,
        output_dim: int = RANDOMIZED_DIM,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.register_buffer("Rf", torch.randn(features_dim, output_dim, generator=generator))
        self.register_buffer("Rg", torch.randn(num_classes, output_dim, generator=generator))
        self.output_dim = int(output_dim)

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (f @ self.Rf) * (g @ self.Rg) / math.sqrt(self.output_dim)


def conditioning_map(
    features_dim: int, num_classes: int, *, generator: torch.Generator | None = None
) -> tuple[nn.Module, int]:
    """The paper's choice of map and its output size: multilinear up to 4096 dimensions,
    randomized to 1024 above."""
    if features_dim * num_classes <= MULTILINEAR_MAX_DIM:
        return MultiLinearMap(), features_dim * num_classes
    return RandomizedMultiLinearMap(
        features_dim, num_classes, RANDOMIZED_DIM, generator=generator
    ), RANDOMIZED_DIM


class ConditionalDomainAdversarialLoss(nn.Module):
    """CDAN's loss of logits ``g`` and features ``f`` of both domains (tllib's argument order).

    ``conditioning``: ``MultiLinearMap()`` (default) or a ``RandomizedMultiLinearMap``; the
    discriminator reads its output. The predictions are detached (the classifier is trained by
    its own loss, the features by the reversed gradient). ``entropy_conditioning``: CDAN+E.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        *,
        conditioning: nn.Module | None = None,
        entropy_conditioning: bool = True,
        grl: GradientReverseLayer | None = None,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.map = conditioning if conditioning is not None else MultiLinearMap()
        self.grl = grl if grl is not None else GradientReverseLayer()
        self.entropy_conditioning = bool(entropy_conditioning)
        self.discriminator_accuracy: float | None = None

    def forward(
        self, g_s: torch.Tensor, f_s: torch.Tensor, g_t: torch.Tensor, f_t: torch.Tensor
    ) -> torch.Tensor:
        f = torch.cat([f_s, f_t])
        g = F.softmax(torch.cat([g_s, g_t]), dim=1).detach()
        d = self.discriminator(self.grl(self.map(f, g)))
        labels = _domain_labels(len(f_s), len(f_t), d)
        self.discriminator_accuracy = _balanced_accuracy(d, len(f_s))
        weight = None
        if self.entropy_conditioning:
            weight = 1.0 + torch.exp(-entropy(g))
            weight = (weight / weight.sum() * len(weight)).view_as(d)
        return F.binary_cross_entropy_with_logits(d, labels, weight=weight)
