"""The model bundle: ``manifest.json`` + tensors in safetensors. No pickle, no code.

Layout of a bundle directory::

    manifest.json       what the model is (backbone, preprocessing, labels, strategy, head,
                        metrics, versions) and the sha256 of every other file
    head.safetensors    the head's learned arrays
    backbone.safetensors  the backbone's own weights, when training changed them (``finetune``,
                        ``scratch``); a ``features`` bundle names its pretrained weights by sha256

Loading verifies every file's sha256 before reading it, so a truncated or tampered bundle is
refused with a message rather than half-loaded. Writing goes to a temporary directory that is
renamed into place, so an interrupted save never leaves a half-written bundle.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.atomic import atomic_directory, write_json_atomic
from transferkit.errors import BundleError

FORMAT = "transferkit-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HEAD_FILE = "head.safetensors"
BACKBONE_FILE = "backbone.safetensors"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions that matter for reproducing a model."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("transferkit", "torch", "torchvision", "numpy", "scikit-learn", "onnxruntime"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


@dataclass
class Bundle:
    """A loaded bundle: its manifest and the head's arrays (verified)."""

    path: Path
    manifest: dict[str, Any]
    head_arrays: dict[str, np.ndarray]

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def backbone_file(self) -> Path | None:
        """The trained backbone weights, when the bundle carries them (verified at load)."""
        return self.path / BACKBONE_FILE if BACKBONE_FILE in self.manifest["files"] else None

    def load_backbone_state(self, module) -> None:
        """Load the bundle's backbone weights into ``module`` (same architecture, strictly)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(self.backbone_file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise _refuse(self.path, f"{BACKBONE_FILE} cannot be read ({exc})") from None
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise _refuse(
                self.path,
                f"{BACKBONE_FILE} does not fit the {self.manifest['backbone']['name']} "
                f"architecture ({str(exc).splitlines()[0]})",
            ) from None


def save_bundle(
    path: str | Path,
    *,
    backbone: dict[str, Any],
    labels: list[str],
    strategy: dict[str, Any],
    head_config: dict[str, Any],
    head_arrays: dict[str, np.ndarray],
    metrics: dict[str, Any] | None = None,
    backbone_state: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle directory atomically and return its path.

    ``backbone_state`` (a torch state dict) is stored when training changed the backbone.
    """
    from safetensors.numpy import save_file

    path = Path(path)
    with atomic_directory(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in head_arrays.items()}, tmp / HEAD_FILE)
        files = {HEAD_FILE: _sha256(tmp / HEAD_FILE)}
        if backbone_state is not None:
            from safetensors.torch import save_file as save_torch

            # own contiguous copies: safetensors refuses tensors that share storage
            save_torch(
                {k: v.detach().cpu().contiguous().clone() for k, v in backbone_state.items()},
                str(tmp / BACKBONE_FILE),
            )
            files[BACKBONE_FILE] = _sha256(tmp / BACKBONE_FILE)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backbone": backbone,
            "labels": list(labels),
            "strategy": strategy,
            "head": head_config,
            "metrics": metrics or {},
            "versions": package_versions(),
            "files": files,
        }
        write_json_atomic(tmp / MANIFEST, manifest)
    return path


def _refuse(path: Path, what: str) -> BundleError:
    return BundleError(
        f"{path} is not a usable transferkit model: {what}. The bundle may be truncated, "
        "tampered with or only partly copied; copy the whole directory again or re-train "
        "(`transferkit train DATA --out RUN` writes RUN/model)."
    )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json`` (no tensor is read)."""
    path = Path(path)
    if not path.exists():
        raise BundleError(
            f"model path {path} does not exist; pass the bundle directory written by "
            "`transferkit train` (RUN/model)"
        )
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    mf = path / MANIFEST
    if not mf.is_file():
        raise _refuse(path, f"there is no {MANIFEST} in it")
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(path, f"{MANIFEST} does not describe a {FORMAT}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _refuse(path, f"its format_version is {version!r}, not a positive whole number")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{path} was written by a newer transferkit (bundle format "
            f"{manifest['format_version']}, this version reads up to {FORMAT_VERSION}); "
            "upgrade transferkit (`pip install -U transferkit`)"
        )
    for key in ("backbone", "labels", "strategy", "head", "files"):
        if key not in manifest:
            raise _refuse(path, f"{MANIFEST} lacks the '{key}' entry")
    return manifest


def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle, verifying the sha256 of every file before reading it."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    manifest = read_manifest(path)
    files = manifest["files"]
    if not isinstance(files, dict) or HEAD_FILE not in files:  # else it would load unverified
        raise _refuse(path, f"{MANIFEST} does not list the sha256 of {HEAD_FILE}")
    for name, expected in files.items():
        f = path / name
        if Path(name).name != name:  # a manifest may not point outside its bundle
            raise _refuse(path, f"file entry {name!r} is not a plain file name")
        if not f.is_file():
            raise _refuse(path, f"{name} is missing")
        got = _sha256(f)
        if got != expected:
            raise _refuse(
                path, f"{name} has sha256 {got[:16]}… but the manifest says {expected[:16]}…"
            )
    try:
        arrays = load_file(path / HEAD_FILE)
    except (SafetensorError, OSError, ValueError) as exc:
        raise _refuse(path, f"{HEAD_FILE} cannot be read ({exc})") from None
    return Bundle(path=path, manifest=manifest, head_arrays=arrays)
