"""Training-time augmentation: crop_pixels' output contract, seeded only by the numpy Generator."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.backbones.preprocess import (
    ImagePreprocess,
    crop_pixels,
    normalize_pixels,
    preprocess_image,
)
from transferkit.errors import BadInputError
from transferkit.finetune.augment import AUGMENTS, training_transform

SMALL = ImagePreprocess(input_size=32, resize_size=36)


def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    return {
        "rgb_640x480": Image.fromarray(photo),
        "grey_28x28": Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L"),
        "rgba_50x30": Image.fromarray(
            rng.integers(0, 256, (30, 50, 4), dtype=np.uint8), mode="RGBA"
        ),
        "rgb_1x1": Image.fromarray(np.array([[[200, 10, 90]]], dtype=np.uint8)),
        "grey_1x1": Image.fromarray(np.array([[77]], dtype=np.uint8), mode="L"),
        "tall_301x1001": Image.fromarray(rng.integers(0, 256, (1001, 301, 3), dtype=np.uint8)),
        "palette": Image.fromarray(photo[:100, :120]).convert("P"),
    }


def _asymmetric(size: int = 64) -> Image.Image:
    """Left half black, right half white: a flip is visible in the output."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[:, size // 2 :] = 255
    return Image.fromarray(pixels)


@pytest.mark.parametrize("level", AUGMENTS)
@pytest.mark.parametrize("cfg", [SMALL, ImagePreprocess(input_size=33, resize_size=37)])
def test_shape_and_dtype_for_every_level_and_input(level, cfg):
    transform = training_transform(cfg, level)
    rng = np.random.default_rng(1)
    for name, img in _images().items():
        for _ in range(3):
            out = transform(img, rng)
            assert isinstance(out, np.ndarray), name
            assert out.dtype == np.uint8, name
            assert out.shape == (cfg.input_size, cfg.input_size, 3), name


@pytest.mark.parametrize("level", AUGMENTS)
def test_default_size_and_bicubic_interpolation(level):
    for interpolation in ("bicubic", "nearest"):
        cfg = ImagePreprocess(input_size=224, resize_size=232, interpolation=interpolation)
        out = training_transform(cfg, level)(_images()["rgb_640x480"], np.random.default_rng(0))
        assert out.shape == (224, 224, 3) and out.dtype == np.uint8


def test_none_is_exactly_crop_pixels():
    for cfg in (SMALL, ImagePreprocess()):
        transform = training_transform(cfg, "none")
        for name, img in _images().items():
            rng = np.random.default_rng(5)
            state = rng.bit_generator.state
            np.testing.assert_array_equal(transform(img, rng), crop_pixels(img, cfg), err_msg=name)
            assert rng.bit_generator.state == state  # "none" draws nothing


@pytest.mark.parametrize("level", ["light", "strong"])
def test_same_seed_same_pixels(level):
    transform = training_transform(SMALL, level)
    images = list(_images().values())
    first_rng, second_rng = np.random.default_rng(42), np.random.default_rng(42)
    first = [transform(img, first_rng) for img in images * 2]
    # other RNGs moving in between must not matter
    random.random()
    torch.rand(3)
    np.random.rand()
    second = [transform(img, second_rng) for img in images * 2]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("level", ["light", "strong"])
def test_resumed_generator_reproduces_the_rest(level):
    """Restoring a saved generator state (what a checkpoint does) gives the same later pixels."""
    transform = training_transform(SMALL, level)
    img = _images()["rgb_640x480"]
    rng = np.random.default_rng(3)
    transform(img, rng)
    saved = rng.bit_generator.state
    expected = [transform(img, rng) for _ in range(3)]
    resumed = np.random.default_rng()
    resumed.bit_generator.state = saved
    for want in expected:
        np.testing.assert_array_equal(transform(img, resumed), want)


