"""The command line of big jobs: ``predict --engine ray|local --output`` and ``embed``.

``transferkit.cli`` adds these options to ``predict``, the ``embed`` command, and calls
``run_predict`` / ``run_embed``. Only argparse is imported here until a job runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import NoReturn

log = logging.getLogger("transferkit")


def _at_least(minimum: float, kind=float):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def add_engine_options(
    p: argparse.ArgumentParser, *, default: str = "local", output: bool = True
) -> None:
    """``--engine``, ``--output`` (unless ``output`` is False) and the Ray cluster's options."""
    about = (
        "Run over a large folder, a file list (.txt: one path per line) or a table, and write "
        "OUT (one row per input). An interrupted run is continued by the same command: what "
        "it wrote is kept and skipped, and OUT appears complete, in one step, at the end."
        if output
        else "Encode DATA with each candidate on a Ray cluster's workers (embeddings computed "
        "there are not cached on this machine)."
    )
    g = p.add_argument_group("big jobs", about)
    g.add_argument(
        "--engine",
        choices=("local", "ray"),
        default=default,
        help="ray: an actor pool on a Ray cluster (a local one by default); local: this "
        f"process (default {default})",
    )
    if output:
        g.add_argument(
            "--output",
            metavar="OUT",
            help="write OUT.parquet or OUT.jsonl instead of printing: input, label, "
            "confidence, probabilities of every class, error (required with --engine ray)",
        )
    g.add_argument(
        "--address",
        metavar="ADDR",
        help="join the Ray cluster at ADDR (e.g. 10.0.0.5:6379, as `ray start --head` "
        "prints) instead of starting Ray on this machine",
    )
    g.add_argument(
        "--workers",
        type=_at_least(1, int),
        help="actors holding the model (default: as many as the cluster's CPUs, or GPUs, hold)",
    )
    g.add_argument(
        "--cpus-per-worker",
        type=_at_least(0.01),
        default=1.0,
        help="CPUs each worker reserves, and its threads (default 1)",
    )
    g.add_argument(
        "--gpus-per-worker",
        type=_at_least(0.0),
        default=0.0,
        help="GPUs each worker reserves and runs on (default 0; e.g. 1, or 0.5 for two per "
        "GPU): exported models, with onnxruntime-gpu on the cluster",
    )


def add_embed_parser(sub) -> argparse.ArgumentParser:
    """The ``embed`` command (its common options are added by the caller)."""
    e = sub.add_parser(
        "embed",
        help="write the embeddings of a big pool of inputs (Parquet / JSON lines)",
        description="Embed every input with a backbone (frozen, e.g. mobilenet_v2) or with a "
        "trained model's encoder (a bundle, or an exported folder), and write OUT: input, "
        "embedding, error. Runs in this process, or with --engine ray on a Ray cluster.",
    )
    e.add_argument(
        "model", metavar="MODEL", help="backbone name (see `transferkit models`) or model folder"
    )
    e.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="files, folders, file lists (.txt) or tables"
    )
    add_engine_options(e)
    return e


def run_predict(args, *, progress: bool) -> int:
    if args.text:
        raise_bad("--text is for a few texts printed back; for a big job put them in a table")
    if not args.output:
        raise_bad(f"--engine {args.engine} writes a file: add --output OUT.parquet (or OUT.jsonl)")
    return _run("predict", args, progress)


def run_embed(args, *, progress: bool) -> int:
    if not args.output:
        raise_bad("embed writes a file: add --output OUT.parquet (or OUT.jsonl)")
    return _run("embed", args, progress)


def raise_bad(message: str) -> NoReturn:
    from transferkit.errors import BadInputError

    raise BadInputError(message)


def placement_of(args):
    """The Ray placement the options ask for (refused with --engine local)."""
    from transferkit.scale.engine import Placement

    if args.engine == "local" and (args.address or args.workers or args.gpus_per_worker):
        raise_bad("--address, --workers and --gpus-per-worker are for --engine ray")
    return Placement(
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus=args.gpus_per_worker,
        address=args.address,
    )


def _run(kind: str, args, progress: bool) -> int:
    from transferkit.progress import as_events
    from transferkit.scale.job import JobSettings, run_job

    placement = placement_of(args)
    settings = JobSettings(
        engine=args.engine, batch_size=args.batch_size or 64, placement=placement
    )
    summary = run_job(
        kind,
        args.model,
        args.inputs,
        args.output,
        settings=settings,
        weights=args.weights,
        runtime=args.runtime,
        columns={"text_col": args.text_col, "path_col": args.path_col},
        events=as_events(progress),
    )
    if summary["errors"]:
        log.warning(
            "%d of %d inputs could not be read: their rows in %s give the reason in 'error'",
            summary["errors"], summary["rows"], summary["output"],
        )  # fmt: skip
    print(json.dumps(summary, ensure_ascii=False))
    return 2 if summary["errors"] and args.strict else 0
