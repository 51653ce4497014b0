"""The studio's project routes: projects, classes and their examples (``/api/projects``,
``/api/classes``, ``/api/examples``), plus ``/api/health`` and ``/api/modalities``.

Every id in a path is looked up in the workspace's database; unknown ids are 404, bad names
and unusable uploads 422 with a message naming them.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from transferkit import __version__
from transferkit.serve.errors import ApiError
from transferkit.studio.previews import preview
from transferkit.studio.security import SANDBOX_CSP
from transferkit.studio.uploads import describe_modalities
from transferkit.studio.workspace import Workspace

router = APIRouter(prefix="/api")
FILES_FIELD = "files"
_SNIPPET_NAME = 40
# an example's bytes never change under its id: the browser may keep them
_IMMUTABLE = "private, max-age=86400, immutable"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewProject(_Strict):
    name: str
    modality: str


class Named(_Strict):
    name: str


class Move(_Strict):
    class_id: str


class Texts(_Strict):
    texts: list[str]
    source: str = "paste"


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace


@router.get("/health")
def health() -> dict:
    """Whether the studio is up (needs no token)."""
    return {"ok": True, "version": __version__}


@router.get("/modalities")
def modalities(request: Request) -> list[dict]:
    """The kinds of project the studio makes, and what the page needs to collect examples."""
    return describe_modalities(request.app.state.settings.limits)


@router.get("/projects")
def list_projects(request: Request) -> list[dict]:
    return _ws(request).projects()


@router.post("/projects", status_code=201)
def create_project(body: NewProject, request: Request) -> dict:
    return _ws(request).create_project(body.name, body.modality)


@router.get("/projects/{pid}")
def get_project(pid: str, request: Request) -> dict:
    """A project with its classes and its runs (newest first)."""
    ws = _ws(request)
    return {**ws.project(pid), "runs": ws.runs(pid)}


@router.patch("/projects/{pid}")
def rename_project(pid: str, body: Named, request: Request) -> dict:
    return _ws(request).rename_project(pid, body.name)


@router.delete("/projects/{pid}", status_code=204)
def delete_project(pid: str, request: Request) -> Response:
    _ws(request).delete_project(pid)
    return Response(status_code=204)


@router.post("/projects/{pid}/classes", status_code=201)
def add_class(pid: str, body: Named, request: Request) -> dict:
    return _ws(request).add_class(pid, body.name)


@router.patch("/classes/{cid}")
def rename_class(cid: str, body: Named, request: Request) -> dict:
    return _ws(request).rename_class(cid, body.name)


@router.delete("/classes/{cid}", status_code=204)
def delete_class(cid: str, request: Request) -> Response:
    _ws(request).delete_class(cid)
    return Response(status_code=204)


@router.get("/classes/{cid}/examples")
def list_examples(cid: str, request: Request) -> list[dict]:
    return _ws(request).examples(cid)


@router.post("/classes/{cid}/examples")
async def add_examples(cid: str, request: Request) -> dict:
    """Add examples: multipart parts named ``files`` (and a field ``source``), or for text
    JSON ``{"texts": [...], "source": "paste"}``. Unusable ones are refused by name."""
    ws = _ws(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        items, source = _texts(await request.body())
    elif media == "multipart/form-data":
        items, source = await _files(request, ws.limits.max_files)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send files as multipart/form-data parts named 'files', or texts as JSON "
            f'{{"texts": [...]}}; got Content-Type {media or "none"}',
        )
    if not items:
        raise ApiError(422, "no_examples", "the request holds no examples; add files or texts")
    result = await run_in_threadpool(ws.add_examples, cid, items, source)
    if not result["added"]:
        reasons = "; ".join(r["reason"] for r in result["refused"][:5])
        raise ApiError(
            422,
            "no_usable_examples",
            f"none of the {len(items)} examples could be used: {reasons}",
            refused=result["refused"],
        )
    return result


@router.patch("/examples/{eid}")
def move_example(eid: str, body: Move, request: Request) -> dict:
    """Move an example to another class of its project."""
    return _ws(request).move_example(eid, body.class_id)


@router.delete("/examples/{eid}", status_code=204)
def delete_example(eid: str, request: Request) -> Response:
    _ws(request).delete_example(eid)
    return Response(status_code=204)


@router.get("/examples/{eid}/content")
def example_content(eid: str, request: Request) -> FileResponse:
    """The example's bytes, as the type they were sniffed to be, never run by the browser."""
    ws = _ws(request)
    example = ws.example(eid)
    media = example["media_type"]
    return FileResponse(
        ws.blob_path(example),
        media_type=f"{media}; charset=utf-8" if media.startswith("text/") else media,
        headers={
            "Content-Security-Policy": SANDBOX_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": _IMMUTABLE,
        },
    )


@router.get("/examples/{eid}/preview")
def example_preview(eid: str, request: Request) -> Response:
    """A thumbnail (PNG), a waveform's peaks or a text's start (JSON), by the modality."""
    ws = _ws(request)
    example = ws.example(eid)
    pid = ws.class_(example["class_id"])["project_id"]
    modality = ws.project(pid)["modality"]
    made, media = preview(modality, ws.blobs, example, ws.blob_path(example))
    headers = {"Cache-Control": _IMMUTABLE}
    if isinstance(made, bytes):
        return Response(made, media_type=media, headers=headers)
    return JSONResponse(made, headers=headers)


def _texts(body: bytes) -> tuple[list[tuple[str, bytes]], str]:
    try:
        payload = Texts.model_validate(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(
            422,
            "invalid_json",
            'send a JSON object {"texts": ["a text", ...], "source": "paste"} '
            f"({str(exc).splitlines()[0]})",
        ) from None
    items = [
        (_snippet_name(text, i), text.encode("utf-8")) for i, text in enumerate(payload.texts, 1)
    ]
    return items, payload.source


def _snippet_name(text: str, i: int) -> str:
    """A pasted text's display name: its start, so a refusal says which text it was."""
    # no slash: the name would be taken for a path and cut to its last part
    words = " ".join(text.replace("/", " ").replace("\\", " ").split())
    if not words:
        return f"text {i}"
    return words if len(words) <= _SNIPPET_NAME else words[: _SNIPPET_NAME - 1] + "…"


async def _files(request: Request, max_files: int) -> tuple[list[tuple[str, bytes]], str]:
    try:
        form = await request.form(max_files=max_files, max_fields=4)
    except ApiError:
        raise  # the body limits, raised while the form was read
    except HTTPException as exc:
        # Starlette refuses a form over max_files with a 400; it is our limit on examples
        if str(exc.detail).startswith("Too many files"):
            raise ApiError(
                413,
                "too_many_files",
                f"a request may hold at most {max_files} files; send them in several requests",
            ) from None
        raise ApiError(
            400, "bad_multipart", f"the multipart body cannot be parsed ({exc.detail})"
        ) from None
    try:
        items, source = [], "upload"
        for key, value in form.multi_items():
            if key == "source" and isinstance(value, str):
                source = value
            elif key == FILES_FIELD and isinstance(value, UploadFile):
                items.append((value.filename or "", await value.read()))
            else:
                raise ApiError(
                    422,
                    "unexpected_field",
                    f"unexpected form field {key!r}; send each file as a part named "
                    f"'{FILES_FIELD}' and, optionally, a field 'source'",
                )
        return items, source
    finally:
        await form.close()
