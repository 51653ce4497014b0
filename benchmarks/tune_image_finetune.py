"""Tuning runs for ``--strategy finetune`` on the image suite's data, on draws it does not report.

Issue 17's lesson: a default is tuned on some draws and reported on others. The image suite
(``bench_image_suite.py``) reports seeds 0-2; fine-tuning variants are compared here on seeds
10 and up (as those quoted in ``strategies/finetune_guard.py`` and ``finetune/config.py`` were):
each draw trains ``--strategy features`` and ``--strategy finetune`` (MobileNetV2,
``strategy_params`` from ``--params``, the guard off unless ``--params`` says otherwise) on the
same training folder and scores both on the same test images. One JSON line per draw is
appended to ``--out``, so a variant's runs can be compared with another's later; the means per
dataset are printed at the end.

    python -m benchmarks.tune_image_finetune --draws fashion:50:10-12,clipart:50:10-12 \\
        --params '{"head_start": "probe", "lr": 1e-3}' --tag lpft-1e-3

Not a benchmark (``run_all`` does not run it): nothing here is a target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import _common as c
from benchmarks.bench_image_suite import BACKBONE, DATASETS, SEEDS, task

DEFAULT_OUT = Path(__file__).parent / "results" / "tune_image_finetune.jsonl"


def parse_draws(text: str) -> list[tuple[str, int, int]]:
    """``name:k:seeds`` items, comma-separated; seeds as ``10-12`` or ``10+14``. The suite's
    reported seeds are refused: tuning on them would leave nothing to report on."""
    known = {name: ks for name, _, ks in DATASETS}
    draws = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            name, k_text, seeds_text = item.split(":")
            k = int(k_text)
            if "-" in seeds_text:
                lo, hi = (int(s) for s in seeds_text.split("-"))
                seeds = list(range(lo, hi + 1))
            else:
                seeds = [int(s) for s in seeds_text.split("+")]
        except ValueError:
            raise SystemExit(
                f"--draws: {item!r} is not name:k:seeds (e.g. mnist:50:10-12)"
            ) from None
        if name not in known:
            raise SystemExit(f"--draws: unknown dataset {name!r}; one of {', '.join(known)}")
        if k not in known[name]:
            raise SystemExit(f"--draws: {name} has K = {known[name]} only; got {k}")
        reported = sorted(set(seeds) & set(SEEDS))
        if reported:
            raise SystemExit(
                f"--draws: seeds {reported} are the ones the image suite reports; tune on others "
                "(e.g. 10-15)"
            )
        draws.extend((name, k, seed) for seed in seeds)
    if not draws:
        raise SystemExit("--draws: no draws given")
    return draws


def run_draw(name: str, k: int, seed: int, params: dict) -> dict:
    """Features and fine-tuning on one draw; their test accuracies and fine-tuning's seconds."""
    # this checkout's transferkit, as the benchmarks measure it
    (TransferClassifier,) = c.import_transferkit_api("transferkit.TransferClassifier")
    train, test = task(name, k, seed)
    features = TransferClassifier(backbone=BACKBONE, strategy="features", seed=seed, progress=False)
    features_acc = features.fit(train).score(test)
    start = time.perf_counter()
    finetune = TransferClassifier(
        backbone=BACKBONE,
        strategy="finetune",
        strategy_params={"guard": "off", **params},
        seed=seed,
        progress=False,
    ).fit(train)
    seconds = time.perf_counter() - start
    finetune_acc = finetune.score(test)
    return {
        "dataset": name,
        "k": k,
        "seed": seed,
        "features": round(float(features_acc), 4),
        "finetune": round(float(finetune_acc), 4),
        "points": round(100 * (finetune_acc - features_acc), 1),
        "finetune_seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", required=True, help="name:k:seeds,... e.g. mnist:50:10-12")
    parser.add_argument("--params", default="{}", help="finetune strategy_params as JSON")
    parser.add_argument("--tag", required=True, help="the variant's name in the output")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines, appended")
    args = parser.parse_args(argv)
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--params is not JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise SystemExit('--params must be a JSON object, e.g. {"epochs": 20}')
    draws = parse_draws(args.draws)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[tuple[str, int], list[float]] = {}
    for i, (name, k, seed) in enumerate(draws, 1):
        row = {"tag": args.tag, "params": params, **run_draw(name, k, seed, params)}
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        by_dataset.setdefault((name, k), []).append(row["points"])
        print(
            f"[{i}/{len(draws)}] {name} K={k} seed {seed}: finetune {row['finetune']:.4f} "
            f"features {row['features']:.4f} ({row['points']:+.1f} pts, "
            f"{row['finetune_seconds']:.0f} s)",
            flush=True,
        )
    for (name, k), points in by_dataset.items():
        listed = " / ".join(f"{p:+.1f}" for p in points)
        mean = sum(points) / len(points)
        print(f"{args.tag}: {name} K={k}: {listed} (mean {mean:+.1f} pts over features)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