def test_light_is_the_evaluation_geometry_mirrored_half_of_the_time():
    transform = training_transform(SMALL, "light")
    img = _images()["rgb_640x480"]
    plain = crop_pixels(img, SMALL)
    rng = np.random.default_rng(0)
    outputs = [transform(img, rng) for _ in range(40)]
    mirrored = [np.array_equal(o, plain[:, ::-1]) for o in outputs]
    assert all(m or np.array_equal(o, plain) for m, o in zip(mirrored, outputs))
    assert 10 <= sum(mirrored) <= 30


@pytest.mark.parametrize("level", ["strong"])
def test_variety_across_seeds_and_calls(level):
    transform = training_transform(SMALL, level)
    img = _images()["rgb_640x480"]
    across_seeds = {transform(img, np.random.default_rng(seed)).tobytes() for seed in range(8)}
    assert len(across_seeds) == 8
    rng = np.random.default_rng(0)
    across_calls = {transform(img, rng).tobytes() for _ in range(8)}
    assert len(across_calls) == 8
    # and it differs from the evaluation geometry
    assert crop_pixels(img, SMALL).tobytes() not in across_seeds


@pytest.mark.parametrize("level", ["light", "strong"])
def test_flip_happens_sometimes(level):
    # a crop keeps >= 35 % of the area, so it always spans the black/white edge: the outer
    # columns say which way round the output is
    cfg = ImagePreprocess(input_size=16, resize_size=16, interpolation="nearest")
    transform = training_transform(cfg, level)
    rng = np.random.default_rng(0)
    flipped = 0
    trials = 60
    for _ in range(trials):
        out = transform(_asymmetric(), rng).astype(float).mean(axis=2)
        left, right = out[:, :4].mean(), out[:, -4:].mean()
        assert left != right
        flipped += left > right
    assert 0.25 * trials < flipped < 0.75 * trials


def test_light_keeps_colour_and_strong_changes_it():
    """light is geometry only: a flat colour stays that colour; strong jitters colour."""
    flat = Image.fromarray(np.full((40, 60, 3), (180, 60, 30), dtype=np.uint8))
    light = training_transform(SMALL, "light")
    strong = training_transform(SMALL, "strong")
    rng = np.random.default_rng(0)
    for _ in range(5):
        np.testing.assert_array_equal(light(flat, rng), np.asarray(flat)[:32, :32])
    centres = {tuple(strong(flat, rng)[16, 16]) for _ in range(10)}
    assert len(centres) > 5


def test_strong_makes_grey_sometimes():
    flat = Image.fromarray(np.full((40, 40, 3), (200, 40, 40), dtype=np.uint8))
    strong = training_transform(SMALL, "strong")
    rng = np.random.default_rng(0)
    grey = 0
    for _ in range(100):
        centre = strong(flat, rng)[16, 16].astype(int)
        grey += centre.max() == centre.min()
    assert 2 <= grey <= 25


def test_no_global_rng_used_and_input_untouched():
    img = _images()["rgb_640x480"]
    before = np.asarray(img).copy()
    torch_state = torch.get_rng_state()
    py_state = random.getstate()
    np_state = np.random.get_state()
    rng = np.random.default_rng(0)
    for level in AUGMENTS:
        for _ in range(3):
            training_transform(SMALL, level)(img, rng)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    after_np = np.random.get_state()
    assert after_np[0] == np_state[0] and np.array_equal(after_np[1], np_state[1])
    np.testing.assert_array_equal(np.asarray(img), before)


def test_eval_path_unchanged_after_augmenting():
    cfg = ImagePreprocess()
    images = _images()
    expected = {name: preprocess_image(img, cfg) for name, img in images.items()}
    rng = np.random.default_rng(0)
    for level in ("light", "strong"):
        for img in images.values():
            training_transform(cfg, level)(img, rng)
    for name, img in images.items():
        got = preprocess_image(img, cfg)
        assert torch.equal(got, expected[name]), name
        assert torch.equal(got, torch.from_numpy(normalize_pixels(crop_pixels(img, cfg), cfg)))


def test_unknown_level_is_refused_with_the_choices():
    with pytest.raises(BadInputError) as info:
        training_transform(SMALL, "heavy")
    message = str(info.value)
    assert "'heavy'" in message
    for level in AUGMENTS:
        assert level in message
