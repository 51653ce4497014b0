"""``transferkit serve MODEL [MODEL...]``: its options, and starting uvicorn on a bound socket."""

from __future__ import annotations

import argparse
import json
import socket


def add_parser(sub, positive_int) -> argparse.ArgumentParser:
    """Add the ``serve`` command to the CLI's sub-parsers."""
    s = sub.add_parser(
        "serve",
        help="serve models over HTTP (REST, OpenAPI, Prometheus metrics)",
        description="Serve one or more models (bundle directories, or folders written by "
        "`transferkit export`, run by ONNX Runtime) over HTTP: GET /v1/models, "
        "POST /v1/models/NAME/predict (multipart files for images and audio, JSON "
        '{"texts": [...]} for text), GET /healthz, GET /metrics, the OpenAPI schema at '
        "/openapi.json and its browsable form at /docs (Swagger UI, from a CDN). Concurrent "
        "requests to one model are batched together. Models on the same frozen backbone, and "
        "adapter bundles (--strategy adapter) on the same base, hold its weights once. "
        "Listens on 127.0.0.1 unless --host says otherwise, which then requires a token.",
    )
    s.add_argument(
        "models",
        metavar="MODEL",
        nargs="+",
        help="a bundle directory (RUN/model) or an exported folder, served under its "
        "folder's name (the run's for RUN/model), or NAME=PATH",
    )
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; any other needs "
        "--token-file)",
    )
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    s.add_argument(
        "--token-file",
        metavar="FILE",
        help="file whose first line is the token clients must send as 'Authorization: Bearer "
        "<token>' (or set $TRANSFERKIT_SERVE_TOKEN)",
    )
    s.add_argument(
        "--max-body-mb",
        type=float,
        default=32.0,
        help="largest request body, all uploads together, in MiB (default 32)",
    )
    s.add_argument(
        "--max-inputs",
        type=positive_int,
        default=256,
        help="most inputs in one request (default 256)",
    )
    s.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds from a request's arrival to its answer, upload included (default 60)",
    )
    s.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="most inputs gathered from concurrent requests into one batch (default 64)",
    )
    s.add_argument(
        "--forward-batch",
        type=positive_int,
        default=16,
        help="inputs decoded and encoded together within a batch (default 16: the next are "
        "decoded while these are encoded; on a CPU a convolutional network then runs them a "
        "few per pass, whose activations fit the cache)",
    )
    s.add_argument(
        "--batch-wait-ms",
        type=float,
        default=0.0,
        help="how long a batch waits for more requests before it runs (default 0: it takes "
        "the requests that queued while the last batch ran, which under load fill it)",
    )
    return s


BATCHES_IN_FLIGHT = 2


def run(args) -> int:
    """Load the models (refusing a tampered one), then serve until interrupted."""

    from transferkit.serve.app import create_app
    from transferkit.serve.auth import check_binding, load_token
    from transferkit.serve.limits import Limits
    from transferkit.serve.models import load_models
    from transferkit.system import available_cores

    token = load_token(args.token_file)
    check_binding(args.host, token)
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_inputs=args.max_inputs,
        timeout_s=args.timeout,
        batch_size=args.batch_size,
        batch_wait_ms=args.batch_wait_ms,
    )
    # two batches at once, each encoded on half the cores: under load one batch is decoded
    # while the other is encoded, and fewer threads meet at every layer of a batch (2 cores,
    # 32 clients: 312-346 vs 260-295 requests/s with one batch on both cores at a time)
    in_flight = min(BATCHES_IN_FLIGHT, available_cores())
    threads = max(1, available_cores() // in_flight)
    models = load_models(args.models, forward_batch=args.forward_batch, threads=threads)
    app = create_app(models, limits, token, in_flight=in_flight)
    sock = bind_socket(args.host, args.port)
    # bound before uvicorn starts: --port 0 is resolved, and the line below is the truth
    print(
        json.dumps({"url": socket_url(sock), "models": sorted(models), "token": bool(token)}),
        flush=True,
    )
    run_on_socket(app, sock, quiet=args.quiet)
    return 0


def socket_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def run_on_socket(app, sock: socket.socket, *, quiet: bool) -> None:
    """Serve ``app`` with uvicorn on ``sock`` until interrupted, its log lines on stderr."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning" if quiet else "info",
        log_config=logging_to_stderr(),
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[sock])


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to HOST:PORT and listening (port 0: any free one)."""
    from transferkit.errors import BadInputError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # listening before the address is printed: a client that connects at once waits in the
        # backlog until uvicorn accepts, instead of being refused
        sock.listen(2048)
    except OSError as exc:
        raise BadInputError(
            f"cannot listen on {host}:{port} ({exc}); pick another --port"
        ) from None
    return sock


def logging_to_stderr() -> dict:
    """uvicorn's logging, access lines included, on stderr: stdout holds the JSON line only."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for handler in config["handlers"].values():
        handler["stream"] = "ext://sys.stderr"
    return config
