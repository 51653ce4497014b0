"""``transferkit train --strategy finetune``, ``--baseline``, ``lr-find`` and the bundle it writes.

The commands that train run the real CLI in subprocesses with the tiny backbone registered in
the child (as in test_finetune_resume.py); option refusals, which stop before anything is
trained, call ``main`` in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import make_shapes_folder
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.cli import main

TESTS = Path(__file__).resolve().parent
CHILD = """
import sys
sys.path.insert(0, {tests!r})
from tiny_backbone import register_tiny
register_tiny()
from transferkit.cli import main
sys.exit(main(sys.argv[1:]))
"""
FAST = ["--no-progress", "--runtime", "torch"]


def _cli(args, env) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", CHILD.format(tests=str(TESTS)), *map(str, args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-finetune")
    return {
        "root": root,
        "env": {**os.environ, "TRANSFERKIT_CACHE_DIR": str(root / "cache")},
        "data": make_shapes_folder(root / "train", per_class=8),
        "test": make_shapes_folder(root / "test", per_class=3, seed=5),
        "weights": write_tiny_weights(root / "tiny.safetensors"),
    }


def _train(world, out, *extra):
    return [
        "train", world["data"], "--test", world["test"], "--out", out, "--backbone", NAME,
        "--weights", world["weights"], "--strategy", "finetune", "--epochs", "1",
        "--lr", "1e-3", *extra, *FAST,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finetuned(world):
    run = world["root"] / "run"
    # the guard off: 8 images a class would keep the frozen features (a features-sized
    # bundle, tests/test_strategy_finetune.py), and these tests read a fine-tuned one
    done = _cli(_train(world, run, "--guard", "off"), world["env"])
    assert done.returncode == 0, done.stderr
    return run, done


def test_train_finetune_writes_model_metrics_and_report(finetuned):
    run, done = finetuned
    summary = json.loads(done.stdout)
    assert summary["out"] == str(run)
    assert summary["n_test"] == 9
    assert (run / "model" / "backbone.safetensors").is_file()
    assert (run / "model" / "head.safetensors").is_file()
    assert (run / "checkpoint.safetensors").is_file()
    assert json.loads((run / "run.json").read_text())["strategy"] == "finetune"

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["strategy"] == "finetune"
    assert "baseline" not in metrics
    training = metrics["training"]
    # 8 images a class: stage 2 starts from the frozen-features probe, no warm-up (LP-FT)
    assert [r["stage"] for r in training["history"]] == ["probe", "unfreeze:1"]
    assert training["lrs"]["lr"] == pytest.approx(1e-3)  # --lr given: used as is
    assert "finder" not in training["lrs"]  # nothing to find: no warm-up, --lr given
    hyper = metrics["hyperparameters"]
    assert hyper["epochs"] == 1
    assert hyper["lr"] == pytest.approx(1e-3)
    assert hyper["pretrained"] is True
    assert hyper["head_start"] == "probe" and hyper["head_epochs"] == 0
    assert metrics["head"] == "logistic"  # the probe's type, with its fine-tuned weights

    report = (run / "report.html").read_text()
    assert "Training curves" in report
    assert '<a href="#training">' in report
    assert "<svg" in report
    assert "Did transfer help" not in report
    assert "head start</th><td>the frozen-features head" in report


def test_evaluate_and_predict_the_finetuned_bundle(world, finetuned):
    run, _ = finetuned
    evaluated = _cli(["evaluate", run / "model", world["test"], *FAST], world["env"])
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["n_test"] == 9
    assert metrics["strategy"] == "finetune"
    assert 0.0 <= metrics["accuracy"] <= 1.0
    # the same bundle, the same test set: the numbers train reported
    trained = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(trained["accuracy"])

    image = world["test"] / "circle" / "0.png"
    predicted = _cli(["predict", run / "model", image, *FAST], world["env"])
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["input"] == str(image)
    assert row["label"] in {"circle", "square", "triangle"}
    assert 0.0 < row["confidence"] <= 1.0
    assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-5)


def test_report_says_a_given_lr_was_given(finetuned):
    run, _ = finetuned
    report = (run / "report.html").read_text()
    assert "learning rate (head, stage 2)</th><td>0.001 (given)" in report


def _main(argv, capsys, monkeypatch) -> tuple[int, str]:
    """``main(argv)`` in-process: its exit code (argparse's included) and stderr."""
    # main() installs its own warning printer process-wide: keep it from leaking into other tests
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lr", "0", "argument --lr: must be greater than 0"),
        ("--lr", "nan", "argument --lr: must be greater than 0"),
        ("--epochs", "0", "argument --epochs: must be at least 1"),
        ("--epochs", "1.5", "argument --epochs: expected a whole number"),
    ],
)
def test_bad_finetune_options_exit_2_naming_the_option(
    world, tmp_path, capsys, monkeypatch, option, value, message
):
    argv = ["train", world["data"], "--out", tmp_path / "run", "--strategy", "finetune"]
    code, err = _main([*argv, option, value], capsys, monkeypatch)
    assert code == 2
    assert message in err
    assert not (tmp_path / "run").exists()


