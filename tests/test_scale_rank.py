"""``transferkit rank --engine ray``: the candidates encode the data on a real local Ray and
score as they do in this process."""

from __future__ import annotations

import json

import pytest
from conftest import make_shapes_folder, require_offline_weights, write_unreadable_images

from transferkit.cli import main

pytest.importorskip("ray")

CANDIDATES = "mobilenet_v2,efficientnet_lite0,nonsense_net"


def test_rank_on_ray_scores_as_in_process(tmp_path, capsys):
    require_offline_weights("mobilenet_v2")
    require_offline_weights("efficientnet_lite0")
    data = make_shapes_folder(tmp_path / "data", per_class=8)
    write_unreadable_images(data / "circle", bomb=False)  # skipped when loading, as ever
    here, there = tmp_path / "here", tmp_path / "there"
    base = ["rank", str(data), "--backbones", CANDIDATES]
    assert main([*base, "--out", str(here), "--no-progress", "--no-cache"]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(there), "--engine", "ray", "--workers", "2"]) == 0
    err = capsys.readouterr().err
    local = json.loads((here / "rank.json").read_text())
    ray = json.loads((there / "rank.json").read_text())
    assert [r["backbone"] for r in ray["ranking"]] == [r["backbone"] for r in local["ranking"]]
    assert ray["skipped"] == local["skipped"]  # the unknown name, said so, not dropped
    for a, b in zip(ray["ranking"], local["ranking"]):
        assert a["dim"] == b["dim"]
        for score in ("logme", "h_score", "knn_loo"):
            assert a[score] == pytest.approx(b[score], rel=1e-4, abs=1e-5), (a["backbone"], score)
    assert "Embedding on Ray with mobilenet_v2: 24/24 image" in err  # a line per stage


def test_rank_refuses_ray_options_without_the_ray_engine(tmp_path, capsys):
    data = make_shapes_folder(tmp_path / "data", per_class=2)
    assert main(["rank", str(data), "--workers", "2", "--out", str(tmp_path / "r")]) == 2
    assert "--address, --workers and --gpus-per-worker are for --engine ray" in (
        capsys.readouterr().err
    )
    args = ["rank", str(data), "--engine", "ray", "--gpus-per-worker", "1"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert "run on the CPU" in capsys.readouterr().err
