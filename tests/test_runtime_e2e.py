"""End to end, per modality: a bundle trained on packaged weights, exported by `transferkit
export`, predicts the same labels and probabilities (within 1e-4) through the torch-free runtime
as through torch — in-process, and from the CLI with the training stack blocked."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import draw_shape, require_offline_weights
from runtime_helpers import cli_code, run_blocked

from transferkit.cli import main
from transferkit.runtime import load_exported

pytestmark = pytest.mark.e2e
TOLERANCE = 1e-4

REVIEWS = {
    "fresh": [
        "a wonderful, moving film",
        "the best thing I saw this year",
        "a joy throughout",
        "brilliant acting and a clever script",
        "I loved every minute",
        "warm, funny and beautifully shot",
    ],
    "rotten": [
        "dull and far too long",
        "a mess from start to finish",
        "tedious and flat",
        "the plot makes no sense",
        "I walked out after an hour",
        "wooden acting, lazy writing",
    ],
}


def _images(root: Path, seed: int, per_class: int) -> list[Path]:
    files = []
    for kind in ("circle", "square", "triangle"):
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            files.append(root / kind / f"{i}.png")
            draw_shape(kind, seed + 17 * i, size=72 + 9 * i).save(files[-1])
    return files


def _texts(path: Path, rows: list[tuple[str, str]]) -> list[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(("text", "label"))
        writer.writerows(rows)
    return [text for text, _ in rows]


def _clips(root: Path, seed: int, per_class: int) -> list[Path]:
    """Stereo chirps of 0.4 to 6.4 s at 44.1 or 32 kHz: mixed down, resampled (aisfx hears
    44.1 kHz) and, the long ones, cut into several of the encoder's 2.3 s windows."""
    sf = pytest.importorskip("soundfile")
    rng = np.random.default_rng(seed)
    files = []
    for label, base in (("high", 1500.0), ("low", 200.0)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            seconds, rate = 0.4 + (i % 3) * 3.0, (44100, 32000)[i % 2]
            t = np.arange(int(seconds * rate)) / rate
            freq = base * (1 + 0.1 * rng.random()) * (1 + 0.3 * t / seconds)
            wave = 0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
            files.append(root / label / f"{i}.wav")
            sf.write(files[-1], np.stack([wave, 0.8 * wave], axis=1), rate, subtype="PCM_16")
    return files


def _data(modality: str, tmp: Path) -> tuple[Path, Path, list]:
    """(train, test, the test inputs as predict takes them)."""
    if modality == "image":
        _images(tmp / "train", 0, 5)
        return tmp / "train", tmp / "test", _images(tmp / "test", 1000, 3)
    if modality == "text":
        rows = [(t, label) for label, texts in REVIEWS.items() for t in texts]
        _texts(tmp / "train.csv", rows[0:4] + rows[6:10])
        test = _texts(tmp / "test.csv", rows[4:6] + rows[10:12])
        return tmp / "train.csv", tmp / "test.csv", test
    _clips(tmp / "train", 0, 4)
    return tmp / "train", tmp / "test", _clips(tmp / "test", 99, 3)


BACKBONES = {"image": "mobilenet_v2", "text": "all_minilm_l6_v2", "audio": "aisfx"}


@pytest.fixture(scope="module", params=sorted(BACKBONES))
def exported(request, tmp_path_factory):
    """(bundle, exported folder, test inputs) of a features model of each modality."""
    modality = request.param
    require_offline_weights(BACKBONES[modality])
    tmp = tmp_path_factory.mktemp(modality)
    train, test, inputs = _data(modality, tmp)
    argv = ["train", str(train), "--test", str(test), "--out", str(tmp / "run")]
    argv += ["--backbone", BACKBONES[modality], "--strategy", "features", "--no-progress"]
    assert main(argv) == 0
    bundle, folder = tmp / "run" / "model", tmp / "model-onnx"
    assert main(["export", str(bundle), "--out", str(folder), "--data", str(test)]) == 0
    return bundle, folder, inputs


def test_the_runtime_gives_the_bundles_probabilities(exported):
    from transferkit.estimator import TransferClassifier

    bundle, folder, inputs = exported
    clf = TransferClassifier.load(bundle)
    expected = clf.predict_proba(list(inputs))
    model = load_exported(folder)
    assert model.labels == list(clf.labels_)
    proba, ok, problems = model.predict_proba(inputs, batch_size=4)
    assert ok.all() and problems == []
    assert np.abs(proba - expected).max() <= TOLERANCE
    assert model.predict(inputs) == clf.predict(list(inputs))


def _argv(model: Path, inputs: list) -> list[str]:
    texts = [a for t in inputs if isinstance(t, str) for a in ("--text", t)]
    return ["predict", str(model), *[str(p) for p in inputs if not isinstance(p, str)], *texts]


def test_cli_lines_of_the_exported_model_without_torch_match_the_bundles(exported, capsys):
    bundle, folder, inputs = exported
    assert main([*_argv(bundle, inputs), "--top", "5"]) == 0
    expected = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = run_blocked(cli_code([*_argv(folder, inputs), "--top", "5"]))
    assert done.returncode == 0, done.stderr
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [g["input"] for g in got] == [e["input"] for e in expected]
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected):
        assert g.keys() == e.keys() and g["scores"].keys() == e["scores"].keys()
        assert max(abs(g["scores"][k] - e["scores"][k]) for k in e["scores"]) <= TOLERANCE
