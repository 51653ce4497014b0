"""One job: inputs listed, the model's rows computed on an engine, OUT written, resumable.

Stages, each one progress counter (a bar on a terminal, one line in a log, nothing with -q):
listing the inputs, running them (counting those a previous run wrote), merging into OUT.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from transferkit.events import NULL_EVENTS, Events
from transferkit.scale.engine import ENGINES, Placement, open_engine
from transferkit.scale.inputs import list_job_inputs
from transferkit.scale.models import check_gpu_capable, resolve_model, with_export
from transferkit.scale.output import PartialOutput, check_output
from transferkit.scale.rows import KINDS, schema
from transferkit.scale.worker import input_table

log = logging.getLogger("transferkit")


@dataclass(frozen=True)
class JobSettings:
    """How a job runs: ``engine`` "ray" or "local", inputs per ``batch_size``, the Ray
    ``placement``; a part is written every ``part_rows`` rows or ``part_seconds`` seconds (what
    an interruption can lose)."""

    engine: str = "ray"
    batch_size: int = 64
    placement: Placement = field(default_factory=Placement)
    part_rows: int = 4096
    part_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}; got {self.engine!r}")


def run_job(
    kind: str,
    model: str,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    settings: JobSettings | None = None,
    weights: str | None = None,
    runtime: str = "auto",
    columns: dict[str, Any] | None = None,
    events: Events = NULL_EVENTS,
) -> dict[str, Any]:
    """Predict (``kind`` "predict") or embed ("embed") every input with ``model`` into
    ``output``, continuing the parts an interrupted run of the same job left; a summary.

    ``model``: a bundle folder, an exported folder, or for embed a backbone name;
    ``columns``: the table columns named on the command line (``text_col``).
    """
    from transferkit.modalities import get_modality

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    settings = settings or JobSettings()
    check_output(output)  # a path that cannot be written is refused before any work
    ref = resolve_model(model, weights=weights, runtime=runtime, backbone_ok=kind == "embed")
    if settings.placement.gpus:
        check_gpu_capable(ref)
    if settings.engine == "ray" and kind == "predict":
        ref = with_export(ref)  # workers start without torch: a Ray job's fixed cost
    modality = get_modality(ref.modality)
    with open_engine(settings.engine, settings.placement) as engine:
        with events.progress(0, "Listing inputs", modality.noun) as listing:
            samples = list_job_inputs(inputs, modality, **(columns or {}))
            listing.total = len(samples)  # known only now: a folder is listed in one call
            listing.update(len(samples))
        job = {
            "kind": kind,
            "model": ref.identity,
            "labels": list(ref.labels),
            "format": Path(output).suffix.lower(),
        }
        out = PartialOutput.open(output, job)
        done = out.written()
        todo = [s for s in samples if str(s.path) not in done]
        kept = len(samples) - len(todo)
        if kept:
            log.info("%s: %d of %d inputs were written by an earlier run; %d to go",
                     out.path, kept, len(samples), len(todo))  # fmt: skip
        start = time.perf_counter()
        if todo:
            batches = engine.run(kind, ref, input_table(todo), batch_size=settings.batch_size)
            verb = "Predicting" if kind == "predict" else "Embedding"
            desc = f"{verb} {engine.where}"
            with events.progress(len(samples), desc, modality.noun, initial=kept) as bar:
                _write_parts(batches, out, settings, bar)
        seconds = time.perf_counter() - start
    names = {str(s.path) for s in samples}
    with events.progress(len(samples), f"Writing {out.path.name}", "row") as writing:
        merged = out.merge(names, schema(kind, ref.labels))
        writing.update(merged.rows)
    return {
        "output": str(out.path),
        "rows": merged.rows,
        "errors": merged.errors,
        "computed": len(todo),
        "resumed": kept,
        "engine": settings.engine,
        "export": ref.export,
        "seconds": round(seconds, 3),
        "per_second": round(len(todo) / seconds, 1) if todo and seconds > 0 else None,
    }


def _write_parts(batches, out: PartialOutput, settings: JobSettings, bar) -> None:
    """Write the batches as parts of at least ``part_rows`` rows (or ``part_seconds``' worth);
    what arrived before an interruption is written too."""
    pending: list[pa.Table] = []
    n = 0
    last = time.monotonic()
    try:
        for table in batches:
            pending.append(table)
            n += table.num_rows
            bar.update(table.num_rows)
            if n >= settings.part_rows or time.monotonic() - last >= settings.part_seconds:
                out.write(pa.concat_tables(pending))
                pending, n, last = [], 0, time.monotonic()
    finally:
        if pending:
            out.write(pa.concat_tables(pending))
