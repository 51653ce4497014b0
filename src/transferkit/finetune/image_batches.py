"""Image batches for the training loop: decoded, augmented and normalised, one batch ahead.

Batches are prepared one ahead in a background thread (``prefetch.py``). Randomness — the
shuffle and every augmentation — comes from the ``numpy.random.Generator`` passed to
``train_epoch`` and is drawn by that one thread in a fixed order, so a seeded run and a resumed
run see exactly the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from transferkit.backbones.preprocess import ImagePreprocess, crop_pixels
from transferkit.data.images import open_image
from transferkit.finetune.augment import training_transform
from transferkit.finetune.prefetch import prefetched


class ImageBatches:
    """``(x, y)`` batches of ``paths``: ``x`` float ``(B, 3, S, S)`` normalised, channels-last."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        targets: Sequence[int] | np.ndarray,
        preprocess: ImagePreprocess,
        *,
        augment: str = "light",
        batch_size: int = 32,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        self.paths = [Path(p) for p in paths]
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        self.preprocess = preprocess
        self.augment = augment
        self.batch_size = int(batch_size)
        self._transform = training_transform(preprocess, augment)
        # normalisation in 0..255 units: (pixel - 255·mean) / (255·std)
        self._mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(preprocess.std, dtype=torch.float32).view(1, 3, 1, 1) * 255

    def __len__(self) -> int:
        """Number of examples."""
        return len(self.paths)

    def num_batches(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def _to_tensor(self, pixels: list[np.ndarray]) -> torch.Tensor:
        # NHWC uint8 → NCHW view with channels-last strides, the fast layout for CPU convolutions
        x = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float()
        return (x - self._mean) / self._std

    def _open(self, index: int):
        # JPEGs decode at a reduced scale that still covers the resize; grey stays 1 channel
        return open_image(
            self.paths[index], target_size=self.preprocess.resize_size, keep_grey=True
        )

    def _train_batch(self, order: np.ndarray, rng: np.random.Generator):
        pixels = [self._transform(self._open(i), rng) for i in order]
        return self._to_tensor(pixels), self.targets[torch.as_tensor(order)]

    def _eval_batch(self, order: np.ndarray):
        pixels = [crop_pixels(self._open(i), self.preprocess) for i in order]
        return self._to_tensor(pixels), self.targets[torch.as_tensor(order)]

    def train_epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One shuffled, augmented pass; draws from ``rng`` only (in the prefetch thread)."""
        order = rng.permutation(len(self.paths))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # the generator is used by one thread at a time, strictly in batch order
        return prefetched(chunks, lambda chunk: self._train_batch(chunk, rng))

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every example once, in order, with the evaluation geometry (never augmented)."""
        order = np.arange(len(self.paths))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return prefetched(chunks, self._eval_batch)
