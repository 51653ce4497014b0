"""The --baseline verdict: transfer helped, negative transfer, or no clear difference."""

from __future__ import annotations

import json

import pytest

from transferkit.baseline import NEUTRAL_POINTS, baseline_section


def _section(transfer_acc: float, scratch_acc: float, **kw):
    transfer = {"accuracy": transfer_acc, "macro_f1": transfer_acc - 0.01}
    scratch = {
        "accuracy": scratch_acc,
        "macro_f1": scratch_acc - 0.02,
        "seconds": {"train": 1.5},
        "training": {"history": [], "best_epoch": 0},
        **kw,
    }
    return baseline_section(transfer, scratch, strategy="finetune", epochs=3)


def test_transfer_helped():
    out = _section(0.90, 0.75)
    assert out["verdict"] == "transfer_helped"
    assert out["delta_points"] == pytest.approx(15.0)
    assert "transfer helped by +15.0 points" in out["message"]
    assert out["advice"] == []


def test_negative_transfer_gives_advice():
    out = _section(0.60, 0.72)
    assert out["verdict"] == "negative_transfer"
    assert out["delta_points"] == pytest.approx(-12.0)
    assert "negative transfer" in out["message"]
    assert "12.0 points" in out["message"]
    assert "finetune" in out["message"]  # names the strategy that lost
    advice = " ".join(out["advice"]).lower()
    assert out["advice"]
    assert "another backbone" in advice
    assert "fine-tune deeper" in advice
    assert "--unfreeze-groups" in advice
    assert "from scratch" in advice and "--strategy scratch" in advice


@pytest.mark.parametrize(("transfer", "scratch"), [(0.80, 0.80), (0.805, 0.80), (0.80, 0.805)])
def test_within_one_point_is_no_clear_difference(transfer, scratch):
    out = _section(transfer, scratch)
    assert out["verdict"] == "no_clear_difference"
    assert abs(out["delta_points"]) < NEUTRAL_POINTS
    assert "within 1 point" in out["message"]
    assert "negative transfer" not in out["message"]


@pytest.mark.parametrize(
    ("transfer", "scratch", "verdict"),
    [
        (0.50, 0.49, "transfer_helped"),  # one point (1.0000000000000009 in floats)
        (0.49, 0.50, "negative_transfer"),
        (0.5, 0.4999, "no_clear_difference"),  # 0.01 points
    ],
)
def test_the_one_point_boundary(transfer, scratch, verdict):
    # a difference of one point (or more) is a verdict, anything less is not
    assert _section(transfer, scratch)["verdict"] == verdict


def test_section_is_complete_and_json_friendly():
    out = _section(0.9, 0.7)
    assert set(out) >= {
        "strategy",
        "epochs",
        "accuracy",
        "macro_f1",
        "transfer_accuracy",
        "delta_points",
        "verdict",
        "message",
        "advice",
        "seconds",
        "training",
    }
    assert out["strategy"] == "scratch"
    assert out["epochs"] == 3
    assert out["accuracy"] == pytest.approx(0.7)
    assert out["transfer_accuracy"] == pytest.approx(0.9)
    assert out["macro_f1"] == pytest.approx(0.68)
    assert out["seconds"] == {"train": 1.5}
    assert json.loads(json.dumps(out)) == out
