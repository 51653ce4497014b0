"""Tests for transferkit.features.cache: the content-addressed embedding cache."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes_folder
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.features.cache import CacheWarning, EmbeddingCache, file_digest, variant_key
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


# --- damage: a cache is a cache (warn, set aside, recompute; never end the run) ---------------


def _filled(root: Path, n: int = 500, dim: int = 16) -> tuple[Path, list[str], np.ndarray]:
    """A closed cache file holding ``n`` vectors (big enough to span many pages)."""
    digests, vecs = [_digest(i) for i in range(n)], _vectors(n, dim)
    c = EmbeddingCache(VARIANT, dim=dim, root=root)
    c.put_many(zip(digests, vecs))
    c.close()
    return c.path, digests, vecs


def _truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _garbage_over_all(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _garbage_after_first_page(path: Path) -> None:
    """The schema page survives; the table's own pages do not (found at the first read/write)."""
    with open(path, "r+b") as fh:
        fh.seek(4096)
        fh.write(np.random.default_rng(1).bytes(path.stat().st_size - 4096))


DAMAGE = {
    "truncated to half": _truncate_half,
    "garbage over the whole file": _garbage_over_all,
    "garbage after the first page": _garbage_after_first_page,
}


@contextmanager
def _cache_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    caught[:] = [w for w in caught if issubclass(w.category, CacheWarning)]


def _set_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_file_is_set_aside_and_rebuilt(tmp_path, damage):
    path, digests, vecs = _filled(tmp_path)
    DAMAGE[damage](path)
    damaged = path.read_bytes()
    with _cache_warnings() as caught:
        c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
        assert c.get_many(digests) == {}  # everything is a miss: recomputed by the caller
        c.put_many(zip(digests[:7], vecs[:7]))
        got = c.get_many(digests)
        assert len(c) == 7
        c.close()
    assert set(got) == set(digests[:7])
    np.testing.assert_array_equal(got[digests[3]], vecs[3])
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert path.name in message and "set aside" in message
    (aside,) = _set_aside(path)
    assert aside.name in message
    assert aside.read_bytes() == damaged  # kept, untouched, for whoever wants to look


def test_damage_found_while_writing_is_recovered_and_the_write_kept(tmp_path):
    path, digests, vecs = _filled(tmp_path)
    _garbage_after_first_page(path)
    with _cache_warnings() as caught:
        c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
        c.put_many(zip(digests[:5], vecs[:5]))  # the first access to the table is a write
        got = c.get_many(digests)
        c.close()
    assert set(got) == set(digests[:5])
    assert len(caught) == 1 and "set aside" in str(caught[0].message)
    assert len(_set_aside(path)) == 1


def _killed_writer(root: Path) -> Path:
    """A cache whose writer died without closing (os._exit), leaving -wal and -shm behind: the
    checkpoint put 500 vectors in the main file, the last one (all ones) is only in the WAL."""
    code = (
        "import os, sqlite3, numpy as np\n"
        "from transferkit.features.cache import EmbeddingCache\n"
        f"c = EmbeddingCache({VARIANT!r}, dim=16, root={str(root)!r})\n"
        "c.put_many((f'{i:064x}', np.full(16, i, np.float32)) for i in range(500))\n"
        "sqlite3.connect(c.path).execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()\n"
        "c.put_many([('a' * 64, np.ones(16, np.float32))])\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    (path,) = (root / "embeddings").glob("*.sqlite")
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    assert path.with_name(path.name + "-shm").exists()
    return path


def _recover_damaged(root: Path) -> list[warnings.WarningMessage]:
    with _cache_warnings() as caught:
        c = EmbeddingCache(VARIANT, dim=16, root=root)
        assert c.get_many([f"{i:064x}" for i in range(500)] + ["a" * 64]) == {}
        c.put_many([("b" * 64, np.zeros(16, np.float32))])
        c.close()
    return caught


def test_wal_content_goes_aside_with_the_damaged_file(tmp_path):
    path = _killed_writer(tmp_path)
    _garbage_after_first_page(path)
    assert len(_recover_damaged(tmp_path)) == 1
    aside = b"".join(p.read_bytes() for p in _set_aside(path))
    assert np.ones(16, np.float32).tobytes() in aside  # what only the WAL held is kept
    # the fresh file was never paired with the old WAL: it holds exactly what was written to it
    fresh = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    assert len(fresh) == 1 and set(fresh.get_many(["a" * 64, "b" * 64])) == {"b" * 64}
    fresh.close()


def test_wal_and_shm_files_are_set_aside_with_the_database(tmp_path):
    path = _killed_writer(tmp_path)
    wal = path.with_name(path.name + "-wal")
    wal_bytes = wal.read_bytes()
    _garbage_after_first_page(path)
    # another run still has the file open, so closing ours leaves the WAL in place
    other = sqlite3.connect(path)
    other.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()
    assert len(_recover_damaged(tmp_path)) == 1
    (aside,) = [p for p in _set_aside(path) if not p.name.endswith(("-wal", "-shm"))]
    assert aside.with_name(aside.name + "-wal").read_bytes() == wal_bytes
    assert aside.with_name(aside.name + "-shm").exists()
    other.close()


def test_cache_that_cannot_be_created_is_skipped_with_one_warning(tmp_path):
    root = tmp_path / "not-a-directory"
    root.write_text("a file where the cache directory should be")  # mkdir fails, even as root
    with _cache_warnings() as caught:
        c = EmbeddingCache(VARIANT, dim=16, root=root)
        c.put_many([(_digest(0), _vectors(1, 16)[0])])
        assert c.get_many([_digest(0)]) == {}
        assert len(c) == 0
        c.put_many([(_digest(1), _vectors(1, 16)[0])])
        c.close()
        EmbeddingCache(VARIANT, dim=16, root=root).close()  # the test set's extraction, say
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert "running without" in str(caught[0].message) and str(root) in str(caught[0].message)
    assert root.read_text().startswith("a file")


@contextmanager
def _read_only(path: Path):
    """Make ``path`` really refuse writes. Root ignores mode bits, so as root the path is made
    immutable (chattr +i); otherwise chmod. Skips where neither works."""
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX permissions needed")
    if os.geteuid() == 0:
        try:
            made = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        except FileNotFoundError:
            pytest.skip("running as root without chattr: cannot make a path read-only")
        if made.returncode:
            pytest.skip(f"chattr +i failed: {made.stderr.decode().strip()}")

        def undo():
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)

        def undo():
            path.chmod(mode)

    try:
        try:  # prove it: a write must fail
            if path.is_dir():
                (path / "probe").touch()
                (path / "probe").unlink()
            else:
                open(path, "ab").close()
        except OSError:
            pass
        else:
            pytest.skip(f"{path} is still writable")
        yield
    finally:
        undo()


