"""The studio's training, live-prediction and export routes (``/api/choices``, ``/api/jobs``,
``/api/runs``, a project's train and dataset routes); ``attach(app)`` gives the app the job
runner and the live models they share.

Every path on disk comes from ids the workspace knows (``run_dir``, ``export_dir``), never
from a request's text.
"""

from __future__ import annotations

import json
import shutil
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from transferkit.errors import BadInputError
from transferkit.serve.errors import ApiError
from transferkit.serve.inputs import read_inputs
from transferkit.serve.limits import Limits
from transferkit.studio import exports
from transferkit.studio.choices import training_choices
from transferkit.studio.jobs import Busy, JobRunner
from transferkit.studio.live import LiveModels
from transferkit.studio.runs import mark_interrupted, run_view, start_training
from transferkit.studio.security import SANDBOX_CSP

router = APIRouter()
OptionalJson = Annotated[dict[str, Any] | None, Body()]

MAX_PREDICT_INPUTS = 16
STREAM_WAIT_S = 10.0  # a stream says it is alive at least this often
ZIP = "application/zip"


def _jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


def _busy(exc: Busy) -> ApiError:
    return ApiError(409, "busy", str(exc))


@router.get("/api/choices")
def choices(modality: str = Query(...)) -> dict:
    """The backbones and strategies the Train panel offers for ``modality``."""
    return training_choices(modality)


@router.post("/api/projects/{pid}/train", status_code=202)
def train(pid: str, request: Request, body: OptionalJson = None) -> dict:
    """Queue a training of the project's examples as they are now."""
    try:
        job = start_training(request.app.state.workspace, _jobs(request), pid, body or {})
    except Busy as exc:
        raise _busy(exc) from None
    return {"job_id": job.id, "run_id": job.run_id}


@router.get("/api/jobs/{jid}")
def job(jid: str, request: Request) -> dict:
    return _jobs(request).get(jid).describe()


@router.post("/api/jobs/{jid}/cancel", status_code=202)
def cancel(jid: str, request: Request) -> dict:
    return _jobs(request).cancel(jid).describe()


@router.get("/api/jobs/{jid}/events")
def events(jid: str, request: Request) -> StreamingResponse:
    """The job's events as Server-Sent Events, from its first (or ``Last-Event-ID``) on; the
    last one is {"kind": "end", "name": state, "data": {"error": ...}}."""
    runner = _jobs(request)
    runner.get(jid)  # unknown: 404 now, not an empty stream
    start = request.headers.get("last-event-id", "")
    seq = int(start) + 1 if start.isdigit() else 0

    async def stream():
        nonlocal seq
        yield "retry: 2000\n\n"
        while True:
            items, seq, over = await anyio.to_thread.run_sync(
                runner.wait_events, jid, seq, STREAM_WAIT_S
            )
            for n, item in items:
                yield f"id: {n}\ndata: {json.dumps(item, ensure_ascii=False)}\n\n"
            if over:
                return
            if not items:
                yield ": waiting\n\n"

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/api/projects/{pid}/runs")
def project_runs(pid: str, request: Request) -> list[dict]:
    ws = request.app.state.workspace
    return [run_view(ws, run["id"], _jobs(request)) for run in ws.runs(pid)]


@router.get("/api/runs/{rid}")
def run(rid: str, request: Request) -> dict:
    return run_view(request.app.state.workspace, rid, _jobs(request))


@router.get("/api/runs/{rid}/report")
def report(rid: str, request: Request) -> FileResponse:
    """The run's report.html, sandboxed (it shows the examples' names and pictures)."""
    ws = request.app.state.workspace
    path = ws.run_dir(rid) / "report.html"
    if ws.run(rid)["state"] != "done" or not path.is_file():
        raise ApiError(404, "not_found", f"run {rid} has no report (it did not finish)")
    headers = {"Content-Security-Policy": SANDBOX_CSP, "Cache-Control": "no-store"}
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)


