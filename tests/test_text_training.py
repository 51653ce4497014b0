"""Training text encoders: token batches for the engine, the contrastive (SetFit-style) pair
loss, and both `contrastive` and `finetune` end to end on a tiny random BERT with a reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from test_text_backbone import _tiny_bert_folder  # noqa: E402

from transferkit.data import Dataset, Sample  # noqa: E402
from transferkit.errors import BadInputError  # noqa: E402
from transferkit.estimator import TransferClassifier  # noqa: E402
from transferkit.strategies.contrastive import ContrastiveConfig  # noqa: E402

POS = ["good movie", "great fun film", "a good actor", "great plot", "fun movie", "good fun"]
NEG = ["bad movie", "dull film", "a bad actor", "awful plot", "dull movie", "not fun"]


def _dataset(pos=POS, neg=NEG) -> Dataset:
    rows = [(t, "pos") for t in pos] + [(t, "neg") for t in neg]
    samples = tuple(Sample(Path(f"d.csv:{i}"), y, t) for i, (t, y) in enumerate(rows))
    return Dataset(samples, ("neg", "pos"), source="d.csv", modality="text")


@pytest.fixture()
def tiny_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    return _tiny_bert_folder(tmp_path / "tiny") / "model.safetensors"


def test_text_batches_pack_ids_and_mask_and_keep_eval_order(tiny_weights):
    from transferkit.backbones import resolve_backbone
    from transferkit.finetune.text_batches import TextBatches

    enc = resolve_backbone("hf:test/tiny", weights=tiny_weights).materialize()
    ds = _dataset()
    batches = TextBatches(ds.texts, ds.targets, enc, batch_size=5)
    assert len(batches) == 12 and batches.num_batches() == 3
    evals = list(batches.eval_batches())
    assert [len(y) for _, y in evals] == [5, 5, 2]
    x, y = evals[0]
    assert x.dtype == torch.int64 and x.shape[:2] == (5, 2)
    np.testing.assert_array_equal(y.numpy(), ds.targets[:5])
    with torch.inference_mode():
        packed = enc(x)
        direct = enc(**enc.tokenize(list(ds.texts[:5])))
    torch.testing.assert_close(packed, direct)
    first = [y.tolist() for _, y in batches.train_epoch(np.random.default_rng(3))]
    again = [y.tolist() for _, y in batches.train_epoch(np.random.default_rng(3))]
    assert first == again and sorted(sum(first, [])) == sorted(ds.targets.tolist())


def test_contrastive_batch_and_steps_follow_the_data_size():
    cfg = ContrastiveConfig()
    assert cfg.resolved(16) == (16, 8, 1e-4)  # one batch: 8 full-batch steps
    assert cfg.resolved(10) == (10, 8, 1e-4)
    assert cfg.resolved(32) == (16, 32, 1e-4)  # 16 epochs of 2 batches
    assert cfg.resolved(128) == (64, 24, 1e-4)  # 12 epochs: at most 1536 texts encoded
    assert cfg.resolved(5000)[1] == 79  # one epoch of 79 batches: large sets have pairs enough
    assert ContrastiveConfig(batch_size=32, lr=1e-5, epochs=2).resolved(500) == (32, 32, 1e-5)


def test_contrastive_reads_long_texts_for_proportionally_fewer_epochs():
    """The epoch rule is for texts of at most SHORT_TEXT_TOKENS: texts read 4x as long get a
    quarter of the epochs (each text read about as many tokens in all); given epochs stand."""
    from transferkit.strategies.contrastive import SHORT_TEXT_TOKENS

    cfg = ContrastiveConfig()
    assert cfg.resolved(32, SHORT_TEXT_TOKENS) == (16, 32, 1e-4)  # short: 16 epochs
    assert cfg.resolved(32, 4 * SHORT_TEXT_TOKENS) == (16, 8, 1e-4)  # 4 epochs of 2 batches
    assert cfg.resolved(16, 4 * SHORT_TEXT_TOKENS) == (16, 2, 1e-4)  # one batch: 8 -> 2
    assert cfg.resolved(5000, 4 * SHORT_TEXT_TOKENS)[1] == 79  # at least one epoch
    assert ContrastiveConfig(epochs=3).resolved(32, 4 * SHORT_TEXT_TOKENS) == (16, 6, 1e-4)


def test_contrastive_trains_every_layer_but_the_embeddings_by_default():
    assert ContrastiveConfig().trained_groups(7) == 6
    assert ContrastiveConfig(train_groups=2).trained_groups(7) == 2
    assert ContrastiveConfig(train_groups=9).trained_groups(7) == 7


def test_contrastive_config_rejects_bad_values():
    with pytest.raises(BadInputError, match="lr"):
        ContrastiveConfig(lr=0)
    with pytest.raises(BadInputError, match="epochs"):
        ContrastiveConfig(epochs=0)
    with pytest.raises(BadInputError, match="lr"):
        ContrastiveConfig(lr=float("nan"))
    with pytest.raises(BadInputError, match="precision"):
        ContrastiveConfig(precision="fp8")
    with pytest.raises(BadInputError, match="supcon, cosine"):
        ContrastiveConfig(loss="triplet")
    with pytest.raises(BadInputError, match="temperature"):
        ContrastiveConfig(temperature=0)
    with pytest.raises(BadInputError, match="pair_windows must be true or false"):
        ContrastiveConfig(pair_windows="yes")
    with pytest.raises(BadInputError, match="script_guard must be true or false"):
        ContrastiveConfig(script_guard=1)


def test_contrastive_trains_the_encoder_then_a_head_and_reloads(tiny_weights, tmp_path):
    ds = _dataset()
    clf = TransferClassifier(
        backbone="hf:test/tiny",
        weights=tiny_weights,
        strategy="contrastive",
        # every group, embeddings too (random ones must move): the uncached path
        strategy_params={"epochs": 30, "lr": 1e-3, "batch_size": 12, "train_groups": 3},
        progress=False,
    ).fit(ds)
    assert clf.fit_info_["contrastive"]["cached_lower_layers"] is False
    history = clf.fit_info_["contrastive"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]  # pairs pulled into place
    assert clf.backbone_.weights_sha256 != clf.fit_info_["pretrained_weights_sha256"]
    assert clf.score(ds) >= 0.9  # its own training texts, after pulling classes apart
    clf.save(tmp_path / "model")
    again = TransferClassifier.load(tmp_path / "model", weights=tiny_weights, progress=False)
    np.testing.assert_allclose(again.predict_proba(ds), clf.predict_proba(ds), atol=1e-5)


def test_contrastive_can_train_only_the_top_layer_groups(tiny_weights):
    from transferkit.backbones import resolve_backbone

    before = dict(resolve_backbone("hf:test/tiny", weights=tiny_weights).materialize()
                  .named_parameters())  # fmt: skip
    clf = TransferClassifier(
        backbone="hf:test/tiny",
        weights=tiny_weights,
        strategy="contrastive",
        strategy_params={"epochs": 5, "lr": 1e-3, "batch_size": 12, "train_groups": 1},
        progress=False,
        cache=False,
    ).fit(_dataset())
    groups = clf.backbone_.layer_groups()
    after = dict(clf.backbone_.named_parameters())
    top, below = set(groups[-1]), {n for g in groups[:-1] for n in g}
    assert any(not torch.equal(after[n], before[n]) for n in top)
    assert all(torch.equal(after[n], before[n]) for n in below)


def _contrastive(tiny_weights, ds, **params) -> TransferClassifier:
    return TransferClassifier(
        backbone="hf:test/tiny",
        weights=tiny_weights,
        strategy="contrastive",
        strategy_params={"epochs": 4, "lr": 1e-3, "batch_size": 6, "train_groups": 1, **params},
        progress=False,
        cache=False,
        seed=2,
    ).fit(ds)


def test_contrastive_reads_texts_longer_than_the_pair_cap_through_windows(tiny_weights):
    """Three-word texts are 5 tokens with [CLS] and [SEP]: at a pair cap of 4 each is read
    through one of its two windows an epoch (the cached lower layers hold every window), and
    that trains another model than reading each text's first 2 words."""
    ds = _dataset()
    windowed = _contrastive(tiny_weights, ds, pair_max_length=4)
    info = windowed.fit_info_["contrastive"]
    three_words = sum(len(t.split()) == 3 for t in [*POS, *NEG])
    assert info["windowed_texts"] == three_words and info["windows"] == len(ds) + three_words
    # an epoch reads one window of each text: 4 tokens of a windowed text, 3 or 4 of the rest
    assert info["mean_tokens"] <= 4
    assert info["cached_lower_layers"] is True
    first = _contrastive(tiny_weights, ds, pair_max_length=4, pair_windows=False)
    assert first.fit_info_["contrastive"]["windowed_texts"] == 0
    assert not np.allclose(windowed.predict_proba(ds), first.predict_proba(ds), atol=1e-6)


