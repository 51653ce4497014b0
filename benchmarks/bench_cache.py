"""Embedding cache: a second `transferkit train` on the same data must be >= 20x faster.

Run 1: ``transferkit train TRAIN --test TEST --out RUN1 --backbone mobilenet_v2 --strategy
features --head logistic`` with ``TRANSFERKIT_CACHE_DIR`` pointing at a fresh, empty temp dir.
Run 2: the same data and cache, ``--out RUN2 --head knn``. Each is timed from the CLI process
start to its exit (interpreter start, imports and weight loading included). The backbone and
strategy are named explicitly so that both runs take the frozen-features path the cache serves.

Data: Fashion-MNIST, 50 training images per class (seed 0) + the first 2000 official test
images = 2500 images. Quick mode: 10 per class + 200 test images (smoke run: with so little to
extract, fixed start-up costs dominate and the ratio is not comparable to the target).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks import _common as c
from benchmarks import datasets

NAME = "cache"
TITLE = "Embedding cache (second run on the same data)"
TARGET_SPEEDUP = 20.0
COMMON_ARGS = ["--backbone", "mobilenet_v2", "--strategy", "features"]


def _dir_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


def _read_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise RuntimeError(f"transferkit train exited 0 but wrote no {path}")
    return json.loads(path.read_text())


def run(quick: bool) -> dict:
    k, n_test = (10, 200) if quick else (50, 2000)
    train_dir, test_dir = datasets.write_fashion_folders(k, seed=0, n_test=n_test)
    n_images = 10 * k + n_test
    data = {"quick": quick, "k_per_class": k, "n_test": n_test, "n_images": n_images}
    notes = [
        f"data: Fashion-MNIST {k}/class (seed 0) + first {n_test} test images = {n_images} PNGs",
    ]
    target = f"≥ {TARGET_SPEEDUP:g}×"
    try:
        with tempfile.TemporaryDirectory(prefix="tk-bench-cache-") as tmp:
            cache_dir = Path(tmp) / "cache"  # fresh and empty: does not exist yet
            env = c.transferkit_env(cache_dir=cache_dir)
            runs = {}
            for label, head in (("run1", "logistic"), ("run2", "knn")):
                run_dir = Path(tmp) / label.upper()
                args = ["train", train_dir, "--test", test_dir, "--out", run_dir]
                args += COMMON_ARGS + ["--head", head]
                seconds, _ = c.run_cli(args, env)
                metrics = _read_metrics(run_dir)
                n_files, n_bytes = _dir_size(cache_dir)
                runs[label] = {
                    "seconds_wall": seconds,
                    "command": c.display_command(args).replace(tmp, "$TMP"),
                    "accuracy": metrics.get("accuracy"),
                    "seconds": metrics.get("seconds"),
                    "cache_files_after": n_files,
                    "cache_bytes_after": n_bytes,
                }
    except Exception as exc:
        data["transferkit_error"] = c.short_error(exc, 2000)
        rows = [
            c.row(
                "wall time, 1st run (empty cache) / 2nd run (cached)",
                c.short_error(exc),
                target=target,
                status=c.unavailable_status(exc),
            )
        ]
        return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}

    data.update(runs)
    t1, t2 = runs["run1"]["seconds_wall"], runs["run2"]["seconds_wall"]
    speedup = t1 / t2
    data["speedup"] = speedup
    rows = [
        c.row("wall s, 1st run: --head logistic, empty cache", f"{t1:.1f}"),
        c.row("wall s, 2nd run: --head knn, same cache", f"{t2:.2f}"),
        c.row(
            "speed-up, 1st / 2nd",
            f"{speedup:.1f}×",
            ratio=f"{speedup:.1f}",
            target=target,
            status=c.verdict(speedup >= TARGET_SPEEDUP),
        ),
    ]
    for label in ("run1", "run2"):
        r = runs[label]
        notes.append(
            f"{label}: `{r['command']}` — accuracy {r['accuracy']}, "
            f"metrics.json seconds {r['seconds']}, "
            f"cache after: {r['cache_files_after']} files, {r['cache_bytes_after'] / 1e6:.1f} MB"
        )
    if runs["run1"]["cache_files_after"] == 0:
        notes.append(f"WARNING: nothing was written under TRANSFERKIT_CACHE_DIR ({cache_dir})")
    notes.append(
        "reference here is transferkit itself (cold vs warm cache); times are from process start "
        "to exit"
    )
    if quick:
        notes.append(f"QUICK run: {n_images} images — smoke test, not the acceptance number")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
