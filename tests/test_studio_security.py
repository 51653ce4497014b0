"""The studio's guards: loopback by default and a token beyond it (bearer, or the cookie that
the printed /?token= address sets), the Host check against DNS rebinding, the CSRF header and
Origin check on every change, headers that keep user content inert, and no path from a
request reaching the file system."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect
from studio_helpers import BASE_URL, StudioProcess, client, files, image_bytes

from transferkit.studio.app import create_app
from transferkit.studio.security import PAGE_CSP, TOKEN_ENV

TOKEN = "correct-horse-battery-staple-42"


@pytest.fixture
def app(tmp_path):
    return create_app(tmp_path / "ws")


@pytest.mark.parametrize(
    "host, status",
    [
        ("127.0.0.1:8765", 200),
        ("localhost", 200),
        ("LOCALHOST:1", 200),
        ("[::1]:8765", 200),
        ("127.0.0.1", 200),
        ("evil.example:8765", 400),  # a domain rebound to 127.0.0.1
        ("localhost.evil.example", 400),
        ("10.0.0.5", 400),
        ("", 400),
    ],
)
def test_on_loopback_the_host_must_be_local(app, host, status):
    with client(app) as c:
        r = c.get("/api/health", headers={"host": host})
    assert r.status_code == status
    if status == 400:
        assert r.json()["error"]["code"] == "bad_host"


def test_changes_need_the_csrf_header_and_a_same_origin(app):
    csrf = app.state.settings.csrf
    with TestClient(app, base_url=BASE_URL) as c:
        body = {"name": "p", "modality": "text"}
        r = c.post("/api/projects", json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
        r = c.post("/api/projects", json=body, headers={"X-Studio-CSRF": csrf[:-1] + "x"})
        assert r.status_code == 403
        # a cross-site HTML form: no custom header, its own Origin
        r = c.post(
            "/api/projects",
            data={"name": "p", "modality": "text"},
            headers={"Origin": "http://evil.example"},
        )
        assert r.status_code == 403
        r = c.post(
            "/api/projects",
            json=body,
            headers={"X-Studio-CSRF": csrf, "Origin": "http://evil.example"},
        )
        assert r.status_code == 403 and r.json()["error"]["code"] == "bad_origin"
        assert c.get("/api/projects").json() == []  # nothing was made
        r = c.post("/api/projects", json=body, headers={"X-Studio-CSRF": csrf, "Origin": BASE_URL})
        assert r.status_code == 201
        pid = r.json()["id"]
        assert c.delete(f"/api/projects/{pid}").status_code == 403
        assert c.patch(f"/api/projects/{pid}", json={"name": "q"}).status_code == 403
        assert c.get(f"/api/projects/{pid}").json()["name"] == "p"


def test_the_page_carries_this_processs_secret_and_a_strict_csp(tmp_path):
    first = create_app(tmp_path / "a")
    second = create_app(tmp_path / "b")
    assert first.state.settings.csrf != second.state.settings.csrf
    with client(first) as c:
        page = c.get("/")
    assert page.status_code == 200
    assert f'content="{first.state.settings.csrf}"' in page.text and "{{csrf}}" not in page.text
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "script-src 'self'" in PAGE_CSP and "unsafe-inline" not in PAGE_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"


def test_user_content_is_served_inert(app):
    with client(app) as c:
        pid = c.post("/api/projects", json={"name": "p", "modality": "text"}).json()["id"]
        cid = c.post(f"/api/projects/{pid}/classes", json={"name": "a"}).json()["id"]
        html = "<script>alert(1)</script> looks like a page"
        r = c.post(f"/api/classes/{cid}/examples", files=files(("page.html", html.encode())))
        example = r.json()["added"][0]
        r = c.get(f"/api/examples/{example['id']}/content")
    assert r.text == html
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-security-policy"] == "sandbox"
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/api/examples/..%2F..%2Fstudio.sqlite3/content",
        "/api/examples/../../studio.sqlite3",
        "/static/../studio.sqlite3",
        "/static/..%2F..%2F..%2Fworkspace.py",
        "/static/%2e%2e/app.py",
        "/api/classes/%2e%2e/examples",
    ],
)
def test_no_request_path_reaches_the_file_system(app, path):
    with client(app) as c:
        r = c.get(path)
    assert r.status_code == 404, (path, r.text[:200])
    assert b"SQLite" not in r.content and b"def create_app" not in r.content


def test_with_a_token_everything_but_health_needs_it(tmp_path):
    app = create_app(tmp_path / "ws", token=TOKEN, host="0.0.0.0")
    csrf = app.state.settings.csrf
    with TestClient(app, base_url="http://studio.lan:8765", follow_redirects=False) as c:
        assert c.get("/api/health", headers={"host": "any.name"}).status_code == 200
        r = c.get("/api/projects")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        page = c.get("/")
        assert page.status_code == 401 and "open the address printed by" in page.text
        assert c.get("/static/index.html").status_code == 401
        wrong = {"Authorization": "Bearer " + TOKEN[:-1] + "x", "X-Studio-CSRF": csrf}
        assert (
            c.post(
                "/api/projects", json={"name": "p", "modality": "text"}, headers=wrong
            ).status_code
            == 401
        )
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/api/projects", headers=bearer).status_code == 200

        assert c.get("/?token=wrong-token-of-enough-length").status_code == 401
        login = c.get(f"/?token={TOKEN}")
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie  # the cookie stands for the token, it is not the token
        assert login.headers["referrer-policy"] == "no-referrer"
        # the client keeps the cookie, as the browser does
        assert c.get("/").status_code == 200
        assert c.get("/static/index.html").status_code == 200
        r = c.post(
            "/api/projects", json={"name": "p", "modality": "text"}, headers={"X-Studio-CSRF": csrf}
        )
        assert r.status_code == 201
        c.cookies.clear()
        c.cookies.set("studio_token", "0" * 64)
        assert c.get("/api/projects").status_code == 401


def test_the_command_refuses_other_hosts_without_a_token(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "transferkit.cli",
            "studio",
            "--workspace",
            str(tmp_path / "w"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != TOKEN_ENV},
    )
    assert r.returncode == 2
    assert "needs a token" in r.stderr and TOKEN_ENV in r.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was made


def test_a_real_studio_with_a_token_logs_the_browser_in(tmp_path):
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    studio = StudioProcess(tmp_path / "ws", "--host", "127.0.0.1", "--token-file", str(token_file))
    try:
        assert studio.address.endswith(f"/?token={TOKEN}")
        assert httpx.get(f"{studio.url}/api/projects").status_code == 401
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(studio.address)  # what opening the printed address does
            assert page.status_code == 200 and str(page.url) == f"{studio.url}/"
            csrf = re.search(r'name="studio-csrf" content="([^"]+)"', page.text).group(1)
            r = browser.post(
                f"{studio.url}/api/projects",
                json={"name": "p", "modality": "image"},
                headers={"X-Studio-CSRF": csrf},
            )
            assert r.status_code == 201
            pid = r.json()["id"]
            cid = browser.post(
                f"{studio.url}/api/projects/{pid}/classes",
                json={"name": "a"},
                headers={"X-Studio-CSRF": csrf},
            ).json()["id"]
            r = browser.post(
                f"{studio.url}/api/classes/{cid}/examples",
                files=files(("a.png", image_bytes())),
                headers={"X-Studio-CSRF": csrf},
            )
            assert r.status_code == 200 and len(r.json()["added"]) == 1
        assert httpx.get(f"{studio.url}/api/projects/{pid}").status_code == 401
    finally:
        studio.stop()


def _outward_address() -> str | None:
    """This machine's address on its outward interface, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_by_default_it_listens_on_loopback_only(tmp_path):
    studio = StudioProcess(tmp_path / "ws")
    try:
        assert studio.url.startswith("http://127.0.0.1:") and "token" not in studio.address
        assert httpx.get(f"{studio.url}/api/projects").status_code == 200  # no token asked
        outward = _outward_address()
        if outward is not None:  # the same port on another interface of this machine: closed
            port = studio.url.rsplit(":", 1)[1]
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://{outward}:{port}/api/health", timeout=5)
    finally:
        studio.stop()


def test_websockets_are_refused(app):
    """The studio has no websocket; one added later could not bypass the guard's checks."""

    @app.websocket("/api/probe")
    async def probe(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("in")
        await websocket.close()

    with client(app) as c, pytest.raises(WebSocketDisconnect) as refused:
        with c.websocket_connect("/api/probe") as ws:
            ws.receive_text()
    assert refused.value.code == 1008 and refused.value.reason == ""  # the guard's refusal
