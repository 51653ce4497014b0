"""Content-addressed files: an example's bytes live at ``blobs/ab/<sha256><ext>``, written so a
kill at any moment leaves either no file or the whole file there.

A blob is written to ``tmp/``, synced, renamed into place and its folder synced before the
database row that refers to it is committed; a blob no row refers to (its request was killed
before the commit) is harmless and deleted by ``sweep`` at the next start.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from transferkit.atomic import fault_point

_SHA = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"\.[a-z0-9]{1,5}")
THUMBS = "thumbs"


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # folders cannot be opened for fsync elsewhere
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """The files under ``WORKSPACE/blobs``, named by the sha256 of their bytes."""

    def __init__(self, workspace: Path):
        self.root = (workspace / "blobs").resolve()
        self.tmp = (workspace / "tmp").resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str, ext: str) -> Path:
        """Where the blob ``sha256`` with extension ``ext`` lives (checked to be inside blobs/)."""
        return self._inside(self.root / sha256[:2] / f"{_checked(sha256, ext)}")

    def thumb_path(self, sha256: str) -> Path:
        """Where the cached preview of the blob ``sha256`` lives."""
        return self._inside(self.root / THUMBS / _checked(sha256, ".png"))

    def put(self, data: bytes, ext: str) -> str:
        """Store ``data`` (once: a blob already there is kept) and return its sha256."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path(sha, ext)
        if target.is_file() and target.stat().st_size == len(data):
            return sha
        self.write(target, data)
        return sha

    def write(self, target: Path, data: bytes) -> None:
        """Write ``data`` to ``target`` (inside blobs/) through tmp/: whole or not at all."""
        target = self._inside(target)
        folder = target.parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_dir(folder.parent)
        fd, tmp = tempfile.mkstemp(prefix="blob-", suffix=".part", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            fault_point("studio-blob:renaming")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)

    def sweep(self, referenced: Iterable[str]) -> int:
        """Delete partial writes and every blob (and preview) whose sha256 is not in
        ``referenced``; return how many files went. Run only when no request is writing."""
        keep = set(referenced)
        gone = 0
        for leftover in self.tmp.iterdir():
            if leftover.is_file() or leftover.is_symlink():
                leftover.unlink(missing_ok=True)
                gone += 1
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for blob in folder.iterdir():
                sha = blob.name[:64]
                if _SHA.fullmatch(sha) and sha not in keep:
                    blob.unlink(missing_ok=True)
                    gone += 1
        return gone

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise ValueError(f"{path} is outside the blob store {self.root}")
        return resolved


def _checked(sha256: str, ext: str) -> str:
    """``<sha256><ext>`` after checking both are what the database holds: hex and a short
    extension, so no name built here can climb out of its folder."""
    if not _SHA.fullmatch(sha256) or not _EXT.fullmatch(ext):
        raise ValueError(f"not a blob name: {sha256!r}{ext!r}")
    return f"{sha256}{ext}"
