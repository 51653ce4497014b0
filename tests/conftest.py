"""Shared fixtures: an isolated cache per test session and small real image folders."""

from __future__ import annotations

import importlib
import os
import struct
import sys
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# tiny_weights and shape_data, shared by the fine-tuning engine's tests
pytest_plugins = ["finetune_fixtures"]


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep embedding caches and ONNX exports of the test run out of the user's cache."""
    root = tmp_path_factory.mktemp("transferkit-cache")
    old = os.environ.get("TRANSFERKIT_CACHE_DIR")
    os.environ["TRANSFERKIT_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("TRANSFERKIT_CACHE_DIR", None)
    else:
        os.environ["TRANSFERKIT_CACHE_DIR"] = old


def need(what: str, ok: bool) -> None:
    """Skip (a failure under CI, where ``make test`` installs it) when a tool is missing."""
    if not ok:
        message = f"{what} is missing: run `make test` (it installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def benchmark_data(builder: str, *args, **kwargs):
    """What the benchmarks' dataset builder ``builder`` ("module.function" under benchmarks/,
    reused, not copied) returns for ``args``; skipped (a failure under CI) when the package
    registry could not give the data."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.datasets import DatasetUnavailableError

    module, function = builder.rsplit(".", 1)
    build = getattr(importlib.import_module(f"benchmarks.{module}"), function)
    try:
        return build(*args, **kwargs)
    except DatasetUnavailableError as exc:  # the package registry was unreachable
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def require_offline_weights(name: str = "mobilenet_v2") -> None:
    """Skip (outside CI) or fail (under CI) when a packaged backbone's weights are missing."""
    from transferkit.backbones import get_spec
    from transferkit.weights import find_offline_weights

    if find_offline_weights(get_spec(name).weights) is None:
        message = f"offline weights for {name} are not installed: run `make models`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def draw_shape(kind: str, seed: int, size: int = 64) -> Image.Image:
    """A small photo-like image: a coloured shape on a noisy background, varying by seed."""
    rng = np.random.default_rng(seed)
    bg = (rng.normal(200, 20, (size, size, 3))).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(bg)
    d = ImageDraw.Draw(img)
    off = int(rng.integers(0, size // 6))
    box = (size // 6 + off, size // 6 + off, size * 5 // 6 - off // 2, size * 5 // 6 - off // 2)
    if kind == "circle":
        d.ellipse(box, fill=(200, 30, 30))
    elif kind == "square":
        d.rectangle(box, fill=(30, 30, 200))
    else:
        d.polygon(
            [(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])],
            fill=(30, 160, 30),
        )
    return img


def make_shapes_folder(
    root: Path, per_class: int = 6, *, seed: int = 0, classes=("circle", "square", "triangle")
) -> Path:
    """root/<class>/<i>.png — a real (if simple) image dataset made on the spot."""
    for c, kind in enumerate(classes):
        folder = root / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(kind, seed * 1000 + c * 100 + i).save(folder / f"{i}.png")
    return root


@pytest.fixture
def shapes(tmp_path) -> Path:
    """Three classes × 6 images."""
    return make_shapes_folder(tmp_path / "shapes")


def write_bilevel_png(path: Path, side: int) -> None:
    """A side x side 1-bit PNG written row by row, so making it never needs the pixels in memory."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    row = bytes(1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def write_unreadable_images(folder: Path, *, bomb: bool = True) -> list[str]:
    """Files with image names that do not decode: a truncated PNG, an empty .jpg, a text file
    named .jpg and (``bomb``) a 400-megapixel PNG of a few kB. Returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = BytesIO()
    draw_shape("circle", 99, size=96).save(buffer, format="PNG")
    data = buffer.getvalue()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    names = ["truncated.png", "empty.jpg", "notes.jpg"]
    if bomb:
        write_bilevel_png(folder / "bomb.png", 20000)
        names.append("bomb.png")
    return names
