"""The exported folder: ``model.onnx``, the files beside it, and ``export.json``, written whole.

``export.json`` lists the sha256 of every file and carries ``export_sha256``: the sha256 of
the canonical JSON of every other entry, computed as a bundle's ``manifest_sha256`` is
(``bundle.manifest_digest``), so the runtime checks both the same way. The folder is built
beside its target and swapped in (``atomic_directory``): a kill never leaves half of one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from transferkit.atomic import atomic_directory, write_json_atomic
from transferkit.bundle import _sha256, manifest_digest, package_versions

FORMAT = "transferkit-export"
FORMAT_VERSION = 1
EXPORT_JSON = "export.json"
MODEL_FILE = "model.onnx"
DIGEST_KEY = "export_sha256"


def sealed(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its ``export_sha256``, taken over what a reader will parse."""
    parsed = json.loads(json.dumps({k: v for k, v in document.items() if k != DIGEST_KEY}))
    return {**parsed, DIGEST_KEY: manifest_digest(parsed)}


def export_versions() -> dict[str, str]:
    """The bundle's version list, plus onnx (the graph's format library)."""
    from importlib.metadata import PackageNotFoundError, version

    out = package_versions()
    try:
        out["onnx"] = version("onnx")
    except PackageNotFoundError:  # pragma: no cover - export needs onnx
        pass
    return out


def write_export_folder(out: Path, files: dict[str, Path], document: dict[str, Any]) -> Path:
    """Copy ``files`` (name -> staged file) into ``out`` with ``export.json``, atomically."""
    with atomic_directory(out) as tmp:
        digests = {}
        for name, source in files.items():
            shutil.copyfile(source, tmp / name)
            digests[name] = _sha256(tmp / name)
        write_json_atomic(tmp / EXPORT_JSON, sealed({**document, "files": digests}))
    return out
