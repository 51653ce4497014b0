"""Image inputs of an exported graph: decoded, resized and cropped as the bundle does, planar
uint8 pixels (B, 3, H, W) in; normalisation is inside the graph."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from transferkit.errors import TransferkitError
from transferkit.runtime.inputs import Feed, GraphInputs, decode_all, register_inputs
from transferkit.runtime.pixels import INTERPOLATIONS, planar_pixels


@register_inputs
class ImageInputs(GraphInputs):
    modality = "image"
    accepts = "image files, (name, bytes) pairs or bytes"
    small_cpu_passes = True

    def __init__(self, folder, graph_inputs):
        super().__init__(folder, graph_inputs)
        interpolation = self.spec.get("interpolation")
        if interpolation not in INTERPOLATIONS:
            raise folder.refuse(
                f"'inputs.interpolation' must be one of {list(INTERPOLATIONS)}; "
                f"got {interpolation!r}"
            )
        if self.graph_inputs != ("pixels",):
            raise folder.refuse(
                f"an image graph takes one input, 'pixels'; this one takes {list(graph_inputs)}"
            )
        self.decode = partial(
            planar_pixels,
            input_size=self.number("input_size"),
            resize_size=self.number("resize_size"),
            interpolation=interpolation,
        )

    def feeds(self, items: Sequence) -> tuple[list[Feed], dict[int, str]]:
        good, bad = decode_all(items, self.decode, TransferkitError)
        if not good:
            return [], bad
        rows = [i for i, _ in good]
        return [(rows, {"pixels": np.stack([pixels for _, pixels in good])})], bad
