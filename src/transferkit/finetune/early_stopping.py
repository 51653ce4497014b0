"""Early stopping on a validation metric that keeps, restores and checkpoints the best weights."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from transferkit.errors import BadInputError


class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta``.

    ``step`` keeps a CPU copy of the best ``state_dict``; ``restore`` loads it back. The whole
    state (scores, counters and best weights) round-trips through ``state_dict`` so a resumed run
    stops exactly when the uninterrupted one would.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, mode: str = "max") -> None:
        if not isinstance(patience, int) or patience < 1:
            raise BadInputError(f"patience must be an integer >= 1; got {patience!r}.")
        if not min_delta >= 0:
            raise BadInputError(f"min_delta must be >= 0; got {min_delta!r}.")
        if mode not in ("max", "min"):
            raise BadInputError(f"mode must be 'max' or 'min'; got {mode!r}.")
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = mode
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.epochs_seen = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def is_improvement(self, metric: float) -> bool:
        """Whether ``metric`` beats the best score by more than ``min_delta``."""
        if math.isnan(metric):
            return False
        if self.best_score is None:
            return True
        if self.mode == "max":
            return metric > self.best_score + self.min_delta
        return metric < self.best_score - self.min_delta

    def step(self, metric: float, model: nn.Module) -> bool:
        """Record one epoch's validation ``metric``; return True when training should stop."""
        metric = float(metric)
        if self.is_improvement(metric):
            self.best_score = metric
            self.best_epoch = self.epochs_seen
            self.bad_epochs = 0
            # a CPU clone: later steps update the live tensors in place
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        else:
            self.bad_epochs += 1
        self.epochs_seen += 1
        return self.bad_epochs >= self.patience

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row brought no improvement."""
        return self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best weights seen into ``model`` (no-op before the first ``step``)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return model

    def state_dict(self) -> dict[str, Any]:
        """Settings, counters and best weights (``best_state``: name -> CPU tensor, or None)."""
        return {
            "patience": self.patience,
            "min_delta": self.min_delta,
            "mode": self.mode,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "epochs_seen": self.epochs_seen,
            "best_state": None if self.best_state is None else dict(self.best_state),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.patience = int(state["patience"])
        self.min_delta = float(state["min_delta"])
        self.mode = str(state["mode"])
        self.best_score = None if state["best_score"] is None else float(state["best_score"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])
        self.epochs_seen = int(state["epochs_seen"])
        best = state["best_state"]
        self.best_state = None if best is None else {k: v.cpu() for k, v in best.items()}
