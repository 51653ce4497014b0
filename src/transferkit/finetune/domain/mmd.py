"""Multiple-kernel MMD, the loss of DAN (Long et al., "Learning Transferable Features with Deep
Adaptation Networks", ICML 2015).

The squared maximum mean discrepancy between the source and target feature distributions in
the reproducing kernel Hilbert space of a sum of Gaussian kernels. Each kernel's bandwidth is a
multiple ``α`` of the mean squared distance between the batch's features (tllib's
``GaussianKernel``: ``σ² = α · mean‖x_i - x_j‖²``, ``k = exp(-‖x - y‖² / 2σ²)``; DAN's examples
use α = 2^-3 … 2^1), so the kernels follow the features as training moves them.

Two estimates (Gretton et al., JMLR 2012):

- ``quadratic`` (default): the unbiased estimate over every pair,
  ``mean_{i≠j} k(s_i, s_j) + mean_{i≠j} k(t_i, t_j) - 2 · mean k(s_i, t_j)``; source and target
  batches may differ in size. (tllib adds the constant ``2/(n-1)`` to keep it positive; a
  constant changes no gradient, and without it the value is the estimate itself.)
- ``linear``: DAN's linear-time estimate over disjoint pairs of rows,
  ``mean_i [k(s_2i, s_2i+1) + k(t_2i, t_2i+1) - k(s_2i, t_2i+1) - k(s_2i+1, t_2i)]``, which
  needs as many source as target rows (pytorch-adapt's ``mmd_type="linear"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transferkit.finetune.domain.estimates import ESTIMATES

DAN_ALPHAS = (0.125, 0.25, 0.5, 1.0, 2.0)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a.unsqueeze(1) - b.unsqueeze(0)) ** 2).sum(-1)


def mean_squared_distance(z: torch.Tensor) -> torch.Tensor:
    """``mean_{i,j} ‖z_i - z_j‖²`` over all n² pairs, in O(n·d): ``2 (mean‖z‖² - ‖mean z‖²)``."""
    return 2.0 * (z.pow(2).sum(1).mean() - z.mean(0).pow(2).sum())


class GaussianKernels(nn.Module):
    """The sum of Gaussian kernels whose bandwidths are ``alphas`` times the mean squared
    distance of ``reference`` (detached: the bandwidth is a setting, not something to learn)."""

    def __init__(self, alphas: Sequence[float] = DAN_ALPHAS) -> None:
        super().__init__()
        if not alphas or any(not a > 0 for a in alphas):
            raise ValueError(f"kernel alphas must be positive numbers; got {list(alphas)}")
        self.alphas = tuple(float(a) for a in alphas)

    def bandwidths(self, reference: torch.Tensor) -> list[torch.Tensor]:
        """``σ²`` of each kernel for the features ``reference``."""
        base = mean_squared_distance(reference.detach()).clamp_min(1e-12)
        return [alpha * base for alpha in self.alphas]

    def forward(self, squared: torch.Tensor, sigma2: list[torch.Tensor]) -> torch.Tensor:
        """The summed kernel values of squared distances ``squared``."""
        return sum(torch.exp(-squared / (2.0 * s2)) for s2 in sigma2)


class MultipleKernelMMD(nn.Module):
    """MK-MMD² of ``(n_s, F)`` source and ``(n_t, F)`` target features; see the module doc."""

    def __init__(
        self, kernels: GaussianKernels | None = None, *, estimate: str = "quadratic"
    ) -> None:
        super().__init__()
        if estimate not in ESTIMATES:
            raise ValueError(f"estimate must be one of {', '.join(ESTIMATES)}; got {estimate!r}")
        self.kernels = kernels if kernels is not None else GaussianKernels()
        self.estimate = estimate

    def forward(self, z_s: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
        sigma2 = self.kernels.bandwidths(torch.cat([z_s, z_t]))
        if self.estimate == "linear":
            return self._linear(z_s, z_t, sigma2)
        n_s, n_t = len(z_s), len(z_t)
        if min(n_s, n_t) < 2:
            raise ValueError("the quadratic MMD estimate needs at least 2 rows of each domain")
        k_ss = self.kernels(_squared_distances(z_s, z_s), sigma2)
        k_tt = self.kernels(_squared_distances(z_t, z_t), sigma2)
        k_st = self.kernels(_squared_distances(z_s, z_t), sigma2)
        # the diagonals (a row with itself) are left out: that makes the estimate unbiased
        ss = (k_ss.sum() - k_ss.diagonal().sum()) / (n_s * (n_s - 1))
        tt = (k_tt.sum() - k_tt.diagonal().sum()) / (n_t * (n_t - 1))
        return ss + tt - 2.0 * k_st.mean()

    def _linear(self, z_s: torch.Tensor, z_t: torch.Tensor, sigma2) -> torch.Tensor:
        if z_s.shape != z_t.shape or len(z_s) < 2:
            raise ValueError(
                "the linear MMD estimate needs as many source as target rows, at least 2; got "
                f"{len(z_s)} and {len(z_t)}"
            )
        half = len(z_s) // 2
        s1, s2 = z_s[0 : 2 * half : 2], z_s[1 : 2 * half : 2]
        t1, t2 = z_t[0 : 2 * half : 2], z_t[1 : 2 * half : 2]

        def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.kernels(((a - b) ** 2).sum(-1), sigma2)

        return (k(s1, s2) + k(t1, t2) - k(s1, t2) - k(s2, t1)).mean()
