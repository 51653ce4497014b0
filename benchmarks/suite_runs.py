"""Suites measured in parts: reusing an earlier run's rows, checkpoints, one table per strategy.

The image and text suites (issue 17) each take hours on 2 cores: dataset x K x 3 seeds x 3
strategies of ``transferkit train``. So that a suite can be measured across sessions without
losing what finished:

- after every dataset x K the runs so far go to ``benchmarks/results/<name>.partial.json``
  (written atomically), in the same shape as the full results file;
- ``<REUSE_ENV>=<results or partial json>`` takes the dataset x K runs found there instead of
  rerunning them, and the notes say which rows came from which file and commit.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from benchmarks import _common as c

RESULTS_DIR = c.REPO_ROOT / "benchmarks" / "results"


def commit() -> str:
    """This checkout's commit (``+dirty`` with uncommitted changes), for the record."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=c.REPO_ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def reusable(name: str, reuse_env: str, strategies, seeds) -> tuple[dict, str]:
    """(dataset x K -> runs, where they came from) of ``reuse_env``'s results file, if set.

    Only dataset x K entries with every strategy run on every seed are taken."""
    path = os.environ.get(reuse_env)
    if not path:
        return {}, ""
    previous = json.loads(Path(path).read_text())
    data = previous.get("data") or {}
    if previous.get("name") != name or data.get("quick"):
        raise ValueError(f"{path} ({reuse_env}) is not a full run of the {name} benchmark")
    runs = {
        key: value
        for key, value in (data.get("runs") or {}).items()
        if all(len(value.get(s, [])) == len(seeds) for s in strategies)
    }
    meta = previous.get("meta") or {}
    origin = f"{path} (measured {meta.get('date', '?')} at commit {data.get('commit', '?')})"
    return runs, origin


def partial_path(name: str) -> Path:
    return RESULTS_DIR / f"{name}.partial.json"


def checkpoint(name: str, runs: dict) -> Path:
    """Write the runs finished so far where a later ``reusable`` can take them (atomically: a
    run killed mid-write leaves the previous checkpoint whole)."""
    path = partial_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "meta": {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
        "data": {"quick": False, "commit": commit(), "runs": runs},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return path


def mean_accuracy(runs: list[dict]) -> float:
    return float(np.mean([r["accuracy"] for r in runs]))


def strategy_tables(
    results: dict, strategies, seeds, extra: dict, titles: dict | None = None
) -> list[dict]:
    """One table per strategy: a row per dataset x K, a column per seed, the mean, the mean
    training seconds and, where ``extra`` names one for the strategy, a (header, run -> text)
    column (e.g. what auto chose). ``titles`` names tables that are not ``--strategy X``
    (a reference such as SetFit)."""
    tables = []
    for strategy in strategies:
        header, describe = extra.get(strategy, ("", None))
        rows = []
        for key, runs in results.items():
            if len(runs.get(strategy, [])) != len(seeds):  # not run on this one (a reference)
                continue
            accs = [f"{r['accuracy']:.4f}" for r in runs[strategy]]
            seconds = np.mean([r["seconds"] for r in runs[strategy]])
            note = "/".join(describe(r) for r in runs[strategy]) if describe else ""
            mean = f"{mean_accuracy(runs[strategy]):.4f}"
            rows.append([key, *accs, mean, f"{seconds:.0f}", note])
        headers = ["dataset K", *(f"seed {s}" for s in seeds), "mean", "train s", header]
        title = (titles or {}).get(strategy, f"--strategy {strategy}")
        tables.append({"title": title, "headers": headers, "rows": rows})
    return tables
