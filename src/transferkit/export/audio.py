"""Audio graphs: windows of the waveform in, spectrogram, network and pooling inside the graph.

``aisfx`` (pretrained or fine-tuned) exports: its log-mel front end is a fixed linear map
followed by a power, a matrix product and a logarithm, so the graph computes it from raw
samples (the DFT as a strided convolution with the window folded into its kernel). Outside the
graph stay decoding, the mono mix, resampling and cutting the clip into overlapping windows of
samples, each window holding exactly the samples its 100 spectrogram frames read — plain numpy
the runtime repeats from ``inputs`` — and inside it the mean and standard deviation over the
clip's windows (``window_mask``) and the head.

The other audio backbones are refused: ``speaker_ge2e`` scales each clip's volume and cuts
partials by a coverage rule before a reflect-padded spectrogram, ``speech_embedding`` is two
ONNX graphs with int16 quantisation between them, ``mfcc_stats`` takes decibels relative to the
loudest bin of the whole clip: each needs per-clip logic of its own to be exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.errors import BadInputError
from transferkit.export.graphs import ModalityGraph, register_graph
from transferkit.modalities import get_modality
from transferkit.modalities.audio import AudioModality

_EXPORTABLE = "aisfx"


class AisfxWindowsToEmbedding(nn.Module):
    """(B, K, window samples) + (B, K) mask -> (B, 1024): log-mel, CNN, mean+std over windows."""

    def __init__(self, encoder):
        super().__init__()
        from transferkit.backbones.audio_features import (
            AISFX_HOP,
            AISFX_N_FFT,
            AISFX_N_MELS,
            AISFX_SPEC_MAX,
            AISFX_SR,
            hann,
            htk_unit_sum_filterbank,
        )
        from transferkit.backbones.audio_nets import AisfxCnn

        # a plain copy of the network: the encoder's may run on oneDNN tensors, which do not
        # trace
        self.net = AisfxCnn()
        self.net.load_state_dict(encoder.net.state_dict())
        self.net.eval()
        n, bins = AISFX_N_FFT, AISFX_N_FFT // 2 + 1
        # rfft of a windowed frame = frame @ (window * cos), frame @ (-window * sin); built in
        # float64 from the float32 window the numpy front end multiplies by
        t = np.arange(n, dtype=np.float64)
        f = np.arange(bins, dtype=np.float64)[:, None]
        window = hann(n, periodic=False).astype(np.float64)
        angle = 2.0 * np.pi * ((f * t) % n) / n
        kernel = np.concatenate([window * np.cos(angle), -window * np.sin(angle)])
        self.register_buffer("dft", torch.from_numpy(kernel.astype(np.float32))[:, None, :])
        fb = htk_unit_sum_filterbank(AISFX_SR, n, AISFX_N_MELS)
        self.register_buffer("mel_t", torch.from_numpy(np.ascontiguousarray(fb.T)))
        self.bins, self.hop = bins, AISFX_HOP
        self.spec_max = float(AISFX_SPEC_MAX)

    def forward(self, windows: torch.Tensor, window_mask: torch.Tensor) -> torch.Tensor:
        batch, count, samples = windows.shape
        spec = nn.functional.conv1d(windows.reshape(-1, 1, samples), self.dft, stride=self.hop)
        power = spec[:, : self.bins] ** 2 + spec[:, self.bins :] ** 2  # (BK, bins, frames)
        mel = power.transpose(1, 2) @ self.mel_t  # (BK, frames, mels)
        log_mel = torch.log10(mel * 1e4 + 1.0) / self.spec_max
        frames = self.net.forward_dense(log_mel).reshape(batch, count, -1)
        mask = window_mask.unsqueeze(-1)
        n = mask.sum(dim=1)
        mean = (frames * mask).sum(dim=1) / n
        var = (((frames - mean.unsqueeze(1)) ** 2) * mask).sum(dim=1) / n
        return torch.cat([mean, torch.sqrt(var)], dim=1)


@register_graph
class AudioGraph(ModalityGraph):
    modality = AudioModality.name
    input_names = ("windows", "window_mask")
    varying_axes = {"windows": {1: "windows"}, "window_mask": {1: "windows"}}
    int8_calibrated = True

    def float_nodes(self, nodes) -> list[str]:
        # only the CNN is quantised: 8-bit samples or spectra would put a noise floor at
        # -48 dB under every quiet sound the log-mel makes visible
        front = [n.name for n in nodes if not n.name.startswith("/embedder/net/")]
        net = [n for n in nodes if n.name.startswith("/embedder/net/")]
        return front + super().float_nodes(net)

    def check(self) -> None:
        from transferkit.backbones.audio_encoders import AisfxEncoder

        encoder = getattr(self.backbone.materialize(), "encoder", None)
        if not isinstance(encoder, AisfxEncoder):
            raise BadInputError(
                f"{self.backbone.name} cannot be exported to one ONNX graph yet: its front end "
                "works on each whole clip (volume scaling, partials chosen by coverage, levels "
                "relative to the clip's loudest bin, or a second quantised graph) or its network "
                "runs in another runtime (birdnet: TFLite), which a faithful graph would have to "
                f"repeat exactly; audio backbones that export: "
                f"{_EXPORTABLE}. Re-train with --backbone aisfx to deploy with ONNX."
            )
        from transferkit.backbones.audio_features import AISFX_HOP, AISFX_N_FFT

        self.encoder = encoder
        self.hop = AISFX_HOP
        self.lead = AISFX_N_FFT // 2  # the first frame is centred on the first sample
        # window b holds the samples of frames 50 b .. 50 b + 99 (each n_fft long, hop apart)
        self.window = (encoder.block_frames - 1) * AISFX_HOP + AISFX_N_FFT
        self.step = encoder.block_hop * AISFX_HOP

    def embedder(self) -> nn.Module:
        return AisfxWindowsToEmbedding(self.encoder).eval()

    def example(self) -> tuple[torch.Tensor, ...]:
        generator = torch.Generator().manual_seed(0)
        windows = torch.rand(2, 2, self.window, generator=generator) - 0.5
        return windows, torch.tensor([[1.0, 1.0], [1.0, 0.0]])

    def inputs_spec(self) -> dict[str, Any]:
        rate = self.backbone.preprocess.sample_rate
        frames, hop = self.encoder.block_frames, self.encoder.block_hop
        return {
            **get_modality(self.modality).export_inputs(self.backbone),
            "names": list(self.input_names),
            "windows": {"dtype": "float32", "shape": [None, None, self.window]},
            "window_mask": {"dtype": "float32", "shape": [None, None]},
            "frame_hop_samples": self.hop,
            "frames_per_window": frames,
            "window_hop_frames": hop,
            "window_samples": self.window,
            "hop_samples": self.step,
            "leading_zeros": self.lead,
            "steps": [
                "decode with soundfile.read(dtype='float32', always_2d=True); refuse a clip "
                "with no samples, NaN/inf samples, or a peak below 1e-4 (silent)",
                "mono: the mean of the channels",
                f"resample to {rate} Hz with soxr.resample(x, rate, {rate}, quality='HQ') "
                "when the file's rate differs (keep the first sample if that leaves none)",
                f"n = len(x); count = max(1, (ceil(n / {self.hop}) + 1 - {frames}) // {hop} + 1)",
                f"padded = {self.lead} zeros, then x, then zeros up to "
                f"(count - 1) * {self.step} + {self.window} samples (x cut there if longer)",
                f"window i = padded[i * {self.step} : i * {self.step} + {self.window}], i < count",
                "a batch: windows (B, K, window_samples) with K the largest count, the missing "
                "windows zeros; window_mask (B, K) 1.0 for a clip's windows, 0.0 after them",
            ],
            "pooling": "inside the graph: mean and standard deviation over the masked windows",
        }

    def prepare(self, sample) -> np.ndarray:
        from transferkit.data.audio import decode_audio

        wave = decode_audio(sample.raw, self.backbone.preprocess.sample_rate)
        return self.cut(wave)

    def cut(self, wave: np.ndarray) -> np.ndarray:
        """(count, window_samples) float32 windows of a decoded mono clip, cut by the runtime's
        own functions (the one implementation of what ``inputs`` states)."""
        from transferkit.runtime.audio import cut_windows, window_count

        count = window_count(
            len(wave),
            frame_hop=self.hop,
            frames_per_window=self.encoder.block_frames,
            window_hop=self.encoder.block_hop,
        )
        return cut_windows(
            wave, count, window_samples=self.window, hop_samples=self.step, leading_zeros=self.lead
        )

    def batch(self, items: list[np.ndarray]) -> dict[str, np.ndarray]:
        from transferkit.runtime.audio import batch_windows

        return batch_windows(items)
