"""Frozen pretrained audio encoders with one small interface (``AudioEncoder``).

Each encoder cuts a mono clip at its own sample rate into the windows it was trained on and
returns one embedding per window; ``pool`` turns those into a fixed clip vector (mean and std).

* ``AisfxEncoder``: aisfx, the ISMIR 2022 sound-effects CNN (44.1 kHz, 2.32 s windows, 512-d).
* ``SpeakerEncoder``: resemblyzer's GE2E speaker encoder (16 kHz, 1.6 s partials, 256-d).
* ``SpeechEmbeddingEncoder``: Google's speech_embedding as shipped (ONNX) by openWakeWord
  (16 kHz, 0.775 s windows every 80 ms, 96-d).
* ``MfccStatsEncoder``: 20 MFCCs and their deltas per frame, no weights (the baseline).

Only the weight files of those packages are used, never their code (which imports librosa,
essentia or webrtcvad). The constructors take explicit, already verified paths; ``PACKAGED_FILES``
says where the packages ship them. torch and onnxruntime are imported by the constructors only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from transferkit.backbones.audio_features import (
    AISFX_HOP,
    AISFX_SPEC_MAX,
    AISFX_SR,
    MFCC_HOP,
    MFCC_N_COEFFS,
    MFCC_N_FFT,
    SPEAKER_HOP,
    SPEAKER_SR,
    aisfx_log_mel,
    mfcc_with_deltas,
    speaker_mel,
)

# key -> (distribution, path inside site-packages, sha256) of the shipped weight files
PACKAGED_FILES: dict[str, tuple[str, str, str]] = {
    "aisfx": (
        "aisfx",
        "aisfx/models/checkpoint.pth",
        "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5",
    ),
    "resemblyzer": (
        "resemblyzer",
        "resemblyzer/pretrained.pt",
        "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
    ),
    "openwakeword_melspectrogram": (
        "openwakeword",
        "openwakeword/resources/models/melspectrogram.onnx",
        "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    ),
    "openwakeword_embedding": (
        "openwakeword",
        "openwakeword/resources/models/embedding_model.onnx",
        "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
    ),
}
# SpeechEmbeddingEncoder takes the folder holding both openWakeWord files
OPENWAKEWORD_MELSPEC_FILE = "melspectrogram.onnx"
OPENWAKEWORD_EMBEDDING_FILE = "embedding_model.onnx"


@runtime_checkable
class AudioEncoder(Protocol):
    sample_rate: int  # what frames() expects (the caller resamples)
    window_seconds: float  # the encoder's receptive window (longer clips are split into windows)
    frame_dim: int  # width of one window's embedding

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """Mono float32 in [-1, 1] at ``sample_rate`` -> (n_windows, frame_dim) float32, with
        n_windows >= 1 always (short clips are zero-padded)."""
        ...


def pool(frames: np.ndarray) -> np.ndarray:
    """(n_windows, D) -> (2 D,) float32: the mean then the standard deviation over windows."""
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"expected (n_windows >= 1, dim) frame embeddings, got {f.shape}")
    return np.concatenate([f.mean(axis=0), f.std(axis=0)]).astype(np.float32)


def _mono(wave: np.ndarray) -> np.ndarray:
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D array), got shape {x.shape}")
    return x


def _windows(seq: np.ndarray, size: int, step: int, count: int) -> np.ndarray:
    """(count, size, D) view of windows ``seq[i*step : i*step+size]`` of a (T, D) sequence."""
    return sliding_window_view(seq, size, axis=0)[::step][:count].transpose(0, 2, 1)


# ---------------------------------------------------------------------------------------------
# aisfx


class AisfxEncoder:
    """aisfx sound-effects CNN: log-mel blocks of 100 frames (2.32 s) every 50 frames (1.16 s)
    -> 512-d each, as ``aisfx.inference`` windows a clip (the last partial block is dropped, as
    there; a clip shorter than one block is zero-padded to one instead of failing)."""

    sample_rate = AISFX_SR
    block_frames, block_hop = 100, 50
    window_seconds = block_frames * AISFX_HOP / AISFX_SR  # 2.322 s
    hop_seconds = block_hop * AISFX_HOP / AISFX_SR  # 1.161 s
    frame_dim = 512

    def __init__(self, weights_path: str | Path | None, *, batch_blocks: int = 32):
        import torch

        from transferkit.backbones.audio_nets import AisfxCnn, load_aisfx_cnn

        self._torch = torch
        # no weights: the same network from random initialisation (--strategy scratch)
        self.net = load_aisfx_cnn(weights_path) if weights_path else AisfxCnn().eval()
        self.uses_mkldnn = self.net.use_mkldnn()
        self.batch_blocks = max(1, int(batch_blocks))

    # -- fine-tuning (see AudioBackbone.forward) ----------------------------------------------
    def window_inputs(self, wave: np.ndarray) -> np.ndarray:
        return np.array(self.blocks(wave), dtype=np.float32)  # an owned copy, not a view

    def net_frames(self, blocks):
        return self.net(blocks)

    def layer_groups(self) -> list[list[str]]:
        """The four conv blocks (two convolutions each), input first."""
        names = [n for n, _ in self.net.named_parameters()]
        return [
            [n for n in names if n.split(".")[1] in (str(2 * b), str(2 * b + 1))] for b in range(4)
        ]

    def on_mode_change(self, training: bool) -> None:
        """The oneDNN copy of the weights is frozen in time: dropped while the network trains,
        rebuilt from the current weights when it goes back to inference (on the CPU only)."""
        self.net._mkldnn_weights = None
        on_cpu = next(self.net.parameters()).device.type == "cpu"
        if not training and self.uses_mkldnn and on_cpu:
            self.net.use_mkldnn()

    def blocks(self, wave: np.ndarray) -> np.ndarray:
        """(n_blocks, 100, 96) normalised log-mel blocks (a view where no padding is needed)."""
        spec = aisfx_log_mel(_mono(wave))
        spec /= np.float32(AISFX_SPEC_MAX)
        n_frames = spec.shape[0]
        n_blocks = max(1, (n_frames - self.block_frames) // self.block_hop + 1)
        if n_frames < self.block_frames:  # zero log-mel frames are what silence gives
            spec = np.pad(spec, ((0, self.block_frames - n_frames), (0, 0)))
        return _windows(spec, self.block_frames, self.block_hop, n_blocks)

    def frames(self, wave: np.ndarray) -> np.ndarray:
        return self.frames_many([wave])[0]

    def frames_many(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """``frames`` of several clips in shared CNN batches: a one-shot sample is a single
        block, and a forward pass of one block costs several times its share of a batch of 32,
        so short clips are batched together."""
        per_clip = [self.blocks(w) for w in waves]
        counts = [len(b) for b in per_clip]
        blocks = np.concatenate(per_clip) if len(per_clip) > 1 else per_clip[0]
        out = np.empty((len(blocks), self.frame_dim), dtype=np.float32)
        torch = self._torch
        with torch.inference_mode():
            for start in range(0, len(blocks), self.batch_blocks):
                chunk = np.array(blocks[start : start + self.batch_blocks], order="C")  # writable
                out[start : start + len(chunk)] = self.net(torch.from_numpy(chunk)).numpy()
        return np.split(out, np.cumsum(counts)[:-1])


# ---------------------------------------------------------------------------------------------
# resemblyzer


class SpeakerEncoder:
    """resemblyzer's GE2E speaker encoder: power-mel partials of 160 frames (1.6 s) every
    77 frames (0.77 s, resemblyzer's rate 1.3/s) -> 256-d, L2-normalised, as
    ``VoiceEncoder.embed_utterance(return_partials=True)`` computes them.

    As resemblyzer's ``preprocess_wav`` does, quiet clips are raised to -30 dBFS first (never
    lowered); its webrtcvad silence trimming is left out (it would drop most non-speech sound).
    ``pad_mode='reflect'`` centres the first and last STFT frame as the librosa < 0.10 it was
    trained with did; ``'constant'`` matches resemblyzer run on librosa >= 0.10.

    The LSTM runs on ``lstm_threads`` torch threads (restored afterwards; None leaves torch's
    setting alone). Its 480 small sequential steps each open an OpenMP parallel region, and when
    the cores are also busy (decoding threads, other processes) two threads spin at every barrier:
    measured on 2 busy cores, 1 thread ran ~150x real time and 2 threads ~17x.
    """

    sample_rate = SPEAKER_SR
    partial_frames = 160
    partial_step = 77  # round(16000 / 1.3 / 160)
    window_seconds = partial_frames * SPEAKER_HOP / SPEAKER_SR  # 1.6 s
    hop_seconds = partial_step * SPEAKER_HOP / SPEAKER_SR  # 0.77 s
    frame_dim = 256
    min_coverage = 0.75
    target_dbfs = -30.0

    def __init__(
        self,
        weights_path: str | Path | None,
        *,
        pad_mode: str = "reflect",
        normalize_volume: bool = True,
        batch_partials: int = 64,
        lstm_threads: int | None = 1,
    ):
        import torch

        from transferkit.backbones.audio_nets import SpeakerNet, load_speaker_net

        if pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', not {pad_mode!r}")
        self._torch = torch
        self.net = load_speaker_net(weights_path) if weights_path else SpeakerNet().eval()
        self.pad_mode = pad_mode
        self.normalize_volume = normalize_volume
        self.batch_partials = max(1, int(batch_partials))
        self.lstm_threads = lstm_threads

    def raise_volume(self, wave: np.ndarray) -> np.ndarray:
        """resemblyzer's ``normalize_volume(wav, -30, increase_only=True)``."""
        rms = np.sqrt(np.mean(np.square(wave, dtype=np.float64))) if len(wave) else 0.0
        if rms == 0:
            return wave
        change_db = self.target_dbfs - 20 * np.log10(rms)
        return wave if change_db < 0 else (wave * 10 ** (change_db / 20)).astype(np.float32)

    def partial_starts(self, n_samples: int) -> np.ndarray:
        """First mel frame of each partial (resemblyzer's ``compute_partial_slices``)."""
        n_frames = int(np.ceil((n_samples + 1) / SPEAKER_HOP))
        steps = max(1, n_frames - self.partial_frames + self.partial_step + 1)
        starts = np.arange(0, steps, self.partial_step)
        coverage = (n_samples - starts[-1] * SPEAKER_HOP) / (self.partial_frames * SPEAKER_HOP)
        if coverage < self.min_coverage and len(starts) > 1:
            starts = starts[:-1]
        return starts

    def mel_partials(self, wave: np.ndarray) -> np.ndarray:
        """(n_partials, 160, 40) power-mel inputs of the LSTM."""
        wav = _mono(wave)
        if self.normalize_volume:
            wav = self.raise_volume(wav)
        starts = self.partial_starts(len(wav))
        end = int(starts[-1] + self.partial_frames) * SPEAKER_HOP
        if end >= len(wav):
            wav = np.pad(wav, (0, end - len(wav)))
        mel = speaker_mel(wav, self.pad_mode)
        return _windows(mel, self.partial_frames, self.partial_step, len(starts))

    # -- fine-tuning (see AudioBackbone.forward) ----------------------------------------------
    def window_inputs(self, wave: np.ndarray) -> np.ndarray:
        return np.array(self.mel_partials(wave), dtype=np.float32)

    def net_frames(self, partials):
        return self.net(partials)

    def layer_groups(self) -> list[list[str]]:
        """One group per LSTM layer (input first), then the projection."""
        names = [n for n, _ in self.net.named_parameters()]
        layers = self.net.lstm.num_layers
        groups = [[n for n in names if n.startswith("lstm.") and n.endswith(f"_l{i}")]
                  for i in range(layers)]  # fmt: skip
        return [*groups, [n for n in names if n.startswith("linear.")]]

    def frames(self, wave: np.ndarray) -> np.ndarray:
        partials = self.mel_partials(wave)
        out = np.empty((len(partials), self.frame_dim), dtype=np.float32)
        torch = self._torch
        previous = torch.get_num_threads()
        if self.lstm_threads and self.lstm_threads != previous:
            torch.set_num_threads(self.lstm_threads)
        try:
            with torch.inference_mode():
                for start in range(0, len(partials), self.batch_partials):
                    chunk = np.array(partials[start : start + self.batch_partials], order="C")
                    out[start : start + len(chunk)] = self.net(torch.from_numpy(chunk)).numpy()
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)
        return out


