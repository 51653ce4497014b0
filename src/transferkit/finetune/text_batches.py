"""Text batches for the fine-tuning engine: tokenize once, pad per batch, pack ids + mask.

The engine moves one tensor per batch (``x.to(device)``), so a batch is packed as
``(B, 2, L)`` int64: token ids and attention mask side by side; ``TextEncoder.forward`` unpacks
it. Training batches are shuffled with the engine's seeded generator; evaluation batches keep
order. Text has no label-preserving augmentation here (``augment`` must be ``none``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch


class TextBatches:
    """``train_epoch(rng)`` / ``eval_batches()`` over tokenized texts and their targets."""

    def __init__(self, texts: Sequence[str], targets: np.ndarray, encoder, *, batch_size: int):
        if len(texts) != len(targets):
            raise ValueError(f"{len(texts)} texts but {len(targets)} targets")
        self.targets = np.asarray(targets, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.tokenizer = encoder.tokenizer
        texts = [t.lower() for t in texts] if encoder.preprocess.lowercase else list(texts)
        encoded = self.tokenizer(texts, truncation=True, max_length=encoder.preprocess.max_length)
        self.input_ids = encoded["input_ids"]
        self.attention_mask = encoded["attention_mask"]

    def __len__(self) -> int:
        return len(self.targets)

    def num_batches(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def _pack(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        padded = self.tokenizer.pad(
            {
                "input_ids": [self.input_ids[i] for i in rows],
                "attention_mask": [self.attention_mask[i] for i in rows],
            },
            return_tensors="pt",
        )
        x = torch.stack([padded["input_ids"], padded["attention_mask"]], dim=1).long()
        return x, torch.from_numpy(self.targets[list(rows)])

    def train_epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = rng.permutation(len(self))
        for start in range(0, len(order), self.batch_size):
            yield self._pack(order[start : start + self.batch_size].tolist())

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self), self.batch_size):
            yield self._pack(range(start, min(start + self.batch_size, len(self))))
