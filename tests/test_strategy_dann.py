"""``dann`` end to end through the CLI on tiny real images: training with ``--target``, the
metrics and report it adds, the bundle evaluated, predicted and exported as any fine-tuned one,
a run SIGKILLed after its first epoch that ``--resume`` finishes exactly as an uninterrupted
run, and the refusals of bad options."""

from __future__ import annotations

import json
import os
import signal
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
FAST = ["--no-progress", "--runtime", "torch"]
# the child registers the tiny backbone; with KILL_AT it SIGKILLs itself as that epoch starts,
# i.e. after the previous epoch's checkpoint was written
CHILD = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from tiny_backbone import register_tiny
register_tiny()
kill_at = {kill_at!r}
if kill_at:
    from transferkit.finetune.domain.hook import DomainAdaptationHook
    start = DomainAdaptationHook.on_epoch_start
    def on_epoch_start(self, run):
        if run.epoch == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        start(self, run)
    DomainAdaptationHook.on_epoch_start = on_epoch_start
from transferkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dann")
    return {
        "root": root,
        "env": {**os.environ, "TRANSFERKIT_CACHE_DIR": str(root / "cache")},
        "data": make_shapes_folder(root / "train", per_class=8),
        "test": make_shapes_folder(root / "test", per_class=3, seed=5),
        "target": make_shapes_folder(root / "target", per_class=4, seed=9),
        "weights": write_tiny_weights(root / "tiny.safetensors"),
    }


def _train(world, out, *extra, strategy="dann"):
    return [
        "train", world["data"], "--test", world["test"], "--out", out, "--backbone", NAME,
        "--weights", world["weights"], "--strategy", strategy, "--target", world["target"],
        "--epochs", "3", "--lr", "5e-3", "--batch-size", "8", "--da-weight", "0.5", *extra,
        *FAST,
    ]  # fmt: skip


def _main(argv, capsys, monkeypatch, cache) -> tuple[int, str, str]:
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(cache))
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cli(world, args, *, kill_at=None) -> subprocess.CompletedProcess:
    child = CHILD.format(tests=str(TESTS), kill_at=kill_at)
    cmd = [sys.executable, "-c", child, *map(str, args)]
    return subprocess.run(cmd, env=world["env"], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(world):
    run = world["root"] / "run"
    done = _cli(world, _train(world, run))
    assert done.returncode == 0, done.stderr
    return run


def test_train_dann_records_the_domain_loss_per_epoch_and_reports_it(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["strategy"] == "dann"
    adaptation = metrics["domain_adaptation"]
    assert adaptation["method"] == "dann" and adaptation["weight"] == 0.5
    assert adaptation["n_target"] == 12
    epochs = [r["epoch"] for r in metrics["training"]["history"] if r["stage"] != "head"]
    assert [r["epoch"] for r in adaptation["history"]] == epochs == [1, 2, 3]
    assert adaptation["steps"] == 3 * 3  # 18 training images (6 held out) in batches of 8
    for row in adaptation["history"]:
        assert 0 < row["domain_loss"] < 5
        assert 0 <= row["discriminator_accuracy"] <= 1
    coefficients = [r["grl_coefficient"] for r in adaptation["history"]]
    assert 0 < coefficients[0] < coefficients[1] < coefficients[2] < 1
    assert metrics["hyperparameters"]["da_weight"] == 0.5

    report = (trained / "report.html").read_text()
    assert "Training curves and domain alignment" in report
    assert 'aria-label="domain loss per epoch"' in report
    assert 'aria-label="discriminator accuracy per epoch"' in report
    assert "gradient reversal at the end" in report


def test_the_dann_bundle_evaluates_and_predicts_as_a_finetuned_one(world, trained):
    manifest = json.loads((trained / "model" / "manifest.json").read_text())
    assert manifest["strategy"]["name"] == "dann"
    evaluated = _cli(world, ["evaluate", trained / "model", world["test"], *FAST])
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((trained / "metrics.json").read_text())
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(metrics["accuracy"])
    image = world["target"] / "circle" / "0.png"
    predicted = _cli(world, ["predict", trained / "model", image, *FAST])
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["label"] in {"circle", "square", "triangle"}


def test_the_dann_bundle_exports_to_onnx_with_parity(world, trained):
    out = world["root"] / "onnx"
    args = ["export", trained / "model", "--format", "onnx", "--weights", world["weights"]]
    done = _cli(world, [*args, "--data", world["test"], "--out", out])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parity_max_abs_diff"] <= 1e-4


def _final(run: Path) -> tuple[dict, bytes]:
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("seconds", "split"):
        metrics.pop(key, None)
    for record in metrics["training"]["history"]:
        record.pop("seconds")
    metrics["training"].pop("seconds")
    metrics["training"].pop("resumed_from_epoch")
    return metrics, (run / "model" / "backbone.safetensors").read_bytes()


def test_sigkill_after_epoch_one_then_resume_matches_an_uninterrupted_run(world, trained):
    killed = world["root"] / "killed"
    proc = _cli(world, _train(world, killed), kill_at=2)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()

    resumed = _cli(world, ["train", world["data"], "--resume", killed, *FAST])
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads((killed / "metrics.json").read_text())
    assert after["training"]["resumed_from_epoch"] == 1
    assert _final(killed) == _final(trained)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--da-weight", "0"], "argument --da-weight: must be greater than 0"),
        (["--mmd-estimate", "linear"], "--mmd-estimate do not apply to the dann strategy"),
        # the probe start was measured for plain fine-tuning only
        (["--head-start", "probe"], "--head-start do not apply to the dann strategy"),
    ],
)
def test_bad_options_exit_2_naming_them(world, capsys, monkeypatch, extra, message):
    out = world["root"] / "refused"
    code, _, err = _main(_train(world, out, *extra), capsys, monkeypatch, world["root"] / "c")
    assert code == 2 and message in err
    assert not (out / "metrics.json").exists()


def test_dann_without_a_target_exits_2(world, capsys, monkeypatch):
    argv = _train(world, world["root"] / "no-target")
    i = argv.index("--target")
    del argv[i : i + 2]
    code, _, err = _main(argv, capsys, monkeypatch, world["root"] / "c")
    assert code == 2 and "--strategy dann adapts to a target domain" in err