def test_contrastive_on_texts_that_fit_the_pair_cap_is_the_same_with_or_without_windows(
    tiny_weights,
):
    ds = _dataset()
    windowed = _contrastive(tiny_weights, ds)
    assert windowed.fit_info_["contrastive"]["windowed_texts"] == 0
    first = _contrastive(tiny_weights, ds, pair_windows=False)
    np.testing.assert_array_equal(windowed.predict_proba(ds), first.predict_proba(ds))


def test_finetune_runs_the_shared_engine_on_text(tiny_weights, tmp_path):
    ds = _dataset(POS * 2, NEG * 2)
    clf = TransferClassifier(
        backbone="hf:test/tiny",
        weights=tiny_weights,
        strategy="finetune",
        strategy_params={"epochs": 3, "lr": 1e-3, "unfreeze_groups": None, "augment": "none"},
        progress=False,
    ).fit(ds)
    stages = [r["stage"] for r in clf.fit_info_["training"]["history"]]
    assert stages[0] == "head" and stages[1:] == ["unfreeze:1", "unfreeze:2", "unfreeze:3"]
    clf.save(tmp_path / "model")
    again = TransferClassifier.load(tmp_path / "model", weights=tiny_weights, progress=False)
    np.testing.assert_allclose(again.predict_proba(ds), clf.predict_proba(ds), atol=1e-5)


