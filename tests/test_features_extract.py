"""Extraction: batching, runtimes, cache reuse, unreadable files, views."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights

from transferkit.data import Dataset, Sample, load_image_folder
from transferkit.features.runtime import make_runner
from transferkit.modalities import extract_embeddings
from transferkit.system import cpu_forward_chunk


@pytest.fixture(scope="module")
def mobilenet():
    require_offline_weights("mobilenet_v2")
    from transferkit.backbones import load_backbone

    return load_backbone("mobilenet_v2")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return load_image_folder(make_shapes_folder(tmp_path_factory.mktemp("ds"), per_class=4))


def test_embeddings_shape_and_cache_reuse(mobilenet, folder, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path))  # a cold cache for this test
    first = extract_embeddings(mobilenet, folder, batch_size=5)
    assert first.embeddings.shape == (12, 1280) and first.ok.all() and not first.problems
    assert first.n_cached == 0 and first.runtime in ("onnx", "torch")
    again = extract_embeddings(mobilenet, folder, batch_size=7)
    assert again.n_cached == 12 and again.runtime == "cache"
    np.testing.assert_array_equal(again.embeddings, first.embeddings)


def test_onnx_and_torch_runtimes_agree(mobilenet, folder):
    a = extract_embeddings(mobilenet, folder, cache=False, runtime="torch")
    b = extract_embeddings(mobilenet, folder, cache=False, runtime="auto")
    assert np.abs(a.embeddings - b.embeddings).max() < 1e-3


def test_runner_batches_do_not_change_results(mobilenet, folder):
    small = extract_embeddings(mobilenet, folder, cache=False, batch_size=1)
    big = extract_embeddings(mobilenet, folder, cache=False, batch_size=64)
    assert np.abs(small.embeddings - big.embeddings).max() < 1e-4


def test_mirror_view_is_cached_separately(mobilenet, folder, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path))
    plain = extract_embeddings(mobilenet, folder)
    mirrored = extract_embeddings(mobilenet, folder, view="hflip")
    assert mirrored.n_cached == 0  # a different cache key from the plain view
    assert not np.allclose(plain.embeddings, mirrored.embeddings)
    with pytest.raises(ValueError, match="view"):
        extract_embeddings(mobilenet, folder, view="rotate")


def test_unreadable_files_are_reported_not_fatal(mobilenet, tmp_path):
    root = make_shapes_folder(tmp_path / "d", per_class=3)
    (root / "circle" / "text.jpg").write_text("this is not an image")
    good = (root / "square" / "0.png").read_bytes()
    (root / "square" / "cut.png").write_bytes(good[: len(good) // 2])
    from PIL import Image

    Image.new("RGB", (1, 1), (255, 0, 0)).save(root / "triangle" / "one-pixel.png")
    # loading leaves such files out; a Dataset built in memory is not probed, so extraction
    # is the safety net that still finds them
    files = sorted(root.glob("*/*.*"))
    ds = Dataset(tuple(Sample(f, f.parent.name) for f in files), ("circle", "square", "triangle"))
    res = extract_embeddings(mobilenet, ds)
    bad = {p.name for p, _ in res.problems}
    assert bad == {"text.jpg", "cut.png"}
    assert res.ok.sum() == len(ds) - 2
    assert np.all(res.embeddings[~res.ok] == 0)
    # the 1x1 image is upscaled and encoded like any other
    assert res.ok[list(ds.paths).index(root / "triangle" / "one-pixel.png")]


def test_random_weights_are_never_cached(folder):
    from transferkit.backbones import load_backbone

    bb = load_backbone("mobilenet_v2", pretrained=False)
    res = extract_embeddings(bb, folder)
    assert res.ok.all() and res.n_cached == 0
    again = extract_embeddings(bb, folder)
    assert again.n_cached == 0


def test_unknown_runtime_is_a_clear_error(mobilenet):
    from transferkit.errors import BadInputError

    with pytest.raises(BadInputError, match="runtime must be one of"):
        make_runner(mobilenet, runtime="tensorrt")


def test_onnx_runs_a_batch_in_cpu_sized_calls_with_the_same_embeddings(mobilenet, monkeypatch):
    runner = make_runner(mobilenet, runtime="onnx", num_threads=1)
    pixels = np.random.default_rng(0).integers(0, 256, (10, 3, 224, 224), dtype=np.uint8)
    calls = []
    run = runner.session.run
    monkeypatch.setattr(
        runner.session,
        "run",
        lambda out, feed: calls.append(len(next(iter(feed.values())))) or run(out, feed),
    )
    chunked = runner(pixels)
    chunk = cpu_forward_chunk(1)
    assert calls == [chunk] * (10 // chunk) + ([10 % chunk] if 10 % chunk else [])
    whole = run(None, {runner.input_name: pixels})[0]  # one call of 10, as before
    assert chunked.shape == (10, 1280) and np.abs(chunked - whole).max() < 1e-4