@pytest.mark.parametrize("what", ["directory", "file"])
def test_read_only_cache_is_read_and_not_written(tmp_path, what):
    path, digests, vecs = _filled(tmp_path)
    target = path.parent if what == "directory" else path
    with _read_only(target), _cache_warnings() as caught:
        c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
        got = c.get_many(digests)
        c.put_many([(_digest(9999), _vectors(1, 16, seed=5)[0])])
        c.put_many([(_digest(9998), _vectors(1, 16, seed=6)[0])])
        assert _digest(9999) not in c.get_many([_digest(9999)])
        c.close()
    assert set(got) == set(digests)  # reads still work
    np.testing.assert_array_equal(got[digests[42]], vecs[42])
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert path.name in str(caught[0].message) and "cannot write" in str(caught[0].message)
    assert not _set_aside(path)


def test_write_refused_by_the_file_system_stops_writing_not_the_run(tmp_path):
    # a full disk, made real and root-proof with a file-size limit: writes past it fail (EFBIG)
    resource = pytest.importorskip("resource")
    import signal

    path, digests, vecs = _filled(tmp_path, n=20)
    big = _vectors(3000, 16, seed=3)
    c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 16384, limit[1]))
    try:
        with _cache_warnings() as caught:
            c.put_many((_digest(10_000 + i), v) for i, v in enumerate(big))
            c.put_many([(_digest(20_000), big[0])])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)
    with _cache_warnings() as later:
        got = c.get_many(digests + [_digest(10_000)])
    c.close()
    assert set(got) == set(digests)  # what was there is still read
    assert len(caught) == 1 and "cannot write" in str(caught[0].message)
    assert not later and not _set_aside(path)


# --- checksums: bit-rot inside a stored vector is a miss, never a wrong embedding ---------------


def _rot(path: Path, digests: list[str]) -> None:
    """Overwrite 8 bytes in the middle of each of those stored vectors, the checksum untouched."""
    db = sqlite3.connect(path)
    with db:
        for digest in digests:
            (vec,) = db.execute("SELECT vec FROM emb WHERE digest = ?", (digest,)).fetchone()
            rotted = vec[:16] + bytes(8) + vec[24:]
            db.execute("UPDATE emb SET vec = ? WHERE digest = ?", (rotted, digest))
    db.close()


def test_bit_rot_in_stored_vectors_is_a_miss_with_one_warning(tmp_path):
    path, digests, vecs = _filled(tmp_path, n=50)
    _rot(path, digests[10:13])
    c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    with _cache_warnings() as caught:
        got = c.get_many(digests)
    assert set(got) == set(digests) - set(digests[10:13])
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert "3 cached embedding" in str(caught[0].message) and path.name in str(caught[0].message)
    c.put_many(zip(digests[10:13], vecs[10:13]))  # what extraction does with the misses
    with _cache_warnings() as again:
        got = c.get_many(digests)
    c.close()
    assert set(got) == set(digests) and not again
    np.testing.assert_array_equal(got[digests[11]], vecs[11])


def test_bit_rot_on_disk_is_caught(tmp_path):
    """The same, written straight into the file's bytes as a failing disk would."""
    path, digests, vecs = _filled(tmp_path, n=50)
    data = bytearray(path.read_bytes())
    at = data.find(vecs[7].tobytes())
    assert at > 0
    data[at + 20 : at + 24] = b"\x00\x00\x80\x7f"  # one float becomes +inf
    path.write_bytes(bytes(data))
    c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
    with _cache_warnings() as caught:
        got = c.get_many(digests)
    c.close()
    assert set(got) == set(digests) - {digests[7]}
    assert len(caught) == 1 and "1 cached embedding" in str(caught[0].message)


