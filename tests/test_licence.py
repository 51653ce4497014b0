"""Licences through the real CLI: `models` shows every backbone's licence and marks the
non-commercial ones; training with such a backbone (birdnet) is refused without
``--accept-licence`` and works with it, and its metrics and report say "non-commercial"; `rank`
skips it as a candidate unless the licence is accepted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import require_offline_weights

from transferkit.backbones import list_specs
from transferkit.cli import main

pytestmark = pytest.mark.e2e
SAMPLES = Path("/usr/share/sonic-pi/samples")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """root/<kind>/<sample>.flac: 8 bass drums and 8 tabla strokes from sonic-pi-samples."""
    if not SAMPLES.is_dir():
        message = f"{SAMPLES} is missing: run `make system` (Debian's sonic-pi-samples)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("clips")
    for kind in ("bd", "tabla"):
        (root / kind).mkdir()
        for path in sorted(SAMPLES.glob(f"{kind}_*.flac"))[:8]:
            shutil.copy(path, root / kind / path.name)
    return root


def test_models_shows_every_licence_and_marks_the_non_commercial_ones(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    specs = list_specs()
    assert any(s.non_commercial for s in specs) and not all(s.non_commercial for s in specs)
    for spec in specs:
        row = next(line for line in lines if line.split()[:1] == [spec.name])
        assert row.rstrip().endswith(spec.licence + (" (non-commercial)" * spec.non_commercial))
    assert any("needs --accept-licence" in line for line in lines)
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["birdnet"]["non_commercial"] is True and "NC" in rows["birdnet"]["licence"]
    assert {n for n, r in rows.items() if r["non_commercial"]} == {
        s.name for s in specs if s.non_commercial
    }


def test_training_on_birdnet_needs_the_licence_accepted(clips, tmp_path, capsys):
    require_offline_weights("birdnet")
    run = tmp_path / "run"
    args = ["train", str(clips), "--backbone", "birdnet", "--out", str(run), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "CC-BY-NC-SA-4.0" in err and "non-commercial" in err and "--accept-licence" in err
    assert not run.exists()  # refused before anything was written

    assert main([*args, "--accept-licence"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["backbone"] == "birdnet" and metrics["strategy"] == "features"
    assert metrics["licence"] == {"name": "CC-BY-NC-SA-4.0", "non_commercial": True}
    assert metrics["audio"]["sample_rate"] == 48000
    assert metrics["accuracy"] >= 0.75  # bass drums vs tabla: BirdNET tells them apart
    report = (run / "report.html").read_text()
    assert "CC-BY-NC-SA-4.0 — non-commercial use only" in report
    assert metrics["audio"]["pooling"] == "mean" and "embeddings pooled (mean)" in report
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["backbone"]["preprocess"]["pooling"] == "mean"
    assert manifest["backbone"]["embedding_dim"] == 1024
    # the trained model predicts (its licence was accepted when it was trained)
    capsys.readouterr()
    clip = next((clips / "tabla").iterdir())
    assert main(["predict", str(run / "model"), str(clip), "--no-progress"]) == 0
    assert "tabla" in capsys.readouterr().out


def test_a_backbone_free_for_any_use_says_so_and_needs_nothing(clips, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(clips), "--backbone", "mfcc_stats", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["licence"] == {"name": "—", "non_commercial": False}
    assert "non-commercial" not in (run / "report.html").read_text()


def test_rank_skips_a_non_commercial_candidate_unless_accepted(clips, tmp_path, capsys):
    require_offline_weights("birdnet")
    out = tmp_path / "rank"
    args = ["rank", str(clips), "--backbones", "birdnet,mfcc_stats", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    report = json.loads((out / "rank.json").read_text())
    assert [r["backbone"] for r in report["ranking"]] == ["mfcc_stats"]
    (skipped,) = report["skipped"]
    assert skipped["backbone"] == "birdnet"
    assert "CC-BY-NC-SA-4.0" in skipped["reason"] and "--accept-licence" in skipped["reason"]

    assert main([*args, "--no-progress", "--accept-licence"]) == 0
    report = json.loads((out / "rank.json").read_text())
    assert {r["backbone"] for r in report["ranking"]} == {"birdnet", "mfcc_stats"}
    assert report["skipped"] == []
    capsys.readouterr()


def test_backbone_auto_ranks_a_non_commercial_candidate_only_when_accepted(clips, tmp_path):
    require_offline_weights("birdnet")
    run = tmp_path / "run"
    args = ["train", str(clips), "--backbone", "auto", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    ranking = json.loads((run / "metrics.json").read_text())["ranking"]
    assert "birdnet" not in {r["backbone"] for r in ranking["ranking"]}
    skipped = {s["backbone"]: s["reason"] for s in ranking["skipped"]}
    assert "--accept-licence" in skipped["birdnet"]
    assert "birdnet" in (run / "report.html").read_text()  # the ranking table lists it skipped
