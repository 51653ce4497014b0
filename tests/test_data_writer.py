"""write_image_folder: arrays and PIL images to a class-folder dataset, all or nothing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.data import load_image_folder, open_image, write_image_folder
from transferkit.errors import BadInputError


def _image(path: Path, colour: tuple[int, int, int] = (10, 20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), colour).save(path)
    return path


def test_write_image_folder_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    images = {
        "rgb": [rgb, Image.fromarray(rgb)],
        "grey": [np.full((5, 6), 9, dtype=np.uint8), np.full((5, 6, 1), 0.5)],
        "mask": [np.ones((3, 3), dtype=bool), np.arange(9).reshape(3, 3)],
    }
    root = write_image_folder(tmp_path / "out", images)
    data = load_image_folder(root)
    assert data.class_counts() == {"grey": 2, "mask": 2, "rgb": 2}
    assert np.array_equal(np.asarray(open_image(root / "rgb" / "00000.png")), rgb)
    assert np.asarray(open_image(root / "grey" / "00001.png"))[0, 0, 0] == 128
    assert np.asarray(open_image(root / "mask" / "00000.png"))[0, 0, 0] == 255
    assert os.listdir(tmp_path) == ["out"]  # no staging folder left behind


def test_write_image_folder_into_existing_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    write_image_folder(tmp_path / "out", {"a": [np.zeros((2, 2), np.uint8)]})
    assert (tmp_path / "out" / "a" / "00000.png").is_file()


def test_write_image_folder_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    _image(tmp_path / "out" / "keep.png")
    with pytest.raises(BadInputError, match="not empty"):
        write_image_folder(tmp_path / "out", {"a": [np.zeros((2, 2), np.uint8)]})


@pytest.mark.parametrize("label", ["", ".hidden", "a/b", "..", 3])
def test_write_image_folder_rejects_bad_labels(tmp_path: Path, label: object) -> None:
    with pytest.raises(BadInputError, match="class folder name"):
        write_image_folder(tmp_path / "out", {label: [np.zeros((2, 2), np.uint8)]})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((3, 8, 8), np.uint8), "channels-last"),
        (np.full((2, 2), 16.0), "floats in \\[0, 1\\]"),
        (np.full((2, 2), 300), "uint8"),
    ],
)
def test_write_image_folder_rejects_bad_arrays(
    tmp_path: Path, array: np.ndarray, match: str
) -> None:
    with pytest.raises(BadInputError, match=match):
        write_image_folder(tmp_path / "out", {"a": [np.zeros((2, 2), np.uint8), array]})
    assert not (tmp_path / "out").exists()  # all or nothing
    assert os.listdir(tmp_path) == []
