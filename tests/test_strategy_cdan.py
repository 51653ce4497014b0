"""``cdan`` end to end through the CLI on tiny real images, and its choice of map."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import make_shapes_folder
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.cli import main
from transferkit.finetune.domain.adversarial import (
    MultiLinearMap,
    RandomizedMultiLinearMap,
    conditioning_map,
)
from transferkit.strategies import make_strategy


def test_the_map_is_multilinear_up_to_4096_dimensions_and_randomized_above():
    small, dim = conditioning_map(16, 3)
    assert isinstance(small, MultiLinearMap) and dim == 48
    large, dim = conditioning_map(1280, 10)  # MobileNetV2's features, 10 classes
    assert isinstance(large, RandomizedMultiLinearMap) and dim == 1024


def test_cdan_trains_through_the_cli_with_entropy_conditioning(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    argv = [
        "train", make_shapes_folder(tmp_path / "train", per_class=8), "--out", out,
        "--test", make_shapes_folder(tmp_path / "test", per_class=3, seed=5),
        "--target", make_shapes_folder(tmp_path / "target", per_class=4, seed=9),
        "--backbone", NAME, "--weights", write_tiny_weights(tmp_path / "tiny.safetensors"),
        "--strategy", "cdan", "--epochs", "2", "--lr", "5e-3", "--batch-size", "8",
        "--no-progress", "--runtime", "torch",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    adaptation = metrics["domain_adaptation"]
    assert adaptation["method"] == "cdan"
    assert adaptation["options"] == {"hidden": 1024, "entropy_conditioning": True}
    assert [r["epoch"] for r in adaptation["history"]] == [1, 2]
    assert all(0 <= r["discriminator_accuracy"] <= 1 for r in adaptation["history"])
    report = (out / "report.html").read_text()
    assert 'aria-label="discriminator accuracy per epoch"' in report
    assert "conditional discriminator" in report


def test_cdan_config_refuses_a_bad_weight():
    with pytest.raises(Exception, match="da-weight must be a number > 0"):
        make_strategy("cdan", da_weight=-1.0)
