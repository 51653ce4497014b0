"""Limits a server enforces on every request: body size and reading time (while the body
arrives, never after buffering it), inputs per request, and the time to an answer."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from transferkit.errors import BadInputError
from transferkit.serve.errors import ApiError, error_body


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server, and how requests are grouped into batches.

    ``max_body_bytes``: request body (all uploads together); ``max_inputs``: inputs in one
    request; ``timeout_s``: from the request's first byte to its answer (reading a slow body
    counts); ``batch_size``: inputs the model sees at once across concurrent requests;
    ``batch_wait_ms``: how long a batch waits for more requests before it runs.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    max_inputs: int = 256
    timeout_s: float = 60.0
    batch_size: int = 64
    batch_wait_ms: float = 0.0

    def __post_init__(self):
        for name in ("max_body_bytes", "max_inputs", "batch_size"):
            if getattr(self, name) < 1:
                raise BadInputError(f"{name} must be at least 1; got {getattr(self, name)}")
        if not self.timeout_s > 0:
            raise BadInputError(f"the request timeout must be positive; got {self.timeout_s}")
        if not self.batch_wait_ms >= 0:
            raise BadInputError(f"the batch wait must be >= 0 ms; got {self.batch_wait_ms}")


SERVE_LIMIT = "the limit is `transferkit serve --max-body-mb`"


def too_large(limit: int, where: str = SERVE_LIMIT) -> ApiError:
    """413 for a body over ``limit`` bytes; ``where``: what sets the limit."""
    return ApiError(
        413,
        "body_too_large",
        f"the request body is larger than this server's limit of {_size(limit)}; send fewer "
        f"or smaller files per request ({where})",
    )


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


class RequestLimits:
    """ASGI middleware: refuse a body over ``max_body_bytes`` as soon as its declared length or
    the bytes received so far exceed it (413), and one that arrives slower than ``timeout_s``
    (408), so a client cannot make the server buffer or wait without bound. ``where``: what
    sets the limit, for the 413's message."""

    def __init__(self, app, limits: Limits, where: str = SERVE_LIMIT):
        self.app = app
        self.limits = limits
        self.where = where

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            # answered before a byte of the body is read
            exc = too_large(limit, self.where)
            return await _send_error(send, 413, exc.code, exc.detail, close=True)
        scope.setdefault("state", {})["deadline"] = time.monotonic() + self.limits.timeout_s
        received = 0

        async def limited_receive():
            nonlocal received
            left = scope["state"]["deadline"] - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except asyncio.TimeoutError:
                raise ApiError(
                    408,
                    "request_timeout",
                    f"the request body did not arrive within {self.limits.timeout_s:g} s",
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit, self.where)
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send, status: int, code: str, message: str, *, close: bool) -> None:
    body = json.dumps(error_body(status, code, message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the unread body is still on the wire: this connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
