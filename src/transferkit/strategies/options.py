"""Command-line options that several strategies share (a flag has one meaning and one help)."""

from __future__ import annotations

from transferkit.strategies.base import Option

EPOCHS = Option(
    "--epochs",
    "epochs",
    int,
    "training epochs (default 12 for finetune; contrastive: 16, or 8 steps when the texts fit "
    "one batch)",
    valid=lambda v: v >= 1,
    must_be="at least 1",
)
LR = Option(
    "--lr",
    "lr",
    float,
    "head learning rate of stage 2; lower layer groups get less (default: chosen by the LR "
    "finder for finetune, 2e-3 for scratch, 1e-4 for contrastive)",
    valid=lambda v: v > 0,
    must_be="greater than 0",
)
