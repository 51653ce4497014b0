"""``transferkit rank``: every candidate scored from cached embeddings, ranked by LogME,
unavailable ones listed as skipped, rank.json written."""

from __future__ import annotations

import json

import pytest
from conftest import make_shapes_folder, require_offline_weights

from transferkit.cli import main
from transferkit.errors import BadInputError
from transferkit.ranking import candidate_names, explain


@pytest.mark.e2e
def test_rank_images_scores_candidates_and_skips_unknown_ones(tmp_path, capsys):
    require_offline_weights("mobilenet_v2")
    require_offline_weights("efficientnet_lite0")
    data = make_shapes_folder(tmp_path / "shapes", per_class=8)
    out = tmp_path / "rank"
    args = ["rank", str(data), "--backbones", "mobilenet_v2,efficientnet_lite0,nonsense_net"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "rank.json").read_text(encoding="utf-8"))
    assert [r["rank"] for r in report["ranking"]] == [1, 2]
    assert {r["backbone"] for r in report["ranking"]} == {"mobilenet_v2", "efficientnet_lite0"}
    logmes = [r["logme"] for r in report["ranking"]]
    assert logmes == sorted(logmes, reverse=True)
    assert report["skipped"][0]["backbone"] == "nonsense_net"
    # ImageNet backbones keep their source classifier: LEEP and NCE are log-likelihoods
    assert all(r["leep"] <= 0 and r["nce"] <= 0 for r in report["ranking"])
    assert report["winner"] in printed and "highest LogME" in report["explanation"]
    # the embeddings are cached: training the winner afterwards encodes nothing again
    again = ["rank", str(data), "--backbones", report["winner"], "--out", str(tmp_path / "r2")]
    assert main([*again, "--no-progress"]) == 0
    cached = json.loads((tmp_path / "r2" / "rank.json").read_text())["ranking"][0]
    assert cached["n_cached"] == 24


def test_candidates_default_to_the_offline_backbones_of_the_modality():
    names = candidate_names(None, "text")
    offline_text = {"all_minilm_l6_v2", "use_multilingual", "wordllama", "glove_6b_50d"}
    offline_text |= {"multilingual_e5_small"}
    assert names and all(n in offline_text for n in names)
    assert candidate_names("a, b", "image") == ["a", "b"]
    with pytest.raises(BadInputError, match="at least one name"):
        candidate_names(" , ", "image")


def test_explanation_says_when_the_scores_disagree():
    rows = [
        {"backbone": "a", "logme": 1.0, "knn_loo": 0.5},
        {"backbone": "b", "logme": 0.5, "knn_loo": 0.9},
    ]
    text = explain(rows)
    assert text.startswith("a has the highest LogME") and "disagree" in text
    assert explain([]) == "No candidate could be scored."


@pytest.mark.e2e
def test_train_backbone_auto_takes_the_ranking_winner_and_reports_why(tmp_path):
    for name in candidate_names(None, "image"):
        require_offline_weights(name)
    data = make_shapes_folder(tmp_path / "shapes", per_class=10)
    out = tmp_path / "run"
    args = ["train", str(data), "--backbone", "auto", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    ranking = metrics["ranking"]
    assert metrics["backbone"] == ranking["winner"] == ranking["ranking"][0]["backbone"]
    assert len(ranking["ranking"]) == len(candidate_names(None, "image"))
    # ranked on the training data only: the 20 % test split is never looked at
    assert ranking["n_examples"] == metrics["n_train"]
    assert metrics["backbone_reason"].startswith("best of")
    # --strategy auto weighed fine-tuning on held-out training examples of the winner's features
    assert "held-out training examples" in metrics["strategy_reason"]
    assert metrics["auto"]["candidates"][0]["strategy"] == "finetune"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="ranking"' in page and "why this backbone" in page
    assert page.count('<span class="tag">chosen</span>') == 1


def test_english_only_encoders_rank_after_those_that_read_the_script():
    from pathlib import Path

    from transferkit.data import Dataset, Sample
    from transferkit.ranking import order_rows

    texts = ["这家酒店很好", "房间太小了", "服务很周到", "不会再来了"]
    samples = tuple(Sample(Path(f"t.csv:{i}"), "ab"[i % 2], t) for i, t in enumerate(texts))
    chinese = Dataset(samples, ("a", "b"), modality="text")
    rows = [
        {"backbone": "all_minilm_l6_v2", "logme": 0.5, "knn_loo": 0.6},
        {"backbone": "use_multilingual", "logme": 0.1, "knn_loo": 0.5},
        {"backbone": "glove_6b_50d", "logme": 0.3, "knn_loo": 0.5},
    ]
    order_rows(chinese, rows)
    assert [r["backbone"] for r in rows] == ["use_multilingual", "all_minilm_l6_v2", "glove_6b_50d"]
    assert "knows en only" in rows[1]["language_mismatch"]
    sentence = explain(rows)
    assert "highest LogME of the encoders that read it" in sentence and "ranked last" in sentence
    english = Dataset(
        tuple(Sample(Path(f"e.csv:{i}"), "ab"[i % 2], f"a fine film {i}") for i in range(4)),
        ("a", "b"),
        modality="text",
    )
    rows = [dict(r, language_mismatch=None) for r in rows]
    for r in rows:
        r.pop("language_mismatch")
    order_rows(english, rows)  # Latin-script data: LogME alone decides
    assert [r["backbone"] for r in rows][0] == "all_minilm_l6_v2"
