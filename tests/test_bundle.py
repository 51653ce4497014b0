"""Tests for transferkit.bundle: the round trip, every refusal, and the atomic save."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import transferkit.bundle as bundle_mod
from transferkit.bundle import (
    FORMAT,
    FORMAT_VERSION,
    HEAD_FILE,
    MANIFEST,
    Bundle,
    load_bundle,
    read_manifest,
    save_bundle,
)
from transferkit.errors import BundleError
from transferkit.heads import head_class, make_head

LABELS = ['猫 "cat"', "chien's", "狗\\dog", "naïve"]


def _head():
    """A small fitted head (k-NN: float32 and int64 arrays) and its test inputs."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(LABELS), 64))
    y = np.repeat(np.arange(len(LABELS)), 3)
    X = (centres[y] + rng.normal(size=(len(y), 64))).astype(np.float32)
    return make_head("knn", k=3).fit(X, y), X


def _save(path: Path, **overrides) -> Path:
    head, _ = _head()
    config, arrays = head.get_state()
    kwargs = dict(
        backbone={"name": "mobilenet_v2", "weights_sha256": "ab" * 32},
        labels=LABELS,
        strategy={"name": "features", "params": {"augment": "light"}},
        head_config=config,
        head_arrays=arrays,
        metrics={"accuracy": 0.75, "labels": LABELS},
    )
    kwargs.update(overrides)
    return save_bundle(path, **kwargs)


@pytest.fixture
def saved(tmp_path) -> Path:
    return _save(tmp_path / "run" / "model")


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text(encoding="utf-8"))


def _write_manifest(path: Path, manifest: dict) -> None:
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


# -- round trip --------------------------------------------------------------------------------
def test_round_trip(saved):
    head, X = _head()
    config, arrays = head.get_state()
    loaded = load_bundle(saved)
    assert isinstance(loaded, Bundle) and loaded.path == saved
    assert set(loaded.head_arrays) == set(arrays)
    for key, arr in arrays.items():
        assert loaded.head_arrays[key].dtype == arr.dtype
        np.testing.assert_array_equal(loaded.head_arrays[key], arr)
    mf = loaded.manifest
    assert mf["format"] == FORMAT and mf["format_version"] == FORMAT_VERSION
    assert mf["labels"] == LABELS and loaded.labels == LABELS
    assert mf["backbone"] == {"name": "mobilenet_v2", "weights_sha256": "ab" * 32}
    assert mf["strategy"] == {"name": "features", "params": {"augment": "light"}}
    assert mf["head"] == json.loads(json.dumps(config))
    assert mf["metrics"] == {"accuracy": 0.75, "labels": LABELS}
    assert {"python", "numpy", "transferkit"} <= set(mf["versions"])
    assert mf["created"].endswith("Z") and mf["created"][4] == "-"
    digest = hashlib.sha256((saved / HEAD_FILE).read_bytes()).hexdigest()
    assert mf["files"] == {HEAD_FILE: digest}
    # the head comes back and predicts as before
    again = head_class(mf["head"]["name"]).from_state(mf["head"], loaded.head_arrays)
    np.testing.assert_array_equal(again.predict_proba(X), head.predict_proba(X))


def test_labels_stay_readable_in_the_manifest(saved):
    text = (saved / MANIFEST).read_text(encoding="utf-8")
    assert "猫" in text and "naïve" in text  # not \\u escapes


def test_load_through_the_manifest_path_and_read_manifest(saved):
    assert load_bundle(saved / MANIFEST).path == saved
    assert load_bundle(str(saved)).labels == LABELS
    assert read_manifest(saved / MANIFEST)["labels"] == LABELS


def test_metrics_default_to_empty(tmp_path):
    path = _save(tmp_path / "model", metrics=None)
    assert load_bundle(path).manifest["metrics"] == {}


def test_saving_over_a_bundle_replaces_it_completely(saved):
    (saved / "stray.txt").write_text("left from an older version")
    _save(saved, labels=["a", "b", "c", "d"])
    assert load_bundle(saved).labels == ["a", "b", "c", "d"]
    assert not (saved / "stray.txt").exists()
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]


