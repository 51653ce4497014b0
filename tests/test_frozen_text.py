"""Frozen text encoders: word vectors (tokenizing Chinese without spaces, .vec files through
``fasttext:<path>``), and the offline USE / WordLlama / GloVe packages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from transferkit.backbones import get_spec, list_backbones, resolve_backbone
from transferkit.backbones.frozen_text import WordVectorEncoder, read_vec_file
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.data import Dataset, Sample
from transferkit.errors import BadInputError

VOCAB = {
    "good": [1, 0, 0],
    "bad": [-1, 0, 0],
    "movie": [0, 1, 0],
    "电影": [0, 0, 1],
    "好": [2, 0, 0],
}


def _encoder(lowercase=True) -> WordVectorEncoder:
    words = {w: i for i, w in enumerate(VOCAB)}
    vectors = np.array(list(VOCAB.values()), dtype=np.float32)
    spec = get_spec("glove_6b_50d")
    return WordVectorEncoder(spec, None, TextPreprocess(lowercase=lowercase), words, vectors)


def test_chinese_runs_are_segmented_into_known_words_then_characters():
    enc = _encoder()
    assert enc.tokenize("这部电影很好!") == ["这", "部", "电影", "很", "好", "!"]
    assert enc.tokenize("A GOOD movie, 2.5 stars") == ["a", "good", "movie", ",", "2.5", "stars"]


def test_text_vector_is_the_mean_of_known_words_and_zero_without_any():
    enc = _encoder()
    out = enc.encode_texts(["good movie", "电影好", "nothing known here"])
    np.testing.assert_allclose(out[0], [0.5, 0.5, 0])
    np.testing.assert_allclose(out[1], [1, 0, 0.5])
    np.testing.assert_array_equal(out[2], 0)
    assert enc.oov_tokens == 3 and enc.tokens_seen == 7


def _write_vec(path: Path, header=True) -> Path:
    lines = [f"{len(VOCAB)} 3"] if header else []
    lines += [f"{w} " + " ".join(str(float(v)) for v in vec) for w, vec in VOCAB.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("header", [True, False])
def test_vec_files_read_with_or_without_header(tmp_path, header):
    words, vectors = read_vec_file(_write_vec(tmp_path / "v.vec", header=header))
    assert list(words) == list(VOCAB) and vectors.shape == (5, 3)


def test_malformed_vec_line_is_named(tmp_path):
    path = tmp_path / "bad.vec"
    path.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"bad.vec:2: 2 numbers where every vector has 3"):
        read_vec_file(path)


def test_fasttext_names_resolve_a_local_file(tmp_path):
    vec = _write_vec(tmp_path / "tiny.vec")
    ref = resolve_backbone(f"fasttext:{vec}")
    assert ref.num_features == 3 and "explicit path" in ref.weights_source
    assert ref.preprocess.tokenizer_sha256 == ref.weights_sha256  # the file is the vocabulary
    enc = ref.materialize()
    np.testing.assert_allclose(enc.encode_texts(["good movie"])[0], [0.5, 0.5, 0])
    with pytest.raises(BadInputError, match="give the word-vector file"):
        get_spec("fasttext:")
    with pytest.raises(BadInputError, match="does not exist"):
        resolve_backbone(f"fasttext:{tmp_path / 'missing.vec'}")


def test_train_and_predict_with_fasttext_vectors_through_the_cli(tmp_path, monkeypatch, capsys):
    from transferkit.cli import main

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    vec = _write_vec(tmp_path / "tiny.vec")
    data = tmp_path / "d.csv"
    with open(data, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        for i in range(6):
            writer.writerow([f"good movie {i}", "pos"])
            writer.writerow([f"bad {i}", "neg"])
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--backbone", f"fasttext:{vec}"]
    assert main([*args, "--test-size", "0.34", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["accuracy"] == 1.0
    assert main(["predict", str(run / "model"), "--text", "好电影", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "pos"


def test_frozen_encoders_have_no_random_init():
    with pytest.raises(BadInputError, match="frozen encoder"):
        resolve_backbone("glove_6b_50d", pretrained=False).materialize()


# --------------------------------------------------------------------------- real packages


def _offline(name):
    from conftest import require_offline_weights

    require_offline_weights(name)  # skips outside CI, fails under CI
    row = next(r for r in list_backbones() if r["name"] == name)
    assert row["offline_available"] and row["modality"] == "text"
    return resolve_backbone(name, allow_download=False)


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["use_multilingual", "wordllama", "glove_6b_50d"])
def test_packaged_encoders_embed_offline_deterministically(name):
    ref = _offline(name)
    enc = ref.materialize()
    texts = ["a wonderful film", "a terrible film", "这部电影很好看"]
    out = enc.encode_texts(texts)
    assert out.shape == (3, ref.num_features) and out.dtype == np.float32
    np.testing.assert_array_equal(out, enc.encode_texts(texts))
    assert np.isfinite(out).all() and np.abs(out[:2]).sum() > 0


@pytest.mark.e2e
def test_use_maps_a_chinese_sentence_next_to_its_english_meaning(tmp_path, monkeypatch):
    from transferkit.modalities import extract_embeddings

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    ref = _offline("use_multilingual")
    assert "zh" in ref.spec.languages
    texts = ["The weather is lovely today.", "今天天气很好。", "The stock market crashed."]
    ds = Dataset(
        tuple(Sample(Path(f"t:{i}"), None, t) for i, t in enumerate(texts)), (), modality="text"
    )
    emb = extract_embeddings(ref, ds).embeddings
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    again = extract_embeddings(ref, ds)
    assert again.runtime == "cache"
