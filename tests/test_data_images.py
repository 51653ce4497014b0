"""Tests for transferkit.data.images: every mode and failure decodes to RGB or a clear error."""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from conftest import write_bilevel_png, write_unreadable_images
from PIL import Image, ImageDraw

from transferkit.data.images import (
    IMAGE_SUFFIXES,
    PROBE_SIZE,
    is_image_path,
    open_image,
    probe_image,
)
from transferkit.errors import BadInputError, UnreadableImageError


def _rgb(path: Path, **kwargs) -> np.ndarray:
    image = open_image(path, **kwargs)
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.fixture(scope="session")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12000x12000 grey JPEG (144 megapixels, over the default limit), made once per session."""
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    image = Image.new("L", (12000, 12000), 40)
    ImageDraw.Draw(image).rectangle((0, 0, 5999, 11999), fill=220)  # left half light
    image.save(path, quality=75)
    return path


# --- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.jpg", True),
        ("a.JPEG", True),
        ("b.Png", True),
        ("c.tiff", True),
        ("d.webp", True),
        ("e.gif", True),
        ("f.bmp", True),
        ("g.tif", True),
        ("notes.txt", False),
        ("photo.heic", False),
        ("noext", False),
        (".hidden.jpg", False),
        ("._resource_fork.jpg", False),
        ("dir/.x.png", False),
    ],
)
def test_is_image_path(name: str, expected: bool) -> None:
    assert is_image_path(name) is expected


def test_is_image_path_only_judges_the_file_name() -> None:
    # a hidden folder higher up (e.g. a cache) is the caller's choice, not ours to refuse
    assert is_image_path(Path("/home/u/.cache/data/cats/1.jpg"))


def test_image_suffixes_are_lowercase_with_dot() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"} == IMAGE_SUFFIXES


# --- modes and formats --------------------------------------------------------------------------


def test_grey_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (8, 6), 77).save(path)
    out = _rgb(path)
    assert out.shape == (6, 8, 3)
    assert (out == 77).all()


def test_bilevel_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "bw.png"
    Image.new("1", (5, 5), 1).save(path)
    assert (_rgb(path) == 255).all()


def test_palette_with_transparency_composites_on_white(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)  # 0 red, 1 blue
    image.paste(1, (0, 0, 2, 4))  # left half index 1, declared transparent
    image.save(path, transparency=1)
    out = _rgb(path)
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 3]) == (255, 0, 0)


def test_palette_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "pal.gif"
    Image.new("RGB", (4, 4), (0, 0, 255)).convert("P").save(path)
    assert tuple(_rgb(path)[1, 1]) == (0, 0, 255)


def test_rgba_composites_on_white(tmp_path: Path) -> None:
    path = tmp_path / "rgba.png"
    image = Image.new("RGBA", (4, 2), (0, 0, 0, 0))  # fully transparent black
    image.paste((255, 0, 0, 255), (2, 0, 4, 2))  # opaque red
    image.putpixel((1, 1), (255, 0, 0, 128))  # half-transparent red
    image.save(path)
    out = _rgb(path)
    assert tuple(out[0, 0]) == (255, 255, 255)  # not black
    assert tuple(out[0, 3]) == (255, 0, 0)
    assert out[1, 1, 0] == 255 and 120 <= out[1, 1, 1] <= 135


def test_grey_with_alpha_composites_on_white(tmp_path: Path) -> None:
    path = tmp_path / "la.png"
    Image.new("LA", (2, 2), (100, 0)).save(path)
    assert (_rgb(path) == 255).all()


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_cmyk_becomes_rgb(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cmyk{suffix}"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    r, g, b = (int(v) for v in _rgb(path)[8, 8])
    assert r > 240 and g < 15 and b < 15


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(np.array([[0, 32768, 65535, 257]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    assert _rgb(path)[0, :, 0].tolist() == [0, 128, 255, 1]


def test_thirty_two_bit_int_is_read_on_the_sixteen_bit_scale(tmp_path: Path) -> None:
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 32768, 65535, 99999]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert _rgb(path)[0, :, 0].tolist() == [0, 128, 255, 255]


def test_float_image_in_unit_range_is_stretched(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(path)
    assert _rgb(path)[0, :, 0].tolist() == [0, 128, 255]


def test_float_image_on_byte_scale_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "float255.tif"
    Image.fromarray(np.array([[-5.0, 100.0, 300.0, np.nan]], dtype=np.float32)).save(path)
    assert _rgb(path)[0, :, 0].tolist() == [0, 100, 255, 0]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(path, exif=exif.tobytes(), quality=95)
    out = _rgb(path)
    assert out.shape == (40, 20, 3)  # portrait now
    assert out[5, 10, 0] > 200 and out[5, 10, 2] < 50  # left (red) went to the top
    assert out[35, 10, 2] > 200 and out[35, 10, 0] < 50


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    assert tuple(_rgb(path)[3, 3]) == (255, 0, 0)


def test_multipage_tiff_gives_first_page(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    pages = [Image.new("RGB", (6, 6), c) for c in [(0, 255, 0), (255, 0, 0)]]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert tuple(_rgb(path)[3, 3]) == (0, 255, 0)


@pytest.mark.parametrize("suffix", [".webp", ".bmp", ".png", ".tiff"])
def test_lossless_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"img{suffix}"
    pixels = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    assert np.array_equal(_rgb(path), pixels)


def test_one_pixel_image(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    assert _rgb(path).tolist() == [[[1, 2, 3]]]


def test_accepts_str_paths(tmp_path: Path) -> None:
    path = tmp_path / "s.png"
    Image.new("RGB", (2, 2)).save(path)
    assert open_image(str(path)).size == (2, 2)


# --- files that cannot be decoded ---------------------------------------------------------------


def _jpeg_bytes() -> bytes:
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    buffer = BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("truncated.jpg", _jpeg_bytes()[:700], "truncated"),
        ("empty.jpg", b"", "empty"),
        ("notes.jpg", b"this is a text file, not a photo\n", "not an image"),
        ("half.png", b"\x89PNG\r\n\x1a\n\x00\x00", "not an image"),
    ],
)
def test_undecodable_files_raise_naming_the_file(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=reason) as info:
        open_image(path)
    assert str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value, BadInputError)  # exit code 2 in the CLI


def test_missing_file_raises_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="no such file"):
        open_image(tmp_path / "gone.png")


# --- the readability probe run at load time -----------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True])
def test_probe_finds_truncation_although_it_decodes_at_reduced_scale(
    tmp_path: Path, progressive: bool
) -> None:
    path = tmp_path / "photo.jpg"
    noise = np.random.default_rng(3).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90, progressive=progressive)
    assert open_image(path, target_size=PROBE_SIZE).size == (64, 64)  # decoded at 1/8 scale
    assert probe_image(path) is None
    whole = path.read_bytes()
    for kept in (len(whole) // 4, len(whole) * 9 // 10):  # the scaled decode reads every byte
        path.write_bytes(whole[:kept])
        assert "truncated" in probe_image(path)


def test_probe_gives_the_reasons_decoding_gives_without_the_path(tmp_path: Path) -> None:
    reasons = {}
    for name in write_unreadable_images(tmp_path):
        reasons[name] = probe_image(tmp_path / name)
        with pytest.raises(UnreadableImageError) as info:
            open_image(tmp_path / name, target_size=PROBE_SIZE)
        assert str(info.value) == f"{tmp_path / name}: {reasons[name]}"
    assert "truncated" in reasons["truncated.png"] and "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "megapixel" in reasons["bomb.png"]


def test_probe_accepts_a_big_jpeg_that_scaled_decoding_can_use(big_jpeg: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        assert probe_image(big_jpeg) is None  # 144 megapixels, decoded at 1/8 scale


# --- large images -------------------------------------------------------------------------------


def test_huge_png_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    write_bilevel_png(path, 20000)  # 400 megapixels, 1 bit each: tiny on disk
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's own DecompressionBombWarning must not surface
        with pytest.raises(UnreadableImageError) as info:
            open_image(path)
    assert time.perf_counter() - start < 1.0  # refused from the header, nothing decoded
    message = str(info.value)
    assert str(path) in message and "20000x20000" in message and "downscale" in message
    assert "decompression bomb" not in message.lower()
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's global limit was left alone


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (100, 50)).save(path)
    with pytest.raises(UnreadableImageError, match="100x50"):
        open_image(path, max_pixels=4999)
    assert open_image(path, max_pixels=5000).size == (100, 50)


def test_big_jpeg_decodes_at_reduced_scale(big_jpeg: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = open_image(big_jpeg, target_size=224)
    assert image.size == (1500, 1500)  # 1/8 scale, still >= 224 on the shorter side
    out = np.asarray(image)
    assert out[750, 100, 0] > 200 and out[750, 1400, 0] < 60  # the content survived


def test_big_jpeg_without_target_size_is_refused(big_jpeg: Path) -> None:
    with pytest.raises(UnreadableImageError, match="12000x12000"):
        open_image(big_jpeg)


def test_reduced_scale_keeps_target_on_the_shorter_side(tmp_path: Path) -> None:
    path = tmp_path / "pano.jpg"
    Image.new("RGB", (4000, 1000), (9, 9, 9)).save(path)
    image = open_image(path, target_size=224)
    assert image.size == (1000, 250)  # 1/4: 1/8 would make the short side 125 < 224


def test_small_jpeg_is_not_scaled_up_or_down(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    Image.new("RGB", (300, 200)).save(path)
    assert open_image(path, target_size=224).size == (300, 200)


# --- threads ------------------------------------------------------------------------------------


def test_thread_pool_gives_the_same_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    paths = []
    for i in range(24):
        path = tmp_path / f"{i}.{['png', 'jpg', 'webp', 'tif'][i % 4]}"
        Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    serial = [np.asarray(open_image(p, target_size=16)) for p in paths]
    with ThreadPoolExecutor(max_workers=8) as pool:
        parallel = list(pool.map(lambda p: np.asarray(open_image(p, target_size=16)), paths))
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))
