"""Image graphs: cropped uint8 pixels in, normalisation inside the graph (``PixelsToEmbedding``).

Every torch image backbone exports (torchvision, EfficientNet-Lite, timm; pretrained or
fine-tuned weights). Decoding, the resize of the shorter side and the centre crop stay outside,
as the extraction path does them (``features/image_extract.py``): stated in ``inputs``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.export.graphs import ModalityGraph, register_graph
from transferkit.modalities import get_modality
from transferkit.modalities.image import ImageModality


@register_graph
class ImageGraph(ModalityGraph):
    modality = ImageModality.name
    input_names = ("pixels",)
    int8_calibrated = True

    def __new__(cls, backbone):
        # a frozen model from another framework is its own ONNX graph, not a module to trace
        if cls is ImageGraph and hasattr(backbone.materialize(), "onnx_model"):
            cls = ForeignImageGraph
        return super().__new__(cls)

    def embedder(self) -> nn.Module:
        from transferkit.features.runtime import PixelsToEmbedding

        return PixelsToEmbedding(self.backbone.materialize().eval())

    def example(self) -> tuple[torch.Tensor, ...]:
        size = self.backbone.preprocess.input_size
        generator = torch.Generator().manual_seed(0)
        return (torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=generator),)

    def inputs_spec(self) -> dict[str, Any]:
        p = self.backbone.preprocess
        return {
            **get_modality(self.modality).export_inputs(self.backbone),
            "names": list(self.input_names),
            "pixels": {"dtype": "uint8", "shape": [None, 3, p.input_size, p.input_size]},
            "input_size": p.input_size,
            "steps": [
                "decode the file with Pillow: first frame, EXIF orientation applied, "
                "transparency composited on white, 8-bit RGB (8-bit grey kept as one channel)",
                f"resize so the shorter side is {p.resize_size} pixels (the longer side "
                "int(resize_size * long / short), truncated) with Pillow's "
                f"'{p.interpolation}' filter, antialiased",
                f"take the centre {p.input_size}x{p.input_size} square (offsets "
                "int(round((side - input_size) / 2)))",
                "grey images: the one plane copied into R, G and B",
                "planar RGB: (3, H, W) per image, stacked into (B, 3, H, W) uint8",
            ],
            "normalization": "inside the graph: (pixels / 255 - mean) / std",
        }

    def prepare(self, sample) -> np.ndarray:
        from transferkit.runtime.pixels import planar_pixels

        p = self.backbone.preprocess
        return planar_pixels(
            sample.raw,
            input_size=p.input_size,
            resize_size=p.resize_size,
            interpolation=p.interpolation,
        )

    def batch(self, items: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {"pixels": np.stack(items)}


class ForeignImageGraph(ImageGraph):
    """An image graph whose backbone is a frozen ONNX graph (``backbones/foreign``): joined to
    the head in ONNX (``export/foreign.py``), the normalisation that model wants inside."""

    def write_onnx(self, head, dest, opset: int) -> None:
        from transferkit.export.foreign import join_graph

        join_graph(self.backbone, head, dest, opset)

    def inputs_spec(self) -> dict[str, Any]:
        p = self.backbone.preprocess
        return {
            **super().inputs_spec(),
            "normalization": f"inside the graph: channels in {p.channel_order.upper()} order, "
            f"pixels * {p.scale:g} - mean {list(p.mean)}, / std {list(p.std)}, laid out "
            f"{p.layout.upper()} for the model",
        }

    def float_nodes(self, nodes) -> list[str]:
        # the joined graph names the head's nodes "head/..." (the torch graph: "/head/...")
        names = [n.name for n in nodes if n.name.startswith("head/")]
        convs = [n.name for n in nodes if n.op_type == "Conv"]
        return names + ([convs[0], convs[-1]] if convs else [])
