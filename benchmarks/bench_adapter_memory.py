"""Memory of adapter bundles on one base: a fresh process loading 5 vs 1.

Bundles: `transferkit train` on Rotten Tomatoes (16 reviews per class, one draw per bundle, seeds
0-4) with all-MiniLM: five `--strategy adapter` bundles (LoRA x3, Houlsby, Pfeiffer, 2 epochs)
and, for contrast, five `--strategy contrastive` bundles (each fine-tunes and carries the whole
encoder). Measure: a fresh Python loads N bundles as `transferkit serve` does
(``transferkit.serve.models.load_models``), each predicts two reviews once, then its resident
set size (RSS, psutil) is read; N = 1 and N = 5, each measured in ``REPEATS`` fresh processes
(the smallest kept: RSS only grows with noise such as allocator slack). Target: RSS(5 adapter
bundles) <= 1.5 x RSS(1), and the same for the memory loading added (RSS minus the RSS after the
imports every process makes), which the interpreter and libraries do not dilute. The
contrastive rows have no target: they show what sharing saves.

Quick mode: K = 4, 1 epoch, one adapter bundle (LoRA) and one contrastive bundle, each copied to
five folders (five models of the same size in memory; the adapters' values do not change it).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import _common as c
from benchmarks import text_datasets

NAME = "adapter_memory"
TITLE = "Adapter bundles on one base: memory of 5 loaded in one process vs 1"
TARGET_RATIO = 1.5
REPEATS = 2
ADAPTERS = ("lora", "lora", "lora", "houlsby", "pfeiffer")
BACKBONE = "all_minilm_l6_v2"

# the measuring process: imports, loads the models as the server does, predicts once with each
_CHILD = r"""
import gc, json, sys
import psutil
process = psutil.Process()
import torch
torch.set_num_threads(2)
# everything a load imports, imported first: "imported" is the process without any model
import peft, transformers, transferkit.backbones.text_models, transferkit.estimator
from transferkit.serve.models import backbone_groups, load_models
texts, paths = json.loads(sys.argv[1]), sys.argv[2:]
imported = process.memory_info().rss
models = load_models([f"m{i}={p}" for i, p in enumerate(paths)])
labels = {name: model.predict(texts).proba.argmax(1).tolist() for name, model in models.items()}
gc.collect()
groups = backbone_groups(models.values())
print(json.dumps({"rss": process.memory_info().rss, "imported": imported,
                  "shared_with": {n: len(g) for n, g in groups.items()}, "labels": labels}))