def test_cache_files_from_before_checksums_are_migrated(tmp_path):
    """Rows written without a checksum cannot be vouched for: each is a miss once, then
    recomputed and stored with one. No damage warning: nothing is known to be wrong."""
    path = tmp_path / "embeddings" / f"{VARIANT[:32]}.sqlite"
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE emb (digest TEXT PRIMARY KEY, vec BLOB)")
    vecs = _vectors(4, 16)
    with old:
        old.executemany(
            "INSERT INTO emb VALUES (?, ?)", [(_digest(i), v.tobytes()) for i, v in enumerate(vecs)]
        )
    old.close()
    with _cache_warnings() as caught:
        c = EmbeddingCache(VARIANT, dim=16, root=tmp_path)
        assert c.get_many([_digest(i) for i in range(4)]) == {}
        c.put_many([(_digest(0), vecs[0])])
        got = c.get_many([_digest(i) for i in range(4)])
        c.close()
    assert not caught
    assert set(got) == {_digest(0)}
    np.testing.assert_array_equal(got[_digest(0)], vecs[0])


# --- the same through a real extraction (tiny backbone): results equal a run without a cache ----


@pytest.fixture
def tiny(tmp_path):
    from transferkit.backbones import load_backbone
    from transferkit.data import load_image_folder

    backbone = load_backbone(NAME, weights=write_tiny_weights(tmp_path / "tiny.safetensors"))
    data = load_image_folder(make_shapes_folder(tmp_path / "shapes", per_class=4))
    return backbone, data


def _extract(tiny, **kwargs):
    from transferkit.modalities import extract_embeddings

    backbone, data = tiny
    kwargs.setdefault("runtime", "torch")
    return extract_embeddings(backbone, data, batch_size=4, **kwargs)


@pytest.fixture
def reference(tiny):
    return _extract(tiny, cache=False).embeddings


def _cache_file(root: Path) -> Path:
    (path,) = (root / "embeddings").glob("*.sqlite")
    return path


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_extraction_through_a_damaged_cache_equals_no_cache(
    tiny, reference, tmp_path, monkeypatch, damage
):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert _extract(tiny).n_cached == 0
    DAMAGE[damage](_cache_file(tmp_path / "cache"))
    with _cache_warnings() as caught:
        again = _extract(tiny)
    assert len(caught) == 1 and "set aside" in str(caught[0].message)
    np.testing.assert_array_equal(again.embeddings, reference)
    assert again.ok.all() and again.n_cached == 0
    third = _extract(tiny)  # the fresh cache was filled by the recomputation
    assert third.n_cached == len(reference)
    np.testing.assert_array_equal(third.embeddings, reference)


def test_extraction_recomputes_rotted_vectors(tiny, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    _extract(tiny)
    path = _cache_file(tmp_path / "cache")
    db = sqlite3.connect(path)
    rotted = [d for (d,) in db.execute("SELECT digest FROM emb ORDER BY digest LIMIT 2")]
    db.close()
    _rot(path, rotted)
    with _cache_warnings() as caught:
        again = _extract(tiny)
    assert len(caught) == 1 and "2 cached embedding" in str(caught[0].message)
    assert again.n_cached == len(reference) - 2
    np.testing.assert_array_equal(again.embeddings, reference)
    with _cache_warnings() as caught:
        third = _extract(tiny)
    assert not caught and third.n_cached == len(reference)  # rewritten with good checksums


@pytest.mark.parametrize("how", ["cache dir is a file", "read-only directory"])
def test_extraction_with_an_unwritable_cache_equals_no_cache(
    tiny, reference, tmp_path, monkeypatch, how
):
    # runtime "auto": the ONNX export, cached under the same folder, must fall back to torch too
    root = tmp_path / "cache"
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(root))
    if how == "cache dir is a file":
        root.write_text("not a directory")
    else:
        root.mkdir()
    with _read_only(root) if root.is_dir() else nullcontext(), _cache_warnings() as caught:
        res = _extract(tiny, runtime="auto")
    assert len(caught) == 1, [str(w.message) for w in caught]
    assert "running without it" in str(caught[0].message)
    np.testing.assert_array_equal(res.embeddings, reference)
    assert res.ok.all() and res.n_cached == 0


def test_file_digest_follows_a_rewritten_file(tmp_path):
    """The digest is remembered per process, but never for a file that changed since."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"first")
    assert file_digest(path) == hashlib.sha256(b"first").hexdigest()
    path.write_bytes(b"second, longer")  # another size
    assert file_digest(path) == hashlib.sha256(b"second, longer").hexdigest()
    stat = path.stat()
    path.write_bytes(b"third, longer!")  # the same size: the mtime (ns) tells them apart
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_digest(path) == hashlib.sha256(b"third, longer!").hexdigest()
