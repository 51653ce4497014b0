"""Text end to end through the CLI with the real offline all-MiniLM-L6-v2: train on a CSV,
evaluate a JSONL, predict --text and .txt lines, and the errors that name the fix."""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("transformers")

from transferkit.cli import main  # noqa: E402

POSITIVE = [
    "I loved this film, it was wonderful",
    "a brilliant and moving story",
    "great acting and a beautiful score",
    "one of the best movies of the year",
    "funny, warm and delightful",
    "an excellent, gripping thriller",
    "superb performances all round",
    "a charming and joyful experience",
    "I enjoyed every minute of it",
    "a masterpiece, truly inspiring",
]
NEGATIVE = [
    "I hated this film, it was terrible",
    "a boring and pointless story",
    "awful acting and a grating score",
    "one of the worst movies of the year",
    "dull, cold and tiresome",
    "a clumsy, predictable thriller",
    "dreadful performances all round",
    "a tedious and joyless experience",
    "I regretted every minute of it",
    "a disaster, truly depressing",
]
TEST = [
    ("what a lovely, uplifting movie", "positive"),
    ("a wonderful cast and a great script", "positive"),
    ("this was a fantastic film", "positive"),
    ("a horrible, boring waste of time", "negative"),
    ("the worst film I have ever seen", "negative"),
    ("painfully dull and badly acted", "negative"),
]


def _minilm_or_skip():
    from conftest import require_offline_weights

    require_offline_weights("all_minilm_l6_v2")  # skips outside CI, fails under CI


@pytest.fixture()
def text_data(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    train = tmp_path / "reviews.csv"
    with open(train, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["review", "sentiment"])
        writer.writerows([(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE])
    test = tmp_path / "test.jsonl"
    test.write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in TEST), encoding="utf-8"
    )
    return train, test


@pytest.mark.e2e
def test_train_evaluate_predict_text(text_data, tmp_path, capsys):
    _minilm_or_skip()
    train, test = text_data
    run = tmp_path / "run"
    assert main(["train", str(train), "--test", str(test), "--out", str(run), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["backbone"] == "all_minilm_l6_v2"  # the default for text data
    assert summary["accuracy"] >= 5 / 6
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_test"] == len(TEST)
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["backbone"]["modality"] == "text"
    assert manifest["backbone"]["preprocess"]["kind"] == "text"
    assert set(metrics["per_class"]) == {"negative", "positive"}
    assert metrics["languages"] == ["en"]  # what the encoder covers, shown in the report
    assert "languages" in (run / "report.html").read_text(encoding="utf-8")

    assert main(["evaluate", str(run / "model"), str(test), "--no-progress"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"])

    lines = tmp_path / "new.txt"
    lines.write_text("an absolute delight\n\nutterly boring\n", encoding="utf-8")
    args = ["predict", str(run / "model"), str(lines), "--text", "a joyless mess", "--no-progress"]
    assert main(args) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [o["label"] for o in out] == ["positive", "negative", "negative"]
    assert out[0]["input"].endswith("new.txt:1") and out[0]["text"] == "an absolute delight"
    assert out[2]["input"] == "a joyless mess"


@pytest.mark.e2e
def test_image_backbones_and_training_frozen_encoders_are_refused(text_data, tmp_path, capsys):
    _minilm_or_skip()
    train, _ = text_data
    code = main(["train", str(train), "--out", str(tmp_path / "r"), "--backbone", "mobilenet_v2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds text data" in err and "--backbone all_minilm_l6_v2" in err
    args = ["train", str(train), "--out", str(tmp_path / "r2"), "--strategy", "finetune"]
    assert main([*args, "--backbone", "glove_6b_50d"]) == 2
    assert "frozen encoder" in capsys.readouterr().err


def test_finetune_only_options_with_contrastive_are_refused_naming_them(
    text_data, tmp_path, capsys
):
    train, _ = text_data
    out = tmp_path / "r"
    args = ["train", str(train), "--out", str(out), "--strategy", "contrastive"]
    assert main([*args, "--lr-decay", "0.5", "--patience", "2"]) == 2
    err = capsys.readouterr().err
    assert "--lr-decay, --patience do not apply to the contrastive strategy" in err
    assert "it takes --epochs, --lr" in err and "internal error" not in err
    assert not out.exists()


def test_training_options_with_strategy_auto_say_to_name_the_strategy(text_data, tmp_path, capsys):
    train, _ = text_data
    assert main(["train", str(train), "--out", str(tmp_path / "r"), "--epochs", "3"]) == 2
    assert "name the strategy to set them" in capsys.readouterr().err


def test_column_options_name_the_columns(text_data, tmp_path, capsys):
    train, _ = text_data
    code = main(["train", str(train), "--out", str(tmp_path / "r"), "--text-col", "body"])
    assert code == 2
    assert "['review', 'sentiment']" in capsys.readouterr().err


@pytest.mark.e2e
def test_chinese_text_defaults_to_the_multilingual_encoder(tmp_path, monkeypatch, capsys):
    from conftest import require_offline_weights

    require_offline_weights("use_multilingual")
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    good = ["这部电影非常好看", "演员的表演很出色", "我非常喜欢这个故事", "音乐很动人", "值得一看"]
    bad = ["剧情太无聊了", "浪费时间的电影", "演技非常差", "故事毫无逻辑", "不推荐这部片"]
    data = tmp_path / "zh.csv"
    with open(data, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows([(t, "正面") for t in good] + [(t, "负面") for t in bad])
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--test-size", "0.4", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["backbone"] == "use_multilingual"
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["strategy"] == "features" and "zh" in metrics["languages"]
