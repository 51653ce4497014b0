"""``RUN/run.json``: the options a run was started with, so ``--resume RUN`` needs no repeats.

A resumed run takes every option it is not given from ``run.json``; an option given again with
another value is refused (a resumed run must continue the run it started, not a different one).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from transferkit.atomic import write_json_atomic
from transferkit.errors import BadInputError

RUN_SETTINGS = "run.json"
# options that do not change what is trained: they may differ on resume
_FREE = {"resume", "out", "quiet", "no_progress", "no_cache", "runtime", "command", "data"}


def write_settings(out: str | Path, settings: dict[str, Any]) -> None:
    keep = {k: v for k, v in settings.items() if k not in ("command", "resume")}
    write_json_atomic(Path(out) / RUN_SETTINGS, keep)


def _given(argv: list[str], key: str) -> bool:
    option = "--" + key.replace("_", "-")
    return any(tok == option or tok.startswith(option + "=") for tok in argv)


def apply_resume(args: argparse.Namespace, argv: list[str]) -> None:
    """Fill ``args`` from RUN/run.json and refuse options on ``argv`` that contradict it."""
    run = Path(args.resume)
    if args.out and Path(args.out).resolve() != run.resolve():
        raise BadInputError(
            f"--resume {run} continues that run in place; --out {args.out} names another "
            "directory. Leave --out out."
        )
    path = run / RUN_SETTINGS
    if not path.is_file():
        raise BadInputError(
            f"--resume {run}: there is no {RUN_SETTINGS} in it, so it is not a run this version "
            "of transferkit can resume. Point --resume at the --out directory of a "
            "finetune/scratch run."
        )
    saved = json.loads(path.read_text(encoding="utf-8"))
    conflicts = []
    for key, value in saved.items():
        if key in _FREE or not hasattr(args, key):
            continue
        current = getattr(args, key)
        if _given(argv, key) and current != value:
            conflicts.append(f"--{key.replace('_', '-')} {current} (the run used {value})")
        setattr(args, key, value)
    if conflicts:
        raise BadInputError(
            f"cannot resume {run} with different settings: {'; '.join(conflicts)}. Resume with "
            "the original options, or start a new run with another --out."
        )
    args.out = str(run)
