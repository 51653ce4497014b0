"""Image geometry: resize the shorter side, centre-crop, with PIL and numpy only.

The one implementation of the geometric half of image preprocessing: training and extraction
reach it through ``transferkit.backbones.preprocess.crop_pixels``, the torch-free runtime of
exported models directly, so the two can never drift apart. The result is bit-identical to
torchvision's ``Resize(resize_size)`` + ``CenterCrop(input_size)`` on a PIL image (what the
published accuracies were measured with); normalisation is the other half, done by the caller
(or inside an exported graph).
"""

from __future__ import annotations

import functools
import os

import numpy as np
from PIL import Image

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# torchvision's InterpolationMode -> PIL filter, as torchvision maps them for PIL images
_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3}
# convolution filters, whose box resize equals resize-then-crop: PIL's Image.BILINEAR / BICUBIC
_BOX_RESAMPLE = {"bilinear": 2, "bicubic": 3}


def crop_pixels(
    img: Image.Image,
    *,
    input_size: int,
    resize_size: int,
    interpolation: str,
    expand_grey: bool = True,
) -> np.ndarray:
    """uint8 (input_size, input_size, 3) RGB pixels: the shorter side resized to
    ``resize_size`` (PIL, which always antialiases), then the centre ``input_size`` square.

    With ``expand_grey=False`` an 8-bit grey image comes back as (input_size, input_size), for
    a caller that broadcasts it into an RGB buffer without an intermediate copy. Pure function
    (PIL releases the GIL while resizing): safe and fast in decoding threads.
    """
    if img.mode not in ("RGB", "L"):
        # palette, RGBA, CMYK, 16-bit: every backbone here expects 3 channels
        img = img.convert("RGB")
    # 8-bit grey stays one channel through the resize (3x less work); grey→RGB only copies the
    # channel, so the result is the same as resizing the RGB image
    box = _exact_crop_box(img.size, resize_size, input_size, interpolation)
    if box is None:
        pixels = _resize_then_crop(img, input_size, resize_size, interpolation)
    else:
        # only the input_size² pixels that survive the crop are computed (see _exact_crop_box)
        size = (input_size, input_size)
        pixels = np.asarray(img.resize(size, _BOX_RESAMPLE[interpolation], box=box), np.uint8)
    if pixels.ndim == 2 and expand_grey:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels


def planar_pixels(
    source: str | os.PathLike[str] | bytes,
    *,
    input_size: int,
    resize_size: int,
    interpolation: str,
) -> np.ndarray:
    """Decode one image (a file, or its bytes) and crop it: uint8 (3, input_size, input_size),
    the planar RGB an exported image graph takes; ``UnreadableImageError`` with the reason.

    Decoded as extraction decodes it (a JPEG at the reduced scale ``resize_size`` allows, grey
    kept as one channel through the resize), so the pixels are the bundle's.
    """
    from transferkit.data.images import open_image

    img = open_image(source, target_size=resize_size, keep_grey=True)
    pixels = crop_pixels(
        img,
        input_size=input_size,
        resize_size=resize_size,
        interpolation=interpolation,
        expand_grey=False,
    )
    if pixels.ndim == 2:  # grey: three equal planes
        return np.broadcast_to(pixels, (3, *pixels.shape))
    return pixels.transpose(2, 0, 1)


def resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """torchvision's ``resize(img, [short])`` output size: shorter side ``short``, long side
    truncated, not rounded (``_compute_resized_output_size``)."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def _resize_then_crop(
    img: Image.Image, input_size: int, resize_size: int, interpolation: str
) -> np.ndarray:
    """The literal torchvision pipeline on a PIL image: resize the shorter side, then centre-crop,
    padding with black where the resized image is smaller than the crop."""
    size = resized_size(*img.size, resize_size)
    if size != img.size:  # torchvision returns the image itself when the size is already right
        img = img.resize(size, _RESAMPLE[interpolation])
    pixels = np.asarray(img, dtype=np.uint8)
    height, width = pixels.shape[:2]
    if input_size > width or input_size > height:
        # torchvision's center_crop pads (left/top the smaller half) with 0, then crops
        pad_w, pad_h = max(input_size - width, 0), max(input_size - height, 0)
        pad = [(pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2)]
        pixels = np.pad(pixels, pad + [(0, 0)] * (pixels.ndim - 2))
        height, width = pixels.shape[:2]
    # torchvision rounds the offsets like this (Python's round: half to even)
    top = int(round((height - input_size) / 2.0))
    left = int(round((width - input_size) / 2.0))
    return pixels[top : top + input_size, left : left + input_size]


@functools.lru_cache(maxsize=4096)
def _exact_crop_box(
    image_size: tuple[int, int], resize_size: int, input_size: int, interpolation: str
) -> tuple[float, float, float, float] | None:
    """The source box whose PIL resize to (input_size, input_size) gives *bit-identical*
    pixels to resize-then-center-crop, or None when that cannot be guaranteed.

    Pillow's convolution resampling maps output pixel ``x`` of a box resize to the source
    coordinate ``box[0] + (x + 0.5) * scale`` and derives every filter weight from that
    centre, clamped to the image (not the box). Resizing straight to the crop therefore
    reproduces the full resize whenever the scale is the same double and each centre is the
    same double: true for the dyadic scales of small images upscaled (28 → 256: 28/256), not
    for arbitrary ratios. Pillow passes the box as float32, so it must be exact in float32 too.
    Cached: a dataset has few distinct image sizes, the check runs once per size.
    """
    if interpolation not in _BOX_RESAMPLE:  # nearest-neighbour rounds differently
        return None
    width, height = image_size
    new_w, new_h = resized_size(width, height, resize_size)
    if min(new_w, new_h) < input_size:  # torchvision pads: not a plain crop
        return None
    top = int(round((new_h - input_size) / 2.0))
    left = int(round((new_w - input_size) / 2.0))
    box = []
    for offset, full_in, full_out in ((left, width, new_w), (top, height, new_h)):
        scale = full_in / full_out  # what the full resize computes: (in1 - in0) / outSize
        in0, in1 = offset * scale, (offset + input_size) * scale
        if float(np.float32(in0)) != in0 or float(np.float32(in1)) != in1:
            return None
        if (in1 - in0) / input_size != scale:
            return None
        if any(in0 + (x + 0.5) * scale != (offset + x + 0.5) * scale for x in range(input_size)):
            return None
        box.append((in0, in1))
    (x0, x1), (y0, y1) = box
    return (x0, y0, x1, y1)
