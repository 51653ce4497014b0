"""Tests for transferkit.bundle: the round trip, every refusal, and the atomic save."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

import transferkit.bundle as bundle_mod
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.bundle import (
    BACKBONE_FILE,
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
BACKBONE = {
    "name": "mobilenet_v2",
    "modality": "image",
    "weights_sha256": "ab" * 32,
    "preprocess": ImagePreprocess().to_dict(),
}


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
        backbone=BACKBONE,
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
    """Rewrite the manifest as a tool that re-hashes it would (so deeper checks are reached)."""
    if "manifest_sha256" in manifest:
        manifest["manifest_sha256"] = bundle_mod.manifest_digest(manifest)
    _tamper(path, manifest)


def _tamper(path: Path, manifest: dict) -> None:
    """Rewrite the manifest as a text editor would: its stored hash left as it was."""
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


def _as_version_1(path: Path) -> None:
    """Make the bundle what the previous version wrote: format 1, no manifest hash."""
    mf = _manifest(path)
    mf.pop("manifest_sha256", None)
    mf["format_version"] = 1
    _tamper(path, mf)


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
    assert mf["backbone"] == BACKBONE
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


# -- the manifest is integrity-checked and validated (issue 16, items 4 and 10) ----------------
def _swap_labels(mf: dict) -> None:
    mf["labels"][0], mf["labels"][1] = mf["labels"][1], mf["labels"][0]


def _rename_label(mf: dict) -> None:
    mf["labels"][2] = "wolf"


def _change_mean(mf: dict) -> None:
    mf["backbone"]["preprocess"]["mean"][0] = 0.5


def _labels_as_text(mf: dict) -> None:
    mf["labels"] = "abcd"


def _list_another_file(mf: dict) -> None:
    mf["files"][BACKBONE_FILE] = "cd" * 32


EDITS = {
    "two labels swapped": _swap_labels,
    "a label renamed": _rename_label,
    "preprocessing mean changed": _change_mean,
    "labels a string": _labels_as_text,
    "a file hash changed": _list_another_file,
}


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_manifest_is_refused(saved, case):
    mf = _manifest(saved)
    EDITS[case](mf)
    _tamper(saved, mf)
    with pytest.raises(BundleError, match="manifest.json was changed after it was saved") as info:
        load_bundle(saved)
    assert str(saved) in str(info.value) and REFUSE_FIX in str(info.value)


def test_the_manifest_hash_covers_its_canonical_json_but_the_hash(saved):
    mf = _manifest(saved)
    assert mf["format_version"] == 2
    content = {k: v for k, v in mf.items() if k != "manifest_sha256"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert mf["manifest_sha256"] == hashlib.sha256(canonical.encode("ascii")).hexdigest()
    assert bundle_mod.manifest_digest(mf) == mf["manifest_sha256"]
    # formatting is not content: the same manifest re-indented still loads
    (saved / MANIFEST).write_text(json.dumps(mf, indent=7), encoding="utf-8")
    assert load_bundle(saved).labels == LABELS


def test_a_version_2_manifest_without_its_hash_is_refused(saved):
    _drop("manifest_sha256")(saved)
    with pytest.raises(BundleError, match="lacks the 'manifest_sha256' entry"):
        load_bundle(saved)


def _set_in(mf: dict, keys: tuple, value) -> None:
    for key in keys[:-1]:
        mf = mf[key]
    mf[keys[-1]] = value


SCHEMA = {
    # case: (where, value, message fragment)
    "labels a string": (("labels",), "abcd", "'labels' must be a list of unique, non-empty str"),
    "labels empty": (("labels",), [], "'labels' must be a list of unique, non-empty str"),
    "a label not a string": (("labels", 1), 7, r"label 1 is 7, not a non-empty string"),
    "an empty label": (("labels", 1), "", "label 1 is '', not a non-empty string"),
    "a repeated label": (("labels", 1), "naïve", "'naïve' appears 2 times"),
    "backbone a string": (("backbone",), "mobilenet_v2", "'backbone' must be an object"),
    "backbone name missing": (("backbone", "name"), None, r"'backbone.name' must be a"),
    "weights sha not hex": (("backbone", "weights_sha256"), "xyz", "'backbone.weights_sha256'"),
    "preprocess mean NaN": (
        ("backbone", "preprocess", "mean", 0),
        float("nan"),
        r"'backbone.preprocess.mean\[0\]' must be a finite number; got nan",
    ),
    "preprocess mean infinite": (
        ("backbone", "preprocess", "mean", 1),
        float("inf"),
        "must be a finite number; got inf",
    ),
    "preprocess a list": (("backbone", "preprocess"), [1, 2], "'backbone.preprocess' must be an"),
    "strategy a string": (("strategy",), "features", "'strategy' must be an object"),
    "head without a name": (("head", "name"), 3, "'head.name' must be a"),
    "head n_classes a string": (("head", "n_classes"), "4", "'head.n_classes' must be a positive"),
    "head n_classes a bool": (("head", "n_classes"), True, "'head.n_classes' must be a positive"),
    "file hash not hex": (("files", HEAD_FILE), "abc", "the sha256 of head.safetensors must be"),
    "metrics a list": (("metrics",), [0.75], "'metrics' must be an object"),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", list(SCHEMA))
def test_a_manifest_that_breaks_the_schema_is_refused(saved, case, version):
    """Whether the hash was recomputed (version 2) or there is none (version 1)."""
    if version == 1:
        _as_version_1(saved)
    keys, value, fragment = SCHEMA[case]
    mf = _manifest(saved)
    _set_in(mf, keys, value)
    _write_manifest(saved, mf)
    with pytest.raises(BundleError, match=fragment) as info:
        load_bundle(saved)
    assert str(saved) in str(info.value) and REFUSE_FIX in str(info.value)


@pytest.mark.parametrize("version", [1, 2])
def test_fewer_labels_than_head_outputs_are_refused(saved, version):
    """Issue 16 item 4: a shortened labels list was an internal 'shape mismatch' at predict."""
    if version == 1:
        _as_version_1(saved)
    mf = _manifest(saved)
    mf["labels"] = LABELS[:3]
    _write_manifest(saved, mf)
    with pytest.raises(BundleError, match="3 labels but its head has 4 outputs") as info:
        load_bundle(saved)
    message = str(info.value)
    assert str(saved) in message and "head.n_classes" in message and REFUSE_FIX in message


def test_a_previous_version_bundle_loads_with_a_warning(saved):
    _as_version_1(saved)
    with pytest.warns(UserWarning, match="not integrity-protected") as record:
        loaded = load_bundle(saved)
    assert loaded.labels == LABELS and loaded.manifest["format_version"] == 1
    message = str(record[0].message)
    assert str(saved) in message and "upgrade_bundle" in message


def test_upgrading_a_previous_version_bundle_protects_its_manifest(saved):
    before = _manifest(saved)
    _as_version_1(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for by the warning, so it does not warn again
        assert bundle_mod.upgrade_bundle(saved) == saved
        assert load_bundle(saved).labels == LABELS
    assert _manifest(saved) == before  # the same content gives the same hash
    mf = _manifest(saved)
    _swap_labels(mf)
    _tamper(saved, mf)
    with pytest.raises(BundleError, match="was changed after it was saved"):
        load_bundle(saved)


# -- only the files the format defines (issue 16, item 16) ---------------------------------
@pytest.mark.filterwarnings("ignore:.*not integrity-protected")
@pytest.mark.parametrize("version", [1, 2])
def test_a_listed_file_the_format_does_not_define_is_refused(saved, version):
    if version == 1:
        _as_version_1(saved)
    payload = pickle.dumps({"weight": [1.0, 2.0]})  # never loaded, yet it must not ride along
    (saved / "head.pt").write_bytes(payload)
    mf = _manifest(saved)
    mf["files"]["head.pt"] = hashlib.sha256(payload).hexdigest()
    _write_manifest(saved, mf)
    with pytest.raises(BundleError, match="head.pt is not a file of the bundle format") as info:
        load_bundle(saved)
    message = str(info.value)
    assert HEAD_FILE in message and BACKBONE_FILE in message and str(saved) in message


def test_a_stray_file_beside_the_bundle_is_named_in_a_warning(saved):
    (saved / "notes.txt").write_text("copied from the training machine")
    (saved / "head.pt").write_bytes(pickle.dumps([1, 2]))
    with pytest.warns(UserWarning, match="head.pt, notes.txt") as record:
        loaded = load_bundle(saved)
    assert loaded.labels == LABELS
    assert "not part of the model" in str(record[0].message)


# -- files follow the umask (issue 16, item 14) ------------------------------------------
@pytest.mark.parametrize(
    ("umask", "mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_bundle_files_follow_the_umask(tmp_path, umask, mode, dir_mode):
    import torch

    old = os.umask(umask)
    try:
        path = _save(tmp_path / "model", backbone_state={"w": torch.zeros(3)})
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert modes == {MANIFEST: mode, HEAD_FILE: mode, BACKBONE_FILE: mode}
    assert stat.S_IMODE(path.stat().st_mode) == dir_mode
