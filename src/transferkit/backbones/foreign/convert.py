"""Keras files and TensorFlow SavedModels become ONNX once, in a subprocess, cached on disk.

Why convert rather than run Keras / TensorFlow here: one runtime and one set of checks for every
foreign model (the ONNX path), ONNX Runtime is the fastest CPU runtime we have, and importing
Keras with TensorFlow costs ~8 s and fixes a process-wide Keras backend. The subprocess keeps
both out of transferkit's process (a program that already runs Keras on TensorFlow is not
affected), and a crash or a hostile model there cannot take the caller down.

The cache key is the source's sha256 (a folder's: every file's), what was asked of it (the Keras
layer) and the converter versions, under ``transferkit.paths.cache_dir() / "foreign"``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from transferkit.errors import BadInputError
from transferkit.paths import cache_dir

_FORMAT = "foreign-v1"  # bump when a conversion's contract changes
_TIMEOUT_S = 900


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


def _require(dists: tuple[str, ...], label: str) -> None:
    missing = [d for d in dists if _version(d) == "missing"]
    if missing:
        raise BadInputError(
            f"{label}: converting it needs {', '.join(missing)}; install transferkit's "
            "foreign extra (pip install 'transferkit[foreign]')"
        )


def _cached(kind: str, parts: list[str]) -> tuple[Path, Path]:
    key = hashlib.sha256("|".join([kind, _FORMAT, *parts]).encode()).hexdigest()[:32]
    folder = cache_dir() / "foreign"
    return folder / f"{kind}-{key}.onnx", folder / f"{kind}-{key}.json"


def _run(command: list[str], env: dict[str, str], label: str) -> str:
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BadInputError(f"{label}: conversion to ONNX took over {_TIMEOUT_S} s") from None
    if done.returncode != 0:
        tail = (done.stdout.strip().splitlines() or [""])[-1]
        try:
            reason = json.loads(tail)["error"]
        except (ValueError, KeyError, TypeError):
            reason = "\n".join(done.stderr.strip().splitlines()[-6:])
        raise BadInputError(f"{label}: {reason}")
    return done.stdout


def _quiet_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def keras_to_onnx(path: Path, sha256: str, layer: str, label: str) -> tuple[Path, dict]:
    """``path`` (.keras / .h5) cut at ``layer`` ("" picks the pooled layer before the
    classifier) as ONNX, and what the worker found (``layer``, ``max_abs_diff`` vs Keras)."""
    _require(("keras", "h5py", "torch"), label)
    versions = [_version("keras"), _version("torch")]
    onnx_path, facts_path = _cached("keras", [sha256, layer, *versions])
    if not (onnx_path.is_file() and facts_path.is_file()):
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=onnx_path.parent, prefix=".keras-") as tmp:
            out = Path(tmp) / "model.onnx"
            # safe_mode and the Lambda check happen in the worker, before anything is built
            command = [sys.executable, "-m", "transferkit.backbones.foreign.keras_worker"]
            stdout = _run(
                [*command, str(path), str(out), layer], _quiet_env(KERAS_BACKEND="torch"), label
            )
            facts = json.loads(stdout.strip().splitlines()[-1])
            shutil.copyfile(out, Path(tmp) / "named.onnx")
            os.replace(out, onnx_path)
            _write_json(facts_path, facts)
            if not layer:
                # the bundle records the layer found, and loads by its name: the same graph
                named, named_facts = _cached("keras", [sha256, facts["layer"], *versions])
                os.replace(Path(tmp) / "named.onnx", named)
                _write_json(named_facts, facts)
    return onnx_path, json.loads(facts_path.read_text(encoding="utf-8"))


def savedmodel_to_onnx(folder: Path, sha256: str, label: str) -> Path:
    """The SavedModel ``folder`` (its ``serving_default`` signature) as ONNX, by tf2onnx."""
    _require(("tf2onnx",), label)
    if importlib.util.find_spec("tensorflow") is None:
        raise BadInputError(
            f"{label}: converting a SavedModel needs TensorFlow; install transferkit's foreign "
            "extra (pip install 'transferkit[foreign]')"
        )
    onnx_path, _ = _cached("tfhub", [sha256, _version("tf2onnx")])
    if not onnx_path.is_file():
        onnx_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=onnx_path.parent, prefix=".tfhub-") as tmp:
            out = Path(tmp) / "model.onnx"
            command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(folder)]
            _run([*command, "--output", str(out), "--opset", "17"], _quiet_env(), label)
            os.replace(out, onnx_path)
    return onnx_path


def _write_json(path: Path, data: dict) -> None:
    from transferkit.atomic import write_json_atomic

    write_json_atomic(path, data)
