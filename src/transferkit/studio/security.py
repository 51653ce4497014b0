"""Who may use the studio, checked on every request before any route runs.

1. Host: bound to loopback, a request must name a loopback host (``localhost``, ``127.0.0.1``,
   ``[::1]``, any port), so a web page on a domain that resolves to 127.0.0.1 (DNS rebinding)
   is answered 400 ``bad_host``.
2. Token (when one is set, as it must be beyond loopback): ``Authorization: Bearer`` or the
   ``studio_token`` cookie that ``GET /?token=T`` sets; else 401. ``GET /api/health`` is open.
3. CSRF: a POST/PUT/PATCH/DELETE needs the header ``X-Studio-CSRF`` with this server process's
   secret (the page reads it from its meta tag), and an ``Origin``, if sent, must be the
   request's own; else 403. A cross-site form cannot set a header, so it is refused.

Every answer carries nosniff, no-referrer and (unless a route set one) the page's CSP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser

from transferkit.serve.auth import TokenCheck, is_loopback
from transferkit.serve.errors import ApiError, error_body
from transferkit.studio.uploads import UploadLimits

TOKEN_ENV = "TRANSFERKIT_STUDIO_TOKEN"
COOKIE = "studio_token"
CSRF_HEADER = "x-studio-csrf"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "connect-src 'self'; frame-src 'self'; style-src 'self'; script-src 'self'"
)
# raw user content and reports: shown, never run, never given the page's origin
SANDBOX_CSP = "sandbox"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_OPEN = {("GET", "/api/health"), ("HEAD", "/api/health")}
_LOGIN_PAGE = (
    "<!doctype html><meta charset=utf-8><title>transferkit studio</title>"
    "<p>This studio needs its token: open the address printed by <code>transferkit studio</code>"
    " (it ends in <code>/?token=…</code>).</p>"
)


@dataclass(frozen=True)
class Settings:
    """What the running studio was started with (``app.state.settings``)."""

    host: str
    token: str | None
    limits: UploadLimits
    csrf: str = field(repr=False)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def cookie_value(token: str) -> str:
    """The cookie that stands for ``token``: derived from it, so the cookie jar never holds
    the token itself, and safe in a cookie whatever characters the token has."""
    return hmac.new(token.encode(), b"transferkit-studio-cookie", hashlib.sha256).hexdigest()


class StudioGuard:
    """ASGI middleware: the host, token and CSRF checks above, and the security headers."""

    def __init__(self, app, settings: Settings):
        self.app = app
        self.settings = settings
        self._token_check = TokenCheck(settings.token) if settings.token else None
        self._cookie = cookie_value(settings.token).encode() if settings.token else b""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":  # the studio has none: none may skip the checks
            return await send({"type": "websocket.close", "code": 1008})
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        refused = self._host_refusal(headers)
        if refused is None and self._token_check is not None and (method, path) not in _OPEN:
            if method == "GET" and path == "/" and "token" in _query(scope):
                return await self._login(scope, send)
            refused = self._token_refusal(headers)
            if refused is not None and method == "GET" and path == "/":
                return await _send(send, 401, _LOGIN_PAGE.encode(), "text/html; charset=utf-8")
        if refused is None and method not in _SAFE_METHODS:
            refused = self._csrf_refusal(scope, headers)
        if refused is not None:
            body = json.dumps(error_body(refused.status_code, refused.code, refused.detail))
            return await _send(
                send, refused.status_code, body.encode(), "application/json", refused.headers
            )
        await self.app(scope, receive, _with_security_headers(send))

    def _host_refusal(self, headers: Headers) -> ApiError | None:
        if not self.settings.loopback:
            return None  # reachable from elsewhere: the token guards it, whatever the name
        name = _host_name(headers.get("host", ""))
        if name and is_loopback(name):
            return None
        return ApiError(
            400,
            "bad_host",
            f"this studio answers requests for localhost only, not for {name or 'no host'!r}; "
            "open the address `transferkit studio` printed",
        )

    def _token_refusal(self, headers: Headers) -> ApiError | None:
        authorization = headers.get("authorization")
        if authorization is None:
            given = cookie_parser(headers.get("cookie", "")).get(COOKIE, "").encode()
            if given and hmac.compare_digest(given, self._cookie):
                return None
            return ApiError(
                401,
                "unauthorized",
                "this studio needs its token: open the address printed by `transferkit "
                "studio` (it ends in /?token=...), or send 'Authorization: Bearer <token>'",
            )
        try:
            self._token_check(authorization)
        except ApiError as exc:
            return exc
        return None

    def _csrf_refusal(self, scope, headers: Headers) -> ApiError | None:
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        if origin is not None and origin != own:
            return ApiError(
                403,
                "bad_origin",
                f"a request from {origin} may not change this studio (it is at {own})",
            )
        given = headers.get(CSRF_HEADER, "").encode()
        if not hmac.compare_digest(given, self.settings.csrf.encode()):
            return ApiError(
                403,
                "csrf",
                "the X-Studio-CSRF header is missing or wrong; reload the page (the secret "
                "changes when the studio restarts)",
            )
        return None

    async def _login(self, scope, send) -> None:
        """``GET /?token=T``: set the cookie and redirect to ``/``, so the token leaves the
        address bar (and the history); a wrong token is refused."""
        given = _query(scope)["token"][0]
        try:
            self._token_check(f"Bearer {given}")
        except ApiError:
            return await _send(send, 401, _LOGIN_PAGE.encode(), "text/html; charset=utf-8", {})
        cookie = f"{COOKIE}={self._cookie.decode()}; HttpOnly; SameSite=Strict; Path=/"
        await _send(send, 303, b"", "text/plain", {"location": "/", "set-cookie": cookie})


def _with_security_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("x-content-type-options", "nosniff")
            headers.setdefault("referrer-policy", "no-referrer")
            headers.setdefault("x-frame-options", "SAMEORIGIN")
            headers.setdefault("content-security-policy", PAGE_CSP)
        await send(message)

    return wrapped


async def _send(send, status: int, body: bytes, media: str, extra: dict | None = None) -> None:
    headers = MutableHeaders(
        {"content-type": media, "content-length": str(len(body)), **(extra or {})}
    )
    headers["x-content-type-options"] = "nosniff"
    headers["referrer-policy"] = "no-referrer"
    headers["content-security-policy"] = PAGE_CSP
    await send({"type": "http.response.start", "status": status, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body})


def _query(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


def _host_name(host: str) -> str:
    """The name in a Host header, without its port: ``[::1]:80`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host
