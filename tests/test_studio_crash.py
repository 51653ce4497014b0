"""Killing `transferkit studio` (SIGKILL: no handler runs) during a large upload loses nothing
that was confirmed: after a restart every example answered 200 before is there with its
bytes, the database is consistent, and no half-written or orphan blob remains.

The kills land at three moments of an upload: while its body arrives, after its blobs are
on disk but before its rows commit, and while one blob is being written (the last two by
``TRANSFERKIT_FAULT_AT``, which kills the real server process at that step)."""

from __future__ import annotations

import hashlib
import http.client
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest
from studio_helpers import StudioProcess, files, image_bytes

from transferkit.atomic import FAULT_ENV

LARGE_FILES = 40  # noise PNGs of ~0.8 MB: a ~30 MB request


@pytest.fixture(scope="module")
def large_upload():
    return [(f"big-{i}.png", image_bytes(1000 + i, size=512)) for i in range(LARGE_FILES)]


def _multipart(items) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in items:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def _confirm(studio, csrf, cid, items) -> dict[str, bytes]:
    """Upload ``items``; what the 200 answer lists is confirmed: {example id: its bytes}."""
    r = httpx.post(
        f"{studio.url}/api/classes/{cid}/examples",
        files=files(*items),
        headers={"X-Studio-CSRF": csrf},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    sent = dict(items)
    return {e["id"]: sent[e["name"]] for e in r.json()["added"]}


def _upload_killed_by_fault(studio, csrf, cid, items) -> None:
    with pytest.raises(httpx.TransportError):  # the server died answering
        httpx.post(
            f"{studio.url}/api/classes/{cid}/examples",
            files=files(*items),
            headers={"X-Studio-CSRF": csrf},
            timeout=60,
        )
    studio.proc.wait(10)
    studio.kill()


def _rows(root: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(root / "studio.sqlite3") as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, sha256, ext FROM examples")}


def _blob_files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").glob("??/*")}


def test_a_kill_during_a_large_upload_loses_nothing_confirmed(tmp_path, large_upload):
    root = tmp_path / "ws"
    confirmed: dict[str, bytes] = {}

    # 1. examples confirmed, then a kill while a large body is still arriving
    studio = StudioProcess(root)
    csrf = studio.csrf()
    post = {"headers": {"X-Studio-CSRF": csrf}}
    pid = httpx.post(
        f"{studio.url}/api/projects", json={"name": "p", "modality": "image"}, **post
    ).json()["id"]
    cid = httpx.post(f"{studio.url}/api/projects/{pid}/classes", json={"name": "a"}, **post).json()[
        "id"
    ]
    confirmed |= _confirm(studio, csrf, cid, [(f"small-{i}.png", image_bytes(i)) for i in range(6)])
    confirmed |= _confirm(studio, csrf, cid, large_upload[:3])  # blobs later uploads share
    body, boundary = _multipart(large_upload)
    host, port = studio.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("POST", f"/api/classes/{cid}/examples")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(body)))
    conn.putheader("X-Studio-CSRF", csrf)
    conn.endheaders()
    conn.send(body[: len(body) * 2 // 3])
    time.sleep(0.3)
    studio.kill()
    conn.close()
    assert set(_rows(root)) == set(confirmed)

    # 2. killed after the upload's blobs are written and synced, before its rows commit
    studio = StudioProcess(root, env={FAULT_ENV: "studio:blobs-written"})
    _upload_killed_by_fault(studio, studio.csrf(), cid, large_upload)
    assert set(_rows(root)) == set(confirmed)
    referenced = {f"{sha}{ext}" for sha, ext in _rows(root).values()}
    orphans = _blob_files(root) - referenced
    assert len(orphans) == LARGE_FILES - 3  # the scenario happened: blobs no row refers to

    # 3. killed while one blob is being written (synced in tmp/, not yet renamed into place)
    studio = StudioProcess(root, env={FAULT_ENV: "studio-blob:renaming"})
    _upload_killed_by_fault(studio, studio.csrf(), cid, [("fresh.png", image_bytes(4242))])
    assert len(list((root / "tmp").iterdir())) == 1  # the partial write it left

    # 4. restarted: everything confirmed is there, whole; nothing else is
    studio = StudioProcess(root)
    try:
        csrf = studio.csrf()
        listed = httpx.get(f"{studio.url}/api/classes/{cid}/examples").json()
        assert {e["id"] for e in listed} == set(confirmed)
        for example in listed:
            content = httpx.get(f"{studio.url}/api/examples/{example['id']}/content").content
            assert content == confirmed[example["id"]]
            assert hashlib.sha256(content).hexdigest() == example["sha256"]
        with sqlite3.connect(root / "studio.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = _rows(root)
        # every referenced blob is whole, and the sweep left no other file
        assert _blob_files(root) == {f"{sha}{ext}" for sha, ext in rows.values()}
        for sha, ext in rows.values():
            data = (root / "blobs" / sha[:2] / f"{sha}{ext}").read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha
        assert list((root / "tmp").iterdir()) == []
        # and the studio works on: the upload that was lost goes through now
        again = _confirm(studio, csrf, cid, large_upload)
        assert len(again) == LARGE_FILES
    finally:
        studio.stop()
