"""``transferkit train --strategy adapter`` end to end on the real offline all-MiniLM-L6-v2: the
bundle holds the LoRA tensors and the head only (tens of times smaller than a fine-tuned one),
``predict`` and ``evaluate`` on it give what the model gives in-process, and a run killed in the
middle of training continues with ``--resume`` to the same adapter as an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("peft")
pytest.importorskip("transformers")

from test_cli_text import NEGATIVE, POSITIVE, TEST  # noqa: E402

from transferkit.cli import main  # noqa: E402
from transferkit.finetune.checkpoint import read_checkpoint_extra  # noqa: E402

pytestmark = pytest.mark.e2e

# the child slows every training batch down, so a kill lands inside training
CHILD = """
import sys, time
import transferkit.finetune.text_batches as tb
delay = float({delay!r})
if delay:
    epoch = tb.TextBatches.train_epoch
    def slow(self, rng):
        for batch in epoch(self, rng):
            time.sleep(delay)
            yield batch
    tb.TextBatches.train_epoch = slow
from transferkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture()
def reviews(tmp_path, monkeypatch):
    from conftest import require_offline_weights

    require_offline_weights("all_minilm_l6_v2")  # skips outside CI, fails under CI
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    train = tmp_path / "reviews.csv"
    with open(train, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows([(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE])
    test = tmp_path / "test.csv"
    with open(test, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows(TEST)
    return train, test


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())


def test_an_adapter_bundle_is_small_and_predicts_as_in_process(reviews, tmp_path, capsys):
    from safetensors import safe_open

    from transferkit.estimator import TransferClassifier

    train, test = reviews
    common = ["--test", str(test), "--no-progress", "--epochs", "3", "--val-size", "0"]
    run = tmp_path / "adapter"
    classify = ["--strategy", "adapter", "--objective", "classify"]
    assert main(["train", str(train), "--out", str(run), *classify, *common]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["accuracy"] >= 5 / 6
    metrics = json.loads((run / "metrics.json").read_text())
    trained, total = metrics["parameters"]["trained"], metrics["parameters"]["total"]
    assert trained / total < 0.05  # LoRA r=8 on the 6 linear layers of 6 transformer layers
    assert "parameters trained" in (run / "report.html").read_text(encoding="utf-8")
    model = run / "model"
    assert sorted(p.name for p in model.iterdir()) == [
        "adapter.safetensors", "head.safetensors", "manifest.json"
    ]  # fmt: skip
    with safe_open(str(model / "adapter.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert len(keys) == 6 * 6 * 2 and all(".lora_A." in k or ".lora_B." in k for k in keys)

    full = tmp_path / "finetune"
    # the guard off: on this tiny set it keeps the frozen features, a features-sized bundle
    args = ["--strategy", "finetune", "--unfreeze-groups", "1", "--guard", "off", *common]
    args[args.index("3")] = "1"
    assert main(["train", str(train), "--out", str(full), *args]) == 0
    capsys.readouterr()
    assert _size(model) * 20 <= _size(full / "model")

    lines = tmp_path / "new.txt"
    lines.write_text("an absolute delight\nutterly boring and dull\n", encoding="utf-8")
    assert (
        main(["predict", str(model), str(lines), "--text", "a joyless mess", "--no-progress"]) == 0
    )
    predicted = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    clf = TransferClassifier.load(model, progress=False, cache=False)
    proba = clf.predict_proba(["an absolute delight", "utterly boring and dull", "a joyless mess"])
    for row, out in zip(proba, predicted):
        scores = [out["scores"][label] for label in clf.labels_]
        np.testing.assert_allclose(scores, row, atol=2e-6)
    assert [o["label"] for o in predicted] == ["positive", "negative", "negative"]

    assert main(["evaluate", str(model), str(test), "--no-progress"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"])


def _cli(args, env, *, delay=0.0, wait=True):
    cmd = [sys.executable, "-c", CHILD.format(delay=delay), *map(str, args)]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_killed_adapter_run_resumes_to_the_same_adapter(reviews, tmp_path):
    train, test = reviews
    env = {**os.environ, "TRANSFERKIT_CACHE_DIR": str(tmp_path / "cache")}

    def args(out):
        return [
            "-q", "train", train, "--test", test, "--out", out, "--strategy", "adapter",
            "--epochs", "5", "--batch-size", "5", "--val-size", "0", "--no-progress",
            "--objective", "classify",  # the engine that checkpoints
        ]  # fmt: skip

    straight = tmp_path / "straight"
    done = _cli(args(straight), env)
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    proc = _cli(args(killed), env, delay=0.3, wait=False)
    checkpoint = killed / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.is_file() and read_checkpoint_extra(checkpoint)["history"][-1]["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    time.sleep(0.5)  # into the next epoch (4 batches of >= 0.3 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    stopped_at = read_checkpoint_extra(checkpoint)["history"][-1]["epoch"]
    assert 2 <= stopped_at < 5 and not (killed / "metrics.json").exists()

    resumed = _cli(["-q", "train", train, "--resume", killed, "--no-progress"], env)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["training"]["resumed_from_epoch"] == stopped_at
    adapter = "model/adapter.safetensors"
    assert (killed / adapter).read_bytes() == (straight / adapter).read_bytes()
