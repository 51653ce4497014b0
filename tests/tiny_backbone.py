"""A tiny registered image backbone ("tiny_cnn_test") for end-to-end fine-tuning tests.

Real code paths (registry, weight resolver with an explicit file, bundle, CLI), a model small
enough that an epoch on a few dozen 16x16 images takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from transferkit.backbones.catalog import get_spec
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.weights.resolver import WeightsSpec

NAME = "tiny_cnn_test"


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.block1 = nn.Sequential(nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.BatchNorm2d(12))
        self.block2 = nn.Sequential(nn.Conv2d(12, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16))
        self.classifier = nn.Linear(16, 10)  # the "pretraining" task's head, stripped for use

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.block1(x))
        x = torch.relu(self.block2(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class _Headless(nn.Module):
    def __init__(self, model: TinyCNN) -> None:
        super().__init__()
        self.stem, self.block1, self.block2 = model.stem, model.block1, model.block2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TinyCNN.features(self, x)


def _groups(model: nn.Module) -> list[list[str]]:
    from transferkit.backbones.base import group_by_prefix

    return group_by_prefix(model, [["stem"], ["block1"], ["block2"]])


def register_tiny() -> None:
    """Register the tiny backbone once per process."""
    try:
        get_spec(NAME)
        return
    except Exception:
        pass
    register(
        BackboneSpec(
            name=NAME,
            source="package",
            embedding_dim=16,
            preprocess=ImagePreprocess(input_size=16, resize_size=18),
            licence="test",
            description="tiny CNN for tests",
            weights=WeightsSpec(filename="tiny_cnn_test.safetensors"),
            build=TinyCNN,
            headless=_Headless,
            layer_groups=_groups,
        )
    )


def write_tiny_weights(path: Path, seed: int = 0) -> Path:
    """'Pretrained' weights: a seeded random TinyCNN whose BN statistics are not the defaults."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = TinyCNN()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    """The tiny backbone, registered for the importing test module only (the registry is
    process-wide). Import it into a test module to activate it there."""
    from transferkit.backbones import registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
        register_tiny()
        yield


_CLI_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from tiny_backbone import register_tiny
register_tiny()
from transferkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def tiny_cli_command(*args) -> list[str]:
    """A real ``transferkit ARGS`` command line, run by a child Python that registers the tiny
    backbone first."""
    import sys

    tests = str(Path(__file__).resolve().parent)
    return [sys.executable, "-c", _CLI_CHILD.format(tests=tests), *map(str, args)]
