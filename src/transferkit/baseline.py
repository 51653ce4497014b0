"""The from-scratch baseline verdict: did transfer help, or was it negative transfer?"""

from __future__ import annotations

from typing import Any

# differences smaller than this are within the noise of a small test set
NEUTRAL_POINTS = 1.0

ADVICE = (
    "try another backbone (`transferkit models`; one pretrained on data closer to yours)",
    "fine-tune deeper (--strategy finetune --unfreeze-groups N with a larger N)",
    "or do without transfer: train the model from scratch (--strategy scratch)",
)


def baseline_section(
    transfer: dict[str, Any], scratch: dict[str, Any], *, strategy: str, epochs: int
) -> dict[str, Any]:
    """The ``baseline`` entry of metrics.json from the two models' metrics on one test set."""
    delta = 100.0 * (float(transfer["accuracy"]) - float(scratch["accuracy"]))
    if delta >= NEUTRAL_POINTS:
        verdict = "transfer_helped"
        message = f"transfer helped by {delta:+.1f} points of accuracy over training from scratch"
        advice: list[str] = []
    elif delta <= -NEUTRAL_POINTS:
        verdict = "negative_transfer"
        message = (
            f"negative transfer: the same architecture trained from scratch beat the pretrained "
            f"model ({strategy}) by {-delta:.1f} points of accuracy"
        )
        advice = list(ADVICE)
    else:
        verdict = "no_clear_difference"
        message = (
            f"transfer and training from scratch are within {NEUTRAL_POINTS:g} point "
            f"({delta:+.1f}): pretraining brings little on this data"
        )
        advice = list(ADVICE[:2])
    return {
        "strategy": "scratch",
        "epochs": int(epochs),
        "accuracy": float(scratch["accuracy"]),
        "macro_f1": float(scratch["macro_f1"]),
        "transfer_accuracy": float(transfer["accuracy"]),
        "delta_points": round(delta, 2),
        "verdict": verdict,
        "message": message,
        "advice": advice,
        "seconds": scratch.get("seconds", {}),
        "training": scratch.get("training"),
    }
