"""The model bundle: ``manifest.json`` + tensors in safetensors. No pickle, no code.

Layout of a bundle directory::

    manifest.json       what the model is (backbone, preprocessing, labels, strategy, head,
                        metrics, versions), the sha256 of every other file, and its own hash
    head.safetensors    the head's learned arrays
    backbone.safetensors  the backbone's own weights, when training changed them (``finetune``,
                        ``scratch``); a ``features`` bundle names its pretrained weights by sha256
    adapter.safetensors the adapter trained inside the pretrained backbone (``adapter``): the
                        manifest names the base's weights by sha256 and describes the adapter
                        (``"adapter"``: method, config, parameter counts, base)

Loading refuses what it cannot vouch for, with a message rather than a half-loaded model: a
manifest that does not match its hash or the schema (``_schema_problem``), labels that do not
name the head's outputs, a file the format does not define (``DATA_FILES``), a file whose sha256
differs from the manifest's. Files in the directory that the manifest does not list are never
read; a warning names them. Writing goes to a temporary directory that is renamed into place, so
an interrupted save never leaves a half-written bundle; every file gets the mode a plain
``open()`` would give under the umask, so another account can read a saved model.

``manifest_sha256`` (format 2) is the sha256 of the manifest's canonical JSON: every entry but
``manifest_sha256`` itself, keys sorted, no whitespace, non-ASCII as ``\\u`` escapes. Through
``files`` it covers every tensor too. Stored in the same file, it catches edits and corruption,
not an attacker, who can recompute it: it is a checksum, not a signature. Format-1 bundles (no
manifest hash) still load, with a warning (so an edit that also strips the hash and sets format 1
is not refused, but announced); ``upgrade_bundle`` re-saves them in format 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import reprlib
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.atomic import _default_mode, atomic_directory, write_json_atomic
from transferkit.errors import BundleError

FORMAT = "transferkit-bundle"
FORMAT_VERSION = 2  # 2: the manifest carries its own hash; 1 (still read): it does not
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest_sha256"
HEAD_FILE = "head.safetensors"
BACKBONE_FILE = "backbone.safetensors"
ADAPTER_FILE = "adapter.safetensors"
# the files a manifest may list; formats 1 and 2 define the same ones
DATA_FILES = (HEAD_FILE, BACKBONE_FILE, ADAPTER_FILE)
_REQUIRED = ("backbone", "labels", "strategy", "head", "files")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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

    def refuse(self, what: str) -> BundleError:
        """The error saying this bundle is unusable because of ``what`` (with path and fix)."""
        return _refuse(self.path, what)

    @property
    def adapter_file(self) -> Path | None:
        """The adapter's tensors, when the bundle carries one (verified at load)."""
        return self.path / ADAPTER_FILE if ADAPTER_FILE in self.manifest["files"] else None

    def load_adapter_state(self) -> dict[str, Any]:
        """The adapter's tensors (torch), named as ``manifest["adapter"]["method"]`` names
        them (see ``transferkit.finetune.adapters``)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        if self.adapter_file is None:
            raise _refuse(self.path, f"it lists no {ADAPTER_FILE} but its strategy needs one")
        try:
            return load_file(str(self.adapter_file))
        except (SafetensorError, OSError, ValueError) as exc:
            raise _refuse(self.path, f"{ADAPTER_FILE} cannot be read ({exc})") from None

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
    adapter_state: dict[str, Any] | None = None,
    adapter: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle directory atomically and return its path.

    ``backbone_state`` (a torch state dict) is stored when training changed the backbone;
    ``adapter_state`` (torch tensors) and its description ``adapter`` (the manifest's
    ``"adapter"`` object) when training added an adapter to the pretrained backbone.
    """
    if (adapter_state is None) != (adapter is None):
        raise ValueError("an adapter's tensors and its description are saved together")
    from safetensors.numpy import save_file

    path = Path(path)
    with atomic_directory(path) as tmp:
        head = {k: np.ascontiguousarray(v) for k, v in head_arrays.items()}
        files = {HEAD_FILE: _save_tensors(save_file, head, tmp / HEAD_FILE)}
        if backbone_state is not None:
            from safetensors.torch import save_file as save_torch

            # own contiguous copies: safetensors refuses tensors that share storage
            state = {k: v.detach().cpu().contiguous().clone() for k, v in backbone_state.items()}
            files[BACKBONE_FILE] = _save_tensors(save_torch, state, tmp / BACKBONE_FILE)
        if adapter_state is not None:
            files[ADAPTER_FILE] = _save_tensors(
                _save_torch_file, _own_copies(adapter_state), tmp / ADAPTER_FILE
            )
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
            **({"adapter": adapter} if adapter is not None else {}),
        }
        write_json_atomic(tmp / MANIFEST, _sealed(manifest))
    return path