# ---------------------------------------------------------------------------------------------
# openWakeWord's speech_embedding


def default_onnx_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


class SpeechEmbeddingEncoder:
    """Google's speech_embedding (the openWakeWord front end, two ONNX files): 32-band mel every
    10 ms, windows of 76 frames (0.775 s) every 8 frames (80 ms) -> 96-d, exactly as
    ``openwakeword.utils.AudioFeatures`` computes them (int16-range samples, ``spec / 10 + 2``).
    Clips shorter than one window are zero-padded to one."""

    sample_rate = 16000
    window_mel_frames, step_mel_frames = 76, 8
    window_seconds = 0.775
    hop_seconds = 0.08
    frame_dim = 96
    min_samples = (76 + 3) * 160  # 12640 samples -> exactly 76 mel frames
    batch_windows = 32  # small batches: less memory, and no slower (measured 8..512)

    def __init__(self, model_dir: str | Path, *, threads: int | None = None):
        import onnxruntime as ort

        folder = Path(model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads) if threads else default_onnx_threads()
        options.inter_op_num_threads = 1
        # idle onnxruntime workers busy-wait by default and steal the cores torch needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        self.melspec = ort.InferenceSession(
            str(folder / OPENWAKEWORD_MELSPEC_FILE), options, providers=providers
        )
        self.embedding = ort.InferenceSession(
            str(folder / OPENWAKEWORD_EMBEDDING_FILE), options, providers=providers
        )
        self._mel_input = self.melspec.get_inputs()[0].name
        self._emb_input = self.embedding.get_inputs()[0].name

    def mel(self, wave: np.ndarray) -> np.ndarray:
        """(frames, 32) transformed mel (``spec / 10 + 2``) of a clip padded to one window."""
        x = _mono(wave)
        if len(x) < self.min_samples:
            x = np.pad(x, (0, self.min_samples - len(x)))
        # the model was fed int16 samples as float: quantise like openWakeWord's int16 input
        pcm = np.clip(x * 32767.0, -32768, 32767).astype(np.int16).astype(np.float32)
        spec = self.melspec.run(None, {self._mel_input: pcm[None]})[0]
        spec = spec.reshape(-1, spec.shape[-1])
        return spec / np.float32(10.0) + np.float32(2.0)

    def frames(self, wave: np.ndarray) -> np.ndarray:
        spec = self.mel(wave)
        n = (spec.shape[0] - self.window_mel_frames) // self.step_mel_frames + 1
        windows = _windows(spec, self.window_mel_frames, self.step_mel_frames, n)
        out = np.empty((n, self.frame_dim), dtype=np.float32)
        for start in range(0, n, self.batch_windows):
            batch = np.ascontiguousarray(windows[start : start + self.batch_windows])[..., None]
            emb = self.embedding.run(None, {self._emb_input: batch})[0]
            out[start : start + len(batch)] = emb.reshape(len(batch), self.frame_dim)
        return out


# ---------------------------------------------------------------------------------------------
# MFCC baseline


class MfccStatsEncoder:
    """20 MFCCs and their deltas per 2048-sample frame (hop 512), as librosa computes them;
    ``pool`` of these frames is the classic MFCC-statistics baseline (80-d). No weights.

    44.1 kHz by default, as the baseline was measured; any rate works (the mel bands span
    0..rate/2)."""

    frame_dim = 2 * MFCC_N_COEFFS

    def __init__(self, sample_rate: int = 44100):
        self.sample_rate = int(sample_rate)
        self.window_seconds = MFCC_N_FFT / self.sample_rate
        self.hop_seconds = MFCC_HOP / self.sample_rate

    def frames(self, wave: np.ndarray) -> np.ndarray:
        return mfcc_with_deltas(_mono(wave), self.sample_rate).astype(np.float32, copy=False)
