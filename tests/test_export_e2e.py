"""``transferkit export`` end to end on real packaged weights and small real data: MobileNetV2
on drawn shapes, all-MiniLM-L6-v2 and WordLlama on review snippets, aisfx on words spoken by
espeak-ng. Each graph matches its bundle within 1e-4 on the bundle's own test folder, and the
torch-free runtime predicts the bundle's labels (and probabilities) from the exported folder.
EfficientNet-Lite and timm backbones are checked as graphs against their modules."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights

from transferkit.errors import BadInputError
from transferkit.export import export_model

pytestmark = pytest.mark.e2e

POSITIVE = [
    "a wonderful film, I loved it", "great acting and a moving story", "brilliant and funny",
    "one of the best movies this year", "a delight from start to finish",
    "superb direction and a wonderful cast", "I enjoyed every minute", "beautiful and touching",
]  # fmt: skip
NEGATIVE = [
    "a boring mess", "terrible acting and a dull plot", "I hated every minute",
    "the worst film this year", "tedious and far too long", "awful script and bad jokes",
    "a waste of time", "dreadful and ugly",
]  # fmt: skip


def _table(path: Path, rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def _espeak_words(root: Path, voices) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        message = "espeak-ng is missing: run `make test` (it installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for word in ("yes", "stop"):
        (root / word).mkdir(parents=True)
        for voice in voices:
            out = root / word / f"{voice.replace('+', '_')}.wav"
            subprocess.run([espeak, "-v", voice, "-w", str(out), word], check=True)
    return root


def _train_and_export(tmp_path, train, test, backbone, inputs):
    """Train a features bundle tested on ``test``, export it, and compare the runtime's
    predictions with the bundle's on ``inputs``."""
    from transferkit.estimator import TransferClassifier
    from transferkit.runtime import load_exported
    from transferkit.training import train_run

    run = tmp_path / "run"
    train_run(train, run, test=test, backbone=backbone, strategy="features", progress=False,
              learning_curve=False)  # fmt: skip
    result = export_model(run / "model")
    doc = json.loads((result.path / "export.json").read_text())
    assert doc["parity"]["data"] == str(test) and doc["parity"]["examples"] >= 4
    assert doc["parity"]["max_abs_diff_probabilities"] <= 1e-4
    clf = TransferClassifier.load(run / "model", progress=False, cache=False)
    model = load_exported(result.path)
    proba, ok, _ = model.predict_proba(inputs)
    assert ok.all()
    np.testing.assert_allclose(proba, clf.predict_proba(inputs), atol=1e-4)
    assert model.predict(inputs) == clf.predict(inputs)
    return doc


def test_mobilenet_v2_exports_and_the_runtime_predicts_the_bundles_labels(tmp_path):
    require_offline_weights("mobilenet_v2")
    train = make_shapes_folder(tmp_path / "train", per_class=5)
    test = make_shapes_folder(tmp_path / "test", per_class=2, seed=9)
    doc = _train_and_export(tmp_path, train, test, "mobilenet_v2", sorted(test.rglob("*.png")))
    assert doc["inputs"]["resize_size"] == 256 and doc["inputs"]["input_size"] == 224
    assert doc["outputs"]["embedding"] == [None, 1280]


def test_all_minilm_exports_with_its_tokenizer_and_the_runtime_agrees(tmp_path):
    require_offline_weights("all_minilm_l6_v2")
    train = _table(tmp_path / "train.csv", [(t, "pos") for t in POSITIVE[:6]]
                   + [(t, "neg") for t in NEGATIVE[:6]])  # fmt: skip
    # a text past max_length tokens: truncation must match the bundle's
    long = "an endless ramble " * 300 + "and yet good"
    test = _table(tmp_path / "test.csv", [(t, "pos") for t in POSITIVE[6:]]
                  + [(t, "neg") for t in NEGATIVE[6:]] + [(long, "pos")])  # fmt: skip
    texts = [*POSITIVE[6:], *NEGATIVE[6:], long]
    doc = _train_and_export(tmp_path, train, test, "all_minilm_l6_v2", texts)
    assert doc["inputs"]["tokenizer"] == "tokenizer.json" and "tokenizer.json" in doc["files"]
    assert doc["inputs"]["max_length"] == 256


