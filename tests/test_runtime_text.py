"""Text inputs of exported models: the shipped tokenizer.json through `tokenizers` gives the
bundle encoder's own token ids (transformers), clipping, lower-casing, truncation and padding
included, and the CLI predicts texts with the training stack blocked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import require_offline_weights
from runtime_helpers import TinyTextNet, cli_code, onnx_bytes, run_blocked, write_folder

from transferkit.runtime import load_exported

LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "Hello World",
    "ÉCOLE Élève CAFÉ naïve",  # accents and capitals: the tokenizer's normaliser, lower-casing
    "我喜欢这部电影",
    "emoji 🎉 and a URL https://example.com/a?b=c",
    " ".join(f"word{i}" for i in range(400)) + " THE END",  # over max_length tokens: truncated
    "x" * 20_000,  # over clip_characters: cut before tokenising
]


@pytest.fixture(scope="module")
def encoder():
    from transferkit.backbones import resolve_backbone

    require_offline_weights("all_minilm_l6_v2")
    return resolve_backbone("all_minilm_l6_v2", allow_download=False).materialize()


def _folder(path: Path, encoder, tmp: Path) -> Path:
    """An exported text model as `export` states one: the encoder's tokenizer.json (its own
    fixed-length padding left in it: export.json's rules must win) and a tiny graph."""
    p = encoder.preprocess
    folder = Path(encoder.tokenizer.name_or_path)
    tokenizer = (folder / "tokenizer.json").read_bytes()
    example = (
        torch.tensor([[101, 7592, 102], [101, 102, 0]]),
        torch.tensor([[1, 1, 1], [1, 1, 0]]),
    )
    net = TinyTextNet(encoder.tokenizer.vocab_size, len(LABELS))
    graph = onnx_bytes(net, example, ["input_ids", "attention_mask"], tmp, {1: "tokens"})
    document = {
        "format": "transferkit-export",
        "format_version": 1,
        "modality": "text",
        "labels": LABELS,
        "inputs": {
            "kind": "text",
            "names": ["input_ids", "attention_mask"],
            "max_length": p.max_length,
            "lowercase": p.lowercase,
            "clip_characters": p.max_chars,
            "tokenizer": "tokenizer.json",
            "padding": {"pad_id": encoder.tokenizer.pad_token_id, "direction": "right"},
        },
        "outputs": {"probabilities": [None, len(LABELS)], "embedding": [None, 6]},
    }
    return write_folder(path, document, {"model.onnx": graph, "tokenizer.json": tokenizer})


@pytest.mark.parametrize("lowercase", [False, True])
def test_token_ids_and_probabilities_are_the_bundle_encoders(encoder, tmp_path, lowercase):
    encoder.preprocess = dataclasses.replace(encoder.preprocess, lowercase=lowercase)
    try:
        model = load_exported(_folder(tmp_path / f"m{lowercase}", encoder, tmp_path))
        feeds, bad = model.inputs.feeds(TEXTS)
        expected = encoder.token_ids(TEXTS, padding=True, return_tensors="np")
    finally:
        encoder.preprocess = dataclasses.replace(encoder.preprocess, lowercase=False)
    assert bad == {}
    [(rows, feed)] = feeds
    assert rows == list(range(len(TEXTS)))
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(feed[name], expected[name], err_msg=name)
    assert feed["input_ids"].shape[1] == encoder.preprocess.max_length  # truncation happened
    with torch.no_grad():
        reference, _ = TinyTextNet(encoder.tokenizer.vocab_size, len(LABELS)).eval()(
            torch.from_numpy(expected["input_ids"]), torch.from_numpy(expected["attention_mask"])
        )
    proba, ok, problems = model.predict_proba(TEXTS, batch_size=4)
    assert ok.all() and problems == []
    # batches of 4 pad to their own longest text: padding does not change a text's result
    np.testing.assert_allclose(proba, reference.numpy(), atol=1e-6)


def test_an_empty_text_is_a_problem_not_a_row(encoder, tmp_path):
    model = load_exported(_folder(tmp_path / "m", encoder, tmp_path))
    proba, ok, problems = model.predict_proba(["fine", "   "])
    assert ok.tolist() == [True, False] and np.isnan(proba[1]).all()
    assert problems == [("   ", "an empty text; give the text to classify")]


def test_a_tokenizer_that_is_not_listed_is_refused(encoder, tmp_path):
    from runtime_helpers import seal

    from transferkit.errors import BundleError

    folder = _folder(tmp_path / "m", encoder, tmp_path)
    document = json.loads((folder / "export.json").read_text())
    del document["files"]["tokenizer.json"]
    (folder / "export.json").write_text(json.dumps(seal(document)))
    with pytest.warns(UserWarning, match="ignoring tokenizer.json"):
        with pytest.raises(BundleError, match="lists no tokenizer.json"):
            load_exported(folder)


def test_cli_predicts_texts_without_torch(encoder, tmp_path):
    folder = _folder(tmp_path / "m", encoder, tmp_path)
    texts = ["A great film", "Dull and slow"]
    argv = ["predict", str(folder), "--text", texts[0], "--text", texts[1], "--top", "1"]
    done = run_blocked(cli_code(argv))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    proba = load_exported(folder).predict_proba(texts)[0]
    assert [line["input"] for line in lines] == texts
    assert [line["label"] for line in lines] == [LABELS[i] for i in proba.argmax(axis=1)]
    assert [line["confidence"] for line in lines] == [round(float(r.max()), 6) for r in proba]


def test_cli_reads_a_text_table_without_the_training_stack(encoder, tmp_path):
    folder = _folder(tmp_path / "m", encoder, tmp_path)
    table = tmp_path / "reviews.csv"
    table.write_text("id,review\n1,A great film\n2,Dull and slow\n", encoding="utf-8")
    done = run_blocked(cli_code(["predict", str(folder), str(table), "--text-col", "review"]))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["A great film", "Dull and slow"]
    proba = load_exported(folder).predict_proba(["A great film", "Dull and slow"])[0]
    assert [line["label"] for line in lines] == [LABELS[i] for i in proba.argmax(axis=1)]
