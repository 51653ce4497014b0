"""``transferkit studio``: its options, and serving the app with uvicorn on a bound socket."""

from __future__ import annotations

import argparse

DEFAULT_WORKSPACE = "~/transferkit-studio"
DEFAULT_PORT = 8765


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the ``studio`` command to the CLI's sub-parsers."""
    s = sub.add_parser(
        "studio",
        help="a local web app: collect examples, train, try it live, export",
        description="Start the studio, a web app in the browser (served from the package; "
        "it works offline): make image, audio or text projects, add examples from files, the "
        "webcam, the microphone or pasted text, train with the honest report, try the model "
        "live and export it. Everything is kept in the workspace folder. Listens on 127.0.0.1 "
        "unless --host says otherwise, which then requires a token.",
    )
    s.add_argument(
        "--workspace",
        metavar="DIR",
        default=DEFAULT_WORKSPACE,
        help=f"folder holding the projects, examples and runs (default {DEFAULT_WORKSPACE})",
    )
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; any other needs "
        "--token-file)",
    )
    s.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    s.add_argument(
        "--token-file",
        metavar="FILE",
        help="file whose first line is the token the browser must present (or set "
        "$TRANSFERKIT_STUDIO_TOKEN); the address printed at start carries it",
    )
    s.add_argument(
        "--max-upload-mb",
        metavar="MB",
        type=float,
        default=16.0,
        help="largest image or audio file accepted, in MiB (default 16; a text may be 64 KiB)",
    )
    return s


def run(args) -> int:
    """Open the workspace, print the studio's address, then serve until interrupted."""
    from transferkit.errors import BadInputError
    from transferkit.serve.auth import check_binding, load_token
    from transferkit.serve.cli import bind_socket, run_on_socket, socket_url
    from transferkit.studio.app import create_app
    from transferkit.studio.security import TOKEN_ENV
    from transferkit.studio.uploads import MiB, UploadLimits

    token = load_token(args.token_file, env=TOKEN_ENV)
    check_binding(args.host, token, env=TOKEN_ENV)
    if not args.max_upload_mb > 0:
        raise BadInputError(f"--max-upload-mb must be positive; got {args.max_upload_mb}")
    file_bytes = int(args.max_upload_mb * MiB)
    # a request carries several files: the body may hold four of the largest, at least 64 MiB
    limits = UploadLimits(max_file_bytes=file_bytes, max_body_bytes=max(64 * MiB, 4 * file_bytes))
    app = create_app(args.workspace, token=token, host=args.host, limits=limits)
    sock = bind_socket(args.host, args.port)
    login = f"?token={token}" if token else ""
    # bound before uvicorn starts: --port 0 is resolved, and the address below is the truth
    print(
        f"transferkit studio: open {socket_url(sock)}/{login} "
        f"(workspace {app.state.workspace.root}; Ctrl+C stops it)",
        flush=True,
    )
    run_on_socket(app, sock, quiet=args.quiet)
    return 0
