"""Tests for transferkit.atomic: files and directories are replaced whole or not at all."""

from __future__ import annotations

import json
import os

import pytest

from transferkit import atomic
from transferkit.atomic import atomic_directory, write_bytes_atomic, write_json_atomic


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