"""


def _train(task: Path, out: Path, strategy: str, extra: list[str], env: dict) -> float:
    args = ["train", task, "--out", out, "--backbone", BACKBONE, "--strategy", strategy]
    seconds, _ = c.run_cli([*args, *extra, "--no-progress"], env)
    return seconds


def _bundles(tmp: Path, quick: bool, env: dict) -> tuple[dict[str, list[Path]], dict]:
    """Five adapter bundles and five contrastive bundles (quick: one of each, copied)."""
    k, epochs = (4, 1) if quick else (16, 2)
    info: dict = {"k_per_class": k, "epochs": epochs, "train_seconds": {}}
    made: dict[str, list[Path]] = {"adapter": [], "contrastive": []}
    kinds = (
        ("adapter", ADAPTERS[:1] if quick else ADAPTERS),
        ("contrastive", (None,) * (1 if quick else 5)),
    )
    for strategy, variants in kinds:
        for seed, variant in enumerate(variants):
            task, _ = text_datasets.write_task(k, seed)
            run = tmp / f"{strategy}-{seed}"
            extra = ["--epochs", str(epochs), "--seed", str(seed)]
            if variant:
                extra += ["--adapter", variant]
            info["train_seconds"][run.name] = _train(task, run, strategy, extra, env)
            made[strategy].append(run / "model")
        while len(made[strategy]) < 5:  # quick: the same bundle in more folders
            copy = tmp / f"{strategy}-copy{len(made[strategy])}" / "model"
            shutil.copytree(made[strategy][0], copy)
            made[strategy].append(copy)
    info["bundle_bytes"] = {
        kind: sum(f.stat().st_size for f in paths[0].iterdir()) for kind, paths in made.items()
    }
    return made, info


def _measure(paths: list[Path], texts: list[str], env: dict) -> dict:
    """The smallest RSS over ``REPEATS`` fresh processes loading ``paths``."""
    runs = []
    for _ in range(REPEATS):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(texts), *map(str, paths)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
        )
        if done.returncode != 0:
            raise RuntimeError(f"loading {len(paths)} bundles failed:\n{done.stderr[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["rss"])
    return {**best, "rss_runs": [r["rss"] for r in runs]}


def run(quick: bool) -> dict:
    data: dict = {"quick": quick}
    notes = [
        "command: `python -m benchmarks --only adapter_memory` (bundles made with `transferkit "
        f"train TASK --backbone {BACKBONE} --strategy adapter|contrastive --epochs E --seed S`)",
    ]
    target = f"≤ {TARGET_RATIO:g}×"
    try:
        env = c.transferkit_env()
        with tempfile.TemporaryDirectory(prefix="tk-bench-adapter-memory-") as name:
            tmp = Path(name)
            bundles, data["bundles"] = _bundles(tmp, quick, env)
            _, test = text_datasets.write_task(4 if quick else 16, 0)
            with open(test, newline="", encoding="utf-8") as fp:
                texts = [row["text"] for row, _ in zip(csv.DictReader(fp), range(2))]
            for kind, paths in bundles.items():
                data[kind] = {n: _measure(paths[:n], texts, env) for n in (1, 5)}
    except Exception as exc:  # noqa: BLE001 - a benchmark reports, it does not crash the run
        data["error"] = c.short_error(exc, 2000)
        row = c.row("RSS, 5 adapter bundles / 1", c.short_error(exc), target=target,
                    status=c.unavailable_status(exc))  # fmt: skip
        return {"name": NAME, "title": TITLE, "rows": [row], "notes": notes, "data": data}

    rows = []
    for kind in ("adapter", "contrastive"):
        one, five = data[kind][1], data[kind][5]
        ratio = five["rss"] / one["rss"]
        # what loading added, without the interpreter and libraries every process holds
        added = (five["rss"] - five["imported"]) / (one["rss"] - one["imported"])
        data[kind].update(ratio=ratio, added_ratio=added)
        for metric, value, mine, theirs in (
            ("RSS MB", ratio, five["rss"], one["rss"]),
            ("MB added by loading (RSS − RSS after imports)", added,
             five["rss"] - five["imported"], one["rss"] - one["imported"]),
        ):  # fmt: skip
            rows.append(
                c.row(
                    f"{metric}, 5 {kind} bundles / 1 (fresh process, each predicts once)",
                    f"{mine / 2**20:.0f}",
                    f"{theirs / 2**20:.0f}",
                    f"{value:.2f}",
                    target if kind == "adapter" else "— (contrast: no sharing)",
                    c.verdict(value <= TARGET_RATIO) if kind == "adapter" else "—",
                )
            )
    adapter = data["adapter"]
    per_extra = (adapter[5]["rss"] - adapter[1]["rss"]) / 4 / 2**20
    contrastive_extra = (data["contrastive"][5]["rss"] - data["contrastive"][1]["rss"]) / 4 / 2**20
    sizes = data["bundles"]["bundle_bytes"]
    notes += [
        f"each further adapter bundle adds {per_extra:.1f} MB; each further contrastive bundle "
        f"{contrastive_extra:.1f} MB",
        f"after imports (torch, transformers, peft, transferkit), before loading: "
        f"{adapter[1]['imported'] / 2**20:.0f} MB",
        "other models each of the 5 adapter bundles shares its base with in memory (what GET "
        f"/v1/models says as shares_backbone_with): {sorted(adapter[5]['shared_with'].values())}",
        f"bundle size: adapter {sizes['adapter'] / 1e6:.2f} MB, contrastive "
        f"{sizes['contrastive'] / 1e6:.1f} MB; Rotten Tomatoes K={data['bundles']['k_per_class']} "
        f"per class, {data['bundles']['epochs']} epochs; adapters "
        f"{', '.join(ADAPTERS[:1] if quick else ADAPTERS)}",
        f"RSS is the smallest of {REPEATS} fresh processes per row",
    ]
    if quick:
        notes.append(
            "QUICK run: one adapter (LoRA) and one contrastive bundle, each copied to 5 folders"
        )
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
