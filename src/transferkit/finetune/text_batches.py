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
        encoded = encoder.token_ids(texts)
        self._set(encoded["input_ids"], encoded["attention_mask"], targets, encoder.tokenizer)
        self.batch_size = int(batch_size)

    @classmethod
    def from_ids(
        cls, input_ids: Sequence[Sequence[int]], targets: np.ndarray, tokenizer, *, batch_size
    ) -> TextBatches:
        """Batches of texts tokenized already (``text_windows``: the windows of long texts),
        every token of each attended to."""
        if len(input_ids) != len(targets):
            raise ValueError(f"{len(input_ids)} token lists but {len(targets)} targets")
        batches = cls.__new__(cls)
        masks = [[1] * len(ids) for ids in input_ids]
        batches._set([list(ids) for ids in input_ids], masks, targets, tokenizer)
        batches.batch_size = int(batch_size)
        return batches

    def _set(self, input_ids, attention_mask, targets, tokenizer) -> None:
        self.targets = np.asarray(targets, dtype=np.int64)
        self.tokenizer = tokenizer
        self.input_ids = input_ids
        self.attention_mask = attention_mask

    def __len__(self) -> int:
        return len(self.targets)

    def mean_tokens(self, owner: np.ndarray | None = None) -> float:
        """Tokens an epoch reads of a text, on average: each row's length, or, with ``owner``
        (the text each row is a window of), the mean of each text's windows' lengths (an epoch
        reads one of them)."""
        lengths = np.asarray([len(ids) for ids in self.input_ids], dtype=np.float64)
        if not len(lengths):
            return 0.0
        if owner is None:
            return float(lengths.mean())
        owner = np.asarray(owner, dtype=np.int64)
        per_text = np.bincount(owner, weights=lengths) / np.bincount(owner)
        return float(per_text.mean())

    def num_batches(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def pack(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The packed ``(B, 2, L)`` ids + mask batch of ``rows`` and their targets."""
        padded = self.tokenizer.pad(
            {
                "input_ids": [self.input_ids[i] for i in rows],
                "attention_mask": [self.attention_mask[i] for i in rows],
            },
            return_tensors="pt",
        )
        x = torch.stack([padded["input_ids"], padded["attention_mask"]], dim=1).long()
        return x, torch.from_numpy(self.targets[list(rows)])

    def epoch_rows(self, rng: np.random.Generator) -> Iterator[list[int]]:
        """The rows of each shuffled training batch of one epoch."""
        order = rng.permutation(len(self))
        for start in range(0, len(order), self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def train_epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for rows in self.epoch_rows(rng):
            yield self.pack(rows)

    def length_chunks(self, rows: Sequence[int], size: int) -> list[list[int]]:
        """``rows`` sorted by token length and cut into chunks of ``size``: each chunk padded
        to its own longest text wastes less compute on padding than one batch padded to the
        longest of all (a loss over the whole batch can concatenate the chunks' outputs)."""
        order = sorted(rows, key=lambda row: len(self.input_ids[row]))
        return [order[i : i + size] for i in range(0, len(order), max(1, size))]

    def by_length(self) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(rows, packed ids + mask) over every text, similar lengths together (little
        padding): for passes whose order does not matter."""
        for rows in self.length_chunks(range(len(self)), self.batch_size):
            yield rows, self.pack(rows)[0]

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(self), self.batch_size):
            yield self.pack(range(start, min(start + self.batch_size, len(self))))
