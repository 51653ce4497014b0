"""L2-SP (Li, Grandvalet & Davoine, ICML 2018): regularise towards the pretrained weights.

Plain weight decay pulls every weight towards zero, i.e. away from what pretraining learned. L2-SP
instead penalises the distance to the starting point for the backbone and keeps ordinary L2 for
the new head, whose starting point means nothing:

    Ω(w) = α/2 · ‖w_backbone − w⁰_backbone‖² + β/2 · ‖w_head‖²

The paper's defaults for fine-tuning are α = 0.1 and β = 0.01 with SGD; here α = 0.01 (the loss is
a batch mean and AdamW rescales gradients). With L2-SP the optimizer's own weight decay is off, so
the two do not fight.
"""

from __future__ import annotations

import torch
from torch import nn

from transferkit.errors import BadInputError
from transferkit.finetune.config import DEFAULT_ALPHA, DEFAULT_BETA
from transferkit.finetune.hooks import EngineHook, EngineState, StepContext
from transferkit.finetune.model import HEAD_PREFIX


class L2SP:
    """The L2-SP penalty for ``model``, with the starting point taken at construction."""

    def __init__(
        self, model: nn.Module, *, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA
    ) -> None:
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not value >= 0:
                raise BadInputError(f"L2-SP {name} must be >= 0; got {value}.")
        self.alpha = float(alpha)
        self.beta = float(beta)
        # the pretrained starting point: a detached copy (training updates weights in place)
        self.reference = {
            name: p.detach().clone()
            for name, p in model.named_parameters()
            if not name.startswith(HEAD_PREFIX)
        }

    def __call__(self, model: nn.Module) -> torch.Tensor:
        """The penalty of the trainable parameters (frozen ones sit at the start anyway)."""
        sp = head = None
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith(HEAD_PREFIX):
                term = p.pow(2).sum()
                head = term if head is None else head + term
            else:
                term = (p - self.reference[name]).pow(2).sum()
                sp = term if sp is None else sp + term
        zero = next(model.parameters()).new_zeros(())
        return 0.5 * self.alpha * (zero if sp is None else sp) + 0.5 * self.beta * (
            zero if head is None else head
        )


class L2SPHook(EngineHook):
    """L2-SP as an engine hook: the penalty is an extra loss term, and weight decay goes off.

    The starting point is the model as training starts (the pretrained backbone); a resumed run
    rebuilds the same model before its checkpoint is restored, so it needs no saved state.
    """

    replaces_weight_decay = True

    def __init__(self, *, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA) -> None:
        self.alpha = alpha
        self.beta = beta
        self.penalty: L2SP | None = None

    def on_train_start(self, run: EngineState) -> None:
        self.penalty = L2SP(run.model, alpha=self.alpha, beta=self.beta)

    def extra_loss(self, step: StepContext) -> torch.Tensor:
        return self.penalty(step.run.model)
