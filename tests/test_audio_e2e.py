"""Audio end to end on real clips: spoken words made with Debian's espeak-ng, the packaged
encoders, the same CLI, bundle and report as images and text; and the awkward files (a 0-byte
.wav, a .wav that is really text, a 1-sample clip, a 10-minute recording)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import require_offline_weights

from transferkit.cli import main
from transferkit.data import UnreadableFilesWarning
from transferkit.modalities import load_dataset

pytestmark = pytest.mark.e2e
sf = pytest.importorskip("soundfile")

WORDS = ("yes", "no", "stop")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3", "en-gb-x-rp")


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        message = "espeak-ng is missing: run `make test` (it installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    """root/<word>/<voice>.wav: 3 words × 6 voices, spoken by espeak-ng."""
    espeak = _espeak()
    root = tmp_path_factory.mktemp("words")
    for word in WORDS:
        (root / word).mkdir()
        for voice in VOICES:
            out = root / word / f"{voice.replace('+', '_')}.wav"
            subprocess.run([espeak, "-v", voice, "-w", str(out), word], check=True)
    return root


def test_train_predict_and_report_on_spoken_words(words, tmp_path, capsys):
    require_offline_weights("speech_embedding")
    out = tmp_path / "run"
    args = ["train", str(words), "--backbone", "speech_embedding", "--out", str(out)]
    assert main([*args, "--baseline", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone"] == "speech_embedding" and metrics["n_test"] >= 3
    assert metrics["audio"]["sample_rate"] == 16000
    assert metrics["audio"]["audio_seconds_per_second"] > 1
    # the no-transfer reference for audio: MFCC statistics with the same head
    assert metrics["baseline"]["strategy"] == "mfcc_stats"
    assert "MFCC statistics" in metrics["baseline"]["message"]
    page = (out / "report.html").read_text()
    assert "audio windows" in page and "media-src data:" in page
    # the bundle reloads and predicts a clip (one it was trained on or tested on)
    capsys.readouterr()
    clip = next((words / "yes").iterdir())
    assert main(["predict", str(out / "model"), str(clip)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["label"] in WORDS


def test_broken_clips_are_listed_once_and_a_long_recording_is_windowed(words, tmp_path, capsys):
    require_offline_weights("aisfx")
    from transferkit.backbones import resolve_backbone
    from transferkit.modalities import extract_embeddings

    root = tmp_path / "data"
    shutil.copytree(words, root)
    (root / "yes" / "empty.wav").write_bytes(b"")
    (root / "no" / "notes.wav").write_text("this file is really text\n" * 50)
    sf.write(root / "stop" / "one_sample.wav", np.array([0.3]), 22050)
    rate = 8000  # ten minutes of a quiet chirping tone, written at a low rate to stay small
    t = np.arange(600 * rate) / rate
    sf.write(root / "stop" / "ten_minutes.wav", 0.2 * np.sin(2 * np.pi * (300 + t) * t), rate)

    with pytest.warns(UnreadableFilesWarning) as record:
        ds = load_dataset(root)
    (warned,) = [str(w.message) for w in record if w.category is UnreadableFilesWarning]
    assert "empty.wav: empty file" in warned and "notes.wav: not a readable audio file" in warned
    assert not any(p.name in ("empty.wav", "notes.wav") for p in ds.paths)  # found at load
    backbone = resolve_backbone("aisfx")
    result = extract_embeddings(backbone, ds, cache=False)
    assert result.problems == [] and result.ok.all()
    index = {p.name: i for i, p in enumerate(ds.paths)}
    assert result.ok[index["one_sample.wav"]]  # padded to one window, not dropped
    assert result.ok[index["ten_minutes.wav"]]
    assert np.isfinite(result.embeddings[result.ok]).all()
    assert result.info["clips_windowed"] >= 1 and result.info["seconds_audio"] > 600
    # --strict: the unreadable clips are fatal, and named
    strict = ["train", str(root), "--backbone", "mfcc_stats", "--strict", "--no-progress"]
    assert main([*strict, "--out", str(tmp_path / "strict")]) == 2
    assert "empty.wav" in capsys.readouterr().err


def test_a_frozen_audio_encoder_is_not_fine_tuned(words, tmp_path, capsys):
    require_offline_weights("speech_embedding")
    args = ["train", str(words), "--backbone", "speech_embedding", "--strategy", "finetune"]
    assert main([*args, "--out", str(tmp_path / "ft"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "speech_embedding is a frozen encoder" in err and "aisfx or speaker_ge2e" in err


def test_aisfx_fine_tunes_on_spoken_words_and_its_bundle_reloads(words, tmp_path, capsys):
    require_offline_weights("aisfx")
    import torch

    from transferkit import TransferClassifier
    from transferkit.data.audio import decode_audio

    root = tmp_path / "data"
    shutil.copytree(words, root)
    (root / "no" / "notes.wav").write_text("this file is really text\n" * 50)
    out = tmp_path / "run"
    args = ["train", str(root), "--backbone", "aisfx", "--strategy", "finetune", "--out", str(out)]
    settings = ["--epochs", "2", "--unfreeze-groups", "2", "--val-size", "0.2", "--no-progress"]
    assert main([*args, *settings]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "finetune"
    history = metrics["training"]["history"]
    assert [r["stage"] for r in history if r["stage"] != "head"] == ["unfreeze:1", "unfreeze:2"]
    assert "notes.wav" in json.dumps(metrics)  # listed as skipped, not fatal
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert "backbone.safetensors" in manifest["files"]
    assert "Training" in (out / "report.html").read_text()
    from transferkit.backbones import resolve_backbone

    # the weights it started from, by their file's sha256 (an audio backbone is its own
    # module: read after training, this had been the tuned weights' hash)
    pretrained_sha256 = resolve_backbone("aisfx").weights_sha256
    assert manifest["backbone"]["pretrained_weights_sha256"] == pretrained_sha256
    # the bundle alone (plus the packaged architecture) reproduces the tuned network

    clf = TransferClassifier.load(out / "model", progress=False, cache=False)
    tuned = dict(clf.backbone_.named_parameters())
    pretrained = dict(resolve_backbone("aisfx").materialize().named_parameters())
    changed = [n for n in tuned if not torch.equal(tuned[n], pretrained[n])]
    if metrics["training"]["best_epoch"] == 0:  # stage 2 never beat the warmed-up head
        assert changed == []
    else:  # the two unfrozen conv blocks (convs 4-7) trained; the two below kept their weights
        assert changed and all(n.split(".")[2] in "4567" for n in changed)
        wave = decode_audio(next((words / "yes").iterdir()), 44100)
        original = resolve_backbone("aisfx").materialize().embed(wave)[0]
        assert not np.allclose(clf.backbone_.embed(wave)[0], original)
    assert set(clf.predict(load_dataset(words))) <= set(WORDS)
