"""``dann`` on text and audio: the target batches come from the modality's own batch builder,
so the deep methods take every modality ``finetune`` does (real packaged encoders)."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess

import pytest
from conftest import require_offline_weights

from transferkit.cli import main

pytestmark = pytest.mark.e2e

POSITIVE = [
    "a wonderful, moving film",
    "great acting and a clever plot",
    "I loved every minute",
    "beautiful and funny",
    "a delight from start to finish",
    "brilliant direction",
]
NEGATIVE = [
    "a boring mess",
    "terrible acting and a dull plot",
    "I hated it",
    "ugly and tedious",
    "a waste of two hours",
    "clumsy direction",
]
PRODUCTS = ["this phone works great", "battery died after a day", "fast delivery, nice product",
            "cheap plastic, broke quickly", "excellent value", "useless charger"]  # fmt: skip


def _rows(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _train(args, out) -> dict:
    settings = ["--epochs", "1", "--val-size", "0", "--batch-size", "4", "--no-progress"]
    assert main([*map(str, args), "--strategy", "dann", "--out", str(out), *settings]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_dann_adapts_a_sentence_encoder_from_movie_reviews_to_product_reviews(tmp_path):
    require_offline_weights("all_minilm_l6_v2")
    source = _rows(
        tmp_path / "reviews.csv",
        ("text", "label"),
        [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE],
    )
    target = _rows(tmp_path / "products.csv", ("text",), [(t,) for t in PRODUCTS])
    args = ["train", source, "--target", target, "--backbone", "all_minilm_l6_v2", "--lr", "1e-4"]
    metrics = _train(args, tmp_path / "run")
    adaptation = metrics["domain_adaptation"]
    assert adaptation["n_target"] == len(PRODUCTS) and len(adaptation["history"]) == 1
    assert adaptation["steps"] == math.ceil(metrics["n_train"] / 4)  # one epoch, batches of 4


def test_dann_adapts_an_audio_encoder_from_british_to_other_voices(tmp_path):
    require_offline_weights("aisfx")
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is missing: run `make test` (it installs it)")
    for folder, voices in (
        ("source", ("en-gb", "en-gb-scotland")),
        ("target", ("en-us", "en-029")),
    ):
        for word in ("yes", "no"):
            for voice in voices:
                out = (
                    tmp_path / folder / (word if folder == "source" else "") / f"{word}-{voice}.wav"
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run([espeak, "-v", voice, "-w", str(out), word], check=True)
    args = ["train", tmp_path / "source", "--target", tmp_path / "target", "--backbone", "aisfx"]
    metrics = _train([*args, "--unfreeze-groups", "1", "--test-size", "0.25"], tmp_path / "run")
    adaptation = metrics["domain_adaptation"]
    assert adaptation["n_target"] == 4 and len(adaptation["history"]) == 1
