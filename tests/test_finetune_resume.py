"""SIGKILL in the middle of an epoch, ``--resume``, and the same final model as without the kill.

Runs the real CLI in subprocesses on the tiny registered backbone; batches are slowed down (in
the child only) so the kill lands inside an epoch rather than between two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_backbone import NAME, write_tiny_weights

from transferkit.finetune.checkpoint import read_checkpoint_extra

TESTS = Path(__file__).resolve().parent
CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from tiny_backbone import register_tiny
register_tiny()
delay = float({delay!r})
if delay:
    import transferkit.finetune.image_batches as ib
    slow = ib.ImageBatches._train_batch
    def _train_batch(self, order, rng):
        time.sleep(delay)
        return slow(self, order, rng)
    ib.ImageBatches._train_batch = _train_batch
from transferkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(args, env, *, delay=0.0, wait=True):
    cmd = [sys.executable, "-c", CHILD.format(tests=str(TESTS), delay=delay), *map(str, args)]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def setup(tmp_path):
    from conftest import make_shapes_folder

    env = {**os.environ, "TRANSFERKIT_CACHE_DIR": str(tmp_path / "cache")}
    data = make_shapes_folder(tmp_path / "train", per_class=8)
    test = make_shapes_folder(tmp_path / "test", per_class=3, seed=5)
    weights = write_tiny_weights(tmp_path / "tiny.safetensors")
    return tmp_path, env, data, test, weights


def _train_args(data, test, weights, out):
    return [
        "-q", "train", data, "--test", test, "--out", out, "--backbone", NAME,
        "--weights", weights, "--strategy", "finetune", "--epochs", "6", "--lr", "5e-3",
        "--unfreeze-groups", "3", "--batch-size", "4", "--patience", "6", "--no-progress",
        "--runtime", "torch", "--guard", "off",  # compare fine-tuned weights, not the floor
    ]  # fmt: skip


def _final(run: Path) -> tuple[dict, bytes]:
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("seconds", "split"):
        metrics.pop(key, None)
    for record in metrics["training"]["history"]:
        record.pop("seconds")
    metrics["training"].pop("seconds")
    metrics["training"].get("guard", {}).pop("seconds", None)
    metrics["training"].pop("resumed_from_epoch")
    return metrics, (run / "model" / "backbone.safetensors").read_bytes()


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(setup):
    tmp, env, data, test, weights = setup
    straight = tmp / "straight"
    done = _cli(_train_args(data, test, weights, straight), env)
    assert done.returncode == 0, done.stderr

    killed = tmp / "killed"
    proc = _cli(_train_args(data, test, weights, killed), env, delay=0.15, wait=False)
    checkpoint = killed / "checkpoint.safetensors"
    deadline = time.monotonic() + 240
    epoch = -1
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.is_file():
            epoch = read_checkpoint_extra(checkpoint)["history"][-1]["epoch"]
            if epoch >= 2:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.6)  # into the next epoch (each batch takes >= 0.15 s, an epoch 6 batches)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()
    stopped_at = read_checkpoint_extra(checkpoint)["history"][-1]["epoch"]
    assert 2 <= stopped_at < 6

    resumed = _cli(["-q", "train", data, "--resume", killed, "--no-progress"], env)
    assert resumed.returncode == 0, resumed.stderr
    resumed_metrics = json.loads((killed / "metrics.json").read_text())
    assert resumed_metrics["training"]["resumed_from_epoch"] == stopped_at

    assert _final(killed) == _final(straight)


def test_resume_refuses_another_backbone_or_dataset(setup):
    tmp, env, data, test, weights = setup
    run = tmp / "run"
    args = _train_args(data, test, weights, run)
    args[args.index("6")] = "1"  # one epoch is enough to leave a checkpoint
    assert _cli(args, env).returncode == 0

    other_backbone = _cli(["train", data, "--resume", run, "--backbone", "mobilenet_v2"], env)
    assert other_backbone.returncode == 2
    assert "--backbone mobilenet_v2 (the run used tiny_cnn_test)" in other_backbone.stderr

    from conftest import make_shapes_folder

    other = make_shapes_folder(tmp / "other", per_class=8, seed=9)
    other_data = _cli(["train", other, "--resume", run, "--no-progress"], env)
    assert other_data.returncode == 2
    assert "other training data" in other_data.stderr

    nothing = _cli(["train", data, "--resume", tmp / "nowhere"], env)
    assert nothing.returncode == 2 and "there is no run.json" in nothing.stderr
