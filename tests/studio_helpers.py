"""Shared by the studio's workspace, upload, security, API and crash tests: real files (PNG,
JPEG, WAV... made by PIL and libsndfile), an in-process client, and `transferkit studio` run
as a real process on a free port."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

BASE_URL = "http://127.0.0.1"


def image_bytes(seed: int = 0, size: int = 48, fmt: str = "PNG") -> bytes:
    """A real image file of noise (distinct per seed), in PIL's format ``fmt``."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def audio_bytes(freq: float = 440.0, seconds: float = 0.5, fmt: str = "WAV", rate=16000) -> bytes:
    """A real audio file (a tone) in libsndfile's format ``fmt``."""
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    out = io.BytesIO()
    sf.write(out, wave, rate, format=fmt)
    return out.getvalue()


def client(app):
    """A TestClient for ``app`` sending the page's CSRF header, as the page does."""
    from fastapi.testclient import TestClient

    return TestClient(app, base_url=BASE_URL, headers={"X-Studio-CSRF": app.state.settings.csrf})


def files(*named: tuple[str, bytes]) -> list:
    """httpx's multipart ``files=`` for (name, bytes) pairs, the type left to the server."""
    return [("files", (name, data, "application/octet-stream")) for name, data in named]


class StudioProcess:
    """``transferkit studio`` in a subprocess on a free port (its printed address)."""

    def __init__(self, workspace: Path, *args: str, env: dict | None = None):
        self.workspace = workspace
        command = [sys.executable, "-m", "transferkit.cli", "-q", "studio"]
        command += ["--workspace", str(workspace), "--port", "0", *args]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        line = self.proc.stdout.readline()
        found = re.search(r"http://\S+", line)
        if not found:
            self.proc.kill()
            raise AssertionError(f"no address printed: {line!r} {self.proc.stderr.read()}")
        self.address = found.group(0)
        self.url = self.address.split("?")[0].rstrip("/")
        self._wait_up()

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/api/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the studio did not answer within 30 s")

    def csrf(self, **kwargs) -> str:
        """The CSRF secret, read from the page as the browser does."""
        page = httpx.get(f"{self.url}/", **kwargs).text
        return re.search(r'name="studio-csrf" content="([^"]+)"', page).group(1)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
