"""Who may call the server: anyone on this machine by default (it binds to loopback); any other
address needs a bearer token, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

from transferkit.errors import BadInputError
from transferkit.serve.errors import ApiError

TOKEN_ENV = "TRANSFERKIT_SERVE_TOKEN"
_MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def load_token(token_file: str | None, env: str = TOKEN_ENV) -> str | None:
    """The token from ``token_file`` (its first line), else from the variable ``env``
    ($TRANSFERKIT_SERVE_TOKEN; the studio has its own)."""
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"cannot read the token file {path} ({exc})") from None
        token = token[0].strip() if token else ""
        if not token:
            raise BadInputError(f"the token file {path} is empty; write a secret token in it")
    else:
        token = os.environ.get(env, "").strip() or None
        if token is None:
            return None
    if len(token) < _MIN_TOKEN_CHARS:
        raise BadInputError(
            f"the token is {len(token)} characters long; use at least {_MIN_TOKEN_CHARS}, e.g. "
            'python -c "import secrets; print(secrets.token_urlsafe(32))" > token.txt'
        )
    return token


def check_binding(host: str, token: str | None, env: str = TOKEN_ENV) -> None:
    """Refuse to listen beyond this machine without a token (``env``: where it may come from)."""
    if token is None and not is_loopback(host):
        raise BadInputError(
            f"--host {host} makes the server reachable from other machines, so it needs a "
            f"token: pass --token-file FILE (or set ${env}); clients then send "
            "'Authorization: Bearer <token>'. Without a token, serve on 127.0.0.1."
        )


class TokenCheck:
    """Compares a request's bearer token with the server's, in constant time."""

    def __init__(self, token: str):
        # equal-length digests: the comparison's time says nothing about the token's length
        self._digest = hashlib.sha256(token.encode()).digest()

    def __call__(self, authorization: str | None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise _unauthorized("this server needs 'Authorization: Bearer <token>'")
        digest = hashlib.sha256(given.strip().encode()).digest()
        if not hmac.compare_digest(digest, self._digest):
            raise _unauthorized("the bearer token is not this server's token")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
