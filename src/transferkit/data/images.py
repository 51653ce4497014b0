"""Decode one image file into an upright 8-bit RGB picture, safely, the same way everywhere."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from transferkit.errors import UnreadableImageError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)

# The target size a readability probe decodes at: a JPEG at its smallest scale (1/8). Scaling
# skips detail, not data: the whole entropy stream is still read, so truncation is still found.
PROBE_SIZE = 1

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# What a PIL plugin raises when a file is not in its format; Image.open then tries the next one.
_NOT_THIS_FORMAT = (SyntaxError, IndexError, TypeError, struct.error)


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has an image suffix we read and is not hidden (name starts with '.').

    Only the name is checked: a hidden folder higher up (``~/.cache/...``) is the caller's choice;
    folder walkers prune hidden folders themselves.
    """
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def open_image(
    path: str | os.PathLike[str] | bytes,
    *,
    target_size: int | None = None,
    max_pixels: int = 100_000_000,
    keep_grey: bool = False,
) -> Image.Image:
    """Decode an image file (or its bytes, in memory) into 8-bit RGB: EXIF-upright, first
    frame, transparency on white.

    Args:
        target_size: the shorter side the caller will resize to; lets a JPEG decode at 1/2, 1/4
            or 1/8 scale while keeping at least this many pixels on its shorter side.
        max_pixels: refuse, rather than decode, anything with more pixels than this (after any
            reduced-scale JPEG decoding).
        keep_grey: return single-channel images as 8-bit grey ("L") instead of RGB; resizing
            one channel is 3x less work and, since grey→RGB only copies the channel, gives the
            same pixels as resizing the RGB version.

    Raises:
        UnreadableImageError: ``"<path>: <reason>"`` for empty, truncated, non-image or too large
            files.
    """
    name = source_name(path)
    try:
        with _binary(path) as (fp, size):
            if size == 0:
                raise UnreadableImageError(f"{name}: the file is empty (0 bytes)")
            image = _identify(fp, name)
            try:
                full_size = image.size
                if target_size:
                    # Only JPEG acts on this: its decoder can skip detail, so a 20000x20000 photo
                    # never exists in memory at full size. Other formats ignore it.
                    image.draft("RGB", (target_size, target_size))
                _check_pixels(image, full_size, max_pixels, name)
                image.load()
                _apply_orientation(image)
                return _to_rgb(image, keep_grey=keep_grey)
            finally:
                image.close()  # releases the decoder's mmap/file now, not at garbage collection
    except UnreadableImageError:
        raise
    except Exception as err:  # any decoder failure is a property of this file, not a bug
        raise UnreadableImageError(f"{name}: {_describe(err)}") from err


def probe_image(path: str | os.PathLike[str] | bytes) -> str | None:
    """Why ``open_image`` cannot decode ``path`` (the reason, without the path), or None.

    Cheap enough to run on every file of a dataset when it is loaded: JPEGs decode at reduced
    scale, and the size limit and every failure are ``open_image``'s own.
    """
    try:
        open_image(path, target_size=PROBE_SIZE, keep_grey=True)
    except UnreadableImageError as exc:
        return failure_reason(exc, path)
    return None


def source_name(source: str | os.PathLike[str] | bytes) -> str:
    """How a file, or bytes in memory, is named in a decoding error."""
    return "<bytes in memory>" if isinstance(source, bytes) else os.fspath(source)


def failure_reason(exc: BaseException, source: str | os.PathLike[str] | bytes) -> str:
    """The reason alone: decoding errors read "<file>: <reason>" and the file is listed apart."""
    text, prefix = str(exc), f"{source_name(source)}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


@contextmanager
def _binary(source: str | os.PathLike[str] | bytes) -> Iterator[tuple[IO[bytes], int]]:
    """(a binary file object, its size in bytes) for a file or bytes in memory."""
    if isinstance(source, bytes):
        yield io.BytesIO(source), len(source)
        return
    with open(source, "rb") as fp:
        yield fp, os.fstat(fp.fileno()).st_size