def test_frozen_or_image_backbones_are_refused_for_text_training(tiny_weights):
    with pytest.raises(BadInputError, match="frozen"):
        TransferClassifier(backbone="glove_6b_50d", strategy="contrastive").fit(_dataset())
    with pytest.raises(BadInputError, match="holds text data"):
        TransferClassifier(backbone="mobilenet_v2", strategy="contrastive").fit(_dataset())


def test_predict_takes_texts_and_text_files_from_python(tiny_weights, tmp_path):
    clf = TransferClassifier(
        backbone="hf:test/tiny", weights=tiny_weights, strategy="features", progress=False
    ).fit(_dataset())
    lines = tmp_path / "more.txt"
    lines.write_text("good fun\nawful plot\n", encoding="utf-8")
    proba = clf.predict_proba(["great movie", lines, "dull film"])
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)
    with pytest.raises(BadInputError, match="empty text"):
        clf.predict(["  "])


def test_lr_find_on_text_uses_the_text_pipeline(tiny_weights, tmp_path, capsys):
    import csv
    import json

    from transferkit.cli import main

    data = tmp_path / "d.csv"
    with open(data, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows([(t, "pos") for t in POS] + [(t, "neg") for t in NEG])
    args = ["lr-find", str(data), "--out", str(tmp_path / "lr"), "--backbone", "hf:test/tiny"]
    assert main([*args, "--weights", str(tiny_weights), "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["suggestion"] > 0 and (tmp_path / "lr" / "lr_find.png").is_file()


def test_contrastive_head_skips_the_c_search_unless_asked(tiny_weights):
    params = {"epochs": 2, "lr": 1e-3, "batch_size": 12}
    clf = TransferClassifier(
        backbone="hf:test/tiny", weights=tiny_weights, strategy="contrastive",
        strategy_params=params, progress=False, cache=False,
    ).fit(_dataset())  # fmt: skip
    assert clf.head_.info_ == {"C": 1.0, "cv_folds": 0}
    searched = TransferClassifier(
        backbone="hf:test/tiny", weights=tiny_weights, strategy="contrastive",
        strategy_params=params, head_params={"cv": 3}, progress=False, cache=False,
    ).fit(_dataset())  # fmt: skip
    assert searched.head_.info_["cv_folds"] == 3