def test_epochs_with_the_features_strategy_is_refused(world, tmp_path, capsys, monkeypatch):
    argv = ["train", world["data"], "--out", tmp_path / "run", "--strategy", "features"]
    code, err = _main([*argv, "--epochs", "3"], capsys, monkeypatch)
    assert code == 2
    assert "--epochs only apply when training the backbone" in err
    assert "features strategy does not use them" in err
    assert not (tmp_path / "run").exists()


def test_bad_lr_in_a_subprocess_exits_2(world, tmp_path):
    """The same refusal through the real entry point: exit status 2 and the option named."""
    bad = _cli(
        ["train", world["data"], "--out", tmp_path / "run", "--strategy", "finetune",
         "--lr", "0"], world["env"],
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--lr" in bad.stderr and "must be greater than 0" in bad.stderr


def test_baseline_adds_the_verdict_to_metrics_and_report(world):
    run = world["root"] / "with-baseline"
    done = _cli(["-q", *_train(world, run, "--baseline")], world["env"])
    assert done.returncode == 0, done.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    baseline = metrics["baseline"]
    assert {"verdict", "message", "accuracy", "delta_points"} <= set(baseline)
    assert baseline["verdict"] in {"transfer_helped", "negative_transfer", "no_clear_difference"}
    assert baseline["strategy"] == "scratch"
    assert baseline["epochs"] == 1
    assert baseline["delta_points"] == pytest.approx(
        100 * (metrics["accuracy"] - baseline["accuracy"]), abs=0.01
    )
    assert [r["stage"] for r in baseline["training"]["history"]] == ["scratch"]
    assert json.loads(done.stdout)["baseline"] == baseline["message"]
    report = (run / "report.html").read_text()
    assert "Did transfer help" in report
    assert '<a href="#baseline">' in report


def test_find_learning_rate_writes_plot_and_json(world, tmp_path, monkeypatch):
    """``lr-find``'s work through the Python API (the CLI path: the test below)."""
    from transferkit.lr_find import find_learning_rate

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "lr"
    summary = find_learning_rate(
        world["data"], out, backbone=NAME, weights=world["weights"], num_steps=20,
        runtime="torch", progress=False,
    )  # fmt: skip
    assert (out / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((out / "lr_find.json").read_text())
    assert saved["suggestion"] > 0
    assert saved["suggestion"] == pytest.approx(summary["suggestion"])


def test_lr_find_cli_writes_plot_and_json(world, tmp_path):
    out = tmp_path / "lr"
    done = _cli(
        ["lr-find", world["data"], "--backbone", NAME, "--weights", world["weights"],
         "--out", out, "--steps", "20", *FAST], world["env"],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["suggestion"] > 0
    assert (out / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((out / "lr_find.json").read_text())["suggestion"] > 0
