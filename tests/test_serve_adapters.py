"""`transferkit serve` hosting two adapter bundles (LoRA sentiment, Pfeiffer topic) on one
all-MiniLM base, as a real process: each its own model, predicting as the bundle loaded alone
does, the base's weights held once."""

from __future__ import annotations

import httpx
import pytest
from adapter_bundles import adapter_bundles
from serve_helpers import Server, metric_samples

pytest.importorskip("fastapi")
pytestmark = pytest.mark.e2e

TIMEOUT = 120
TEXTS = [
    "a gripping story with superb acting",
    "the noodles were soggy and far too salty",
    "dull, predictable and too long",
    "fresh bread and excellent cheese",
]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return adapter_bundles(tmp_path_factory)


@pytest.fixture(scope="module")
def server(bundles, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve-adapters-log") / "stderr.txt"
    srv = Server(*(f"{name}={path}" for name, path in bundles.items()), log=log)
    yield srv
    srv.close()


def test_each_adapter_bundle_is_its_own_model_on_one_base(server):
    models = {m["name"]: m for m in httpx.get(f"{server.url}/v1/models").json()["models"]}
    assert sorted(models) == ["sentiment", "topic"]
    assert models["sentiment"]["labels"] == ["negative", "positive"]
    assert models["topic"]["labels"] == ["film", "food"]
    assert models["sentiment"]["adapter"]["method"] == "lora"
    assert models["topic"]["adapter"]["method"] == "pfeiffer"
    for name, other in (("sentiment", "topic"), ("topic", "sentiment")):
        assert models[name]["strategy"] == "adapter"
        assert models[name]["backbone"] == "all_minilm_l6_v2"
        assert models[name]["shares_backbone_with"] == [other]
    family = "transferkit_backbones_loaded"
    metrics = metric_samples(httpx.get(f"{server.url}/metrics").text, family)
    assert metrics[(family, ())] == 1


def test_each_model_predicts_as_its_bundle_alone(server, bundles):
    from transferkit import TransferClassifier

    for name, path in bundles.items():
        r = httpx.post(
            f"{server.url}/v1/models/{name}/predict?top=2", json={"texts": TEXTS}, timeout=TIMEOUT
        )
        assert r.status_code == 200, r.text
        got = r.json()["predictions"]
        alone = TransferClassifier.load(path, progress=False, cache=False)
        proba = alone.predict_details(TEXTS, literal=True)[0]
        for row, p in zip(proba, got):
            assert p["label"] == alone.labels_[int(row.argmax())]
            for label, score in p["scores"].items():
                assert score == pytest.approx(row[alone.labels_.index(label)], abs=1e-5)