def _save_torch_file(tensors: dict[str, Any], file: str) -> None:
    from safetensors.torch import save_file

    save_file(tensors, file)


def _own_copies(state: dict[str, Any]) -> dict[str, Any]:
    """CPU contiguous copies: safetensors refuses tensors that share storage."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def adapter_file_sha256(state: dict[str, Any]) -> str:
    """The sha256 ``adapter.safetensors`` will have when ``state`` is saved (safetensors'
    serialisation is deterministic), so a model trained in this process and the same model
    loaded from its bundle carry one identity."""
    from safetensors.torch import save

    return hashlib.sha256(save(_own_copies(state))).hexdigest()


def _save_tensors(save, tensors: dict[str, Any], file: Path) -> str:
    """Write ``tensors`` with a safetensors ``save_file``; return the file's sha256."""
    save(tensors, str(file))
    # safetensors writes through a private (0600) temporary file: give what open() would give
    os.chmod(file, _default_mode(False))
    return _sha256(file)


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON: every entry but its hash, keys sorted, no
    whitespace, non-ASCII escaped (so formatting and key order are not content)."""
    content = {k: v for k, v in manifest.items() if k != MANIFEST_HASH}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its hash, taken over what a reader will parse (tuples come back as
    lists, non-string keys as strings)."""
    parsed = json.loads(json.dumps(manifest))
    return {**parsed, MANIFEST_HASH: manifest_digest(parsed)}


def upgrade_bundle(path: str | Path) -> Path:
    """Re-save a bundle's manifest in the current format, protected by its hash.

    Every file is verified first, but a format-1 manifest has no hash to verify it by: upgrade
    only a bundle whose labels and preprocessing you trust.
    """
    with warnings.catch_warnings():
        # the warning about format 1 asks for exactly this
        warnings.filterwarnings("ignore", message=".*is not integrity-protected")
        bundle = load_bundle(path)
    manifest = {**bundle.manifest, "format_version": FORMAT_VERSION}
    write_json_atomic(bundle.path / MANIFEST, _sealed(manifest))
    return bundle.path


