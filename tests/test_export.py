"""``transferkit export`` on the tiny image backbone: every head as a graph, features and
finetune bundles exported with parity, export.json sealed as the design says, the held-out
examples found or asked for, the int8 gate, refusals, and the torch-free runtime agreeing.

Real code throughout: real PNG folders, a real bundle trained in process, real ONNX Runtime.
The end-to-end tests on packaged weights (MobileNetV2, all-MiniLM, aisfx) are in
test_export_e2e.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_shapes_folder
from tiny_backbone import (
    NAME,
    tiny_cli_command,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.errors import BadInputError
from transferkit.export import export_model
from transferkit.export import exporter as exporter_module
from transferkit.export.folder import DIGEST_KEY, EXPORT_JSON, MODEL_FILE
from transferkit.export.heads import HEAD_GRAPHS, head_graph
from transferkit.heads import make_head


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    return {
        "root": root,
        "train": make_shapes_folder(root / "train", per_class=6),
        "test": make_shapes_folder(root / "test", per_class=3, seed=5),
        "weights": write_tiny_weights(root / "tiny.safetensors"),
    }


def _train(world, name: str, data=None, **options) -> Path:
    from transferkit.training import train_run

    out = world["root"] / name
    if not (out / "model").is_dir():
        options.setdefault("strategy", "features")
        train_run(
            data or world["train"],
            out,
            backbone=NAME,
            weights=world["weights"],
            progress=False,
            learning_curve=False,
            **options,
        )
    return out / "model"


@pytest.fixture(scope="module")
def features_bundle(world):
    """Tested on its own folder (--test): the run records where its held-out examples are."""
    return _train(world, "features", test=world["test"])


# -- heads ------------------------------------------------------------------------------------
def _fitted(name: str, classes: int, **params):
    rng = np.random.default_rng(classes)
    X = rng.normal(size=(40, 12)).astype(np.float32) + 0.3
    y = np.arange(40) % classes
    return make_head(name, **params).fit(X, y), rng.normal(size=(9, 12)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "classes", "params"),
    [
        ("logistic", 3, {}),
        ("logistic", 2, {}),  # one stored row: class 0 is the zero logit
        ("logistic", 3, {"standardize": True}),
        ("svm", 3, {}),
        ("linear", 2, {}),
        ("centroid", 3, {}),
        ("knn", 3, {"k": 5}),
        ("knn", 2, {"k": 50}),  # k beyond the training rows: all of them vote
    ],
)
def test_every_head_graph_computes_its_heads_probabilities(name, classes, params):
    head, X = _fitted(name, classes, **params)
    with torch.no_grad():
        got = head_graph(head)(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, head.predict_proba(X), atol=1e-5)


def test_every_registered_head_has_a_graph():
    from transferkit.heads import BUILT_HEADS, HEADS

    assert set(HEADS) | set(BUILT_HEADS) == set(HEAD_GRAPHS)


# -- the exported folder ----------------------------------------------------------------------
def _canonical_digest(document: dict) -> str:
    content = {k: v for k, v in document.items() if k != DIGEST_KEY}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _session(folder: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])


def test_a_features_bundle_exports_with_parity_on_its_recorded_test_folder(features_bundle, world):
    out = world["root"] / "features-onnx"
    result = export_model(features_bundle, out=out, weights=world["weights"])
    doc = json.loads((out / EXPORT_JSON).read_text())
    assert doc["format"] == "transferkit-export" and doc["format_version"] == 1
    assert doc[DIGEST_KEY] == _canonical_digest(doc)
    assert doc["files"] == {MODEL_FILE: hashlib.sha256((out / MODEL_FILE).read_bytes()).hexdigest()}
    assert sorted(p.name for p in out.iterdir()) == [EXPORT_JSON, MODEL_FILE]
    assert doc["modality"] == "image" and doc["labels"] == ["circle", "square", "triangle"]
    assert doc["parity"]["data"] == str(world["test"]) and doc["parity"]["examples"] == 9
    assert doc["parity"]["max_abs_diff_probabilities"] <= 1e-4
    assert (
        doc["source"]["bundle_manifest_sha256"]
        == json.loads((features_bundle / "manifest.json").read_text())["manifest_sha256"]
    )
    assert doc["outputs"] == {"probabilities": [None, 3], "embedding": [None, 16]}
    assert doc["size_bytes"] == (out / MODEL_FILE).stat().st_size
    assert set(doc["latency_ms_per_example"]) == {"batch_1", "batch_32"}
    assert result.summary()["parity_examples"] == 9
    # one graph, outputs in the design's order, any batch size
    session = _session(out)
    assert [o.name for o in session.get_outputs()] == ["probabilities", "embedding"]
    pixels = np.random.default_rng(0).integers(0, 256, (5, 3, 16, 16), dtype=np.uint8)
    proba, embedding = session.run(None, {"pixels": pixels})
    assert proba.shape == (5, 3) and embedding.shape == (5, 16)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_the_graph_gives_the_bundles_probabilities_and_embeddings(features_bundle, world):
    from transferkit.estimator import TransferClassifier
    from transferkit.runtime.pixels import planar_pixels

    out = world["root"] / "features-onnx-direct"
    export_model(features_bundle, out=out, weights=world["weights"])
    files = sorted(world["test"].rglob("*.png"))
    pixels = np.stack(
        [planar_pixels(f, input_size=16, resize_size=18, interpolation="bilinear") for f in files]
    )
    proba, embedding = _session(out).run(None, {"pixels": pixels})
    clf = TransferClassifier.load(features_bundle, weights=world["weights"], progress=False)
    np.testing.assert_allclose(proba, clf.predict_proba(files), atol=1e-4)
    np.testing.assert_allclose(embedding, clf.transform(files), atol=1e-4)


# guard off: on this tiny data it could keep the frozen features, and these cases are a
# fine-tuned backbone, under its softmax layer (the warm-up start) or under the fine-tuned
# frozen-features probe (the tiny-data default: a logistic head)
_TUNED = {"epochs": 1, "guard": "off"}


@pytest.mark.parametrize(
    ("run", "options", "head"),
    [
        (
            "finetune",
            {"strategy": "finetune", "strategy_params": {**_TUNED, "head_start": "warm-up"}},
            "linear",
        ),
        ("finetune-probe", {"strategy": "finetune", "strategy_params": _TUNED}, "logistic"),
        ("knn", {"head": "knn"}, "knn"),
        ("centroid", {"head": "centroid"}, "centroid"),
    ],
)
def test_finetune_and_distance_head_bundles_export_with_parity(world, run, options, head):
    bundle = _train(world, run, **options)
    out = world["root"] / f"{run}-onnx"
    # a random test split: the held-out examples are given with --data
    export_model(bundle, out=out, data=world["test"], weights=world["weights"])
    doc = json.loads((out / EXPORT_JSON).read_text())
    assert doc["parity"]["max_abs_diff_probabilities"] <= 1e-4
    assert doc["source"]["strategy"] == options.get("strategy", "features")
    assert doc["source"]["head"] == head
    if run.startswith("finetune"):
        assert (bundle / "backbone.safetensors").is_file()


def test_the_runtime_predicts_what_the_bundle_predicts(features_bundle, world):
    from transferkit.estimator import TransferClassifier
    from transferkit.runtime import load_exported

    out = world["root"] / "features-onnx-runtime"
    export_model(features_bundle, out=out, weights=world["weights"])
    files = sorted(world["test"].rglob("*.png"))
    clf = TransferClassifier.load(features_bundle, weights=world["weights"], progress=False)
    expected = clf.predict_proba(files)
    proba, ok, problems = load_exported(out).predict_proba(files)
    assert ok.all() and not problems
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    assert load_exported(out).predict(files) == clf.predict(files)


# -- int8 -------------------------------------------------------------------------------------
def test_int8_is_kept_with_its_measured_accuracy(features_bundle, world):
    out = world["root"] / "int8"
    export_model(features_bundle, out=out, quantize="int8", weights=world["weights"])
    q = json.loads((out / EXPORT_JSON).read_text())["quantization"]
    assert q["type"] == "int8" and q["split"] == str(world["test"])
    # a convolutional graph: static, calibrated on half the held-out examples, judged on the
    # other half
    assert "quantize_static" in q["method"]
    assert (q["calibration_examples"], q["examples"]) == (4, 5)
    assert q["drop_points"] == pytest.approx(100 * (q["accuracy_float"] - q["accuracy_int8"]))
    assert q["drop_points"] <= 0.5
    # the quantised graph is another graph than the float one
    floats = world["root"] / "features-onnx"
    if floats.is_dir():
        assert (out / MODEL_FILE).read_bytes() != (floats / MODEL_FILE).read_bytes()


def test_int8_beyond_the_allowed_drop_is_refused_and_nothing_is_written(
    features_bundle, world, monkeypatch
):
    # every real quantisation loses >= 0 points: below a negative allowance, any is refused
    monkeypatch.setattr(exporter_module, "MAX_INT8_DROP_POINTS", -1.0)
    out = world["root"] / "refused-int8"
    with pytest.raises(BadInputError, match=r"int8 quantisation loses -?\d+\.\d\d accuracy points"):
        export_model(features_bundle, out=out, quantize="int8", weights=world["weights"])
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".refused-int8")]


# -- the held-out examples, and refusals --------------------------------------------------------
def test_a_random_test_split_is_drawn_again_from_the_training_folder(world):
    bundle = _train(world, "random-split")
    split = json.loads((bundle.parent / "metrics.json").read_text())["split"]
    out = export_model(bundle, weights=world["weights"]).path
    parity = json.loads((out / EXPORT_JSON).read_text())["parity"]
    # the examples the run was tested on: the same number, read from the training folder
    assert parity["examples"] == json.loads((bundle.parent / "metrics.json").read_text())["n_test"]
    assert parity["data"].startswith(str(Path(world["train"]).resolve()))
    assert (
        f"seed {split['seed']}" in parity["data"] and parity["max_abs_diff_probabilities"] <= 1e-4
    )


def test_a_training_folder_changed_since_the_run_needs_data_and_says_so(world, tmp_path):
    import shutil

    data = shutil.copytree(world["train"], tmp_path / "changing")
    bundle = _train(world, "changed-data", data=data)
    shutil.copy(data / "circle" / "0.png", data / "circle" / "extra.png")
    with pytest.raises(BadInputError, match=f"{data} changed since.*--data DIR"):
        export_model(bundle, weights=world["weights"])
    assert not (bundle.parent / "model-onnx").exists()


def test_a_recorded_test_folder_that_is_gone_is_named(world, tmp_path):
    gone = make_shapes_folder(tmp_path / "gone", per_class=2)
    bundle = _train(world, "gone-test", test=gone)
    import shutil

    shutil.rmtree(gone)
    with pytest.raises(BadInputError, match=f"{gone}.*--data DIR"):
        export_model(bundle, weights=world["weights"])


def test_held_out_classes_the_model_does_not_know_are_refused(features_bundle, world, tmp_path):
    other = make_shapes_folder(tmp_path / "other", per_class=2, classes=("circle", "star"))
    with pytest.raises(BadInputError, match="not trained on: star"):
        export_model(features_bundle, data=other, out=tmp_path / "x", weights=world["weights"])


def test_a_killed_exports_scratch_folder_is_deleted_by_the_next(features_bundle, world):
    out = world["root"] / "after-kill"
    # what an export killed mid-way leaves beside its output (pid 999999999: no such process)
    left = world["root"] / ".after-kill-export.999999999-abcd1234.tmp"
    left.mkdir()
    (left / MODEL_FILE).write_bytes(b"half a graph")
    export_model(features_bundle, out=out, weights=world["weights"])
    assert not left.exists() and (out / MODEL_FILE).is_file()
    assert not [p for p in world["root"].iterdir() if p.name.startswith(".after-kill")]


def test_an_existing_export_is_replaced_whole(features_bundle, world):
    out = world["root"] / "replaced"
    out.mkdir()
    (out / "stale.txt").write_text("from before")
    export_model(features_bundle, out=out, weights=world["weights"])
    assert sorted(p.name for p in out.iterdir()) == [EXPORT_JSON, MODEL_FILE]


def test_backbones_without_a_faithful_graph_are_refused_naming_those_that_export():
    from transferkit.backbones import resolve_backbone
    from transferkit.export import audio, image, text  # noqa: F401 - registers the graphs
    from transferkit.export.graphs import graph_for

    with pytest.raises(BadInputError, match="audio backbones that export: aisfx"):
        graph_for(resolve_backbone("mfcc_stats"))


def test_the_cli_exports_and_exits_2_when_the_held_out_examples_are_unknown(world, tmp_path):
    import shutil

    data = shutil.copytree(world["train"], tmp_path / "changing")
    bundle = _train(world, "cli-changed-data", data=data)
    shutil.copy(data / "circle" / "0.png", data / "circle" / "extra.png")
    env = {**os.environ}
    out = world["root"] / "cli-onnx"
    args = ["export", bundle, "--format", "onnx", "--weights", world["weights"]]
    done = subprocess.run(
        tiny_cli_command(*args, "--data", world["test"], "--out", out),
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["out"] == str(out) and summary["parity_max_abs_diff"] <= 1e-4
    refused = subprocess.run(
        tiny_cli_command(*args), capture_output=True, text=True, env=env, timeout=300
    )
    assert refused.returncode == 2 and "--data DIR" in refused.stderr
