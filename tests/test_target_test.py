"""``train --strategy adapt --target ... --target-test ...`` end to end on the tiny backbone:
the chooser's record, source-only vs adapted on labelled target examples, the domain-gap and
target sections of the report, ``--method`` resolution, and the target's bad input."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from conftest import make_shapes_folder
from PIL import Image
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.cli import main

CLASSES = ("circle", "square")


def _inverted(source, dest, keep=None):
    """``source``'s class folders, colour-inverted (the target domain), some classes only."""
    for path in sorted(source.rglob("*.png")):
        if keep is None or path.parent.name in keep:
            (dest / path.parent.name).mkdir(parents=True, exist_ok=True)
            Image.eval(Image.open(path).convert("RGB"), lambda v: 255 - v).save(
                dest / path.parent.name / path.name
            )
    return dest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    target_pool = make_shapes_folder(root / "pool", per_class=5, seed=9)  # 3 classes
    unlabelled = root / "target"
    unlabelled.mkdir()
    for i, path in enumerate(sorted(_inverted(target_pool, root / "inv").rglob("*.png"))):
        path.rename(unlabelled / f"{i}.png")
    (unlabelled / "broken.png").write_bytes(b"\x89PNG not really")
    texts = root / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("a text, not a photo")
    empty = root / "empty"
    empty.mkdir()
    return {
        "data": make_shapes_folder(root / "train", per_class=8, classes=CLASSES),
        "test": make_shapes_folder(root / "test", per_class=3, seed=5, classes=CLASSES),
        "target": unlabelled,
        # labelled target examples, one class of which ("triangle") the training data lacks
        "target_test": _inverted(make_shapes_folder(root / "tt", per_class=3, seed=7), root / "ti"),
        "texts": texts,
        "empty": empty,
        "weights": write_tiny_weights(root / "tiny.safetensors"),
        "root": root,
    }


def _train(world, out, *extra, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(world["root"] / "cache"))
    argv = ["train", world["data"], "--test", world["test"], "--out", out, "--backbone", NAME,
            "--weights", world["weights"], "--no-progress", "--runtime", "torch",
            "--augment", "none", *extra]  # fmt: skip
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_adapt_auto_with_target_test_compares_source_only_and_adapted(
    world, capsys, monkeypatch, caplog
):
    out = world["root"] / "auto"
    code, err = _train(
        world, out, "--strategy", "adapt", "--method", "auto", "--target", world["target"],
        "--target-test", world["target_test"], capsys=capsys, monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert "broken.png" in err  # an unreadable target file: warned and skipped
    metrics = json.loads((out / "metrics.json").read_text())
    adapt = metrics["adapt"]
    assert adapt["chosen"] in adapt["candidates"] and "source-only" in adapt["candidates"]
    assert "coral" in adapt["candidates"] and adapt["reason"]
    scored = [c for c in adapt["candidates"].values() if "estimated_target_accuracy" in c]
    assert all(0 <= c["estimated_target_accuracy"] <= 1 for c in scored) and scored
    assert adapt["n_target"] == 15
    gap = metrics["domain_gap"]
    assert 0 <= gap["before"] <= 2 and 0 <= gap["after"] <= 2
    tt = metrics["target_test"]
    assert tt["n"] == 6 and tt["unknown_classes"] == {"triangle": 3}
    assert "adaptation cannot invent classes" in tt["note"]
    assert "3 target example(s) of triangle left out" in caplog.text
    for role in ("source_only", "adapted"):
        assert 0 <= tt[role]["accuracy"] <= 1
    assert tt["gain_points"] == pytest.approx(
        100 * (tt["adapted"]["accuracy"] - tt["source_only"]["accuracy"])
    )
    report = (out / "report.html").read_text()
    for anchor in ("adapt", "domain-gap", "target-test"):
        assert f'id="{anchor}"' in report
    assert "Proxy A-distance" in report and "source-only" in report
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["strategy"]["name"] == "adapt"
    predicted = main(["predict", str(out / "model"), str(world["test"] / "circle" / "0.png"),
                      "--weights", str(world["weights"]), "--runtime", "torch",
                      "--no-progress"])  # fmt: skip
    assert predicted == 0


def test_a_labelled_target_serves_as_target_test_too(world, capsys, monkeypatch, caplog):
    out = world["root"] / "labelled"
    caplog.set_level(logging.INFO, logger="transferkit")
    code, err = _train(
        world, out, "--strategy", "adapt", "--method", "coral", "--target", world["target_test"],
        capsys=capsys, monkeypatch=monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert "its labels are ignored for training and used as --target-test" in caplog.text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "coral"  # --method NAME is --strategy NAME
    assert metrics["coral"]["n_target"] == 9 and metrics["target_test"]["n"] == 6


def test_method_and_target_bad_input_exit_2(world, capsys, monkeypatch):
    out = world["root"] / "refused"

    def refused(*extra):
        code, err = _train(world, out, *extra, capsys=capsys, monkeypatch=monkeypatch)
        assert code == 2, err
        assert not out.exists()
        return err

    err = refused("--strategy", "features", "--method", "coral")
    assert "--method chooses the adaptation method of --strategy adapt" in err
    err = refused("--strategy", "adapt", "--method", "features", "--target", world["target"])
    assert "'features' is not an adaptation method" in err and "coral" in err
    err = refused("--strategy", "adapt", "--target", world["texts"])
    assert "holds texts but the training data holds images" in err
    err = refused("--strategy", "adapt", "--target", world["empty"])
    assert f"--target {world['empty']}" in err and "no images" in err
    err = refused("--strategy", "features", "--target-test", world["target_test"])
    assert "--target-test compares source-only with an adapted model" in err
