"""Audio batches for the fine-tuning engine: decoded clips cut into the encoder's windows.

Each clip is decoded and resampled once (kept in memory up to ``cache_mb``, re-decoded beyond),
then cut into the network's window inputs (``AudioBackbone.window_inputs``). Training takes at
most ``train_windows`` windows of a clip, drawn at random each epoch — long clips cost a bounded
amount per step and each epoch sees other parts of them; evaluation takes at most
``eval_windows``, evenly spaced (all of them for clips no longer than that, which covers one-shot
sounds and spoken words; the model bundle's predictions always pool every window).

``augment``: ``light`` changes each training clip's level (±6 dB) and start (up to a quarter
second later); ``strong`` doubles both ranges and adds noise 30 dB below the clip. They keep the
label: a sound is the same sound louder or a little later.

Batches are ``(B, K, *window)`` float32 padded with NaN (see ``AudioBackbone.forward``), prepared
one ahead in a background thread that alone draws from the epoch's generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from transferkit.finetune.prefetch import prefetched

AUDIO_AUGMENT = {  # level -> (max gain change in dB, max start delay in seconds, noise SNR dB)
    "none": (0.0, 0.0, None),
    "light": (6.0, 0.25, None),
    "strong": (12.0, 0.5, 30.0),
}


class AudioBatches:
    """``train_epoch(rng)`` / ``eval_batches()`` of ``(windows, targets)`` for ``backbone``."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        targets: np.ndarray,
        backbone,
        *,
        batch_size: int,
        augment: str = "light",
        train_windows: int = 4,
        eval_windows: int = 16,
        cache_mb: float = 512.0,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        if augment not in AUDIO_AUGMENT:
            raise ValueError(f"augment must be one of {', '.join(AUDIO_AUGMENT)}; got {augment!r}")
        self.paths = [Path(p) for p in paths]
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        self.backbone = backbone
        self.rate = int(backbone.preprocess.sample_rate)
        self.batch_size = int(batch_size)
        self.augment = augment
        self.train_windows = int(train_windows)
        self.eval_windows = int(eval_windows)
        self._cache: dict[int, np.ndarray] = {}
        self._cache_left = int(cache_mb * 2**20)

    def __len__(self) -> int:
        return len(self.paths)

    def num_batches(self) -> int:
        return math.ceil(len(self) / self.batch_size)

    def _wave(self, index: int) -> np.ndarray:
        from transferkit.data.audio import decode_audio

        wave = self._cache.get(index)
        if wave is None:
            # unreadable files were dropped before training: a failure here is a real error
            wave = decode_audio(self.paths[index], self.rate)
            if wave.nbytes <= self._cache_left:
                self._cache[index] = wave
                self._cache_left -= wave.nbytes
        return wave

    def _augmented(self, wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gain_db, delay_s, snr_db = AUDIO_AUGMENT[self.augment]
        if not gain_db:
            return wave
        # a later start, never cutting a short clip below half its length
        delay = int(rng.integers(0, max(1, min(int(delay_s * self.rate), len(wave) // 2) + 1)))
        out = wave[delay:] * np.float32(10 ** (rng.uniform(-gain_db, gain_db) / 20))
        if snr_db is not None:
            rms = float(np.sqrt(np.mean(np.square(out, dtype=np.float64)))) or 1e-4
            noise = rng.standard_normal(len(out)).astype(np.float32)
            out = out + noise * np.float32(rms * 10 ** (-snr_db / 20))
        return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)

    def _windows(self, wave: np.ndarray, rng: np.random.Generator | None) -> list[np.ndarray]:
        windows = self.backbone.window_inputs(wave)
        limit = self.train_windows if rng is not None else self.eval_windows
        if len(windows) <= limit:
            return windows
        if rng is not None:
            keep = np.sort(rng.choice(len(windows), size=limit, replace=False))
        else:
            keep = np.unique(np.linspace(0, len(windows) - 1, limit).round().astype(int))
        return [windows[i] for i in keep]

    def _batch(self, rows: np.ndarray, rng: np.random.Generator | None):
        clips = []
        for i in rows:
            wave = self._wave(int(i))
            if rng is not None:
                wave = self._augmented(wave, rng)
            clips.append(self._windows(wave, rng))
        return pack_windows(clips), self.targets[torch.as_tensor(rows)]

    def train_epoch(self, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = rng.permutation(len(self))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return prefetched(chunks, lambda chunk: self._batch(chunk, rng))

    def eval_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = np.arange(len(self))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return prefetched(chunks, lambda chunk: self._batch(chunk, None))


def pack_windows(clips: list[list[np.ndarray]]) -> torch.Tensor:
    """Clips' window inputs -> one ``(B, K, *window)`` float32 tensor, NaN where a clip has
    fewer windows than ``K`` or a window is shorter than the longest along an axis."""
    k = max(len(c) for c in clips)
    shape = np.max([w.shape for c in clips for w in c], axis=0)
    out = np.full((len(clips), k, *shape), np.nan, dtype=np.float32)
    for b, windows in enumerate(clips):
        for j, w in enumerate(windows):
            out[(b, j, *(slice(0, n) for n in w.shape))] = w
    return torch.from_numpy(out)
