"""Audio inputs of exported models: clips decoded, mixed down, resampled and cut into windows as
export.json states, batched with a mask; unreadable and silent clips are named, not predicted.
(That the cutting equals the bundle's encoder is checked end to end with aisfx in
test_runtime_e2e.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from runtime_helpers import onnx_bytes, write_folder
from torch import nn

from transferkit.runtime import load_exported
from transferkit.runtime.audio import batch_windows, cut_windows, window_count

sf = pytest.importorskip("soundfile")

RATE = 8000
CUT = {"window_samples": 1000, "hop_samples": 400, "leading_zeros": 100}
COUNT = {"frame_hop": 100, "frames_per_window": 10, "window_hop": 4}
LABELS = ["high", "low"]


class TinyAudioNet(nn.Module):
    """windows (B, K, S) + mask (B, K) -> per-window level and roughness, masked mean -> head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(2, len(LABELS))

    def forward(self, windows, window_mask):
        level = windows.abs().mean(dim=2)
        rough = (windows[:, :, 1:] - windows[:, :, :-1]).abs().mean(dim=2)
        frames = torch.stack([level, rough], dim=2) * window_mask.unsqueeze(-1)
        embedding = frames.sum(dim=1) / window_mask.sum(dim=1, keepdim=True)
        return torch.softmax(self.head(embedding * 30.0), dim=1), embedding


@pytest.fixture
def exported(tmp_path):
    example = (torch.rand(2, 3, CUT["window_samples"]), torch.tensor([[1.0, 1, 1], [1, 0, 0]]))
    graph = onnx_bytes(TinyAudioNet(), example, ["windows", "window_mask"], tmp_path, {1: "k"})
    inputs = {
        "kind": "audio",
        "names": ["windows", "window_mask"],
        "sample_rate": RATE,
        **CUT,
        "frame_hop_samples": COUNT["frame_hop"],
        "frames_per_window": COUNT["frames_per_window"],
        "window_hop_frames": COUNT["window_hop"],
    }
    document = {
        "format": "transferkit-export",
        "format_version": 1,
        "modality": "audio",
        "labels": LABELS,
        "inputs": inputs,
        "outputs": {"probabilities": [None, 2], "embedding": [None, 2]},
    }
    return write_folder(tmp_path / "m", document, {"model.onnx": graph})


def test_window_count_and_cut_follow_the_stated_rule():
    # frames = ceil(n / 100) + 1; windows = max(1, (frames - 10) // 4 + 1)
    counts = [window_count(n, **COUNT) for n in (1, 900, 1300, 1301, 1601, 5000)]
    assert counts == [1, 1, 2, 2, 3, 11]
    wave = np.arange(1, 1501, dtype=np.float32)
    windows = cut_windows(wave, 3, **CUT)
    assert windows.shape == (3, 1000)
    assert (windows[0, :100] == 0).all() and windows[0, 100] == 1.0  # leading zeros, then x
    assert windows[1, 0] == wave[400 - 100]  # window i starts at i * hop in the padded clip
    assert windows[2, 799] == 1500.0 and (windows[2, 800:] == 0).all()  # zeros after the end
    batch = batch_windows([windows, windows[:1]])
    assert batch["windows"].shape == (2, 3, 1000)
    assert batch["window_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_clips_are_predicted_as_the_graph_computes_them(exported, tmp_path):
    from transferkit.data.audio import decode_audio

    files = []
    for i, (seconds, rate, channels) in enumerate(
        [(0.05, 8000, 1), (0.6, 16000, 2), (2.0, 44100, 1)]
    ):
        t = np.arange(int(seconds * rate)) / rate
        wave = 0.5 * np.sin(2 * np.pi * (300 + 900 * i) * t)
        files.append(tmp_path / f"clip{i}.flac")
        sf.write(files[-1], np.stack([wave] * channels, axis=1), rate)
    clips = [decode_audio(f, RATE) for f in files]
    windows = [cut_windows(w, window_count(len(w), **COUNT), **CUT) for w in clips]
    assert [len(w) for w in windows] == [1, 10, 38]
    feed = batch_windows(windows)
    with torch.no_grad():
        reference, _ = TinyAudioNet().eval()(*map(torch.from_numpy, feed.values()))
    model = load_exported(exported)
    proba, ok, problems = model.predict_proba(files, batch_size=2)
    assert ok.all() and problems == []
    np.testing.assert_allclose(proba, reference.numpy(), atol=1e-6)
    np.testing.assert_array_equal(
        model.predict_proba([(f.name, f.read_bytes()) for f in files])[0], proba
    )


def test_unreadable_and_silent_clips_are_named(exported, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, 0.3 * np.sin(np.arange(4000) / 5.0), RATE)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(4000), RATE)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    proba, ok, problems = load_exported(exported).predict_proba([good, silent, text])
    assert ok.tolist() == [True, False, False] and np.isnan(proba[1:]).all()
    reasons = dict(problems)
    assert "silent" in reasons[str(silent)] and "not a readable audio file" in reasons[str(text)]
