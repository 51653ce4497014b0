"""Image preprocessing config owned by a backbone, and the one function that applies it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from transferkit.backbones.config_io import config_fingerprint, config_from_dict
from transferkit.runtime.pixels import INTERPOLATIONS
from transferkit.runtime.pixels import crop_pixels as _crop

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

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

    Resize the shorter side, centre-crop, exactly as torchvision does on a PIL image; the one
    implementation lives in ``transferkit.runtime.pixels`` (torch-free), which exported models
    use too. With ``expand_grey=False`` an 8-bit grey image comes back as (input_size,
    input_size).
    """
    return _crop(
        img,
        input_size=cfg.input_size,
        resize_size=cfg.resize_size,
        interpolation=cfg.interpolation,
        expand_grey=expand_grey,
    )


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