def _refuse(path: Path, what: str) -> BundleError:
    return BundleError(
        f"{path} is not a usable transferkit model: {what}. The bundle may be truncated, "
        "tampered with or only partly copied; copy the whole directory again or re-train "
        "(`transferkit train DATA --out RUN` writes RUN/model)."
    )


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` and check it against its hash and the schema (no tensor is read)."""
    path = _bundle_dir(path)
    manifest = _parse_manifest(path)
    version = manifest["format_version"]
    required = (*_REQUIRED, MANIFEST_HASH) if version >= 2 else _REQUIRED
    for key in required:
        if key not in manifest:
            raise _refuse(path, f"{MANIFEST} lacks the '{key}' entry")
    # the hash first: an edited manifest is refused as edited, whatever the edit broke
    if version >= 2 and manifest[MANIFEST_HASH] != manifest_digest(manifest):
        raise _refuse(
            path,
            f"{MANIFEST} was changed after it was saved (its content no longer matches its "
            f"{MANIFEST_HASH}); an edited label or preprocessing value makes every prediction "
            "silently wrong",
        )
    problem = _schema_problem(manifest)
    if problem:
        raise _refuse(path, f"{MANIFEST} does not follow the bundle format: {problem}")
    n_labels, n_outputs = len(manifest["labels"]), manifest["head"]["n_classes"]
    if n_labels != n_outputs:
        raise _refuse(
            path,
            f"{MANIFEST} lists {n_labels} labels but its head has {n_outputs} outputs "
            "(head.n_classes); the labels name the head's outputs, one each, in training order",
        )
    if version < 2:
        warnings.warn(
            f"{path}: its {MANIFEST} (bundle format {version}) is not integrity-protected, so an "
            "edit to its labels or preprocessing would go unnoticed. Once you trust it, re-save "
            f'it in format {FORMAT_VERSION}: python -c "from transferkit.bundle import '
            f'upgrade_bundle; upgrade_bundle({str(path)!r})"',
            stacklevel=2,
        )
    return manifest


def _bundle_dir(path: str | Path) -> Path:
    """The bundle directory, given it or its manifest."""
    path = Path(path)
    if not path.exists():
        raise BundleError(
            f"model path {path} does not exist; pass the bundle directory written by "
            "`transferkit train` (RUN/model)"
        )
    return path.parent if path.is_file() and path.name == MANIFEST else path


def _parse_manifest(path: Path) -> dict[str, Any]:
    """The manifest as JSON of this format and of a version this code reads."""
    return read_format_json(
        path,
        MANIFEST,
        fmt=FORMAT,
        max_version=FORMAT_VERSION,
        refuse=_refuse,
        wrong_format=f"{MANIFEST} does not describe a {FORMAT}",
        newer=lambda version: BundleError(
            f"{path} was written by a newer transferkit (bundle format "
            f"{version}, this version reads up to {FORMAT_VERSION}); "
            "upgrade transferkit (`pip install -U transferkit`)"
        ),
    )


def read_format_json(
    path: Path,
    name: str,
    *,
    fmt: str,
    max_version: int,
    refuse: Callable[[Path, str], BundleError],
    wrong_format: str,
    newer: Callable[[int], BundleError],
) -> dict[str, Any]:
    """``path/name`` as a JSON object whose ``format`` is ``fmt`` and whose ``format_version``
    this code reads: the first check of a bundle's manifest and of an exported model's."""
    document = path / name
    if not document.is_file():
        raise refuse(path, f"there is no {name} in it")
    try:
        manifest = json.loads(document.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse(path, f"{name} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise refuse(path, wrong_format)
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1:
        raise refuse(path, f"its format_version is {version!r}, not a positive whole number")
    if version > max_version:
        raise newer(version)
    return manifest


# -- the schema: explicit checks, each returning what is wrong (or None) ----------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


def _schema_problem(manifest: dict[str, Any]) -> str | None:
    """What in the manifest breaks the format's schema, or None."""
    return (
        _labels_problem(manifest["labels"])
        or _backbone_problem(manifest["backbone"])
        or _named_object_problem("strategy", manifest["strategy"])
        or _head_problem(manifest["head"])
        or _files_problem(manifest["files"])
        or _object_problem("metrics", manifest.get("metrics", {}))
        or _object_problem("versions", manifest.get("versions", {}))
        or _adapter_problem(manifest)
    )


_ADAPTER_METHODS = ("lora", "houlsby", "pfeiffer")


def _adapter_problem(manifest: dict[str, Any]) -> str | None:
    """The optional ``adapter`` object: the adapter file's description, present together."""
    has_file = ADAPTER_FILE in manifest["files"] if isinstance(manifest["files"], dict) else False
    if "adapter" not in manifest:
        return f"it lists {ADAPTER_FILE} but has no 'adapter' object" if has_file else None
    adapter = manifest["adapter"]
    if not isinstance(adapter, dict):
        return _object_problem("adapter", adapter)
    if not has_file:
        return f"'adapter' describes an adapter but 'files' lists no {ADAPTER_FILE}"
    if adapter.get("method") not in _ADAPTER_METHODS:
        return (
            f"'adapter.method' must be one of {', '.join(_ADAPTER_METHODS)}; "
            f"got {_shown(adapter.get('method'))}"
        )
    problem = _object_problem("adapter.config", adapter.get("config"))
    if problem:
        return problem
    for key in ("trained_parameters", "total_parameters"):
        if not _is_int(adapter.get(key)) or adapter[key] < 0:
            return f"'adapter.{key}' must be a whole number >= 0; got {_shown(adapter.get(key))}"
    base = adapter.get("base")
    problem = _named_object_problem("adapter.base", base)
    if problem:
        return problem
    problem = _sha256_problem(
        "'adapter.base.weights_sha256'", base.get("weights_sha256"), nullable=False
    )
    if problem:
        return problem
    backbone = manifest["backbone"]
    if (base["name"], base["weights_sha256"]) != (backbone["name"], backbone["weights_sha256"]):
        return (
            f"'adapter.base' ({base['name']}, {base['weights_sha256'][:16]}…) is not the "
            f"backbone the manifest names ({backbone['name']}, "
            f"{str(backbone['weights_sha256'])[:16]}…)"
        )
    return None


def _object_problem(key: str, value: Any) -> str | None:
    return None if isinstance(value, dict) else f"'{key}' must be an object; got {_shown(value)}"


def _labels_problem(labels: Any) -> str | None:
    if not isinstance(labels, list) or not labels:
        return (
            "'labels' must be a list of unique, non-empty strings (one per class, in training "
            f"order); got {_shown(labels)}"
        )
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            return f"label {i} is {label!r}, not a non-empty string"
    repeated = [(label, n) for label, n in Counter(labels).items() if n > 1]
    if repeated:
        label, n = repeated[0]
        return f"the label {label!r} appears {n} times; labels must be unique"
    return None


def _sha256_problem(where: str, value: Any, *, nullable: bool) -> str | None:
    if (value is None and nullable) or (isinstance(value, str) and _SHA256.fullmatch(value)):
        return None
    allowed = "a sha256 (64 lowercase hex digits)" + (" or null" if nullable else "")
    return f"{where} must be {allowed}; got {_shown(value)}"


def _named_object_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return _object_problem(key, value)
    if not isinstance(value.get("name"), str) or not value["name"]:
        return f"'{key}.name' must be a non-empty string; got {_shown(value.get('name'))}"
    return None


def _backbone_problem(backbone: Any) -> str | None:
    problem = _named_object_problem("backbone", backbone)
    if problem:
        return problem
    if "weights_sha256" not in backbone:
        return "'backbone.weights_sha256' is missing (null for randomly initialised weights)"
    for key in ("weights_sha256", "pretrained_weights_sha256"):
        if key in backbone:
            problem = _sha256_problem(f"'backbone.{key}'", backbone[key], nullable=True)
            if problem:
                return problem
    preprocess = backbone.get("preprocess")
    if not isinstance(preprocess, dict):
        return f"'backbone.preprocess' must be an object; got {_shown(preprocess)}"
    return _non_finite_problem("backbone.preprocess", preprocess)


def _non_finite_problem(where: str, value: Any) -> str | None:
    """Where ``value`` holds NaN or an infinity (Python's JSON reads both), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{where}' must be a finite number; got {value}"
    children = []
    if isinstance(value, dict):
        children = [(f"{where}.{k}", v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    for child, v in children:
        problem = _non_finite_problem(child, v)
        if problem:
            return problem
    return None


def _head_problem(head: Any) -> str | None:
    problem = _named_object_problem("head", head)
    if problem:
        return problem
    n_classes = head.get("n_classes")
    if not _is_int(n_classes) or n_classes < 1:
        return f"'head.n_classes' must be a positive whole number; got {_shown(n_classes)}"
    return _object_problem("head.params", head.get("params", {}))


def _files_problem(files: Any) -> str | None:
    if not isinstance(files, dict) or HEAD_FILE not in files:  # else it would load unverified
        return (
            f"'files' does not list the sha256 of {HEAD_FILE} (it maps each file to its sha256); "
            f"got {_shown(files)}"
        )
    for name, digest in files.items():
        problem = _sha256_problem(f"the sha256 of {name}", digest, nullable=False)
        if problem:
            return problem
    return None


# -- the files ---------------------------------------------------------------------------------
def load_bundle(path: str | Path) -> Bundle:
    """Load a bundle, verifying the manifest and the sha256 of every file before reading it."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = _bundle_dir(path)
    manifest = read_manifest(path)
    files = manifest["files"]
    for name, expected in files.items():
        _check_file(path, name, expected)
    _warn_unlisted(path, files)
    try:
        arrays = load_file(path / HEAD_FILE)
    except (SafetensorError, OSError, ValueError) as exc:
        raise _refuse(path, f"{HEAD_FILE} cannot be read ({exc})") from None
    return Bundle(path=path, manifest=manifest, head_arrays=arrays)


def _check_file(path: Path, name: str, expected: str) -> None:
    """Refuse a listed file that is not one of the format's, is missing, or is not as saved."""
    if Path(name).name != name:  # a manifest may not point outside its bundle
        raise _refuse(path, f"file entry {name!r} is not a plain file name")
    if name not in DATA_FILES:
        # never loaded, so never harmful today; but a bundle is what the format says, and a
        # listed pickle (head.pt) would travel with the model as if it were part of it
        raise _refuse(
            path,
            f"{name} is not a file of the bundle format, which defines {', '.join(DATA_FILES)} "
            f"beside {MANIFEST}; a bundle holds no other file (and never a pickle)",
        )
    f = path / name
    if not f.is_file():
        raise _refuse(path, f"{name} is missing")
    got = _sha256(f)
    if got != expected:
        raise _refuse(path, f"{name} has sha256 {got[:16]}… but the manifest says {expected[:16]}…")


def _warn_unlisted(path: Path, files: dict[str, str]) -> None:
    """Name what else lies in the bundle directory: never read, so not refused, but not hidden.

    Refusing would break a model over an editor's backup file or a note a deployer put beside
    it, though nothing unlisted can change a prediction."""
    unlisted = sorted(p.name for p in path.iterdir() if p.name != MANIFEST and p.name not in files)
    if unlisted:
        warnings.warn(
            f"{path}: ignoring {', '.join(unlisted)}: not part of the model (not listed in "
            f"{MANIFEST}), so never read nor verified; remove them to silence this warning",
            stacklevel=3,
        )
