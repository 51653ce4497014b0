"""A tiny conv net with layer groups, shared by the fine-tuning engine tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TinyNet(nn.Module):
    """Stem, two conv blocks and a linear head on 8x8 inputs.

    ``block2_norm="layer"`` gives the last block a LayerNorm (norm weights other than BN);
    ``dropout`` puts a Dropout in the head (randomness a resume must reproduce).
    """

    def __init__(self, classes: int = 3, *, block2_norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        norm2 = nn.BatchNorm2d(8) if block2_norm == "batch" else nn.LayerNorm([8, 2, 2])
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.block1 = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6))
        self.block2 = nn.Sequential(nn.Conv2d(6, 8, 3, stride=2, padding=1), norm2)
        head = [nn.Flatten()] + ([nn.Dropout(dropout)] if dropout else [])
        self.head = nn.Sequential(*head, nn.Linear(8 * 2 * 2, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.block2(F.relu(self.block1(F.relu(self.stem(x)))))))


def tiny_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names grouped stem → block1 → block2 (the head belongs to no group)."""
    return [
        [n for n, _ in model.named_parameters() if n.startswith(f"{p}.")]
        for p in ("stem", "block1", "block2")
    ]
