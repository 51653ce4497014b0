"""The gradient reversal layer of DANN and its warm-up schedule (Ganin & Lempitsky, ICML 2015).

Forward it is the identity; backward it multiplies the gradient by ``-coefficient``, so the
features are trained to make the domain discriminator behind it fail while the discriminator
itself is trained to succeed, in one backward pass. The coefficient rises from 0 to 1 with the
training progress ``p`` as ``2 / (1 + exp(-10 p)) - 1``: early on the discriminator's gradient
is noise, and reversing it at full strength would damage features the classifier still needs.

Unlike tllib's ``WarmStartGradientReverseLayer``, the layer keeps no step counter: whoever owns
the training loop sets ``coefficient`` from its own (checkpointed) progress.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.autograd import Function


def warm_up_coefficient(
    progress: float, *, gamma: float = 10.0, low: float = 0.0, high: float = 1.0
) -> float:
    """``low + (high - low) · (2 / (1 + exp(-gamma · p)) - 1)`` at progress ``p`` in [0, 1]
    (the paper's schedule with its gamma = 10)."""
    p = min(max(float(progress), 0.0), 1.0)
    return low + (high - low) * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


class _ReverseGradient(Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.neg() * ctx.coefficient, None


class GradientReverseLayer(nn.Module):
    """Identity forward, gradient times ``-coefficient`` backward."""

    def __init__(self, coefficient: float = 1.0) -> None:
        super().__init__()
        self.coefficient = float(coefficient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self.coefficient)

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient:.4g}"
