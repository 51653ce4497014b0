"""Windows of a long text for the pair loss: a different part of it each epoch, same cost.

Contrastive's pair loss reads at most ``pair_max_length`` tokens of a text (per-step memory
grows with it; the default, 256, is MiniLM's whole reading, so windows matter to encoders that
read 512 tokens). Always reading a text's first tokens would leave the rest of what
the head's embeddings read unseen by the loss. Here each text, as the encoder reads it, is cut
into consecutive windows of ``max_length`` tokens (its special tokens around each, the last
window ending at the text's end), and every epoch each text is read through one of its windows
picked at random: the cost of a step is that of the first-tokens reading, and over the epochs
the loss sees the whole of what the head reads.

A text that fits one window is that window, token for token the capped reading; and window
picks come from their own generator, so on texts that all fit (short-text sentiment) the
batches, and so the trained model, are exactly those of the first-tokens reading.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def _wrapping(ids: list[int], empty: list[int]) -> tuple[int, int] | None:
    """(how many tokens come before, how many after) a text's own in ``ids``: the empty text's
    ids split where ``ids`` starts with the first part and ends with the second (a BERT-style
    [CLS] ... [SEP], RoBERTa's <s> ... </s>, a prompt's tokens before); None when no split fits."""
    for cut in range(len(empty), -1, -1):
        head, tail = empty[:cut], empty[cut:]
        if len(ids) >= len(empty) and ids[:cut] == head and ids[len(ids) - len(tail) :] == tail:
            return len(head), len(tail)
    return None


def split_windows(
    input_ids: Sequence[Sequence[int]], empty: Sequence[int], max_length: int
) -> tuple[list[list[int]], np.ndarray] | None:
    """(the windows' token ids, the text each window belongs to), texts in order and each
    text's windows in order; ``empty``: the tokenizer's ids of the empty text (the special
    tokens around every text). A text that fits ``max_length`` is its one window. None when a
    longer text is not wrapped in those tokens (a tokenizer this cannot follow: the caller
    reads every text's first tokens instead)."""
    empty = list(empty)
    windows: list[list[int]] = []
    owner: list[int] = []
    for text, ids in enumerate(input_ids):
        ids = list(ids)
        if len(ids) <= max_length:
            windows.append(ids)
            owner.append(text)
            continue
        wrap = _wrapping(ids, empty)
        width = max_length - sum(wrap) if wrap else 0
        if width < 1:
            return None
        before, inner = ids[: wrap[0]], ids[wrap[0] : len(ids) - wrap[1]]
        after = ids[len(ids) - wrap[1] :]
        starts = list(range(0, len(inner) - width, width)) + [len(inner) - width]
        for start in starts:
            windows.append(before + inner[start : start + width] + after)
            owner.append(text)
    return windows, np.asarray(owner, dtype=np.int64)


class WindowPicker:
    """Each epoch, every text's window: one of its windows at random (its own generator)."""

    def __init__(self, owner: np.ndarray, seed: int):
        self.owner = np.asarray(owner, dtype=np.int64)
        n_texts = int(self.owner.max()) + 1 if len(self.owner) else 0
        self.first = np.searchsorted(self.owner, np.arange(n_texts))
        self.count = np.bincount(self.owner, minlength=n_texts)
        self.rng = np.random.default_rng([seed, 0x77696E])  # "win": apart from the batches'

    def __len__(self) -> int:
        return len(self.count)

    def windowed(self) -> int:
        """How many texts have more than one window."""
        return int((self.count > 1).sum())

    def epoch_windows(self) -> np.ndarray:
        """The window row of each text for one epoch (texts with one window: that one, drawing
        nothing)."""
        rows = self.first.copy()
        many = np.flatnonzero(self.count > 1)
        if len(many):
            rows[many] += self.rng.integers(0, self.count[many])
        return rows

    def epoch_rows(self, rng: np.random.Generator, batch_size: int) -> Iterator[list[int]]:
        """The window rows of each shuffled batch of one epoch: the texts shuffled by ``rng``
        as ``TextBatches.epoch_rows`` shuffles them, each read through this epoch's window."""
        windows = self.epoch_windows()
        order = rng.permutation(len(self))
        for start in range(0, len(order), batch_size):
            yield windows[order[start : start + batch_size]].tolist()
