"""``mmd`` end to end through the CLI on tiny real images, with the linear-time estimate."""

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
from transferkit.errors import BadInputError
from transferkit.strategies import make_strategy


def test_mmd_trains_through_the_cli_and_reports_the_discrepancy(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    argv = [
        "train", make_shapes_folder(tmp_path / "train", per_class=8), "--out", out,
        "--test", make_shapes_folder(tmp_path / "test", per_class=3, seed=5),
        "--target", make_shapes_folder(tmp_path / "target", per_class=4, seed=9),
        "--backbone", NAME, "--weights", write_tiny_weights(tmp_path / "tiny.safetensors"),
        "--strategy", "mmd", "--mmd-estimate", "linear", "--epochs", "2", "--lr", "5e-3",
        "--batch-size", "8", "--no-progress", "--runtime", "torch",
    ]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    adaptation = metrics["domain_adaptation"]
    assert adaptation["method"] == "mmd" and adaptation["options"] == {"estimate": "linear"}
    assert [r["epoch"] for r in adaptation["history"]] == [1, 2]
    # no discriminator: the MMD itself is the record
    assert all(set(r) == {"epoch", "domain_loss"} for r in adaptation["history"])
    report = (out / "report.html").read_text()
    assert 'aria-label="domain loss per epoch"' in report
    assert 'aria-label="discriminator accuracy per epoch"' not in report
    assert "MMD² between source and target features" in report


def test_an_unknown_estimate_is_refused():
    with pytest.raises(BadInputError, match="mmd-estimate must be one of quadratic, linear"):
        make_strategy("mmd", mmd_estimate="cubic")
