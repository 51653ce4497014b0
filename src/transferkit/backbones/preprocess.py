"""Image preprocessing config owned by a backbone, and the one function that applies it."""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from transferkit.backbones.config_io import config_fingerprint, config_from_dict

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize the shorter side to ``resize_size``, center-crop ``input_size``, scale, normalise."""

    input_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"  # bilinear | bicubic | nearest
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        for name in ("input_size", "resize_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"The {name!r} parameter of ImagePreprocess must be a positive int. "
                    f"Got {value!r} instead."
                )
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"The 'interpolation' parameter of ImagePreprocess must be one of "
                f"{list(INTERPOLATIONS)}. Got {self.interpolation!r} instead."
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                triple = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                triple = ()
            if len(triple) != 3 or not all(math.isfinite(v) for v in triple):
                raise ValueError(
                    f"The {name!r} parameter of ImagePreprocess must be 3 finite numbers "
                    f"(R, G, B). Got {value!r} instead."
                )
            if name == "std" and min(triple) <= 0:
                raise ValueError(
                    f"The 'std' parameter of ImagePreprocess must be > 0. Got {value!r}."
                )
            # frozen dataclass: normalise lists from JSON to tuples of float so equality and
            # fingerprints do not depend on how the config was written
            object.__setattr__(self, name, triple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of this config."""
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocess:
        """Build from ``to_dict()`` output; unknown keys (newer versions) warn and are ignored."""
        return config_from_dict(cls, data)

    def fingerprint(self) -> str:
        """Stable sha256 hex of the canonical JSON form; a cache key for embeddings."""
        return config_fingerprint(self)


def crop_pixels(img: Image.Image, cfg: ImagePreprocess, *, expand_grey: bool = True) -> np.ndarray:
    """The geometric half of preprocessing: uint8 (input_size, input_size, 3) RGB pixels.

    With ``expand_grey=False`` an 8-bit grey image comes back as (input_size, input_size), for
    a caller that broadcasts it into an RGB buffer without an intermediate copy.

    PIL resize of the shorter side (PIL always antialiases), then center crop, exactly as
    torchvision's ``ImageClassification`` does on a PIL image. Resizing the PIL image rather than
    a tensor matters: the two differ by up to 3 grey levels, and PIL is what the published
    accuracies were measured with. Pure function (PIL releases the GIL while resizing): safe and
    fast in the decoding threads.
    """
    if img.mode not in ("RGB", "L"):
        # palette, RGBA, CMYK, 16-bit: every backbone here expects 3 channels
        img = img.convert("RGB")
    # 8-bit grey stays one channel through the resize (3x less work); grey→RGB only copies the
    # channel, so the result is the same as resizing the RGB image
    box = _exact_crop_box(img.size, cfg.resize_size, cfg.input_size, cfg.interpolation)
    if box is None:
        pixels = _resize_then_crop(img, cfg)
    else:
        # only the input_size² pixels that survive the crop are computed (see _exact_crop_box)
        size = (cfg.input_size, cfg.input_size)
        resample = _BOX_RESAMPLE[cfg.interpolation]
        pixels = np.asarray(img.resize(size, resample, box=box), dtype=np.uint8)
    if pixels.ndim == 2 and expand_grey:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return pixels


# convolution filters, whose box resize equals resize-then-crop: PIL's Image.BILINEAR / BICUBIC
_BOX_RESAMPLE = {"bilinear": 2, "bicubic": 3}


def _resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """torchvision's ``resize(img, [short])`` output size: shorter side ``short``, long side
    truncated, not rounded (``_compute_resized_output_size``)."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def _resize_then_crop(img: Image.Image, cfg: ImagePreprocess) -> np.ndarray:
    """The literal torchvision pipeline: resize the shorter side, then center-crop (or pad)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    img = F.resize(img, [cfg.resize_size], interpolation=InterpolationMode(cfg.interpolation))
    # torchvision's center_crop rounds the offsets like this (and pads if the image is smaller)
    if min(img.size) < cfg.input_size:
        return np.asarray(F.center_crop(img, [cfg.input_size]), dtype=np.uint8)
    width, height = img.size
    top = int(round((height - cfg.input_size) / 2.0))
    left = int(round((width - cfg.input_size) / 2.0))
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[top : top + cfg.input_size, left : left + cfg.input_size]


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
    new_w, new_h = _resized_size(width, height, resize_size)
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


def normalize_pixels(pixels: np.ndarray, cfg: ImagePreprocess) -> np.ndarray:
    """The arithmetic half: uint8 (..., H, W, 3) → float32 (..., 3, H, W), /255, minus mean, /std.

    The same float32 operations in the same order as torchvision (bit-identical results). The
    fast extraction path does this inside the exported graph instead (see features/runtime.py).
    """
    x = pixels.astype(np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(cfg.mean, dtype=np.float32)
    x /= np.asarray(cfg.std, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def preprocess_image(img: Image.Image, cfg: ImagePreprocess) -> torch.Tensor:
    """Float32 (3, input_size, input_size) tensor, identical to weights.transforms() output."""
    import torch

    return torch.from_numpy(normalize_pixels(crop_pixels(img, cfg), cfg))
