"""Real models and images for the foreign-backbone tests: torchvision's MobileNetV2 (the packaged
offline weights) exported to ONNX, and small PNG folders of real handwritten digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TORCHVISION_SIDECAR = {
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def require_module(name: str) -> None:
    """Skip (outside CI) or fail (under CI) when a library the test needs is missing."""
    import importlib.util

    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed: pip install -e .[dev]"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def require_package_file(dist: str, relpath: str) -> Path:
    """A file shipped inside an installed package (skip outside CI, fail under CI if absent)."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution(dist).locate_file(relpath)))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        message = f"{dist} is not installed: run `make models`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def digits_folder(root: Path, classes=(0, 1, 7), per_class: int = 6, start: int = 0) -> Path:
    """root/<digit>/<i>.png: real scikit-learn handwritten digits, upscaled to 32x32 RGB."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    for c in classes:
        folder = root / str(c)
        folder.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(np.flatnonzero(y == c)[start : start + per_class]):
            pixels = (X[row].reshape(8, 8) * (255 / 16)).astype(np.uint8)
            grey = Image.fromarray(pixels).resize((32, 32), Image.Resampling.NEAREST)
            Image.merge("RGB", [grey, grey.point(lambda v: 255 - v), grey]).save(
                folder / f"{i}.png"
            )
    return root


def digit_pixels_and_embeddings(ref, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Six real digit images cropped as ``ref`` wants them (planar uint8, also saved to
    ``tmp_path/pixels.npy`` for a reference process), and ``ref``'s embeddings of them."""
    from transferkit.backbones.preprocess import crop_pixels

    folder = digits_folder(tmp_path / "digits", per_class=2)
    images = [Image.open(p).convert("RGB") for p in sorted(folder.rglob("*.png"))]
    pixels = np.stack([crop_pixels(img, ref.preprocess).transpose(2, 0, 1) for img in images])
    np.save(tmp_path / "pixels.npy", pixels)
    return pixels, ref.materialize().pixel_runner(2)(pixels)


def export_mobilenet_onnx(dest: Path, *, sidecar: dict | None = TORCHVISION_SIDECAR) -> Path:
    """transferkit's headless MobileNetV2 (torchvision, packaged weights) as an ONNX file taking
    normalised NCHW floats, with its sidecar JSON."""
    import torch
    from conftest import require_offline_weights

    from transferkit.backbones import load_backbone

    require_offline_weights("mobilenet_v2")
    module = load_backbone("mobilenet_v2", allow_download=False).eval()
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        (torch.zeros(2, 3, 224, 224),),
        str(dest),
        input_names=["images"],
        output_names=["features"],
        dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    if sidecar is not None:
        dest.with_name(dest.name + ".json").write_text(json.dumps(sidecar))
    return dest


def run_python(code: str, **env: str) -> str:
    """``code`` in a fresh interpreter (Keras / TensorFlow stay out of the test process)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **env},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
