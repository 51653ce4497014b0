"""Tests for transferkit.features.cache: the content-addressed embedding cache."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from transferkit.features.cache import EmbeddingCache, file_digest, variant_key
from transferkit.paths import cache_dir

VARIANT = variant_key("mobilenet_v2", "ab" * 32, "resize256-crop224-imagenet")


def _digest(i: int) -> str:
    return hashlib.sha256(f"image-{i}".encode()).hexdigest()


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.fixture
def cache(tmp_path):
    c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    yield c
    c.close()


def test_put_get_round_trip_is_exact_float32(cache):
    vecs = _vectors(5, 16)
    digests = [_digest(i) for i in range(5)]
    cache.put_many(zip(digests, vecs))
    got = cache.get_many(digests)
    assert set(got) == set(digests)
    for d, v in zip(digests, vecs):
        assert got[d].dtype == np.float32 and got[d].shape == (16,)
        np.testing.assert_array_equal(got[d], v)
    assert len(cache) == 5


def test_float64_input_is_stored_as_float32(cache):
    v = np.random.default_rng(1).normal(size=16)  # float64
    cache.put_many([(_digest(0), v)])
    np.testing.assert_array_equal(cache.get_many([_digest(0)])[_digest(0)], v.astype(np.float32))


def test_missing_digests_are_absent(cache):
    cache.put_many([(_digest(0), _vectors(1, 16)[0])])
    got = cache.get_many([_digest(0), _digest(1), _digest(2)])
    assert set(got) == {_digest(0)}
    assert cache.get_many([]) == {}


def test_put_replaces_and_duplicates_are_looked_up_once(cache):
    a, b = _vectors(2, 16)
    cache.put_many([(_digest(0), a)])
    cache.put_many([(_digest(0), b)])
    got = cache.get_many([_digest(0), _digest(0)])
    assert list(got) == [_digest(0)]
    np.testing.assert_array_equal(got[_digest(0)], b)
    assert len(cache) == 1


def test_wrong_dimension_rows_are_misses(tmp_path):
    wide = EmbeddingCache(VARIANT, dim=32, root=tmp_path)
    wide.put_many([(_digest(0), _vectors(1, 32)[0])])
    wide.put_many([(_digest(1), _vectors(1, 16)[0])])  # a stray short row
    assert set(wide.get_many([_digest(0), _digest(1)])) == {_digest(0)}
    wide.close()
    narrow = EmbeddingCache(VARIANT, dim=16, root=tmp_path)  # same file, another dim
    assert set(narrow.get_many([_digest(0), _digest(1)])) == {_digest(1)}
    narrow.close()


def test_many_lookups_are_chunked(cache):
    n = 1234  # more than two chunks of 500 bound parameters
    vecs = _vectors(n, 16)
    digests = [_digest(i) for i in range(n)]
    cache.put_many(zip(digests, vecs))
    assert len(cache) == n
    asked = digests + [_digest(i) for i in range(n, n + 300)]  # plus 300 misses
    got = cache.get_many(asked)
    assert set(got) == set(digests)
    for i in (0, 499, 500, 999, 1000, n - 1):
        np.testing.assert_array_equal(got[digests[i]], vecs[i])


def test_entries_persist_across_instances(tmp_path):
    first = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    first.put_many([(_digest(0), _vectors(1, 16)[0])])
    first.close()
    second = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    np.testing.assert_array_equal(second.get_many([_digest(0)])[_digest(0)], _vectors(1, 16)[0])
    second.close()


def test_variants_use_separate_files(tmp_path):
    other = variant_key("resnet18", "cd" * 32, "resize256-crop224-imagenet")
    a = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    b = EmbeddingCache(other, dim=16, root=tmp_path)
    a.put_many([(_digest(0), _vectors(1, 16)[0])])
    assert a.path != b.path and a.path.parent == tmp_path / "embeddings"
    assert b.get_many([_digest(0)]) == {}
    a.close()
    b.close()


def test_variant_key_changes_with_each_input():
    base = ("mobilenet_v2", "ab" * 32, "fp-1", "identity")
    key = variant_key(*base)
    assert key == variant_key(*base)  # deterministic
    assert len(key) == 64 and int(key, 16) >= 0
    assert variant_key(*base[:3]) == key  # the default view is identity
    for i, changed in enumerate(["resnet18", "cd" * 32, "fp-2", "hflip"]):
        args = list(base)
        args[i] = changed
        assert variant_key(*args) != key, f"argument {i} does not change the key"


def test_variant_key_does_not_confuse_field_boundaries():
    assert variant_key("a", "bc", "d") != variant_key("ab", "c", "d")


@pytest.mark.parametrize("size", [0, 10, (1 << 20) + 17])  # empty, small, more than one chunk
def test_file_digest_equals_hashlib(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()
    assert file_digest(str(path)) == hashlib.sha256(data).hexdigest()


def test_cache_root_from_the_environment(tmp_path, monkeypatch):
    root = tmp_path / "custom-cache"
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(root))
    assert cache_dir() == root
    c = EmbeddingCache(VARIANT, dim=16)
    try:
        assert c.path.parent == root / "embeddings"
        assert c.path.is_file()
    finally:
        c.close()


def test_cache_dir_falls_back_to_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSFERKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "transferkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "transferkit"
