"""``--strategy auto`` weighs the costlier strategy on evidence within ``--budget`` minutes
(issue 17, item 4): a budget too small to probe-and-train skips it and says so; one that fits
compares it with features on held-out training examples; metrics.json ``auto`` and the report
record what was compared and why the winner won; a bad ``--budget`` is refused.

Text runs use the tiny random BERT of the text tests (seconds a run) on texts whose labels no
encoder can predict, so that features misses enough held-out examples for a candidate to be
worth weighing; the image run uses MobileNetV2's packaged weights on scikit-learn's bundled
handwritten digits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from test_text_backbone import WORDS, _tiny_bert_folder  # noqa: E402

from transferkit.auto_evidence import DEFAULT_BUDGET_MINUTES, check_budget  # noqa: E402
from transferkit.cli import main  # noqa: E402
from transferkit.errors import BadInputError  # noqa: E402


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    return _tiny_bert_folder(tmp_path / "tiny") / "model.safetensors"


def _noise_texts(path: Path, per_class: int = 10) -> Path:
    """Three-word texts of the tiny vocabulary with labels drawn apart from the words."""
    rng = np.random.default_rng(0)
    rows = [
        f'"{" ".join(rng.choice(WORDS, 3))}",{label}'
        for label in ("a", "b")
        for _ in range(per_class)
    ]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _train(data: Path, out: Path, weights: Path, *extra: str) -> dict:
    args = ["-q", "train", str(data), "--out", str(out), "--backbone", "hf:test/tiny"]
    code = main([*args, "--weights", str(weights), "--no-progress", *extra])
    assert code == 0
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "ten"])
def test_a_budget_that_is_not_a_positive_number_is_refused(bad, tmp_path, capsys):
    data = _noise_texts(tmp_path / "t.csv")
    code = main(["-q", "train", str(data), "--out", str(tmp_path / "run"), "--budget", bad])
    assert code == 2
    err = capsys.readouterr().err
    assert "--budget must be a positive number of minutes" in err and repr(bad) in err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_a_budget_with_a_named_strategy_is_refused_and_the_default_is_modest(tmp_path, capsys):
    data = _noise_texts(tmp_path / "t.csv")
    args = ["-q", "train", str(data), "--out", str(tmp_path / "r"), "--strategy", "features"]
    assert main([*args, "--budget", "5"]) == 2
    assert "--budget limits the time --strategy auto spends" in capsys.readouterr().err
    with pytest.raises(BadInputError):
        check_budget(True)  # not a number of minutes, though float(True) is 1.0
    assert check_budget("2.5") == 2.5 and 0 < DEFAULT_BUDGET_MINUTES <= 15


def test_a_budget_too_small_skips_the_costlier_strategy_and_says_why(tiny, tmp_path):
    data = _noise_texts(tmp_path / "t.csv")
    m = _train(data, tmp_path / "run", tiny, "--budget", "0.001")
    auto = m["auto"]
    assert m["strategy"] == "features" == auto["winner"]
    (row,) = auto["candidates"]
    assert row["strategy"] == "contrastive" and row["status"] == "skipped"
    # the estimate comes from a measured probe: real steps of the real fit, timed
    assert row["probe"]["timed_steps"] >= 1 and row["probe"]["seconds_per_step"] > 0
    assert row["estimate_seconds"] > row["budget_left_seconds"]
    assert "of the 0.001 min budget left" in row["reason"] and "s a step x" in row["reason"]
    assert "contrastive" in m["strategy_reason"] and "budget" in m["strategy_reason"]
    assert "features" not in auto  # the rules' pick is only checked against the budget
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert 'id="auto"' in page and "What auto compared" in page and "0.001 min" in page


@pytest.mark.parametrize("split", [[], ["--val-size", "0.25"]], ids=["no-split", "val-split"])
def test_text_the_rules_contrastive_is_kept_when_its_run_fits_the_budget(split, tiny, tmp_path):
    """Text's measured rule trains the encoder: auto checks the frozen embeddings and that the
    run fits the budget (a measured probe), without fitting it twice more for evidence; the
    probe's fit, on the run's own examples, goes on to its end and is the run's model. With a
    validation split (the default from 10 texts a class on) as well: contrastive watches none
    and trains on those examples too, so its probe fits on them and is still the run."""
    data = _noise_texts(tmp_path / "t.csv")
    m = _train(data, tmp_path / "run", tiny, "--budget", "5", "--seed", "3", *split)
    auto = m["auto"]
    (row,) = auto["candidates"]
    assert row["strategy"] == "contrastive" and row["status"] == "fits"
    assert row["estimate_evidence_seconds"] == 0 and row["probe"]["ran_to_end"]
    assert row["probe_is_the_run"] and row["estimate_seconds"] <= 5 * 60
    assert "features" not in auto and "evidence" not in auto  # nothing held out, nothing fitted
    assert m["strategy"] == auto["winner"] == "contrastive"
    assert "the run's model" in m["strategy_reason"] and m["strategy_reason"] == auto["reason"]
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "What auto compared" in page and "fitted within the budget" in page
    # the same model as --strategy contrastive with the same seed, trained once: the seconds
    # of that fit are training, not choosing counted again
    plain = _train(
        data, tmp_path / "plain", tiny, "--strategy", "contrastive", "--seed", "3", *split
    )
    from transferkit import TransferClassifier

    texts = [line.split(",")[0].strip('"') for line in data.read_text().splitlines()[1:]]
    ours = TransferClassifier.load(tmp_path / "run" / "model", weights=tiny).predict_proba(texts)
    theirs = TransferClassifier.load(tmp_path / "plain" / "model", weights=tiny)
    np.testing.assert_allclose(ours, theirs.predict_proba(texts), atol=1e-5)
    assert m["hyperparameters"] == plain["hyperparameters"]
    assert m["seconds"]["train"] > 0 and m["seconds"]["choose"] < m["seconds"]["total"]


def _digit_folder(root: Path, digits: range, per_class: int) -> Path:
    """scikit-learn's bundled 8x8 handwritten digit scans, enlarged, in class folders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    scans = load_digits()
    for digit in digits:
        (root / str(digit)).mkdir(parents=True)
        for i, image in enumerate(scans.images[scans.target == digit][:per_class]):
            pixels = (255 - image * 16).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).resize((64, 64)).save(root / str(digit) / f"{i}.png")
    return root


