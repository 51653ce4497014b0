"""Audio encoders: the numpy front ends against the libraries they replace (essentia, librosa), the
encoders against their own packages (aisfx, resemblyzer, openWakeWord), and the window counts.

The reference numbers below were computed with the real packages (essentia 2.1b6 through aisfx's
own spectrogram code, aisfx's CrossNet, resemblyzer 0.1.4's VoiceEncoder on librosa 0.11, and
librosa 0.11) on ``_tone``; the live comparisons run as well wherever those packages import.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from transferkit.backbones.audio_encoders import (
    PACKAGED_FILES,
    AisfxEncoder,
    AudioEncoder,
    MfccStatsEncoder,
    SpeakerEncoder,
    SpeechEmbeddingEncoder,
    pool,
)
from transferkit.backbones.audio_features import (
    aisfx_log_mel,
    dct_ortho_matrix,
    delta,
    slaney_filterbank,
    speaker_mel,
)

# essentia's log-mel of _tone(44100, 5.0): shape, band means [::8], frame means [::20]
LOGMEL_SHAPE = (217, 96)
LOGMEL_BAND_MEANS = [0.45501, 5.97488, 5.87616, 5.13803, 3.20303, 0.3089, 0.32767, 0.39384]
LOGMEL_BAND_MEANS += [0.50762, 0.03221, 0.01694, 0.0112]
LOGMEL_FRAME_MEANS = [2.91196, 1.73477, 1.7637, 1.91364, 1.84169, 1.8336, 1.85474, 1.71794]
LOGMEL_FRAME_MEANS += [1.83157, 1.80174, 1.82579]
# aisfx's own pipeline (essentia spectrogram, CrossNet.get_embedding) on _tone(44100, 5.0)
AISFX_DIMS = [3, 50, 100, 200, 300, 511]
AISFX_FRAMES = [
    [0.4628, 1.5617, 0.4733, 0.7462, 0.9698, 1.4447],
    [0.4123, 2.0705, 0.0977, 0.904, 1.2712, 1.3467],
    [0.128, 1.556, 0.1412, 0.9633, 1.3773, 1.22],
]
# resemblyzer VoiceEncoder.embed_utterance partials (librosa 0.11) on _tone(16000, 5.0)
SPEAKER_DIMS = [10, 66, 127, 150, 155, 248]
SPEAKER_FRAMES = [
    [0.15077, 0.13897, 0.19678, 0.16484, 0.11123, 0.15171],
    [0.16232, 0.12419, 0.19913, 0.19735, 0.10673, 0.23008],
    [0.22369, 0.25026, 0.20621, 0.10658, 0.06804, 0.13414],
    [0.17712, 0.2499, 0.12553, 0.15378, 0.22098, 0.1084],
    [0.2017, 0.25869, 0.1657, 0.13272, 0.2033, 0.13134],
]
# librosa.feature.mfcc(n_mfcc=20) and delta on _tone(44100, 5.0): rows [0, 3, 200, 430]
MFCC_SHAPE = (431, 40)
MFCC_COLS = [0, 1, 5, 19, 20, 25]
MFCC_ROWS = [
    [-270.326, 225.304, 20.151, -1.308, -12.178, -4.708],
    [-390.147, 210.459, -20.038, -12.781, -12.178, -4.708],
    [-385.281, 189.173, -49.631, -20.113, 0.937, -1.353],
    [-231.963, 142.869, 56.522, 1.942, 12.837, 7.23],
]


def _tone(sr: int, seconds: float) -> np.ndarray:
    """A deterministic clip with structure in time and frequency: an amplitude-modulated chirp,
    a harmonic series on 150 Hz and a 1234 Hz tone."""
    t = np.arange(int(round(sr * seconds))) / sr
    chirp = np.sin(2 * np.pi * (200 * t + 800 * t**2)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11))
    return (0.3 * chirp + 0.1 * harmonics + 0.05 * np.sin(2 * np.pi * 1234 * t)).astype(np.float32)


@cache
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def packaged_file(key: str) -> Path:
    """The verified file ``PACKAGED_FILES[key]``: skip (outside CI) or fail (under CI) when its
    package is not installed; fail when the installed file is not the expected one."""
    dist, relpath, sha256 = PACKAGED_FILES[key]
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(relpath)))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        message = f"{dist} (which ships {relpath}) is not installed: run `make models`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert _sha256(path) == sha256, f"{path} is not the file PACKAGED_FILES names"
    return path


@pytest.fixture(scope="module")
def aisfx():
    return AisfxEncoder(packaged_file("aisfx"))


@pytest.fixture(scope="module")
def speaker():
    return SpeakerEncoder(packaged_file("resemblyzer"))


@pytest.fixture(scope="module")
def speech():
    return SpeechEmbeddingEncoder(packaged_file("openwakeword_embedding").parent, threads=1)


@pytest.fixture(params=["aisfx", "speaker", "speech", "mfcc"])
def encoder(request) -> AudioEncoder:
    if request.param == "mfcc":
        return MfccStatsEncoder()
    return request.getfixturevalue(request.param)


# window counts of a 10 s clip: aisfx drops the last partial block as the package does; the
# speaker partials and the 80 ms speech windows are those of resemblyzer / openWakeWord
TEN_SECOND_WINDOWS = {AisfxEncoder: 7, SpeakerEncoder: 12, SpeechEmbeddingEncoder: 116}
TEN_SECOND_WINDOWS[MfccStatsEncoder] = 862


@pytest.mark.parametrize("seconds", [None, 0.1, 10.0], ids=["1-sample", "0.1s", "10s"])
def test_every_clip_gives_at_least_one_window_of_the_declared_width(encoder, seconds):
    assert isinstance(encoder, AudioEncoder)
    n = 1 if seconds is None else int(seconds * encoder.sample_rate)
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, n).astype(np.float32)
    frames = encoder.frames(wave)
    assert frames.dtype == np.float32 and frames.shape[1] == encoder.frame_dim
    assert np.isfinite(frames).all()
    if seconds == 10.0:
        assert len(frames) == TEN_SECOND_WINDOWS[type(encoder)]
    elif not isinstance(encoder, MfccStatsEncoder):  # one padded window
        assert len(frames) == 1
    assert pool(frames).shape == (2 * encoder.frame_dim,)


def test_silence_gives_finite_embeddings(encoder):
    frames = encoder.frames(np.zeros(3 * encoder.sample_rate, dtype=np.float32))
    assert len(frames) >= 1 and np.isfinite(frames).all()


def test_windows_are_described_consistently():
    assert AisfxEncoder.window_seconds == pytest.approx(2.32, abs=0.01)
    assert AisfxEncoder.hop_seconds == pytest.approx(1.16, abs=0.01)
    assert SpeakerEncoder.window_seconds == pytest.approx(1.6)
    assert SpeechEmbeddingEncoder.window_seconds == pytest.approx(0.775)
    mfcc = MfccStatsEncoder()
    assert (mfcc.sample_rate, mfcc.frame_dim) == (44100, 40)
    assert mfcc.window_seconds == pytest.approx(0.0464, abs=1e-4)


def test_pool_is_mean_then_std_in_float32():
    frames = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(pool(frames), [2, 4, 1, 2])
    assert pool(frames).dtype == np.float32
    with pytest.raises(ValueError, match="n_windows"):
        pool(np.zeros((0, 4)))


def test_stereo_input_is_refused_not_mixed_silently():
    with pytest.raises(ValueError, match="mono"):
        MfccStatsEncoder().frames(np.zeros((100, 2), dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# aisfx


def test_aisfx_log_mel_matches_essentia_reference_values():
    spec = aisfx_log_mel(_tone(44100, 5.0))
    assert spec.shape == LOGMEL_SHAPE and spec.dtype == np.float32
    np.testing.assert_allclose(spec.mean(axis=0)[::8], LOGMEL_BAND_MEANS, atol=2e-5)
    np.testing.assert_allclose(spec.mean(axis=1)[::20], LOGMEL_FRAME_MEANS, atol=2e-5)


def test_aisfx_log_mel_matches_essentia_live():
    es = pytest.importorskip("essentia.standard")
    wave = _tone(44100, 1.7)
    cutter = es.FrameCutter(frameSize=2048, hopSize=1024)
    window = es.Windowing(type="hann", normalized=False)
    spectrum = es.Spectrum(size=2048)
    mel = es.MelBands(
        inputSize=1025,
        numberBands=96,
        sampleRate=44100,
        lowFrequencyBound=0,
        highFrequencyBound=22050,
        warpingFormula="htkMel",
        weighting="warping",
        normalize="unit_sum",
        type="power",
        log=False,
    )
    rows = []
    while len(frame := cutter(wave)):
        rows.append(np.log10(1e4 * mel(spectrum(window(frame))) + 1))
    ours = aisfx_log_mel(wave)
    assert ours.shape == (len(rows), 96)
    np.testing.assert_allclose(ours, np.array(rows), atol=2e-4)


def test_aisfx_matches_the_packages_pipeline(aisfx):
    frames = aisfx.frames(_tone(44100, 5.0))
    assert frames.shape == (3, 512)
    np.testing.assert_allclose(frames[:, AISFX_DIMS], AISFX_FRAMES, atol=2e-3)


def test_aisfx_cnn_equals_the_packages_embedding_net(aisfx):
    import torch

    cnn2d = pytest.importorskip("aisfx.models.cnn2d")
    from transferkit.backbones.audio_nets import load_aisfx_state

    reference = cnn2d.EmbeddingNet("max", 3, 1, 64)  # BatchNorm not folded
    reference.load_state_dict(load_aisfx_state(packaged_file("aisfx")))
    blocks = torch.rand(3, 100, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = reference.eval()(blocks)
        fast = aisfx.net(blocks)  # oneDNN path where available
        dense = aisfx.net.forward_dense(blocks)
    torch.testing.assert_close(fast, expected, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(dense, expected, atol=1e-4, rtol=1e-5)


def test_aisfx_refuses_a_state_that_is_not_aisfx():
    from transferkit.backbones.audio_nets import AisfxCnn

    with pytest.raises(ValueError, match="not an aisfx EmbeddingNet state"):
        AisfxCnn().load_embedding_net_state({"conv.weight": None})


def test_aisfx_long_clip_is_batched_into_the_same_windows(aisfx, monkeypatch):
    wave = _tone(44100, 9.0)
    whole = aisfx.frames(wave)
    monkeypatch.setattr(aisfx, "batch_blocks", 2)
    np.testing.assert_allclose(aisfx.frames(wave), whole, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# resemblyzer


def test_speaker_mel_filterbank_and_frames_match_librosa():
    librosa = pytest.importorskip("librosa")
    np.testing.assert_allclose(
        slaney_filterbank(16000, 400, 40),
        librosa.filters.mel(sr=16000, n_fft=400, n_mels=40),
        atol=1e-7,
    )
    wave = _tone(16000, 0.7)
    expected = librosa.feature.melspectrogram(
        y=wave, sr=16000, n_fft=400, hop_length=160, n_mels=40, pad_mode="constant"
    ).T
    np.testing.assert_allclose(speaker_mel(wave, "constant"), expected, rtol=1e-4, atol=1e-6)


def test_speaker_encoder_matches_resemblyzer_reference_values():
    encoder = SpeakerEncoder(packaged_file("resemblyzer"), pad_mode="constant")
    frames = encoder.frames(_tone(16000, 5.0))
    assert frames.shape == (5, 256)
    np.testing.assert_allclose(frames[:, SPEAKER_DIMS], SPEAKER_FRAMES, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(frames, axis=1), 1, atol=1e-5)


def test_speaker_encoder_matches_resemblyzer_live(speaker):
    """Skips where resemblyzer cannot import: it needs webrtcvad and librosa, which transferkit
    does not install."""
    resemblyzer = pytest.importorskip("resemblyzer")
    audio = pytest.importorskip("resemblyzer.audio")
    librosa = pytest.importorskip("librosa")
    wave = _tone(16000, 3.3)
    voice = resemblyzer.VoiceEncoder("cpu", verbose=False)
    normalised = audio.normalize_volume(wave, -30, increase_only=True)
    partials = voice.embed_utterance(normalised, return_partials=True)[1]
    old_librosa = tuple(int(v) for v in librosa.__version__.split(".")[:2]) < (0, 10)
    mode = "reflect" if old_librosa else "constant"  # librosa's centring changed in 0.10
    ours = SpeakerEncoder(packaged_file("resemblyzer"), pad_mode=mode).frames(wave)
    np.testing.assert_allclose(ours, partials, atol=1e-4)


def test_speaker_lstm_threads_are_restored(speaker):
    import torch

    before = torch.get_num_threads()
    speaker.frames(_tone(16000, 0.5))
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="pad_mode"):
        SpeakerEncoder(packaged_file("resemblyzer"), pad_mode="edge")


def test_speaker_padding_modes_differ_only_at_the_edges(speaker):
    wave = _tone(16000, 5.0)
    reflect = speaker.frames(wave)  # the default: librosa < 0.10, as resemblyzer was trained
    constant = SpeakerEncoder(packaged_file("resemblyzer"), pad_mode="constant").frames(wave)
    cosines = np.sum(reflect * constant, axis=1)
    assert cosines.min() > 0.98


# ---------------------------------------------------------------------------------------------
# openWakeWord's speech_embedding


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_speech_embedding_matches_openwakeword(speech):
    utils = pytest.importorskip("openwakeword.utils")
    wave = _tone(16000, 2.0)
    reference = utils.AudioFeatures(
        melspec_onnx_model_path=str(packaged_file("openwakeword_melspectrogram")),
        embedding_onnx_model_path=str(packaged_file("openwakeword_embedding")),
        ncpu=1,
    )
    expected = reference._get_embeddings((wave * 32767).astype(np.int16))
    np.testing.assert_allclose(speech.frames(wave), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# MFCC


def test_mfcc_matches_librosa_reference_values():
    frames = MfccStatsEncoder().frames(_tone(44100, 5.0))
    assert frames.shape == MFCC_SHAPE
    np.testing.assert_allclose(frames[[0, 3, 200, 430]][:, MFCC_COLS], MFCC_ROWS, atol=2e-2)


def test_mfcc_matches_librosa_live():
    librosa = pytest.importorskip("librosa")
    wave = _tone(22050, 1.3)
    coeffs = librosa.feature.mfcc(y=wave, sr=22050, n_mfcc=20)
    expected = np.concatenate([coeffs, librosa.feature.delta(coeffs)]).T
    ours = MfccStatsEncoder(sample_rate=22050).frames(wave)
    np.testing.assert_allclose(ours, expected, atol=2e-3 * np.abs(expected).max())


def test_delta_and_dct_match_scipy():
    signal = pytest.importorskip("scipy.signal")
    scipy_fft = pytest.importorskip("scipy.fft")
    feat = np.random.default_rng(1).normal(size=(30, 5)).astype(np.float32)
    expected = signal.savgol_filter(feat, 9, 1, deriv=1, axis=0, mode="interp")
    np.testing.assert_allclose(delta(feat), expected, atol=1e-5)
    short = delta(feat[:4])  # fewer frames than the filter: one padded window, then cut
    assert short.shape == (4, 5) and np.isfinite(short).all()
    np.testing.assert_allclose(
        feat @ dct_ortho_matrix(5, 3).T,
        scipy_fft.dct(feat, 2, norm="ortho", axis=1)[:, :3],
        atol=1e-5,
    )


def test_importing_the_module_loads_neither_torch_nor_onnxruntime():
    import subprocess
    import sys

    code = (
        "import sys, transferkit.backbones\n"
        "before = set(sys.modules)\n"
        "import transferkit.backbones.audio_encoders\n"
        "print(sorted({'torch', 'onnxruntime'} & (set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
