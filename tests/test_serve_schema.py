"""Schemathesis against the running server's own OpenAPI schema: generated requests to every
operation (valid and invalid, a token-guarded server) and not one server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import Server, serve_bundles

pytest.importorskip("schemathesis")
pytestmark = pytest.mark.e2e

TOKEN = "schema-test-token-0123456789abcdef"
# every check but positive_data_acceptance: a request can match the schema and still be
# refused, rightly — random bytes are not a readable image, and which of the two declared
# content types a model takes depends on the model named in the path
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    bundles = serve_bundles(tmp_path_factory)
    root = tmp_path_factory.mktemp("serve-schema")
    (root / "token").write_text(TOKEN)
    srv = Server(
        str(bundles["digits"]),
        str(bundles["reviews"]),
        "--token-file",
        str(root / "token"),
        "--max-inputs",
        "16",
        log=root / "stderr.txt",
    )
    yield srv
    srv.close()


def test_schemathesis_finds_no_server_error(server, tmp_path):
    cli = Path(sys.executable).with_name("schemathesis")
    command = [str(cli) if cli.exists() else shutil.which("schemathesis")]
    result = subprocess.run(
        [
            *command,
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--max-examples",
            "20",
            "--seed",
            "1",
            "--workers",
            "2",
            "--request-timeout",
            "60",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:] + "\nserver:\n" + server.stderr()[-3000:]
    assert "No issues found" in output
    assert "Traceback" not in server.stderr()  # nothing failed inside the server either
