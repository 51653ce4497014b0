"""The exported folder as a reader finds it: ``export.json`` checked, every listed file verified.

An exported folder (``transferkit export MODEL --format onnx``) holds ``export.json`` — what the
model is, its labels, what its graph takes and gives, the sha256 of every other file and its own
hash ``export_sha256`` (the canonical JSON of every other entry, as a bundle's
``manifest_sha256``) — beside ``model.onnx`` and, for a text model, ``tokenizer.json``.

Reading refuses what it cannot vouch for, naming the file and the fix: another format or a newer
version, an edited ``export.json``, a missing file or one whose sha256 differs. A verified file
is handed over as the bytes that were hashed, so nothing can change between the check and the
use. Files the manifest does not list are never read (a warning names them).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferkit.bundle import (
    _is_int,
    _labels_problem,
    _non_finite_problem,
    _sha256_problem,
    _shown,
    manifest_digest,
    read_format_json,
)
from transferkit.errors import BundleError

FORMAT = "transferkit-export"
FORMAT_VERSION = 1
MANIFEST = "export.json"
MANIFEST_HASH = "export_sha256"
MODEL_FILE = "model.onnx"
_REQUIRED = ("modality", "labels", "inputs", "outputs", "files", MANIFEST_HASH)
# the graph's outputs, in this order: the class probabilities and what the head sees
OUTPUTS = ("probabilities", "embedding")


@dataclass(frozen=True)
class ExportedFolder:
    """An exported folder whose ``export.json`` was checked and whose files were verified."""

    path: Path
    manifest: dict[str, Any]
    contents: dict[str, bytes]  # every listed file, as the bytes whose sha256 was checked

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def modality(self) -> str:
        return self.manifest["modality"]

    @property
    def inputs(self) -> dict[str, Any]:
        """What the graph takes and the preprocessing outside it, as ``export.json`` states."""
        return self.manifest["inputs"]

    def content(self, name: str) -> bytes:
        """A listed file's verified bytes; refused when the manifest does not list it."""
        if name not in self.contents:
            raise self.refuse(f"{MANIFEST} lists no {name}, which a {self.modality} model needs")
        return self.contents[name]

    def refuse(self, what: str) -> BundleError:
        """The error saying this folder is unusable because of ``what`` (with path and fix)."""
        return refuse(self.path, what)


def refuse(path: Path, what: str) -> BundleError:
    return BundleError(
        f"{path} is not a usable exported model: {what}. The folder may be truncated, tampered "
        "with or only partly copied; copy the whole folder again or export the model again "
        "(`transferkit export MODEL --format onnx`)."
    )


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` is an exported folder (it holds ``export.json``), not a bundle."""
    return (Path(path) / MANIFEST).is_file()


def read_exported(path: str | Path) -> ExportedFolder:
    """Read ``export.json``, check it against its hash and the format, verify every listed file."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(
            f"exported model {path} does not exist or is not a folder; pass the folder that "
            "`transferkit export MODEL --format onnx` wrote (MODEL-onnx)"
        )
    manifest = _parse(path)
    for key in _REQUIRED:
        if key not in manifest:
            raise refuse(path, f"{MANIFEST} lacks the '{key}' entry")
    # the hash first: an edited manifest is refused as edited, whatever the edit broke
    if manifest[MANIFEST_HASH] != export_digest(manifest):
        raise refuse(
            path,
            f"{MANIFEST} was changed after it was written (its content no longer matches its "
            f"{MANIFEST_HASH}); an edited label or preprocessing value makes every prediction "
            "silently wrong",
        )
    problem = _schema_problem(manifest)
    if problem:
        raise refuse(path, f"{MANIFEST} does not follow the export format: {problem}")
    files = manifest["files"]
    contents = {name: _verified(path, name, digest) for name, digest in files.items()}
    _warn_unlisted(path, files)
    return ExportedFolder(path=path, manifest=manifest, contents=contents)


def export_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of every entry but ``export_sha256`` (a bundle manifest's
    canonical form: keys sorted, no whitespace, non-ASCII escaped)."""
    return manifest_digest({k: v for k, v in manifest.items() if k != MANIFEST_HASH})


def _parse(path: Path) -> dict[str, Any]:
    """``export.json`` as JSON of this format and of a version this code reads."""
    return read_format_json(
        path,
        MANIFEST,
        fmt=FORMAT,
        max_version=FORMAT_VERSION,
        refuse=refuse,
        wrong_format=f"{MANIFEST} does not describe a {FORMAT} (its 'format' is not that)",
        newer=lambda version: BundleError(
            f"{path} was exported by a newer transferkit (export format {version}, this version "
            f"reads up to {FORMAT_VERSION}); upgrade transferkit "
            "(`pip install -U 'transferkit[runtime]'`)"
        ),
    )


def _schema_problem(manifest: dict[str, Any]) -> str | None:
    """What in the manifest breaks the export format, or None."""
    modality = manifest["modality"]
    if not isinstance(modality, str) or not modality:
        return f"'modality' must be a non-empty string; got {_shown(modality)}"
    for key in ("inputs", "outputs"):
        if not isinstance(manifest[key], dict):
            return f"'{key}' must be an object; got {_shown(manifest[key])}"
    return (
        _labels_problem(manifest["labels"])
        or _outputs_problem(manifest["outputs"], len(manifest["labels"]))
        or _files_problem(manifest["files"])
        or _non_finite_problem("inputs", manifest["inputs"])
    )


def _outputs_problem(outputs: dict[str, Any], n_labels: int) -> str | None:
    for name in OUTPUTS:
        shape = outputs.get(name)
        if not isinstance(shape, list) or len(shape) != 2 or not _is_int(shape[1]):
            return f"'outputs.{name}' must be [null, width]; got {_shown(shape)}"
    width = outputs["probabilities"][1]
    if width != n_labels:
        return (
            f"it lists {n_labels} labels but the graph gives {width} probabilities "
            "('outputs.probabilities'); the labels name the probability columns, one each"
        )
    return None


def _files_problem(files: Any) -> str | None:
    if not isinstance(files, dict) or MODEL_FILE not in files:
        return f"'files' does not list the sha256 of {MODEL_FILE}; got {_shown(files)}"
    for name, digest in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in (".", "..", MANIFEST):
            return f"file entry {name!r} is not a plain file name beside {MANIFEST}"
        problem = _sha256_problem(f"the sha256 of {name}", digest, nullable=False)
        if problem:
            return problem
    return None


def _verified(path: Path, name: str, expected: str) -> bytes:
    """A listed file's bytes, refused when missing or not as exported."""
    try:
        data = (path / name).read_bytes()
    except FileNotFoundError:
        raise refuse(path, f"{name} is missing") from None
    except IsADirectoryError:
        raise refuse(path, f"{name} is a folder, not a file") from None
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise refuse(path, f"{name} has sha256 {got[:16]}… but {MANIFEST} says {expected[:16]}…")
    return data


def _warn_unlisted(path: Path, files: dict[str, str]) -> None:
    """Name what else lies in the folder: never read, so not refused, but not hidden."""
    unlisted = sorted(p.name for p in path.iterdir() if p.name != MANIFEST and p.name not in files)
    if unlisted:
        warnings.warn(
            f"{path}: ignoring {', '.join(unlisted)}: not part of the exported model (not listed "
            f"in {MANIFEST}), so never read nor verified; remove them to silence this warning",
            stacklevel=3,
        )
