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


# audio: the no-transfer reference is classical features (MFCC statistics) with the same head
AUDIO_ADVICE = (
    "try another audio backbone (`transferkit models`: aisfx for sounds, speech_embedding for "
    "spoken words, speaker_ge2e for voices)",
    "or do without transfer: --backbone mfcc_stats",
)


def baseline_section(
    transfer: dict[str, Any],
    scratch: dict[str, Any],
    *,
    strategy: str,
    epochs: int,
    reference: str = "scratch",
) -> dict[str, Any]:
    """The ``baseline`` entry of metrics.json from the two models' metrics on one test set.

    ``reference``: ``scratch`` (the same architecture from random weights) or ``mfcc_stats``
    (audio: classical features, nothing pretrained, the same head).
    """
    delta = 100.0 * (float(transfer["accuracy"]) - float(scratch["accuracy"]))
    if reference == "scratch":
        versus, beaten_by, advice_all = (
            "training from scratch",
            ("the same architecture trained from scratch"),
            ADVICE,
        )
    else:
        versus, beaten_by, advice_all = (
            "MFCC statistics (no transfer)",
            ("MFCC statistics with the same head (no pretraining)"),
            AUDIO_ADVICE,
        )
    if delta >= NEUTRAL_POINTS:
        verdict = "transfer_helped"
        message = f"transfer helped by {delta:+.1f} points of accuracy over {versus}"
        advice: list[str] = []
    elif delta <= -NEUTRAL_POINTS:
        verdict = "negative_transfer"
        message = (
            f"negative transfer: {beaten_by} beat the pretrained model ({strategy}) by "
            f"{-delta:.1f} points of accuracy"
        )
        advice = list(advice_all)
    else:
        verdict = "no_clear_difference"
        message = (
            f"transfer and {versus} are within {NEUTRAL_POINTS:g} point "
            f"({delta:+.1f}): pretraining brings little on this data"
        )
        advice = list(advice_all[:2])
    return {
        "strategy": reference,
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
