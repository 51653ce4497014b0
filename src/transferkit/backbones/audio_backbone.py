"""A loaded audio encoder behind the backbone interface: clips in, pooled embeddings out.

Extraction calls ``embed_many(waves)`` (numpy, no gradients). Fine-tuning calls ``forward`` on a
batch of window inputs, because an encoder whose network is a torch module (``encoder.net``) can
train: the module then owns that network, so its ``state_dict`` holds exactly the weights that
fine-tuning changes and a bundle stores.

A fine-tuning batch is ``(B, K, *window)`` float: the encoder's inputs for up to ``K`` windows of
each of ``B`` clips (``encoder.window_inputs``), padded with NaN — windows a clip does not have,
and samples past the end of a variable-length window. No real input is NaN (decoding refuses
non-finite samples), so padding needs no separate mask tensor and the engine moves one tensor
per batch as it does for images. The pooling is extraction's: mean and standard deviation of the
clip's frame embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.backbones.base import TrainedIdentity


class AudioBackbone(TrainedIdentity, nn.Module):
    """``embed(wave)`` -> (pooled embedding, number of windows); ``forward`` for fine-tuning."""

    def __init__(self, spec, encoder: Any, preprocess, weights=None):
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.encoder = encoder
        self.preprocess = preprocess
        # mean (+ std) of the encoder's per-window embeddings (hub models learn their width late)
        self.pool_std = preprocess.pooling == "mean+std"
        self.num_features = int(spec.embedding_dim or (1 + self.pool_std) * encoder.frame_dim)
        net = getattr(encoder, "net", None)
        # registered as a submodule: parameters, state_dict, .to(device) and train() reach it
        self.net = net if isinstance(net, nn.Module) else None
        self.weights_sha256 = getattr(weights, "sha256", None)
        self.weights_source = getattr(weights, "source", "random init (pretrained=False)")

    @property
    def trainable(self) -> bool:
        return self.net is not None and hasattr(self.encoder, "window_inputs")

    def materialize(self) -> AudioBackbone:
        return self

    def train(self, mode: bool = True) -> AudioBackbone:
        super().train(mode)
        hook = getattr(self.encoder, "on_mode_change", None)
        if hook is not None:  # e.g. aisfx's oneDNN copy of the weights, stale once they train
            hook(mode)
        return self

    # -- extraction ---------------------------------------------------------------------------
    def embed(self, wave: np.ndarray) -> tuple[np.ndarray, int]:
        """Mean and std over the clip's windows (2*D,) of a mono clip at the spec's rate (the
        mean alone, (D,), for ``pooling="mean"``), and the number of windows."""
        return self.embed_many([wave])[0]

    def embed_many(self, waves: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """``embed`` of several clips; encoders that batch across clips do so."""
        if hasattr(self.encoder, "frames_many"):
            all_frames = self.encoder.frames_many(waves)
        else:
            all_frames = [self.encoder.frames(w) for w in waves]
        out = []
        for frames in all_frames:
            frames = np.asarray(frames, dtype=np.float32)
            if frames.ndim != 2 or len(frames) == 0:
                raise ValueError(f"{self.name}: the encoder returned no windows")
            pooled = frames.mean(axis=0)
            if self.pool_std:
                pooled = np.concatenate([pooled, frames.std(axis=0)])
            out.append((pooled.astype(np.float32), len(frames)))
        return out

    # -- fine-tuning --------------------------------------------------------------------------
    def window_inputs(self, wave: np.ndarray) -> list[np.ndarray]:
        """The network's input for each window of a clip (what ``forward`` gets, unpadded)."""
        if not self.trainable:
            raise TypeError(f"{self.name} has no torch network to fine-tune")
        return list(self.encoder.window_inputs(wave))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, *window) NaN-padded window inputs -> (B, num_features) pooled embeddings."""
        if not self.trainable:
            raise TypeError(f"{self.name} has no torch network to fine-tune")
        real = ~torch.isnan(x.flatten(2)).all(dim=2)  # (B, K): windows that exist
        counts = real.sum(dim=1).tolist()
        if min(counts) == 0:
            raise ValueError("every clip in a batch needs at least one window")
        if getattr(self.encoder, "fixed_window_shape", True):
            # one network pass over every real window of the batch
            frames = self.encoder.net_frames(x[real])
            per_clip = torch.split(frames, counts)
        else:  # variable-length windows (hub models): one pass per window, padding stripped
            per_clip = []
            for clip, n in zip(x, counts):
                parts = [self.encoder.net_frames(_strip_nan(w)[None]) for w in clip[:n]]
                per_clip.append(torch.cat([p.reshape(-1, p.shape[-1]) for p in parts]))
        return torch.stack([_mean_std(f.float()) for f in per_clip])

    def layer_groups(self) -> list[list[str]]:
        """The network's parameter groups from input to output, for gradual unfreezing."""
        if not self.trainable:
            raise TypeError(f"{self.name} has no torch network to fine-tune")
        return [[f"net.{n}" for n in group] for group in self.encoder.layer_groups()]

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_features={self.num_features}"


def _mean_std(frames: torch.Tensor) -> torch.Tensor:
    """Extraction's pooling, differentiable: a one-window clip has std 0, whose square root
    would send an infinite gradient back, so the variance is floored far below float noise."""
    mean = frames.mean(dim=0)
    var = ((frames - mean) ** 2).mean(dim=0)
    return torch.cat([mean, var.clamp_min(1e-12).sqrt()])


def _strip_nan(window: torch.Tensor) -> torch.Tensor:
    """A variable-length window without its NaN padding along the first axis."""
    keep = ~torch.isnan(window.reshape(window.shape[0], -1)).all(dim=1)
    return window[keep]
