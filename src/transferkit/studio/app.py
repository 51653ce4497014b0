"""The studio's FastAPI application: the workspace, the guards every request passes (host,
token, CSRF, body size), the routes, the static page, and one JSON shape for every error."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from transferkit import __version__
from transferkit.errors import BadInputError
from transferkit.serve.errors import error_body, http_error, validation_error
from transferkit.serve.limits import Limits, RequestLimits
from transferkit.studio.routes_projects import router as projects_router
from transferkit.studio.routes_runs import attach
from transferkit.studio.routes_runs import router as runs_router
from transferkit.studio.security import PAGE_CSP, Settings, StudioGuard
from transferkit.studio.uploads import UploadLimits
from transferkit.studio.workspace import Conflict, NotFound, Workspace

STATIC = Path(__file__).resolve().parent / "static"
CSRF_PLACEHOLDER = "{{csrf}}"
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# the body limit of `transferkit studio` (cli.py) follows its per-file limit
_STUDIO_LIMIT = (
    "it grows with `transferkit studio --max-upload-mb`: 4 of the largest files, or 64 MiB"
)


def create_app(
    workspace_dir: str | os.PathLike[str],
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    limits: UploadLimits | None = None,
) -> FastAPI:
    """The studio app on the workspace at ``workspace_dir`` (made if missing).

    ``host``: the address it is served on (loopback: requests must name localhost);
    ``token``: required from every client when set (``transferkit studio`` sets one for any
    host beyond loopback); ``limits``: upload sizes.
    """
    limits = limits or UploadLimits()
    settings = Settings(host=host, token=token, limits=limits, csrf=secrets.token_urlsafe(32))
    app = FastAPI(
        title="transferkit studio",
        version=__version__,
        docs_url=None,  # Swagger UI loads from a CDN: the studio works offline
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.workspace = Workspace(workspace_dir, limits)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(NotFound, _error(404, "not_found"))
    app.add_exception_handler(Conflict, _error(409, "conflict"))
    app.add_exception_handler(BadInputError, _error(422, "bad_input"))
    body_limits = Limits(
        max_body_bytes=limits.max_body_bytes,
        max_inputs=limits.max_files,
        timeout_s=limits.timeout_s,
    )
    app.add_middleware(BodyLimits, limits=body_limits)
    app.add_middleware(StudioGuard, settings=settings)  # outermost: before any body is read

    app.include_router(projects_router)
    app.include_router(runs_router)
    attach(app)
    app.router.on_shutdown.append(app.state.workspace.close)  # after the jobs' own shutdown

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> HTMLResponse:
        """The page, with this server process's CSRF secret in its meta tag."""
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(
            html.replace(CSRF_PLACEHOLDER, settings.csrf),
            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"},
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _error(status: int, code: str):
    """An exception handler answering ``status`` with the exception's message."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(status, code, str(exc)), status_code=status)

    return handler


class BodyLimits:
    """serve's RequestLimits (size and arrival time of a body) for requests that carry one.

    A GET holds no body, and a stream it answers (the training events) may last longer than
    any body may take to arrive: RequestLimits' deadline would cut it.
    """

    def __init__(self, app, limits: Limits):
        self.app = app
        self.limited = RequestLimits(app, limits, where=_STUDIO_LIMIT)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS:
            return await self.limited(scope, receive, send)
        return await self.app(scope, receive, send)
