"""Taking a run home: its bundle zipped, its ONNX export (a job: the export checks its graph
against the bundle on the run's own test examples, and int8 against float), the command line
that trains it again, and the examples it trained on as a dataset zip.

Zips are deterministic (sorted entries, a fixed date, fixed permissions), so the same files
give the same bytes: the dataset zip of a project whose examples did not change since a run is
byte for byte that run's.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError
from transferkit.events import Events
from transferkit.studio.jobs import Job, JobRunner, emit_stage
from transferkit.studio.runs import DATA, train_arguments
from transferkit.studio.snapshot import write_snapshot

QUANTIZE = (None, "int8")
_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no build time leaks in
_DEFLATE = {".txt", ".csv", ".json", ".html", ".wav", ".bmp", ".md"}  # others are compressed


def zip_folder(folder: Path, dest: Path, root: str) -> Path:
    """Write ``folder`` as ``dest`` (a zip whose entries sit under ``root/``), atomically."""
    if not folder.is_dir():
        raise BadInputError(f"{folder.name} is not there any more; train again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w") as zf:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                rel = path.relative_to(folder).as_posix()
                info = zipfile.ZipInfo(f"{root}/{rel}", date_time=_DATE)
                info.external_attr = 0o644 << 16
                deflate = path.suffix.lower() in _DEFLATE
                info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
                with path.open("rb") as src, zf.open(info, "w") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def scratch_dir(workspace) -> Path:
    """A new folder under the workspace's tmp/ (swept at start-up if a kill leaves it)."""
    tmp = workspace.root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="studio-", dir=tmp))


def bundle_zip(workspace, rid: str) -> Path:
    """``exports/<rid>/model.zip``: the run's bundle (made once, then served as it is)."""
    _require_done(workspace, rid)
    dest = workspace.export_dir(rid) / "model.zip"
    if not dest.is_file():
        zip_folder(workspace.run_dir(rid) / "model", dest, "model")
    return dest


def run_dataset_zip(workspace, rid: str) -> Path:
    """``exports/<rid>/data.zip``: the examples run ``rid`` trained on, as it saw them."""
    _require_done(workspace, rid)
    dest = workspace.export_dir(rid) / "data.zip"
    if not dest.is_file():
        zip_folder(workspace.run_dir(rid) / DATA, dest, DATA)
    return dest


def project_dataset_zip(workspace, pid: str, dest_dir: Path) -> Path:
    """The project's examples now, as a training folder zipped into ``dest_dir``."""
    workspace.project(pid)  # unknown: 404 before any work
    folder = dest_dir / DATA
    write_snapshot(workspace, pid, folder)
    return zip_folder(folder, dest_dir / "data.zip", DATA)


def command(workspace, rid: str) -> dict[str, Any]:
    """The command line that trains run ``rid`` again from its dataset zip (unpacked into
    ``data/``), with the backbone and strategy the run resolved ``auto`` into."""
    run = _require_done(workspace, rid)
    metrics = _metrics(workspace, rid)
    args = train_arguments(run["settings"])
    words = ["transferkit", "train", DATA, "--out", "run"]
    words += ["--backbone", metrics.get("backbone") or args["backbone"]]
    words += ["--strategy", metrics.get("strategy") or args["strategy"]]
    words += ["--seed", str(args["seed"])]
    if args["baseline"]:
        words.append("--baseline")
    return {
        "command": shlex.join(words),
        "dataset_url": f"/api/runs/{rid}/dataset.zip",
        "project_dataset_url": f"/api/projects/{run['project_id']}/dataset.zip",
        "requested": {"backbone": run["settings"]["backbone"], "strategy": args["strategy"]},
    }


def onnx_folder(workspace, rid: str, quantize: str | None) -> Path:
    return workspace.export_dir(rid) / ("onnx" + (f"-{quantize}" if quantize else ""))


def onnx_zip_path(workspace, rid: str, quantize: str | None) -> Path:
    path = onnx_folder(workspace, rid, quantize).with_suffix(".zip")
    if not path.is_file():
        which = f"--quantize {quantize} " if quantize else ""
        raise BadInputError(
            f"run {rid} has no {which}ONNX export yet; start one (POST /api/runs/{rid}/export/"
            "onnx) and download it when its job is done"
        )
    return path


def start_onnx_export(workspace, runner: JobRunner, rid: str, quantize: str | None) -> Job:
    """Queue the ONNX export of run ``rid`` (float, or int8 kept only if it holds up)."""
    if quantize not in QUANTIZE:
        raise BadInputError(f'quantize must be null or "int8"; got {quantize!r}')
    run = _require_done(workspace, rid)

    def work(job: Job, events: Events) -> dict[str, Any]:
        from transferkit.export import export_model

        emit_stage(events, "export", quantize=quantize)
        folder = onnx_folder(workspace, rid, quantize)
        result = export_model(workspace.run_dir(rid) / "model", out=folder, quantize=quantize)
        emit_stage(events, "zip")
        zip_folder(folder, folder.with_suffix(".zip"), folder.name)
        query = f"?quantize={quantize}" if quantize else ""
        summary = result.summary()
        doc = result.document
        return {
            "download": f"/api/runs/{rid}/export/onnx.zip{query}",
            "size_bytes": doc["size_bytes"],
            "parity": doc["parity"],
            "quantization": doc["quantization"],
            "latency_ms_per_example": summary["latency_ms_per_example"],
        }

    return runner.submit("export", work, project_id=run["project_id"], run_id=rid)


def _require_done(workspace, rid: str) -> dict[str, Any]:
    run = workspace.run(rid)
    if run["state"] != "done":
        raise BadInputError(
            f"run {rid} is {run['state']}: only a finished run has a model to export; train "
            "again or pick a finished run"
        )
    return run


def _metrics(workspace, rid: str) -> dict[str, Any]:
    path = workspace.run_dir(rid) / "metrics.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
