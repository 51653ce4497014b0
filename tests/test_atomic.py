"""Tests for transferkit.atomic: files and directories are replaced whole or not at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from transferkit import atomic
from transferkit.atomic import (
    FAULT_ENV,
    atomic_directory,
    exchange,
    recover,
    write_bytes_atomic,
    write_json_atomic,
)


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_bytes_atomic_creates_parents_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "data.bin"
    assert write_bytes_atomic(path, b"first") == path
    assert path.read_bytes() == b"first"
    write_bytes_atomic(str(path), b"second")
    assert path.read_bytes() == b"second"
    assert _entries(path.parent) == ["data.bin"]


def test_write_json_atomic_is_utf8_and_keeps_non_ascii(tmp_path):
    obj = {"labels": ['猫 "cat"', "naïve", "ok"], "n": 3, "nested": {"x": [1.5, None]}}
    path = write_json_atomic(tmp_path / "m.json", obj)
    raw = path.read_bytes()
    assert "猫".encode() in raw and "naïve".encode() in raw  # not \\u escapes
    assert b"\\u" not in raw
    assert json.loads(raw.decode("utf-8")) == obj
    assert raw.endswith(b"\n")
    assert list(json.loads(raw)) == ["labels", "n", "nested"]  # key order kept


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "data.bin"
    write_bytes_atomic(path, b"old")
    with pytest.raises(TypeError):
        write_bytes_atomic(path, "not bytes")  # fails inside the write
    assert path.read_bytes() == b"old"
    assert _entries(tmp_path) == ["data.bin"]


def test_an_interrupt_during_fsync_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    write_bytes_atomic(path, b"old")

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert _entries(tmp_path) == ["data.bin"]


def test_a_failing_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "data.json"
    write_json_atomic(path, {"v": 1})

    def refuse(src, dst):
        raise OSError("cross-device link")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(OSError, match="cross-device"):
        write_json_atomic(path, {"v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": 1}
    assert _entries(tmp_path) == ["data.json"]


def test_unserialisable_json_leaves_the_old_file(tmp_path):
    path = write_json_atomic(tmp_path / "m.json", {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"v": object()})
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": 1}
    assert _entries(tmp_path) == ["m.json"]


def test_atomic_directory_creates_a_new_directory(tmp_path):
    target = tmp_path / "parent" / "model"
    with atomic_directory(target) as tmp:
        assert tmp.is_dir() and tmp.parent == target.parent and tmp != target
        assert not target.exists()  # nothing visible until the block finishes
        (tmp / "f.txt").write_text("new")
    assert (target / "f.txt").read_text() == "new"
    assert _entries(target.parent) == ["model"]


def test_atomic_directory_replaces_an_existing_directory_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # still the old one meanwhile
    assert _entries(target) == ["new.txt"]
    assert _entries(tmp_path) == ["model"]  # no temp, no .old- left behind


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_directory_keeps_the_old_directory_on_failure(tmp_path, exc):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(exc):
        with atomic_directory(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise exc
    assert _entries(target) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert _entries(tmp_path) == ["model"]


def test_atomic_directory_failure_without_an_old_directory_leaves_nothing(tmp_path):
    with pytest.raises(ValueError):
        with atomic_directory(tmp_path / "model") as tmp:
            (tmp / "x").write_text("x")
            raise ValueError("boom")
    assert os.listdir(tmp_path) == []


# -- a kill at any moment, and the next start ------------------------------------------------

SAVE = """
import sys
import transferkit.atomic as atomic
if sys.argv[2] == "portable":
    atomic.exchange = lambda a, b: False  # the two renames used where there is no exchange
with atomic.atomic_directory(sys.argv[1]) as tmp:
    (tmp / "version.txt").write_text("new")
"""


def _version(folder) -> str:
    return (folder / "version.txt").read_text()


def _dead_pid() -> int:
    """The pid of a process that has ended (what a killed writer leaves in its names)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def _old_model(root):
    target = root / "model"
    target.mkdir()
    (target / "version.txt").write_text("old")
    return target


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_exchange_swaps_two_directories_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "in_a").write_text("a")
    (b / "in_b").write_text("b")
    assert exchange(a, b)
    assert _entries(a) == ["in_b"] and _entries(b) == ["in_a"]
    with pytest.raises(FileNotFoundError):
        exchange(a, tmp_path / "missing")


