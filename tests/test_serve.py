"""`transferkit serve` as a real process on real bundles: every endpoint, every refusal, the
micro-batching of concurrent requests, backbones shared in memory, the token off loopback and a
tampered bundle refused at start-up."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from serve_helpers import Server, metric_samples, run_serve, serve_bundles

pytest.importorskip("fastapi")
pytestmark = pytest.mark.e2e

MAX_INPUTS = 8
TIMEOUT = 120  # the first prediction builds the runtime, on a machine that may be busy


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT, **kwargs)


def post(url: str, **kwargs) -> httpx.Response:
    return httpx.post(url, timeout=TIMEOUT, **kwargs)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return serve_bundles(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(bundles, tmp_path_factory):
    """The digits bundle as `transferkit export` writes it (ONNX, run without torch)."""
    out = tmp_path_factory.mktemp("serve-export") / "digits-onnx"
    data = bundles["digits"].parent / "digits-data"
    command = [sys.executable, "-m", "transferkit.cli", "-q", "export", str(bundles["digits"])]
    done = subprocess.run(
        [*command, "--format", "onnx", "--out", str(out), "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def server(bundles, exported, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-log") / "stderr.txt"
    srv = Server(
        str(bundles["digits"]),
        str(bundles["digits345"]),
        f"reviews={bundles['reviews']}",
        str(exported),
        "--max-body-mb",
        "1",
        "--max-inputs",
        str(MAX_INPUTS),
        "--batch-wait-ms",
        "20",
        log=log,
    )
    yield srv
    srv.close()


def pngs(bundles, digit: str) -> list[Path]:
    return sorted((bundles["digits"].parent / "digits-data" / digit).glob("*.png"))


def upload(*paths: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (p.name, p.read_bytes(), "image/png")) for p in paths]


def error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()["error"]
    assert body["status"] == status and body["code"] == code, body
    return body


def test_health_models_and_shared_backbone(server):
    assert get(f"{server.url}/healthz").json() == {
        "status": "ok",
        "models": ["digits", "digits-onnx", "digits345", "reviews"],
    }
    models = {m["name"]: m for m in get(f"{server.url}/v1/models").json()["models"]}
    assert models["digits"]["labels"] == ["0", "1", "2"]
    assert models["digits"]["input"]["content_type"] == "multipart/form-data"
    assert models["reviews"]["input"]["content_type"] == "application/json"
    assert models["reviews"]["modality"] == "text"
    # the two digit models have the same frozen mobilenet_v2: one instance in memory
    assert models["digits"]["shares_backbone_with"] == ["digits345"]
    assert models["reviews"]["shares_backbone_with"] == []
    one = get(f"{server.url}/v1/models/digits345").json()
    assert one == models["digits345"]
    metrics = metric_samples(get(f"{server.url}/metrics").text, "transferkit_backbones_loaded")
    # mobilenet_v2 once, MiniLM once, and the exported graph (backbone and head in one)
    assert metrics[("transferkit_backbones_loaded", ())] == 3
    assert models["digits-onnx"]["format"] == "exported"
    assert models["digits-onnx"]["backbone"] == "mobilenet_v2"
    assert models["digits-onnx"]["shares_backbone_with"] == []


def test_predict_images_as_the_library_does(server, bundles):
    from transferkit import TransferClassifier

    files = [pngs(bundles, "2")[0], pngs(bundles, "0")[1], pngs(bundles, "1")[2]]
    r = post(f"{server.url}/v1/models/digits/predict?top=2", files=upload(*files))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "digits"
    got = body["predictions"]
    assert [p["input"] for p in got] == [f.name for f in files]  # in the order sent
    assert [p["label"] for p in got] == ["2", "0", "1"]
    assert all(len(p["scores"]) == 2 for p in got)
    clf = TransferClassifier.load(bundles["digits"], progress=False, cache=False)
    proba = clf.predict_proba(files)
    for row, p in zip(proba, got):
        assert p["confidence"] == pytest.approx(row.max(), abs=1e-5)
        assert p["scores"][p["label"]] == p["confidence"]


def test_exported_model_predicts_as_its_bundle(server, bundles):
    files = pngs(bundles, "0")[:2] + pngs(bundles, "1")[:2] + pngs(bundles, "2")[:2]
    answers = {}
    for name in ("digits", "digits-onnx"):
        r = post(f"{server.url}/v1/models/{name}/predict?top=3", files=upload(*files))
        assert r.status_code == 200, r.text
        answers[name] = r.json()["predictions"]
    for bundle, graph in zip(answers["digits"], answers["digits-onnx"]):
        assert graph["input"] == bundle["input"] and graph["label"] == bundle["label"]
        for label, p in bundle["scores"].items():
            assert graph["scores"][label] == pytest.approx(p, abs=1e-4)
    fake = ("files", ("scan.png", b"plain text, not a PNG", "image/png"))
    body = error(
        post(f"{server.url}/v1/models/digits-onnx/predict", files=[fake]), 400, "unreadable_input"
    )
    assert body["inputs"][0]["input"] == "scan.png"


def test_predict_texts_never_reads_server_files(server, bundles, tmp_path):
    table = bundles["reviews"].parent / "reviews.csv"  # a text table that exists on the server
    texts = ["a wonderful, moving film", "a dull and terrible movie", str(table)]
    r = post(f"{server.url}/v1/models/reviews/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    got = r.json()["predictions"]
    assert [p["label"] for p in got[:2]] == ["positive", "negative"]
    # the path is classified as a text: the file is not read, its rows are not answered
    assert len(got) == 3 and got[2]["input"] == str(table)


def _png(size=32) -> bytes:
    buffer = BytesIO()
    Image.fromarray(np.full((size, size), 128, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_png_that_is_text_is_a_400_naming_it(server, bundles):
    fake = ("files", ("scan.png", b"this is a text file, not a picture\n", "image/png"))
    r = post(f"{server.url}/v1/models/digits/predict", files=[fake])
    body = error(r, 400, "unreadable_input")
    assert body["inputs"][0]["input"] == "scan.png" and "scan.png" in body["message"]
    # beside a good image: still refused as a whole, naming the bad one only
    good = upload(pngs(bundles, "1")[0])
    r = post(f"{server.url}/v1/models/digits/predict", files=[*good, fake])
    body = error(r, 400, "unreadable_input")
    assert [i["input"] for i in body["inputs"]] == ["scan.png"]
    empty = ("files", ("empty.png", b"", "image/png"))
    body = error(
        post(f"{server.url}/v1/models/digits/predict", files=[empty]), 400, "unreadable_input"
    )
    assert "empty" in body["inputs"][0]["reason"]


def test_body_over_the_limit_is_413_declared_or_streamed(server):
    big = ("files", ("big.png", _png() + bytes(2 * 2**20), "image/png"))
    body = error(post(f"{server.url}/v1/models/digits/predict", files=[big]), 413, "body_too_large")
    assert "1 MiB" in body["message"]

    def chunks():  # no Content-Length: the limit must hold while the bytes arrive
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n\r\n'
        for _ in range(40):
            yield bytes(64 * 1024)

    r = post(
        f"{server.url}/v1/models/digits/predict",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    error(r, 413, "body_too_large")


def test_too_many_inputs_is_413(server, bundles):
    files = upload(*(pngs(bundles, "0") * 2)[: MAX_INPUTS + 1])
    body = error(
        post(f"{server.url}/v1/models/digits/predict", files=files), 413, "too_many_inputs"
    )
    assert str(MAX_INPUTS) in body["message"]
    texts = {"texts": ["fine"] * (MAX_INPUTS + 1)}
    error(post(f"{server.url}/v1/models/reviews/predict", json=texts), 413, "too_many_inputs")


def test_wrong_content_type_is_415(server, bundles):
    url = server.url
    body = error(
        post(f"{url}/v1/models/digits/predict", json={"texts": ["x"]}),
        415,
        "unsupported_media_type",
    )
    assert "multipart/form-data" in body["message"]
    body = error(
        post(f"{url}/v1/models/reviews/predict", files=upload(pngs(bundles, "0")[0])),
        415,
        "unsupported_media_type",
    )
    assert "application/json" in body["message"]
    r = post(
        f"{url}/v1/models/reviews/predict", content=b"hello", headers={"content-type": "text/plain"}
    )
    error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"texts": []}', "empty_batch"),
        (b"{not json", "invalid_json"),
        (b'{"texts": "one text"}', "invalid_json"),
        (b'{"texts": [1, 2]}', "invalid_json"),
        (b'{"texts": ["ok"], "extra": 1}', "invalid_json"),
        (b'["a text"]', "invalid_json"),
        (b'{"texts": ["fine", "  "]}', "empty_text"),
    ],
)
def test_bad_json_and_empty_batches_are_422(server, content, code):
    r = post(
        f"{server.url}/v1/models/reviews/predict",
        content=content,
        headers={"content-type": "application/json"},
    )
    error(r, 422, code)


def test_empty_or_odd_multipart_is_422(server):
    url = f"{server.url}/v1/models/digits/predict"
    empty = post(
        url, content=b"--b--\r\n", headers={"content-type": "multipart/form-data; boundary=b"}
    )
    error(empty, 422, "empty_batch")
    error(post(url, files=[("photo", ("a.png", _png(), "image/png"))]), 422, "unexpected_field")
    error(
        post(url, data={"files": "not a file"}, files=[("x", ("a", b"", "a/b"))]),
        422,
        "not_a_file",
    )


def test_unknown_model_and_bad_parameters(server):
    body = error(get(f"{server.url}/v1/models/nope"), 404, "model_not_found")
    assert "digits" in body["message"]
    r = post(f"{server.url}/v1/models/nope/predict", json={"texts": ["x"]})
    error(r, 404, "model_not_found")
    r = post(f"{server.url}/v1/models/reviews/predict?top=0", json={"texts": ["x"]})
    error(r, 422, "invalid_request")
    error(get(f"{server.url}/v2/nothing"), 404, "not_found")


def test_concurrent_requests_share_batches(server, bundles):
    files = pngs(bundles, "0") + pngs(bundles, "1") + pngs(bundles, "2")
    url = f"{server.url}/v1/models/digits345/predict"

    def batches() -> tuple[float, float]:
        text = get(f"{server.url}/metrics").text
        samples = metric_samples(text, "transferkit_batch_size")
        key = (("model", "digits345"),)
        return samples.get(("transferkit_batch_size_count", key), 0), samples.get(
            ("transferkit_batch_size_sum", key), 0
        )

    post(url, files=upload(files[0]))  # builds the runtime before timing
    count0, sum0 = batches()

    async def burst():
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            return await asyncio.gather(*(client.post(url, files=upload(f)) for f in files))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * len(files)
    count, total = batches()
    assert total - sum0 == len(files)  # every input went through a batch once
    assert count - count0 < len(files)  # fewer forward passes than requests: some shared one
    requests = metric_samples(get(f"{server.url}/metrics").text, "transferkit_http_requests")
    ok = (("method", "POST"), ("route", "/v1/models/{name}/predict"), ("status", "200"))
    assert requests[("transferkit_http_requests_total", ok)] >= len(files) + 1


def test_off_loopback_needs_a_token(bundles, tmp_path):
    refused = run_serve(str(bundles["digits"]), "--host", "0.0.0.0")
    assert refused.returncode == 2
    assert "--token-file" in refused.stderr and "0.0.0.0" in refused.stderr

    token = "s3cret-token-for-the-test-0123456789"
    (tmp_path / "token.txt").write_text(token + "\n")
    srv = Server(
        str(bundles["digits"]),
        "--host",
        "0.0.0.0",
        "--token-file",
        str(tmp_path / "token.txt"),
        log=tmp_path / "stderr.txt",
    )
    try:
        assert srv.info["token"] is True
        port = srv.url.rsplit(":", 1)[1]
        url = f"http://{_this_machine()}:{port}"
        error(get(f"{url}/v1/models"), 401, "unauthorized")
        wrong = {"Authorization": "Bearer " + token[:-1] + "x"}
        error(get(f"{url}/v1/models", headers=wrong), 401, "unauthorized")
        error(get(f"{url}/metrics", headers={"Authorization": token}), 401, "unauthorized")
        right = {"Authorization": f"Bearer {token}"}
        assert get(f"{url}/v1/models", headers=right).status_code == 200
        assert get(f"{url}/metrics", headers=right).status_code == 200
        assert get(f"{url}/healthz").status_code == 200  # probes need no token
        r = post(
            f"{url}/v1/models/digits/predict", files=[("files", ("a.png", _png(), "image/png"))]
        )
        error(r, 401, "unauthorized")
    finally:
        srv.close()


def test_slow_bodies_and_slow_answers_hit_the_time_limit(bundles, tmp_path):
    srv = Server(str(bundles["digits"]), "--timeout", "0.3", log=tmp_path / "stderr.txt")
    try:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as client:
            client.sendall(  # 1000 bytes announced, 5 sent: the rest never comes
                b"POST /v1/models/digits/predict HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n"
                b"\r\n--b\r\n"
            )
            reply = b""
            while b"}}" not in reply:
                chunk = client.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), reply
        assert json.loads(body)["error"]["code"] == "request_timeout"
        # 200 images take the forward pass far longer than 0.3 s: refused, not left waiting
        r = post(f"{srv.url}/v1/models/digits/predict", files=upload(*pngs(bundles, "0")) * 40)
        error(r, 503, "timeout")
        assert r.headers["retry-after"] == "1"
        assert get(f"{srv.url}/healthz").status_code == 200  # the server carries on
    finally:
        srv.close()


def _this_machine() -> str:
    """An address of this machine other than loopback when it has one (else 127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: it only picks a route
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def test_tampered_models_are_refused_at_start(bundles, exported, tmp_path):
    tampered = tmp_path / "tampered"
    shutil.copytree(bundles["digits"], tampered)
    head = tampered / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    refused = run_serve(str(bundles["reviews"]), str(tampered))
    assert refused.returncode == 2, refused.stderr
    assert "head.safetensors" in refused.stderr and str(tampered) in refused.stderr
    assert refused.stdout == ""  # nothing listened

    graph = tmp_path / "tampered-onnx"
    shutil.copytree(exported, graph)
    onnx = bytearray((graph / "model.onnx").read_bytes())
    onnx[len(onnx) // 2] ^= 0xFF
    (graph / "model.onnx").write_bytes(bytes(onnx))
    refused = run_serve(str(graph))
    assert refused.returncode == 2, refused.stderr
    assert "model.onnx" in refused.stderr and refused.stdout == ""

    same = run_serve(f"a={bundles['digits']}", f"a={bundles['digits345']}")
    assert same.returncode == 2 and "two models are named 'a'" in same.stderr