def _identify(fp: IO[bytes], filename: str) -> ImageFile.ImageFile:
    """``Image.open`` minus PIL's decompression-bomb check, which ``_check_pixels`` replaces.

    PIL's limit is the process-wide ``Image.MAX_IMAGE_PIXELS``: changing it is not thread-safe,
    and its check fires on open, before a huge JPEG can be told to decode at reduced scale.
    The plugin registry walked here (``Image.ID``/``Image.OPEN``) is the one ``Image.open`` uses.
    """
    prefix = fp.read(16)
    tried: set[str] = set()
    # Common formats first (cheap), then every plugin, as Image.open does.
    for load_plugins in (Image.preinit, Image.init):
        load_plugins()
        for fmt in tuple(Image.ID):
            if fmt in tried:
                continue
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            verdict = accept(prefix) if accept else True
            if not verdict or isinstance(verdict, str):  # a str verdict is a refusal with reason
                continue
            fp.seek(0)
            try:
                return factory(fp, filename)
            except _NOT_THIS_FORMAT:
                continue
    raise UnidentifiedImageError(f"cannot identify image file {filename!r}")


def _check_pixels(
    image: Image.Image, full_size: tuple[int, int], max_pixels: int, path: object
) -> None:
    """Refuse to decode an image whose pixel count could exhaust memory."""
    width, height = image.size
    if width * height <= max_pixels:
        return
    full_w, full_h = full_size
    raise UnreadableImageError(
        f"{path}: the image is {full_w}x{full_h} pixels ({full_w * full_h / 1e6:.0f} megapixels), "
        f"over the {max_pixels / 1e6:g}-megapixel limit for safe decoding; downscale it "
        "(e.g. to 4000 pixels on its longer side) or remove it"
    )


def _apply_orientation(image: Image.Image) -> None:
    """Rotate/flip the decoded pixels as the EXIF Orientation tag says (phones rarely rotate)."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except Exception:
        # A damaged EXIF block should not cost an otherwise good photo; it just stays unrotated.
        pass


def _to_rgb(image: Image.Image, *, keep_grey: bool = False) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB (or grey) without clipping deep or float data."""
    mode = image.mode
    grey = None
    if mode in _SIXTEEN_BIT_MODES:
        grey = Image.fromarray(_sixteen_to_eight(np.asarray(image)))
    elif mode == "F":
        grey = Image.fromarray(_float_to_eight(np.asarray(image)))
    elif mode == "L" and "transparency" not in image.info:
        grey = image
    if grey is not None:
        return grey.copy() if keep_grey else grey.convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        # Dropping alpha would expose whatever colour hides under transparent pixels (often black
        # or junk); transparent logos and product shots are meant to be seen on a white page.
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba)
        return rgb
    # "1", "L", "P", "RGB", "CMYK", "YCbCr", ...; convert always returns a fresh in-memory image.
    return image.convert("RGB")


def _sixteen_to_eight(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit samples to 8 bits (PIL's own convert would clip everything above 255 to white).

    Mode "I" comes from 16-bit PNG/TIFF/PGM decoders, so its range is taken as 0..65535 too.
    """
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _float_to_eight(values: np.ndarray) -> np.ndarray:
    """Map float samples to 8 bits: 0..1 data (the usual float convention) is stretched to 0..255.

    Anything else is read as already on the 0..255 scale (PIL's convention) and clipped.
    """
    finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
        finite = finite * 255.0
    return np.clip(np.rint(finite), 0, 255).astype(np.uint8)


def _describe(err: Exception) -> str:
    """A short reason for a decode failure, in words a user can act on."""
    text = str(err)
    if isinstance(err, UnidentifiedImageError):
        return "not an image file that can be decoded (unrecognised or unsupported format)"
    if isinstance(err, FileNotFoundError):
        return "no such file"
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, Image.DecompressionBombError):
        return "the image is too large to decode safely; downscale it or remove it"
    if isinstance(err, EOFError) or "truncated" in text:
        return "the image data is truncated (an interrupted download or copy?); re-export it"
    return f"cannot be decoded ({type(err).__name__}: {text}); re-export or remove it"
