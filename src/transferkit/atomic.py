"""Atomic writes: a kill at any moment never leaves a half-written file or directory behind.

A file is written under a temporary name and renamed over its target. A directory (a model
bundle, a whole run folder) is built beside its target and swapped in; where the swap takes two
renames, a kill between them is finished or undone by ``recover`` on the next start. The hidden
siblings of a directory or file ``NAME`` (``PID``: the process that made it; a live process's
are left alone):

    .NAME.PID-xxxxxxxx.tmp   being written: never complete, always deleted
    .NAME.ready-PID          complete (renamed so only once written and synced): rolled forward
    .NAME.old-PID            the version being replaced: put back only if there is nothing else

``TRANSFERKIT_FAULT_AT`` exists for the crash tests (tests/test_run_folder.py, test_atomic.py):
set to a write step's name, e.g. ``run:ready`` or ``metrics.json:renaming``, it kills the
process with SIGKILL at that step (``fault_point``).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("transferkit")

FAULT_ENV = "TRANSFERKIT_FAULT_AT"
_LEFTOVER = re.compile(
    r"\.(?P<name>.+)\.(?:(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp|(?P<kind>ready|old)-(?P<owner>\d+))"
)
_RENAME_EXCHANGE = 2  # <linux/fs.h>
_AT_FDCWD = -100


def fault_point(step: str) -> None:
    """Kill this process here when ``$TRANSFERKIT_FAULT_AT`` is ``step`` (crash tests only).

    SIGKILL runs no handler and flushes nothing: what the OOM killer or ``kill -9`` leaves.
    """
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _default_mode(directory: bool) -> int:
    """What a plain open()/mkdir() would give under the current umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # keep an existing file's permissions; otherwise what a normal write would give
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else _default_mode(False))
        fault_point(f"{path.name}:renaming")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as pretty, UTF-8 JSON (non-ASCII labels stay readable) atomically."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2 (2.28+), or None off Linux or with an older C library."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


def exchange(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one step (Linux: renameat2 with RENAME_EXCHANGE).

    Returns False, having changed nothing, where the kernel, the C library or the file system
    cannot exchange.
    """
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _alive(pid: str | None) -> bool:
    """Whether the process that made a leftover still runs (and so may still be writing it)."""
    if pid is None or int(pid) == os.getpid() or os.name != "posix":
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def recover(path: str | Path) -> None:
    """Finish or undo a write of ``path`` that a kill interrupted, and delete what it left.

    With no ``path``, a complete ``.NAME.ready-*`` is moved into place (roll forward), else a
    ``.NAME.old-*`` is put back (roll back). Every other leftover of a process that is gone is
    deleted: incomplete ``.tmp`` copies, replaced versions, and the ``.NAME.xxxxxxxx.tmp`` that
    versions before these names left.
    """
    path = Path(path)
    try:
        names = os.listdir(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        return
    found: dict[str, list[Path]] = {"ready": [], "old": [], "tmp": []}
    for name in names:
        match = _LEFTOVER.fullmatch(name)
        if match is None or match["name"] != path.name or _alive(match["pid"] or match["owner"]):
            continue
        found[match["kind"] or "tmp"].append(path.parent / name)
    kind = "ready" if found["ready"] else "old"
    if found[kind] and not os.path.lexists(path):
        newest = max(found[kind], key=lambda p: p.stat().st_mtime)
        os.rename(newest, path)
        found[kind].remove(newest)
        done = "finished" if kind == "ready" else "undid"
        log.warning("%s: %s a write that was interrupted", path, done)
    for leftover in found["ready"] + found["old"] + found["tmp"]:
        _remove(leftover)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _carry_over(old: Path, new: Path, keep: Callable[[str], bool]) -> None:
    """Hard-link the entries of ``old`` that ``keep`` names into ``new`` (copy if need be)."""
    for entry in os.scandir(old):
        if not keep(entry.name) or _LEFTOVER.fullmatch(entry.name):
            continue
        target = new / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, str(target))


def _move_late_arrivals(old: Path, new: Path, keep: Callable[[str], bool]) -> None:
    """Move what appeared in ``old`` while ``new`` was written (a user's file) into ``new``."""
    for entry in os.scandir(old):
        target = new / entry.name
        if keep(entry.name) and not _LEFTOVER.fullmatch(entry.name):
            if not os.path.lexists(target):
                os.rename(entry.path, target)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` before it is marked complete."""
    if os.name != "posix":  # folders cannot be opened for fsync elsewhere
        return
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                if not os.path.islink(path):
                    _fsync(path)
            except PermissionError:  # a carried file of the user's that we may not open
                continue
        _fsync(folder)


def _swap_in(ready: Path, path: Path, label: str) -> Path | None:
    """Put the complete ``ready`` at ``path``; return where the version it replaced now is."""
    if not os.path.lexists(path):
        os.rename(ready, path)
        return None
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if exchange(ready, path):
        os.rename(ready, old)  # the old version: never again taken for a complete new one
        return old
    os.rename(path, old)
    fault_point(f"{label}:moved-aside")
    try:
        os.rename(ready, path)
    except BaseException:
        os.rename(old, path)
        raise
    return old


@contextmanager
def atomic_directory(
    path: str | Path, *, carry: Callable[[str], bool] | None = None, label: str | None = None
) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` in one step if the block finishes.

    A write a kill interrupted is recovered first (``recover``). The new directory is synced,
    marked complete (``.NAME.ready-PID``) and exchanged with ``path`` in one system call where
    Linux allows, so ``path`` is at every moment the complete old or the complete new version.
    Elsewhere ``path`` is moved aside and the new one moved in: a kill between the two leaves
    no ``path`` until ``recover`` moves the complete new one in. ``carry(name)`` picks entries of
    the old directory to hard-link into the new one before the block (and, if they appear
    while it runs, to move over after the swap). ``label`` names the steps for ``fault_point``
    (default: the directory's name).
    """
    path = Path(path)
    label = label or path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    )
    try:
        # keep an existing directory's permissions, else what mkdir gives: a service account
        # must be able to read a saved model
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.is_dir() else _default_mode(True))
        if carry is not None and path.is_dir():
            _carry_over(path, tmp, carry)
        yield tmp
        _fsync_tree(tmp)
        fault_point(f"{label}:staged")
        ready = path.with_name(f".{path.name}.ready-{os.getpid()}")
        os.rename(tmp, ready)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault_point(f"{label}:ready")
    try:
        old = _swap_in(ready, path, label)
    except BaseException:
        shutil.rmtree(ready, ignore_errors=True)
        raise
    fault_point(f"{label}:swapped")
    if old is not None:
        if carry is not None:
            _move_late_arrivals(old, path, carry)
        shutil.rmtree(old, ignore_errors=True)
