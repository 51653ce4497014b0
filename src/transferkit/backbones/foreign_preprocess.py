"""Image preprocessing of a frozen model from another framework (``backbones/foreign``): the
geometry of ``ImagePreprocess`` plus the model's own scale, channel order, layout and output.

Beside ``preprocess.py`` rather than in ``foreign/`` so that reading a bundle's manifest
(``text_preprocess.preprocess_from_dict``) needs nothing of the foreign-model machinery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transferkit.backbones.preprocess import ImagePreprocess

LAYOUTS = ("nchw", "nhwc")
CHANNEL_ORDERS = ("rgb", "bgr")
POOLS = ("none", "avg")
# the manifest's tag for this config (see text_preprocess.preprocess_from_dict)
KIND = "image-foreign"


@dataclass(frozen=True)
class ForeignPreprocess(ImagePreprocess):
    """Geometry as ``ImagePreprocess`` (resize the shorter side, centre-crop ``input_size``),
    then ``(pixel * scale - mean) / std`` per channel, in ``channel_order``, laid out as
    ``layout``; the embedding is tensor ``output`` (the model's first output when empty),
    averaged over its spatial axes when ``pool`` is ``avg``.

    Unlike ``ImagePreprocess``, ``mean`` and ``std`` are in the model's own units (after
    ``scale``) and channel order: open_nsfw's BGR mean (104, 117, 123) is written as is.
    """

    layout: str = "nchw"
    channel_order: str = "rgb"
    scale: float = 1.0 / 255.0
    output: str = ""
    pool: str = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in (
            ("layout", LAYOUTS),
            ("channel_order", CHANNEL_ORDERS),
            ("pool", POOLS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"The {name!r} parameter of ForeignPreprocess must be one of {list(allowed)}. "
                    f"Got {getattr(self, name)!r} instead."
                )
        scale = self.scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise ValueError(f"The 'scale' parameter must be a number. Got {scale!r} instead.")
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"The 'scale' parameter must be finite and > 0. Got {scale!r}.")
        object.__setattr__(self, "scale", float(scale))
        if not isinstance(self.output, str):
            raise ValueError(f"The 'output' parameter must be a name. Got {self.output!r}.")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, **super().to_dict()}