@router.post("/api/runs/{rid}/predict")
async def predict(rid: str, request: Request) -> dict:
    """Per-class probabilities for 1..16 uploads (multipart ``files``) or texts (JSON
    {"texts": [...]}, for a model of texts)."""
    live: LiveModels = request.app.state.live
    served = await run_in_threadpool(live.model, rid)
    settings = request.app.state.settings
    limits = Limits(
        max_body_bytes=settings.limits.max_body_bytes,
        max_inputs=MAX_PREDICT_INPUTS,
    )
    inputs = await read_inputs(request, served, limits)
    refused = served.unreadable(inputs)
    if len(refused) == len(inputs):  # nothing to predict: say why, upload by upload
        what = "; ".join(f"{r['input']}: {r['reason']}" for r in refused)
        raise ApiError(422, "unreadable", f"nothing could be read ({what})", inputs=refused)
    return await run_in_threadpool(live.predict, rid, inputs)


@router.get("/api/runs/{rid}/export/bundle")
def export_bundle(rid: str, request: Request) -> FileResponse:
    path = exports.bundle_zip(request.app.state.workspace, rid)
    return FileResponse(path, media_type=ZIP, filename=f"transferkit-model-{rid}.zip")


@router.post("/api/runs/{rid}/export/onnx", status_code=202)
def export_onnx(rid: str, request: Request, body: OptionalJson = None) -> dict:
    """Queue the ONNX export (``{"quantize": null | "int8"}``); the job's result links it."""
    body = body or {}
    extra = sorted(set(body) - {"quantize"})
    if extra:
        raise BadInputError(f"unknown export settings {extra}; the only one is 'quantize'")
    ws = request.app.state.workspace
    try:
        job = exports.start_onnx_export(ws, _jobs(request), rid, body.get("quantize"))
    except Busy as exc:
        raise _busy(exc) from None
    return {"job_id": job.id, "run_id": rid}


@router.get("/api/runs/{rid}/export/onnx.zip")
def export_onnx_zip(rid: str, request: Request, quantize: str | None = None) -> FileResponse:
    if quantize not in exports.QUANTIZE:
        raise BadInputError(f"quantize must be left out or int8; got {quantize!r}")
    path = exports.onnx_zip_path(request.app.state.workspace, rid, quantize)
    name = f"transferkit-onnx{'-' + quantize if quantize else ''}-{rid}.zip"
    return FileResponse(path, media_type=ZIP, filename=name)


@router.get("/api/runs/{rid}/command")
def command(rid: str, request: Request) -> dict:
    return exports.command(request.app.state.workspace, rid)


@router.get("/api/runs/{rid}/dataset.zip")
def run_dataset(rid: str, request: Request) -> FileResponse:
    """The examples the run trained on, as the training folder ``data/``."""
    path = exports.run_dataset_zip(request.app.state.workspace, rid)
    return FileResponse(path, media_type=ZIP, filename=f"transferkit-data-{rid}.zip")


@router.get("/api/projects/{pid}/dataset.zip")
def project_dataset(pid: str, request: Request) -> FileResponse:
    """The project's examples as they are now, as the training folder ``data/``."""
    ws = request.app.state.workspace
    scratch = exports.scratch_dir(ws)
    try:
        path = exports.project_dataset_zip(ws, pid, scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    cleanup = BackgroundTask(shutil.rmtree, scratch, ignore_errors=True)
    return FileResponse(
        path, media_type=ZIP, filename=f"transferkit-data-{pid}.zip", background=cleanup
    )


def attach(app: FastAPI) -> None:
    """Give ``app`` the job runner and the live models these routes share (create_app calls
    it after including ``router``); runs a killed studio left "running" are marked failed."""
    ws = app.state.workspace
    mark_interrupted(ws)
    app.state.jobs = JobRunner()
    app.state.live = LiveModels(ws)
    app.router.on_shutdown.append(app.state.jobs.shutdown)
