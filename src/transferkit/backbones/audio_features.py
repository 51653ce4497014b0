"""Audio front ends in plain numpy: the spectrograms the pretrained audio encoders were trained on.

* ``aisfx_log_mel``: aisfx's Essentia chain (44.1 kHz, 2048/1024 centred frames, symmetric
  Hann, 96 HTK-mel bands normalised to unit sum, ``log10(1e4 x + 1)``), layout (time, mel).
* ``speaker_mel``: resemblyzer's 40-band power mel (librosa defaults with 25 ms / 10 ms frames,
  Slaney mel scale and area norm, no log), layout (time, 40).
* ``mfcc`` and ``delta``: ``librosa.feature.mfcc(n_mfcc=20)`` and ``librosa.feature.delta(width=9)``
  with librosa's defaults; ``mfcc_with_deltas`` puts them side by side.

No librosa, essentia or torchaudio at run time. Frames are cut as strided views and transformed in
chunks of frames (float32 FFT), so a long clip never builds one huge array.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_CHUNK_FRAMES = 2048  # frames transformed at once (2048 x 2048 float32 = 16 MiB for aisfx)

# aisfx (Essentia path of the ISMIR 2022 paper)
AISFX_SR = 44100
AISFX_N_FFT, AISFX_HOP, AISFX_N_MELS = 2048, 1024, 96
AISFX_SPEC_MAX = 9.457798957824707  # the package's fixed "original" normalisation (min 0)

# resemblyzer (GE2E speaker encoder)
SPEAKER_SR = 16000
SPEAKER_N_FFT, SPEAKER_HOP, SPEAKER_N_MELS = 400, 160, 40

# MFCC baseline (librosa defaults)
MFCC_N_FFT, MFCC_HOP, MFCC_N_MELS, MFCC_N_COEFFS = 2048, 512, 128, 20
DELTA_WIDTH = 9


def hann(n: int, *, periodic: bool) -> np.ndarray:
    """Hann window: periodic (librosa / scipy 'hann') or symmetric (Essentia)."""
    denom = n if periodic else n - 1
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / denom)).astype(np.float32)


def _hz_to_mel_htk(f) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def _hz_to_mel_slaney(f) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)


def _mel_to_hz_slaney(m) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(
        m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m
    )


def htk_unit_sum_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Essentia ``MelBands(warpingFormula='htkMel', weighting='warping', normalize='unit_sum')``:
    triangles in the HTK-mel domain, each band's weights summing to 1. (n_mels, n_fft//2+1)."""
    fmax = sr / 2 if fmax is None else fmax
    bin_mel = _hz_to_mel_htk(np.arange(n_fft // 2 + 1) * sr / n_fft)[None, :]
    edges = np.linspace(_hz_to_mel_htk(fmin), _hz_to_mel_htk(fmax), n_mels + 2)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((bin_mel - lo) / (mid - lo), (hi - bin_mel) / (hi - mid)))
    sums = fb.sum(axis=1, keepdims=True)
    return (fb / np.where(sums > 0, sums, 1.0)).astype(np.float32)


def slaney_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``: Slaney mel scale and area
    normalisation. (n_mels, n_fft//2+1)."""
    fmax = sr / 2 if fmax is None else fmax
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz_slaney(
        np.linspace(_hz_to_mel_slaney(fmin), _hz_to_mel_slaney(fmax), n_mels + 2)
    )
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERBANKS: dict[tuple, np.ndarray] = {}


def _filterbank(kind: str, sr: int, n_fft: int, n_mels: int, fmax: float | None = None):
    key = (kind, sr, n_fft, n_mels, fmax)
    if key not in _FILTERBANKS:
        make = htk_unit_sum_filterbank if kind == "htk" else slaney_filterbank
        _FILTERBANKS[key] = make(sr, n_fft, n_mels, fmax=fmax)
    return _FILTERBANKS[key]


def _mel_power(
    padded: np.ndarray, n_frames: int, n_fft: int, hop: int, window: np.ndarray, fb: np.ndarray
) -> np.ndarray:
    """(n_frames, n_mels) float32: mel filterbank over |rfft(window * frame)|^2, where frame k is
    ``padded[k*hop : k*hop+n_fft]``. Transformed in chunks of frames to bound memory."""
    rfft = _rfft()
    frames = sliding_window_view(padded, n_fft)[::hop][:n_frames]
    out = np.empty((n_frames, fb.shape[0]), dtype=np.float32)
    fb_t = np.ascontiguousarray(fb.T)
    for start in range(0, n_frames, _CHUNK_FRAMES):
        spec = rfft(frames[start : start + _CHUNK_FRAMES] * window, axis=1)
        power = np.square(spec.real, dtype=np.float32)
        power += np.square(spec.imag, dtype=np.float32)
        np.matmul(power, fb_t, out=out[start : start + _CHUNK_FRAMES])
    return out


def _rfft():
    """scipy's pocketfft (scikit-learn depends on scipy) runs float32 batches ~5x faster than
    numpy's."""
    try:
        from scipy.fft import rfft
    except ImportError:  # pragma: no cover - scikit-learn always brings scipy
        return np.fft.rfft
    return rfft


def _as_mono_float32(wave: np.ndarray) -> np.ndarray:
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D array), got shape {x.shape}")
    return x


def aisfx_log_mel(wave: np.ndarray) -> np.ndarray:
    """(time, 96) float32 log-mel of a 44.1 kHz mono waveform, equal to aisfx's Essentia
    spectrogram (before its division by ``AISFX_SPEC_MAX``).

    Essentia's FrameCutter (startFromZero=False) centres frame k on sample k*1024 with zero
    padding and emits ``ceil(n/1024) + 1`` frames (one more than librosa).
    """
    x = _as_mono_float32(wave)
    n_frames = int(np.ceil(len(x) / AISFX_HOP)) + 1
    half = AISFX_N_FFT // 2
    padded = np.pad(x, (half, half + AISFX_HOP))
    fb = _filterbank("htk", AISFX_SR, AISFX_N_FFT, AISFX_N_MELS)
    mel = _mel_power(padded, n_frames, AISFX_N_FFT, AISFX_HOP, _window(AISFX_N_FFT, False), fb)
    mel *= 1e4
    return np.log10(mel + 1.0, out=mel)


def speaker_mel(wave: np.ndarray, pad_mode: str = "reflect") -> np.ndarray:
    """(time, 40) float32 power mel of a 16 kHz mono waveform, as resemblyzer computes it
    (``librosa.feature.melspectrogram(n_fft=400, hop_length=160, n_mels=40)``, no log).

    ``pad_mode='reflect'`` is the centring of librosa < 0.10, which resemblyzer was built with;
    ``'constant'`` is librosa >= 0.10. They differ only in the first and last frame.
    """
    x = _as_mono_float32(wave)
    half = SPEAKER_N_FFT // 2
    padded = np.pad(x, half, mode=pad_mode)
    n_frames = 1 + (len(padded) - SPEAKER_N_FFT) // SPEAKER_HOP
    fb = _filterbank("slaney", SPEAKER_SR, SPEAKER_N_FFT, SPEAKER_N_MELS)
    window = _window(SPEAKER_N_FFT, True)
    return _mel_power(padded, n_frames, SPEAKER_N_FFT, SPEAKER_HOP, window, fb)


_WINDOWS: dict[tuple[int, bool], np.ndarray] = {}


def _window(n: int, periodic: bool) -> np.ndarray:
    if (n, periodic) not in _WINDOWS:
        _WINDOWS[n, periodic] = hann(n, periodic=periodic)
    return _WINDOWS[n, periodic]


def dct_ortho_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II rows:
    ``x @ M.T == scipy.fft.dct(x, 2, norm='ortho')[..., :n_out]``."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


def mfcc(wave: np.ndarray, sr: int, n_mfcc: int = MFCC_N_COEFFS) -> np.ndarray:
    """(time, n_mfcc) float32, ``librosa.feature.mfcc(y=wave, sr=sr, n_mfcc=n_mfcc)`` with its
    defaults: 2048 / 512 centred frames (zero padding), periodic Hann, power spectrum, 128 Slaney
    mels, ``power_to_db(top_db=80)`` relative to the loudest bin of the clip, DCT-II ortho.
    Clips shorter than one FFT frame are zero-padded to it first."""
    x = _as_mono_float32(wave)
    if len(x) < MFCC_N_FFT:
        x = np.pad(x, (0, MFCC_N_FFT - len(x)))
    padded = np.pad(x, MFCC_N_FFT // 2)
    n_frames = 1 + (len(padded) - MFCC_N_FFT) // MFCC_HOP
    fb = _filterbank("slaney", sr, MFCC_N_FFT, MFCC_N_MELS)
    mel = _mel_power(padded, n_frames, MFCC_N_FFT, MFCC_HOP, _window(MFCC_N_FFT, True), fb)
    db = np.log10(np.maximum(mel, 1e-10, out=mel), out=mel)
    db *= 10.0
    np.maximum(db, db.max() - 80.0, out=db)
    return db @ dct_ortho_matrix(MFCC_N_MELS, n_mfcc).T


def delta(feat: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """First-order delta along time (axis 0) = ``librosa.feature.delta(width=width)``
    (Savitzky-Golay, polyorder 1, mode 'interp'): the least-squares slope over ``width`` frames;
    the first and last ``width // 2`` frames take the slope of the first / last full window.
    Fewer frames than ``width`` are edge-padded to one window."""
    feat = np.asarray(feat, dtype=np.float32)
    n = feat.shape[0]
    half = width // 2
    if n < width:
        feat = np.pad(feat, ((0, width - n), (0, 0)), mode="edge")
    k = np.arange(-half, half + 1, dtype=np.float32)
    slope = sliding_window_view(feat, width, axis=0) @ (k / np.sum(k * k))  # (n' - 2 half, D)
    edges = (np.repeat(slope[:1], half, axis=0), np.repeat(slope[-1:], half, axis=0))
    return np.concatenate([edges[0], slope, edges[1]])[:n]


def mfcc_with_deltas(wave: np.ndarray, sr: int, n_mfcc: int = MFCC_N_COEFFS) -> np.ndarray:
    """(time, 2 * n_mfcc) float32: MFCCs then their deltas, per frame."""
    coeffs = mfcc(wave, sr, n_mfcc)
    return np.concatenate([coeffs, delta(coeffs)], axis=1)