def test_no_pickle_only_json_and_safetensors(saved):
    files = [p for p in saved.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted([MANIFEST, HEAD_FILE])
    for p in files:
        assert p.suffix in (".json", ".safetensors"), p
        data = p.read_bytes()
        assert not data.startswith(b"\x80"), f"{p} looks like a pickle"
        assert not data.startswith(b"PK"), f"{p} looks like a zip (torch.save)"
        assert b"numpy.core.multiarray" not in data and b"_reconstruct" not in data
    # safetensors: 8-byte little-endian header length, then a JSON header
    raw = (saved / HEAD_FILE).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert {k for k in header if k != "__metadata__"} == {"X", "y"}


# -- refusals ----------------------------------------------------------------------------------
def _flip_byte(path: Path) -> None:
    f = path / HEAD_FILE
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def _truncate_head(path: Path) -> None:
    f = path / HEAD_FILE
    f.write_bytes(f.read_bytes()[:-10])


def _truncate_head_and_fix_sha(path: Path) -> None:
    _truncate_head(path)
    mf = _manifest(path)
    mf["files"][HEAD_FILE] = hashlib.sha256((path / HEAD_FILE).read_bytes()).hexdigest()
    _write_manifest(path, mf)


def _edit(**changes):
    def edit(path: Path) -> None:
        mf = _manifest(path)
        mf.update(changes)
        _write_manifest(path, mf)

    return edit


def _drop(key: str):
    def edit(path: Path) -> None:
        mf = _manifest(path)
        del mf[key]
        _write_manifest(path, mf)

    return edit


def _outside_entry(name: str):
    def edit(path: Path) -> None:
        # the file exists and its sha256 even matches: still refused
        target = (path / name).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"outside")
        mf = _manifest(path)
        mf["files"][name] = hashlib.sha256(b"outside").hexdigest()
        _write_manifest(path, mf)

    return edit


def _truncate_manifest(path: Path) -> None:
    f = path / MANIFEST
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])


REFUSALS = {
    # case: (how to break the bundle, message fragment)
    "dir without manifest": (lambda p: (p / MANIFEST).unlink(), "there is no manifest.json"),
    "truncated manifest": (_truncate_manifest, "manifest.json is not valid JSON"),
    "manifest not UTF-8": (
        lambda p: (p / MANIFEST).write_bytes(b"\xff\xfe{}"),
        "not valid JSON",
    ),
    "manifest is a list": (
        lambda p: (p / MANIFEST).write_text("[1, 2]"),
        f"does not describe a {FORMAT}",
    ),
    "manifest of another format": (
        _edit(format="some-other-model"),
        f"does not describe a {FORMAT}",
    ),
    "manifest without labels": (_drop("labels"), "lacks the 'labels' entry"),
    "tampered head": (_flip_byte, "head.safetensors has sha256 .* but the manifest says"),
    "truncated head": (_truncate_head, "head.safetensors has sha256"),
    "truncated head, sha updated": (
        _truncate_head_and_fix_sha,
        "head.safetensors cannot be read",
    ),
    "missing head": (lambda p: (p / HEAD_FILE).unlink(), "head.safetensors is missing"),
    "head not listed in files": (_edit(files={}), "does not list the sha256 of head"),
    "files not a mapping": (_edit(files=["head.safetensors"]), "does not list the sha256"),
    "files entry ../x": (_outside_entry("../x"), r"file entry '\.\./x' is not a plain file"),
    "files entry in a subfolder": (_outside_entry("sub/x"), "is not a plain file name"),
}

# every refusal that is not about versions says what to do
REFUSE_FIX = "copy the whole directory again or re-train"


@pytest.mark.parametrize("case", list(REFUSALS))
def test_broken_bundles_are_refused_with_path_and_fix(saved, case):
    breaker, fragment = REFUSALS[case]
    breaker(saved)
    with pytest.raises(BundleError, match=fragment) as info:
        load_bundle(saved)
    err = info.value
    assert isinstance(err, ValueError) and err.exit_code == 2
    assert str(saved) in str(err)
    assert REFUSE_FIX in str(err) and "transferkit train" in str(err)


def test_a_missing_directory_is_refused(tmp_path):
    path = tmp_path / "nowhere"
    with pytest.raises(BundleError, match="does not exist") as info:
        load_bundle(path)
    assert str(path) in str(info.value) and "transferkit train" in str(info.value)
    assert info.value.exit_code == 2


def test_a_newer_format_version_asks_for_an_upgrade(saved):
    _edit(format_version=FORMAT_VERSION + 1)(saved)
    with pytest.raises(BundleError, match="newer transferkit") as info:
        load_bundle(saved)
    message = str(info.value)
    assert str(saved) in message and "upgrade transferkit" in message
    assert f"format {FORMAT_VERSION + 1}" in message
    with pytest.raises(BundleError, match="upgrade"):
        read_manifest(saved)


# -- atomic save -------------------------------------------------------------------------------
def _boom(*args, **kwargs):
    raise RuntimeError("disk full")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("target", "failure", "exc"),
    [
        ("safetensors.numpy.save_file", _boom, RuntimeError),
        ("transferkit.bundle.write_json_atomic", _boom, RuntimeError),
        ("transferkit.bundle.write_json_atomic", _interrupt, KeyboardInterrupt),
        ("transferkit.bundle._sha256", _boom, RuntimeError),
    ],
)
def test_a_failed_save_keeps_the_old_bundle_and_leaves_no_temp_dir(
    saved, monkeypatch, target, failure, exc
):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    monkeypatch.setattr(target, failure)
    with pytest.raises(exc):
        _save(saved, labels=["w", "x", "y", "z"])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    assert load_bundle(saved).labels == LABELS
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]


def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "write_json_atomic", _boom)
    with pytest.raises(RuntimeError):
        _save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []
