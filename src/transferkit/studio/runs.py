"""Training a project: its examples snapshotted into ``runs/<rid>/data``, then the same
``train_run`` as ``transferkit train`` (so the report is the CLI's own), in a job.

The studio's defaults are the CLI's: no backbone named (the modality's default for the data)
and ``--strategy auto``. Ranking every offline backbone (``--backbone auto``) is a choice, not
the default: it encodes the examples once per candidate, which on two cores takes longer than
the 30 s a first training may take (measured in benchmarks/bench_studio.py).
"""

from __future__ import annotations

import json
from typing import Any

from transferkit.errors import BadInputError
from transferkit.events import Events
from transferkit.studio.choices import AUTO, DEFAULT, training_choices
from transferkit.studio.jobs import Job, JobRunner, emit_stage
from transferkit.studio.snapshot import MIN_PER_CLASS, check_trainable, write_snapshot

DATA = "data"  # the snapshot's folder inside the run (and the dataset zip's root)
INTERRUPTED = "the studio stopped during training; train again"
_MAX_SEED = 2**31 - 1


def training_settings(body: dict[str, Any], modality: str) -> dict[str, Any]:
    """The settings of a Train request, checked against what the Train panel offers."""
    known = {"backbone", "strategy", "seed", "baseline"}
    extra = sorted(set(body) - known)
    if extra:
        raise BadInputError(f"unknown training settings {extra}; the settings are {sorted(known)}")
    offered = training_choices(modality)
    settings = {
        "backbone": body.get("backbone") or DEFAULT,
        "strategy": body.get("strategy") or AUTO,
        "seed": body.get("seed", 0),
        "baseline": body.get("baseline", False),
    }
    for key, listed in (("backbone", "backbones"), ("strategy", "strategies")):
        names = [c["name"] for c in offered[listed]]
        if settings[key] not in names:
            raise BadInputError(
                f"{key} {settings[key]!r} is not one of this project's choices: {', '.join(names)}"
            )
    seed = settings["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise BadInputError(f"seed must be a whole number from 0 to {_MAX_SEED}; got {seed!r}")
    if not isinstance(settings["baseline"], bool):
        raise BadInputError(f"baseline must be true or false; got {settings['baseline']!r}")
    return settings


def start_training(workspace, runner: JobRunner, pid: str, body: dict[str, Any]) -> Job:
    """Check the project and the settings, create the run and queue its training job."""
    project = workspace.project(pid)
    settings = training_settings(body, project["modality"])
    check_trainable(project)

    def create_run() -> str:
        return workspace.add_run(pid, settings)["id"]

    def record_end(job: Job) -> None:
        workspace.finish_run(job.run_id, job.state, job.error)

    return runner.submit(
        "train",
        _train_work(workspace, pid),
        project_id=pid,
        before=create_run,
        on_end=record_end,
    )


def mark_interrupted(workspace) -> list[str]:
    """Runs left "running" by a studio that was killed: marked failed (at start-up)."""
    ids = []
    for run in workspace.running_runs():
        workspace.finish_run(run["id"], "failed", INTERRUPTED)
        ids.append(run["id"])
    return ids


def train_arguments(settings: dict[str, Any]) -> dict[str, Any]:
    """``train_run``'s keyword arguments for the studio's settings (the command line's too)."""
    backbone = settings["backbone"]
    return {
        "backbone": None if backbone == DEFAULT else backbone,
        "strategy": settings["strategy"],
        "seed": settings["seed"],
        "baseline": settings["baseline"],
    }


def _train_work(workspace, pid: str):
    def work(job: Job, events: Events) -> dict[str, Any]:
        from transferkit.training import train_run

        run = workspace.run(job.run_id)
        out = workspace.run_dir(run["id"])
        emit_stage(events, "snapshot")
        counts = write_snapshot(workspace, pid, out / DATA)
        few = {name: n for name, n in counts.items() if n < MIN_PER_CLASS}
        if few:
            name, n = next(iter(few.items()))
            raise BadInputError(
                f"the class {name!r} has {n} distinct example{'s' if n != 1 else ''} (the others "
                f"are copies of the same file); every class needs at least {MIN_PER_CLASS}"
            )
        emit_stage(events, "training", examples=sum(counts.values()))
        summary = train_run(out / DATA, out, progress=events, **train_arguments(run["settings"]))
        return {
            "run_id": run["id"],
            "accuracy": summary["accuracy"],
            "backbone": summary["backbone"],
            "report_url": f"/api/runs/{run['id']}/report",
        }

    return work


# metrics.json's keys as the page reads them (the design's names on the left)
_METRICS = {
    "accuracy": "accuracy",
    "accuracy_interval": "accuracy_ci95",
    "macro_f1": "macro_f1",
    "macro_f1_interval": "macro_f1_ci95",
    "labels": "labels",
    "per_class": "per_class",
    "confusion": "confusion_matrix",
    "learning_curve": "learning_curve",
    "baseline": "baseline",
    "backbone": "backbone",
    "strategy": "strategy",
    "head": "head",
    "backbone_reason": "backbone_reason",
    "strategy_reason": "strategy_reason",
    "n_train": "n_train",
    "n_test": "n_test",
    "seconds": "seconds",
    "licence": "licence",
    "skipped_files": "skipped_files",
}


def run_view(workspace, rid: str, runner: JobRunner | None = None) -> dict[str, Any]:
    """A run as GET /api/runs/{rid} answers it: its row, its metrics once it is done, and the
    id of the job training it while one does (a reloaded page follows that job's stream)."""
    run = workspace.run(rid)
    metrics = None
    if run["state"] == "done":
        path = workspace.run_dir(rid) / "metrics.json"
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None
        if isinstance(found, dict):
            metrics = {key: found.get(source) for key, source in _METRICS.items()}
    job = runner.active(run["project_id"]) if runner is not None else None
    return {
        **run,
        "job_id": job.id if job is not None and job.kind == "train" and job.run_id == rid else None,
        "metrics": metrics,
        "report_url": f"/api/runs/{rid}/report" if metrics is not None else None,
    }