def test_wordllama_exports_as_a_lookup_and_mean_with_its_own_tokenizer(tmp_path):
    require_offline_weights("wordllama")
    train = _table(tmp_path / "train.csv", [(t, "pos") for t in POSITIVE[:6]]
                   + [(t, "neg") for t in NEGATIVE[:6]])  # fmt: skip
    odd = ["héllo wörld 你好世界 🎉 " * 40, "x" * 40000]  # byte fallback, clipping
    test = _table(tmp_path / "test.csv", [(t, "pos") for t in POSITIVE[6:]]
                  + [(t, "neg") for t in NEGATIVE[6:]] + [(t, "pos") for t in odd])  # fmt: skip
    texts = [*POSITIVE[6:], *NEGATIVE[6:], *odd]
    doc = _train_and_export(tmp_path, train, test, "wordllama", texts)
    assert doc["inputs"]["special_tokens"] is False


@pytest.mark.parametrize(
    ("name", "pretrained"),
    [("efficientnet_lite0", True), ("timm:resnet18", False), ("timm:vit_tiny_patch16_224", False)],
)
def test_image_backbones_become_one_graph_with_the_modules_embeddings(name, pretrained, tmp_path):
    """Every kind of torch image backbone traces: the graph's embeddings are the module's
    (timm weights are not packaged: the architecture with random weights is the same graph)."""
    import torch

    from transferkit.backbones import resolve_backbone
    from transferkit.export import audio, image, text  # noqa: F401 - registers the graphs
    from transferkit.export.exporter import _to_onnx
    from transferkit.export.graphs import FullGraph, graph_for
    from transferkit.export.heads import head_graph
    from transferkit.export.onnx_checks import session
    from transferkit.heads import make_head

    if pretrained:
        require_offline_weights(name)
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    graph = graph_for(resolve_backbone(name, pretrained=pretrained, allow_download=False))
    rng = np.random.default_rng(0)
    width = graph.backbone.num_features
    head = make_head("logistic", Cs=(1.0,)).fit(
        rng.normal(size=(12, width)).astype(np.float32), np.arange(12) % 3
    )
    embedder = graph.embedder()
    _to_onnx(FullGraph(embedder, head_graph(head)).eval(), graph, tmp_path / "m.onnx")
    size = graph.backbone.preprocess.input_size
    pixels = rng.integers(0, 256, (3, 3, size, size), dtype=np.uint8)
    proba, embedding = session(tmp_path / "m.onnx").run(None, {"pixels": pixels})
    with torch.no_grad():
        expected = embedder(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(embedding, expected, atol=1e-4)
    np.testing.assert_allclose(proba, head.predict_proba(expected), atol=1e-5)


def test_aisfx_exports_from_raw_windows_and_the_runtime_predicts_the_bundles_labels(tmp_path):
    require_offline_weights("aisfx")
    train = _espeak_words(tmp_path / "train", ("en-us", "en-gb", "en-029", "en-us+f3"))
    test = _espeak_words(tmp_path / "test", ("en-gb-scotland", "en-gb-x-rp"))
    doc = _train_and_export(tmp_path, train, test, "aisfx", sorted(test.rglob("*.wav")))
    assert doc["inputs"]["sample_rate"] == 44100
    assert doc["inputs"]["names"] == ["windows", "window_mask"]


@pytest.mark.parametrize("name", ["glove_6b_50d", "speaker_ge2e"])
def test_frozen_encoders_without_a_faithful_graph_are_refused(name):
    from transferkit.backbones import resolve_backbone
    from transferkit.export import audio, image, text  # noqa: F401 - registers the graphs
    from transferkit.export.graphs import graph_for

    require_offline_weights(name)
    with pytest.raises(BadInputError, match="that export: (all_minilm_l6_v2, wordllama|aisfx)"):
        graph_for(resolve_backbone(name, allow_download=False))
