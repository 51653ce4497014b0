"""Prediction and embedding extraction over big pools of inputs, on Ray or in this process.

``transferkit predict MODEL INPUTS --engine ray --output OUT.parquet`` and ``transferkit embed``
run here. The driver lists the inputs (nothing decoded), Ray Data feeds them in blocks to an
actor pool whose workers each hold the model (``worker.py``), and the driver writes what comes
back as part files that a later run resumes from, then merges them into OUT in one atomic step
(``output.py``). A killed worker is Ray's to restart and retry (actor ``max_restarts`` /
``max_task_retries``); the merge checks that every input appears exactly once.

    inputs.py   the inputs of a job: folders, file lists, tables
    models.py   what a worker loads: a bundle, an exported folder or a backbone
    rows.py     the output's columns, from a batch's probabilities or embeddings
    worker.py   the class Ray Data runs in each actor (and the local engine in this process)
    engine.py   where batches run: a local or remote Ray cluster, or this process
    output.py   part files, resume, the atomic merge into OUT
    job.py      one job from inputs to OUT, with progress
    cli.py      the command-line options and commands

Nothing is imported until used: ``transferkit --help`` builds its parser from ``cli.py``
without loading pyarrow or Ray.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JobSettings", "Placement", "run_job"]


def __getattr__(name: str) -> Any:
    if name in ("JobSettings", "run_job"):
        from transferkit.scale import job

        return getattr(job, name)
    if name == "Placement":
        from transferkit.scale.engine import Placement

        return Placement
    raise AttributeError(f"module 'transferkit.scale' has no attribute {name!r}")
