"""A tiny registered vision transformer ("tiny_vit_test"): timm's own VisionTransformer with two
blocks of width 16 on 16x16 images, seeded random "pretrained" weights, for adapter tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transferkit.backbones.catalog import get_spec
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.weights.resolver import WeightsSpec

VIT_NAME = "tiny_vit_test"


def tiny_vit() -> torch.nn.Module:
    """The architecture: patches of 8 pixels, two pre-norm blocks, pooled 16-d output."""
    timm = pytest.importorskip("timm")
    return timm.models.vision_transformer.VisionTransformer(
        img_size=16, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=0
    )


def register_tiny_vit() -> None:
    """Register the tiny ViT in the (test-patched) registry, once."""
    from transferkit.backbones.timm_models import _layer_groups

    try:
        get_spec(VIT_NAME)
        return
    except Exception:
        pass
    register(
        BackboneSpec(
            name=VIT_NAME,
            source="package",
            embedding_dim=16,
            preprocess=ImagePreprocess(input_size=16, resize_size=18),
            licence="test",
            description="tiny ViT for tests",
            weights=WeightsSpec(filename="tiny_vit_test.safetensors"),
            build=tiny_vit,
            headless=lambda model: model,
            layer_groups=_layer_groups,
        )
    )


def write_tiny_vit_weights(path: Path, seed: int = 0) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    save_file({k: v.contiguous() for k, v in tiny_vit().state_dict().items()}, str(path))
    return path
