"""REST serving under load: `transferkit serve` on loopback vs in-process prediction.

Model: ``transferkit train`` on Fashion-MNIST, 10 training images per class (seed 0), with
mobilenet_v2 features and the default head. Images: the first N official test images as 28x28
PNGs (full: 1,000, quick: 128), the same files on both sides.

Server: ``transferkit -q serve RUN/model --port 0`` in a subprocess, default settings (micro-
batches of up to 64 inputs, no wait, forward passes of 16, 2 batches at once on half the cores
each), warmed with a few requests.
Load: locust, headless, in its own process on the same machine (its CPU time comes out of the
same cores): FastHttpUser clients each POST one image per request (multipart), back to back,
no think time, cycling through the N images; 1, 8 and 32 concurrent clients, D seconds each
after every client has started (``--reset-stats``; full 30 s, quick 8 s). Every answer is
checked (200, one prediction); p50/p99 latency and requests/s come from locust's statistics.

In-process: ``TransferClassifier.load(RUN/model, cache=False, batch_size=B)`` then
``predict_details`` on the N image files in one call, after a warm-up call, for forward passes
of B = 64 (the library's default) and B = 16 (the server's ``--forward-batch``) — each measured
before and after the load runs in this same process (load from other processes then hits both
sides alike); the fastest is the reference. Ratio = server requests/s at 32 clients
(one image each) / in-process images/s; target >= 0.8. The server's labels for all N images
(sent in requests of 64) are compared with the in-process labels.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _common as c
from benchmarks import datasets

NAME = "serve"
TITLE = "REST serving under load (transferkit serve + locust, loopback) vs in-process predict"
N_IMAGES = 1000
QUICK_IMAGES = 128
CLIENTS = (1, 8, 32)
# the library's default forward pass, and the server's (--forward-batch): the faster is the
# reference, so the ratio measures serving, not a choice of batch size
IN_PROCESS_BATCHES = (64, 16)
TARGET_RATIO = 0.8
_BOUNDARY = "transferkit-bench-boundary"

# the locust file: one multipart body per image, built once; each client cycles through them
_LOCUSTFILE = """
import itertools, json, os
from locust import FastHttpUser, constant, task

MODEL = os.environ["BENCH_SERVE_MODEL"]
BOUNDARY = os.environ["BENCH_SERVE_BOUNDARY"]
FILES = json.loads(os.environ["BENCH_SERVE_FILES"])


def body(path):
    with open(path, "rb") as fp:
        data = fp.read()
    head = (f'--{BOUNDARY}\\r\\nContent-Disposition: form-data; name="files"; '
            f'filename="{os.path.basename(path)}"\\r\\nContent-Type: image/png\\r\\n\\r\\n')
    return head.encode() + data + f"\\r\\n--{BOUNDARY}--\\r\\n".encode()


BODIES = [body(p) for p in FILES]
NEXT = itertools.count()
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def predict(self):
        data = BODIES[next(NEXT) % len(BODIES)]
        with self.client.post(f"/v1/models/{MODEL}/predict", data=data, headers=HEADERS,
                              name="predict", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}: {r.text[:200]}")
            elif len(r.json()["predictions"]) != 1:
                r.failure("not one prediction")
