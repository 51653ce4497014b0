"""The server's errors: one JSON shape for every 4xx/5xx, each naming what was wrong and the fix.

``{"error": {"status": 413, "code": "body_too_large", "message": "..."}}`` (plus ``inputs``:
the unreadable uploads and why, for a 400). FastAPI's own validation errors and Starlette's
404/405 are answered in the same shape, so a client parses one thing.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


class ApiError(HTTPException):
    """An HTTP error with a machine-readable ``code`` and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code
        self.extra = extra


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON every error answer carries."""
    return {"error": {"status": status, "code": code, "message": message, **extra}}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.status_code, exc.code, exc.detail, **exc.extra),
        status_code=exc.status_code,
        headers=exc.headers,
    )


# Starlette raises plain HTTPExceptions for routing (404 unknown path, 405 wrong method)
_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large"}


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc)
    code = _CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(exc.status_code, code, str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def validation_error(request: Request, exc) -> JSONResponse:
    """FastAPI's parameter validation (e.g. ``top=0``), as one readable message."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse(
        error_body(422, "invalid_request", "; ".join(problems) or "invalid request"),
        status_code=422,
    )
