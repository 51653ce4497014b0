"""runtime.pixels, the one image geometry of training and of exported models: bit-identical to
torchvision's Resize + CenterCrop on PIL images (the pipeline it replaced), padding included."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transferkit.runtime.pixels import crop_pixels, planar_pixels


def _torchvision(img: Image.Image, input_size: int, resize_size: int, interpolation: str):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    resized = F.resize(img, [resize_size], interpolation=InterpolationMode(interpolation))
    return np.asarray(F.center_crop(resized, [input_size]))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize(
    "resize_size,input_size",
    # the last two are smaller than the crop on one or both sides: torchvision pads with black
    [(256, 224), (224, 224), (40, 32), (31, 32), (20, 33)],
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_crop_equals_torchvision_resize_then_center_crop(
    interpolation, resize_size, input_size, mode
):
    rng = np.random.default_rng(3)
    for width, height in [(28, 28), (29, 31), (53, 37), (301, 1001), (640, 427), (9, 120)]:
        shape = (height, width, 3) if mode == "RGB" else (height, width)
        img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode)
        expected = _torchvision(img, input_size, resize_size, interpolation)
        got = crop_pixels(
            img,
            input_size=input_size,
            resize_size=resize_size,
            interpolation=interpolation,
            expand_grey=False,
        )
        np.testing.assert_array_equal(got, expected, err_msg=f"{width}x{height} {mode}")


def test_planar_pixels_are_the_crop_in_planes(tmp_path):
    rng = np.random.default_rng(4)
    colour = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    grey = Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8), mode="L")
    options = {"input_size": 32, "resize_size": 40, "interpolation": "bicubic"}
    for name, img in (("colour.png", colour), ("grey.png", grey)):
        img.save(tmp_path / name)
        planes = planar_pixels(tmp_path / name, **options)
        assert planes.shape == (3, 32, 32) and planes.dtype == np.uint8
        crop = crop_pixels(img, **options)
        np.testing.assert_array_equal(planes, crop.transpose(2, 0, 1))