@pytest.mark.parametrize(
    ("phase", "portable"),
    [
        ("staged", False),
        ("ready", False),
        ("swapped", False),
        ("ready", True),
        ("moved-aside", True),
        ("swapped", True),
    ],
)
def test_a_kill_during_a_directory_swap_is_undone_or_finished_by_recover(tmp_path, phase, portable):
    target = _old_model(tmp_path)
    env = {**os.environ, FAULT_ENV: f"model:{phase}"}
    how = "portable" if portable else "exchange"
    killed = subprocess.run([sys.executable, "-c", SAVE, str(target), how], env=env)
    assert killed.returncode == -signal.SIGKILL
    expected = "new" if phase in ("moved-aside", "swapped") else "old"
    if phase == "moved-aside":  # the one moment with no model/: the new one is complete
        assert not target.exists()
    else:
        assert _version(target) == expected
    assert len(_entries(tmp_path)) > 1  # what the kill left
    recover(target)
    assert _version(target) == expected
    assert _entries(tmp_path) == ["model"]


def test_what_an_older_version_left_after_a_kill_is_put_back_by_the_next_save(tmp_path):
    """Issue 16's state: no model/, only .model.old-PID and .model.xxxxxxxx.tmp."""
    old = tmp_path / f".model.old-{_dead_pid()}"
    old.mkdir()
    (old / "version.txt").write_text("old")
    (tmp_path / ".model.k3j_9x2a.tmp").mkdir()
    (tmp_path / ".model.k3j_9x2a.tmp" / "version.txt").write_text("complete or not?")
    with atomic_directory(tmp_path / "model") as new:
        assert _version(tmp_path / "model") == "old"  # put back before anything is written
        (new / "version.txt").write_text("next")
    assert _version(tmp_path / "model") == "next"
    assert _entries(tmp_path) == ["model"]


def test_recover_deletes_file_temporaries_but_no_other_file(tmp_path):
    write_bytes_atomic(tmp_path / "metrics.json", b"{}")
    dead = _dead_pid()
    for name in (f".metrics.json.{dead}-abcdefgh.tmp", ".metrics.json.k3j_9x2a.tmp", ".notes.tmp"):
        (tmp_path / name).write_text("x")
    recover(tmp_path / "metrics.json")
    assert _entries(tmp_path) == [".notes.tmp", "metrics.json"]


@pytest.mark.skipif(os.name != "posix", reason="tells a live process by signal 0")
def test_a_live_process_is_not_robbed_of_what_it_is_writing(tmp_path):
    with subprocess.Popen(["sleep", "30"]) as live:
        try:
            ready = tmp_path / f".model.ready-{live.pid}"
            ready.mkdir()
            recover(tmp_path / "model")
            assert ready.is_dir() and not (tmp_path / "model").exists()
        finally:
            live.kill()


def test_carried_entries_are_linked_into_the_new_directory_and_late_ones_moved(tmp_path):
    target = tmp_path / "run"
    (target / "mine" / "sub").mkdir(parents=True)
    (target / "mine" / "sub" / "f.txt").write_text("f")
    (target / "keep.txt").write_text("keep")
    (target / "result.txt").write_text("old result")
    os.symlink("keep.txt", target / "link")
    inode = (target / "keep.txt").stat().st_ino
    with atomic_directory(target, carry=lambda name: name != "result.txt") as new:
        assert _entries(new) == ["keep.txt", "link", "mine"]
        (target / "late.txt").write_text("written meanwhile")
        (new / "result.txt").write_text("new result")
    assert _entries(target) == ["keep.txt", "late.txt", "link", "mine", "result.txt"]
    assert (target / "keep.txt").stat().st_ino == inode  # a hard link, not a copy
    assert os.readlink(target / "link") == "keep.txt"
    assert (target / "mine" / "sub" / "f.txt").read_text() == "f"
    assert (target / "result.txt").read_text() == "new result"
    assert _entries(tmp_path) == ["run"]
