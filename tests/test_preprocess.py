"""ImagePreprocess config and preprocess_image: identical to torchvision's and timm's transforms."""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.backbones import get_spec, list_specs
from transferkit.backbones.preprocess import ImagePreprocess, preprocess_image
from transferkit.backbones.torchvision_models import torchvision_weights

TORCHVISION_SPECS = [s.name for s in list_specs() if s.source == "torchvision"]


def _images() -> list[Image.Image]:
    """Noise and gradients (harsh on resampling) in odd sizes and every common mode."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(427, 640, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, size=(1001, 301, 3), dtype=np.uint8)
    tiny = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    ramp = np.tile(np.linspace(0, 255, 333, dtype=np.uint8), (250, 1))
    rgba = rng.integers(0, 256, size=(240, 317, 4), dtype=np.uint8)
    return [
        Image.fromarray(noise),
        Image.fromarray(tall),
        Image.fromarray(tiny),
        Image.fromarray(ramp, mode="L"),
        Image.fromarray(rgba, mode="RGBA"),
        Image.fromarray(noise).convert("P"),
        Image.fromarray(tall).convert("CMYK"),
    ]


IMAGES = _images()


def test_defaults_round_trip_through_json():
    cfg = ImagePreprocess()
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ImagePreprocess.from_dict(data) == cfg
    assert ImagePreprocess.from_dict(data).fingerprint() == cfg.fingerprint()


def test_fingerprint_is_stable_across_versions_and_processes():
    # literals: if these change, every embedding cache key and bundle check changes with them
    canonical = (
        '{"input_size":224,"interpolation":"bilinear","mean":[0.485,0.456,0.406],'
        '"resize_size":256,"std":[0.229,0.224,0.225]}'
    )
    assert ImagePreprocess().fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()
    assert ImagePreprocess().fingerprint() == (
        "0b474c6c50f9d62b961c2ed3dabc8e44c6f819437d636abd91cfa32bae15b18f"
    )


def test_fingerprint_ignores_list_vs_tuple_and_int_vs_float():
    a = ImagePreprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    b = ImagePreprocess(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    assert a == b and a.fingerprint() == b.fingerprint()
    assert (
        ImagePreprocess(mean=(1, 1, 1)).fingerprint()
        == ImagePreprocess(mean=(1.0,) * 3).fingerprint()
    )


@pytest.mark.parametrize(
    "change",
    [{"input_size": 225}, {"resize_size": 232}, {"interpolation": "bicubic"}, {"mean": (0.5,) * 3}],
)
def test_fingerprint_changes_with_any_field(change):
    assert ImagePreprocess(**change).fingerprint() != ImagePreprocess().fingerprint()


def test_unknown_keys_warn_and_are_ignored(caplog):
    data = {**ImagePreprocess().to_dict(), "crop_mode": "center"}
    with caplog.at_level(logging.WARNING, logger="transferkit"):
        cfg = ImagePreprocess.from_dict(data)
    assert cfg == ImagePreprocess()
    assert "crop_mode" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"input_size": 0}, "'input_size' parameter"),
        ({"input_size": 22.5}, "'input_size' parameter"),
        ({"resize_size": True}, "'resize_size' parameter"),
        ({"interpolation": "lanczos"}, "'interpolation' parameter"),
        ({"mean": (0.5, 0.5)}, "'mean' parameter"),
        ({"mean": (0.5, float("nan"), 0.5)}, "'mean' parameter"),
        ({"std": (0.5, 0.0, 0.5)}, "'std' parameter"),
        ({"std": "abc"}, "'std' parameter"),
    ],
)
def test_invalid_values_raise_clear_value_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        ImagePreprocess(**kwargs)
    assert "Got" in str(info.value)


@pytest.mark.parametrize("name", TORCHVISION_SPECS)
def test_equals_torchvision_weights_transforms(name):
    spec = get_spec(name)
    reference = torchvision_weights(name).transforms()
    for img in IMAGES:
        ours = preprocess_image(img, spec.preprocess)
        theirs = reference(img.convert("RGB"))
        assert ours.dtype == torch.float32
        assert ours.shape == (3, spec.preprocess.input_size, spec.preprocess.input_size)
        assert torch.equal(ours, theirs), (name, img.mode, img.size)


def test_equals_timm_eval_transform():
    pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config
    from timm.models import get_pretrained_cfg

    name = "mobilenetv3_small_050"
    spec = get_spec(f"timm:{name}")
    data = resolve_data_config({}, pretrained_cfg=get_pretrained_cfg(name).to_dict())
    reference = create_transform(**data, is_training=False)
    for img in IMAGES[:3]:
        theirs = reference(img)
        assert (preprocess_image(img, spec.preprocess) - theirs).abs().max() <= 1e-6


def test_thread_pool_gives_the_same_result_as_serial():
    cfg = ImagePreprocess(interpolation="bicubic")
    serial = [preprocess_image(img, cfg) for img in IMAGES]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda im: preprocess_image(im, cfg), IMAGES * 3))
    for i, out in enumerate(parallel):
        assert torch.equal(out, serial[i % len(IMAGES)])


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_grey_images_resize_as_one_channel_with_identical_pixels(interpolation):
    """The fast path keeps 8-bit grey as one channel; the pixels must equal the RGB route's."""
    import numpy as np
    from PIL import Image

    from transferkit.backbones.preprocess import crop_pixels

    rng = np.random.default_rng(0)
    cfg = ImagePreprocess(interpolation=interpolation)
    for size in [(28, 28), (300, 171), (640, 480)]:
        grey = Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8), mode="L")
        fast = crop_pixels(grey, cfg)
        assert fast.shape == (224, 224, 3) and fast.dtype == np.uint8
        np.testing.assert_array_equal(fast, crop_pixels(grey.convert("RGB"), cfg))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("resize_size,input_size", [(256, 224), (232, 224), (224, 224), (160, 128)])
def test_box_resize_equals_torchvision_resize_then_center_crop(
    interpolation, resize_size, input_size
):
    """crop_pixels resizes straight to the crop box where that is exact; every pixel must equal
    the two-step path either way."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    from transferkit.backbones.preprocess import crop_pixels
    from transferkit.runtime.pixels import _exact_crop_box

    # the fast path is really taken for small square images (Fashion-MNIST's 28x28 → 256)
    if resize_size == 256:
        fast = _exact_crop_box((28, 28), resize_size, input_size, interpolation)
        assert (fast is None) == (interpolation == "nearest")

    cfg = ImagePreprocess(
        input_size=input_size, resize_size=resize_size, interpolation=interpolation
    )
    rng = np.random.default_rng(1)
    for width, height in [(28, 28), (29, 31), (53, 37), (301, 1001), (640, 427), (255, 256)]:
        img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        resized = F.resize(img, [resize_size], interpolation=InterpolationMode(interpolation))
        expected = np.asarray(F.center_crop(resized, [input_size]))
        np.testing.assert_array_equal(
            crop_pixels(img, cfg), expected, err_msg=f"{width}x{height} {interpolation}"
        )
