"""Training through the studio's HTTP API: a project of real MNIST digits becomes a training
folder of hard links to its blobs, ``train_run`` trains it with the CLI's defaults (the
modality's default backbone, ``--strategy auto``), and the run's answer is its metrics.json
(accuracy with its interval, per class, confusion, learning curve) and its report; the second
training on the same examples hits the embedding cache; a project that cannot be trained is
refused naming the class."""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing

import pytest
from conftest import require_offline_weights
from studio_helpers import client
from studio_train_helpers import digit_examples, make_project, train

from transferkit.studio.app import create_app


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    require_offline_weights()
    root = tmp_path_factory.mktemp("studio")
    examples = digit_examples(root / "digits", per_class=11)
    app = create_app(root / "ws")
    # an embedding cache of this module's own: other tests of the session embed the same digits,
    # and the first training here must be a cold one for the cache test to mean anything
    before = os.environ["TRANSFERKIT_CACHE_DIR"]
    os.environ["TRANSFERKIT_CACHE_DIR"] = str(root / "cache")
    try:
        with client(app) as c:
            project = make_project(c, "digits", "image", {k: v[:10] for k, v in examples.items()})
            yield c, app, project, root / "ws"
    finally:
        os.environ["TRANSFERKIT_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def first(studio):
    c, _, project, _ = studio
    return train(c, project["id"])


def test_choices_offer_the_clis_defaults_first_and_the_ranking_as_a_choice(studio):
    c = studio[0]
    answer = c.get("/api/choices", params={"modality": "image"}).json()
    backbones = {b["name"]: b for b in answer["backbones"]}
    assert answer["backbones"][0]["name"] == "auto" and not backbones["auto"]["default"]
    assert [b["name"] for b in answer["backbones"] if b["default"]] == ["default"]
    assert "mobilenet_v2" in backbones["default"]["doc"] and "mobilenet_v2" in backbones
    assert all(not b["non_commercial"] for b in answer["backbones"])
    strategies = [s["name"] for s in answer["strategies"]]
    assert strategies[0] == "auto" and "features" in strategies and "finetune" in strategies
    assert "coral" not in strategies  # needs a target domain the studio does not have
    text = c.get("/api/choices", params={"modality": "text"}).json()
    assert "contrastive" in [s["name"] for s in text["strategies"]]
    assert c.get("/api/choices", params={"modality": "video"}).status_code == 422


def test_the_run_answers_with_its_own_metrics_json(studio, first):
    _, _, project, ws = studio
    job, run = first
    assert job["result"]["run_id"] == run["id"] and job["stage"] == "done"
    assert any(line.startswith("Encoding (mobilenet_v2)") for line in job["log"])
    saved = json.loads((ws / "runs" / run["id"] / "metrics.json").read_text())
    m = run["metrics"]
    defaults = {"backbone": "default", "strategy": "auto", "seed": 0, "baseline": False}
    assert run["settings"] == defaults
    assert m["backbone"] == "mobilenet_v2" == saved["backbone"]
    assert m["strategy"] == saved["strategy"] and m["strategy_reason"] == saved["strategy_reason"]
    assert m["accuracy"] == saved["accuracy"] and m["accuracy_interval"] == saved["accuracy_ci95"]
    lo, hi = m["accuracy_interval"]
    assert lo <= m["accuracy"] <= hi
    assert m["labels"] == [c["name"] for c in project["classes"]]
    assert m["confusion"] == saved["confusion_matrix"]
    assert sum(map(sum, m["confusion"])) == m["n_test"] == 6  # 20 % of 30, stratified
    assert set(m["per_class"]) == set(m["labels"])
    assert m["learning_curve"]["points"] == saved["learning_curve"]["points"]
    assert m["accuracy"] >= 0.5  # three digit classes; chance is 0.33


def test_the_report_is_served_sandboxed(studio, first):
    c = studio[0]
    run = first[1]
    report = c.get(run["report_url"])
    assert report.status_code == 200
    assert report.headers["content-security-policy"] == "sandbox"
    assert report.headers["content-type"].startswith("text/html")
    assert "ccuracy" in report.text


def test_the_snapshot_is_hard_links_to_the_blobs(studio, first):
    c, app, project, ws = studio
    data = ws / "runs" / first[1]["id"] / "data"
    for cls in project["classes"]:
        files = sorted((data / cls["name"]).iterdir())
        assert len(files) == cls["count"] == 10
        for example in c.get(f"/api/classes/{cls['id']}/examples").json():
            snap = data / cls["name"] / f"{example['sha256']}{example['ext']}"
            assert os.path.samefile(snap, app.state.workspace.blob_path(example))


def cached_embeddings(cache_root) -> dict[str, dict[str, int]]:
    """Each embedding cache file under ``cache_root`` (one a backbone variant): its rows' rowids
    by digest. The cache writes ``INSERT OR REPLACE``: an embedding encoded again, even one
    already stored, comes back under a new rowid."""
    rows = {}
    for path in sorted((cache_root / "embeddings").glob("*.sqlite")):
        with closing(sqlite3.connect(path)) as db:
            rows[path.name] = dict(db.execute("SELECT digest, rowid FROM emb").fetchall())
    return rows


def test_a_second_training_on_the_same_examples_hits_the_embedding_cache(studio, first):
    c, _, project, ws = studio
    # every embedding encoded is written: a second training that finds them all in the cache
    # writes none. (This compared encoding seconds, second < 0.25 x first, and failed by
    # 0.0003 s on a busy CI machine: what was written cannot be late.)
    cache_root = ws.parent / "cache"
    before = cached_embeddings(cache_root)
    assert before and all(before.values()), before  # the first training filled it
    _, second = train(c, project["id"])
    assert second["id"] != first[1]["id"]
    a, b = first[1]["metrics"], second["metrics"]
    assert b["accuracy"] == a["accuracy"] and b["confusion"] == a["confusion"]
    assert cached_embeddings(cache_root) == before
    runs = c.get(f"/api/projects/{project['id']}/runs").json()
    assert [r["id"] for r in runs[:2]] == [second["id"], first[1]["id"]]


def test_a_project_that_cannot_be_trained_is_refused_naming_why(studio, tmp_path):
    c = studio[0]
    digits = digit_examples(tmp_path / "few", digits=(3, 4), per_class=3)
    lone = make_project(c, "lone", "image", {"digit-3": digits["digit-3"]})
    answer = c.post(f"/api/projects/{lone['id']}/train", json={})
    assert answer.status_code == 422 and "at least 2" in answer.json()["error"]["message"]
    few = make_project(c, "few", "image", {"digit-3": digits["digit-3"], "digit-4": []})
    message = c.post(f"/api/projects/{few['id']}/train", json={}).json()["error"]["message"]
    assert "'digit-4' has 0 examples" in message
    ok = make_project(c, "ok", "image", digits)
    pid = ok["id"]
    for body, words in [
        ({"backbone": "resnet_9000"}, "backbone 'resnet_9000' is not one of"),
        ({"strategy": "coral"}, "strategy 'coral' is not one of"),
        ({"seed": -1}, "seed must be a whole number"),
        ({"seed": "1"}, "seed must be a whole number"),
        ({"baseline": "yes"}, "baseline must be true or false"),
        ({"epochs": 3}, "unknown training settings ['epochs']"),
    ]:
        answer = c.post(f"/api/projects/{pid}/train", json=body)
        assert answer.status_code == 422, body
        assert words in answer.json()["error"]["message"]
    assert c.post("/api/projects/nope/train", json={}).status_code == 404
    assert c.get(f"/api/projects/{pid}/runs").json() == []  # nothing refused left a run
