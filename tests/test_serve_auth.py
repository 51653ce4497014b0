"""Who may call `transferkit serve`: loopback addresses, token files, the constant-time check."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from transferkit.errors import BadInputError  # noqa: E402
from transferkit.serve.auth import (  # noqa: E402
    TOKEN_ENV,
    TokenCheck,
    check_binding,
    is_loopback,
    load_token,
)
from transferkit.serve.errors import ApiError  # noqa: E402

TOKEN = "a-token-of-thirty-two-characters"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("myhost.example", False),  # a name may resolve to any interface
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_binding_beyond_this_machine_needs_a_token():
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", TOKEN)
    with pytest.raises(BadInputError, match="--token-file"):
        check_binding("0.0.0.0", None)


def test_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert load_token(None) is None
    (tmp_path / "token").write_text(f"  {TOKEN}\nsecond line ignored\n")
    assert load_token(str(tmp_path / "token")) == TOKEN
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert load_token(None) == TOKEN
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(BadInputError, match="empty"):
        load_token(str(tmp_path / "empty"))
    (tmp_path / "short").write_text("secret")
    with pytest.raises(BadInputError, match="at least 16"):
        load_token(str(tmp_path / "short"))
    with pytest.raises(BadInputError, match="cannot read"):
        load_token(str(tmp_path / "missing"))


@pytest.mark.parametrize(
    "header",
    [None, "", TOKEN, f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
def test_only_the_bearer_token_passes(header):
    check = TokenCheck(TOKEN)
    check(f"Bearer {TOKEN}")
    check(f"bearer {TOKEN}")  # the scheme is case-insensitive (RFC 7235)
    with pytest.raises(ApiError) as refused:
        check(header)
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