"""


def _train(tmp: Path, env: dict) -> Path:
    train, test = datasets.write_fashion_folders(10, 0, n_test=200)
    run = tmp / "RUN"
    c.run_cli(["-q", "train", train, "--test", test, "--out", run, "--no-progress",
               "--backbone", "mobilenet_v2", "--strategy", "features"], env)  # fmt: skip
    return run / "model"


class _Server:
    """`transferkit -q serve MODEL --port 0` until closed; ``url`` once it answers."""

    def __init__(self, model: Path, env: dict, log: Path):
        self._log = open(log, "wb")
        command = c.transferkit_cli_command() + ["-q", "serve", str(model), "--port", "0"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=self._log)
        line = self.process.stdout.readline()
        if not line:
            self.close()
            raise RuntimeError(f"transferkit serve did not start: {log.read_text()[-2000:]}")
        self.url = json.loads(line)["url"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _post_files(url: str, model: str, files: list[Path]) -> list[str]:
    import httpx

    parts = [("files", (f.name, f.read_bytes(), "image/png")) for f in files]
    r = httpx.post(f"{url}/v1/models/{model}/predict", files=parts, timeout=300)
    r.raise_for_status()
    return [p["label"] for p in r.json()["predictions"]]


def _server_labels(url: str, model: str, files: list[Path]) -> list[str]:
    labels: list[str] = []
    for start in range(0, len(files), 64):
        labels += _post_files(url, model, files[start : start + 64])
    return labels


def _in_process(model: Path, files: list[Path], batch_size: int) -> tuple[float, list[str]]:
    """Images/s of the library's predict on ``files`` in forward passes of ``batch_size``
    (after a warm-up), and the labels."""
    from transferkit import TransferClassifier

    clf = TransferClassifier.load(model, progress=False, cache=False, batch_size=batch_size)
    clf.predict_details(files[:64])  # builds the runtime, as the server's warm-up does
    t0 = time.perf_counter()
    proba, ok, _, _ = clf.predict_details(files)
    seconds = time.perf_counter() - t0
    if not ok.all():
        raise RuntimeError("in-process predict could not read every image")
    return len(files) / seconds, [clf.labels_[int(i)] for i in proba.argmax(axis=1)]


def _locust(url: str, model: str, files: list[Path], clients: int, seconds: int, tmp: Path):
    """locust headless against ``url`` with ``clients`` users; its aggregated statistics."""
    locustfile = tmp / "locustfile.py"
    locustfile.write_text(_LOCUSTFILE)
    prefix = tmp / f"locust-{clients}"
    env = {
        **os.environ,
        "BENCH_SERVE_MODEL": model,
        "BENCH_SERVE_BOUNDARY": _BOUNDARY,
        "BENCH_SERVE_FILES": json.dumps([str(f) for f in files]),
    }
    locust = Path(sys.executable).with_name("locust")
    command = [str(locust) if locust.exists() else "locust", "-f", str(locustfile),
               "--headless", "--host", url, "-u", str(clients), "-r", str(clients),
               "-t", f"{seconds}s", "--reset-stats", "--only-summary", "--csv", str(prefix),
               "--stop-timeout", "30", "--loglevel", "WARNING"]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust wrote no statistics (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr)[-1500:]}")  # fmt: skip
    with stats.open() as fp:
        total = next(r for r in csv.DictReader(fp) if r["Name"] == "Aggregated")
    return {
        "clients": clients,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
        "mean_ms": float(total["Average Response Time"]),
    }


def run(quick: bool = False) -> dict:
    n_images = QUICK_IMAGES if quick else N_IMAGES
    seconds = 8 if quick else 30
    target = f"≥ {TARGET_RATIO}×"
    notes: list[str] = []
    data: dict = {"n_images": n_images, "seconds_per_level": seconds}
    try:
        c.import_transferkit_api("transferkit.serve.app.create_app")
        import locust  # noqa: F401

        folder = datasets.write_fashion_test_folder(n_images)
        files, _ = datasets.list_folder_images(folder)
        with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
            tmp = Path(tmp)
            env = c.transferkit_env(cache_dir=tmp / "cache")
            os.environ["TRANSFERKIT_CACHE_DIR"] = str(tmp / "cache")  # this process's side
            model = _train(tmp, env)
            before = {b: _in_process(model, files, b) for b in IN_PROCESS_BATCHES}
            local_labels = before[IN_PROCESS_BATCHES[0]][1]
            server = _Server(model, env, tmp / "serve.log")
            try:
                name = "RUN"  # a bundle in RUN/model is served under its run's name
                _server_labels(server.url, name, files[:64])  # warm-up
                served_labels = _server_labels(server.url, name, files)
                levels = [_locust(server.url, name, files, n, seconds, tmp) for n in CLIENTS]
            finally:
                server.close()
            after = {b: _in_process(model, files, b)[0] for b in IN_PROCESS_BATCHES}
    except Exception as exc:
        data["error"] = c.short_error(exc, 2000)
        rows = [c.row("throughput ratio, server at 32 clients / in-process", c.short_error(exc),
                      target=target, status=c.unavailable_status(exc))]  # fmt: skip
        return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}

    speeds = {b: max(before[b][0], after[b]) for b in IN_PROCESS_BATCHES}
    best = max(speeds, key=speeds.get)
    local = speeds[best]
    at32 = next(level for level in levels if level["clients"] == 32)
    ratio = at32["rps"] / local
    failures = sum(level["failures"] for level in levels)
    agree = sum(a == b for a, b in zip(served_labels, local_labels)) / n_images
    data.update(levels=levels, ratio=ratio, label_agreement=agree, in_process_per_second={
        b: [before[b][0], after[b]] for b in IN_PROCESS_BATCHES})  # fmt: skip
    rows = [
        c.row(
            f"{level['clients']} client{'s' * (level['clients'] > 1)}: p50 / p99 latency, req/s",
            f"{level['p50_ms']:.0f} / {level['p99_ms']:.0f} ms, {level['rps']:.1f} req/s",
            status="—" if not level["failures"] else f"{level['failures']} failed",
        )
        for level in levels
    ]
    rows += [
        c.row(
            "throughput, server at 32 clients (1 image/request) / in-process predict",
            f"{at32['rps']:.1f} img/s",
            f"{local:.1f} img/s",
            f"{ratio:.2f}",
            target,
            c.verdict(ratio >= TARGET_RATIO and failures == 0),
        ),
        c.row(
            f"same label as in-process predict ({n_images} images)",
            f"{agree:.4f}",
            target="1.0",
            status=c.verdict(agree == 1.0),
        ),
    ]
    notes += [
        "in-process predict, img/s before / after the load runs: "
        + "; ".join(
            f"forward passes of {b}: {before[b][0]:.1f} / {after[b]:.1f}"
            for b in IN_PROCESS_BATCHES
        )
        + f" — the reference is the best of them (passes of {best})",
        f"requests: {', '.join(str(level['requests']) for level in levels)} at "
        f"{', '.join(map(str, CLIENTS))} clients, {failures} failed; locust ran on the same "
        "cores as the server",
        "server: `transferkit -q serve RUN/model --port 0` (micro-batches <= 64 inputs, no "
        "wait, forward passes of 16, 2 batches at once on a core each); load: `locust "
        "--headless -u N -r N -t "
        f"{seconds}s --reset-stats` with FastHttpUser clients posting one PNG each, no think time",
    ]
    if quick:
        notes.append(f"QUICK run: {n_images} images, {seconds} s per level — smoke test only")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