@pytest.mark.e2e
def test_images_a_budget_that_fits_compares_on_held_out_examples_and_records_it(tmp_path):
    """Fine-tuning (not the images' rule) fitted and scored like features on the same held-out
    halves; the winner is fine-tuning exactly when the sign test says it clearly won."""
    from conftest import require_offline_weights

    require_offline_weights("mobilenet_v2")
    root = _digit_folder(tmp_path / "digits", range(10), 4)
    out = tmp_path / "run"
    args = ["--backbone", "mobilenet_v2", "--augment", "none", "--budget", "30"]
    code = main(["-q", "train", str(root), "--out", str(out), *args, "--no-progress"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    auto = m["auto"]
    (row,) = auto["candidates"]
    assert row["status"] == "compared" and row["estimate_seconds"] <= row["budget_left_seconds"]
    assert auto["evidence"] == "2-fold cross-fit on the training data"
    n = auto["features"]["n_scored"]
    assert n == m["n_train"]  # every training example scored once
    # paired counts on the same held-out examples, and the sign test over the disagreements
    right, base = row["accuracy"] * n, auto["features"]["accuracy"] * n
    assert round(right - base) == row["only_right"] - row["features_only_right"]
    assert 0 < row["sign_test_p"] <= 1 and "sign test" in row["reason"]
    assert m["strategy"] == auto["winner"] == ("finetune" if row["clear_win"] else "features")
    assert m["strategy_reason"] == auto["reason"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "What auto compared" in page and "sign test" in page


def test_text_the_frozen_embeddings_separate_skips_the_candidate_without_a_probe(tiny, tmp_path):
    from itertools import permutations

    rows = [f"{' '.join(words)},p" for words in permutations(("good", "great", "fun"))]
    rows += [f"{' '.join(words)},n" for words in permutations(("bad", "awful", "dull"))]
    data = tmp_path / "t.csv"
    data.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    m = _train(data, tmp_path / "run", tiny)
    (row,) = m["auto"]["candidates"]
    assert m["strategy"] == "features" and row["status"] == "skipped" and "probe" not in row
    assert "in cross-validation" in row["reason"] and "already separate" in row["reason"]
    assert m["auto"]["budget_minutes"] == DEFAULT_BUDGET_MINUTES


@pytest.mark.e2e
def test_images_features_gets_right_leaves_nothing_to_weigh_without_a_probe(tmp_path):
    """Features that miss fewer held-out examples than a clear win needs: fine-tuning is not
    even probed (MobileNetV2's packaged weights on drawn shapes)."""
    from conftest import make_shapes_folder, require_offline_weights

    require_offline_weights("mobilenet_v2")
    data = make_shapes_folder(tmp_path / "shapes", per_class=6)
    out = tmp_path / "run"
    code = main(["-q", "train", str(data), "--out", str(out), "--backbone", "mobilenet_v2",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (row,) = m["auto"]["candidates"]
    assert m["strategy"] == "features" and row["strategy"] == "finetune" and "probe" not in row
    assert "a clear win (sign test p <= 0.1) needs at least 4" in row["reason"]


@pytest.mark.e2e
def test_images_too_costly_for_the_budget_keep_features_and_say_so(tmp_path):
    """Real handwritten digits (scikit-learn's bundled 8x8 scans, enlarged), MobileNetV2 with
    its packaged weights: fine-tuning is probed, estimated, and skipped for a 0.05 min budget."""
    from conftest import require_offline_weights

    require_offline_weights("mobilenet_v2")
    # ten classes of four: features misses enough held out
    root = _digit_folder(tmp_path / "digits", range(10), 4)
    out = tmp_path / "run"
    code = main(["-q", "train", str(root), "--out", str(out), "--backbone", "mobilenet_v2",
                 "--augment", "none", "--budget", "0.05", "--no-progress"])  # fmt: skip
    assert code == 0
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (row,) = m["auto"]["candidates"]
    assert m["strategy"] == "features" and row["strategy"] == "finetune"
    assert row["status"] == "skipped" and "min of the 0.05 min budget left" in row["reason"]
    assert row["probe"]["planned_steps"] >= row["probe"]["timed_steps"] >= 1
    assert "run twice by the small-data guard" in row["reason"]  # 3 a class: the guard runs


@pytest.mark.e2e
def test_with_a_validation_split_the_evidence_is_scored_on_it(tmp_path):
    """Enough data for fine-tuning's validation split: features (and any candidate) fit on the
    rest and are scored on that split, not cross-fitted."""
    from conftest import require_offline_weights

    require_offline_weights("mobilenet_v2")
    root = _digit_folder(tmp_path / "digits", range(3), 80)
    out = tmp_path / "run"
    code = main(["-q", "train", str(root), "--out", str(out), "--backbone", "mobilenet_v2",
                 "--budget", "0.001", "--no-progress"])  # fmt: skip
    assert code == 0
    auto = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["auto"]
    assert auto["evidence"].startswith("the validation split (")
    n_val = auto["features"]["n_scored"]
    assert f"({n_val} examples)" in auto["evidence"]
    assert 30 <= n_val < 240 / 3  # 15 % of the training part, every class in it
