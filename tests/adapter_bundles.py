"""Small real adapter bundles on the packaged all-MiniLM (made once per test session): a LoRA
sentiment model and a Pfeiffer topic model, for the export and serving tests."""

from __future__ import annotations

from pathlib import Path

from serve_helpers import NEGATIVE, POSITIVE

FILMS = POSITIVE[:3] + NEGATIVE[:3]
FOOD = [
    "the soup was cold and the bread stale",
    "a lovely dinner, the pasta was perfect",
    "great coffee and fresh pastries",
    "the steak was overcooked and bland",
    "delicious curry with fragrant rice",
    "the salad was wilted and the dressing sour",
]
SENTIMENT = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
# name -> (adapter settings, rows); LoRA on attention only: AdapterHub's LoRA has no place
# for BERT's attention output layer, which the default (every linear layer) adapts
BUNDLES = {
    "sentiment": ({"adapter": "lora", "adapter_targets": "attention"}, SENTIMENT),
    "topic": ({"adapter": "pfeiffer"}, [(t, "film") for t in FILMS] + [(t, "food") for t in FOOD]),
}


def adapter_bundles(tmp_path_factory) -> dict[str, Path]:
    """The bundles of ``BUNDLES`` under the session's temporary folder, or a skip (a failure
    under CI) when all-MiniLM's packaged weights are missing."""
    from conftest import require_offline_weights

    require_offline_weights("all_minilm_l6_v2")
    root = tmp_path_factory.getbasetemp() / "adapter-bundles"
    paths = {name: root / name / "model" for name in BUNDLES}
    if all((p / "manifest.json").exists() for p in paths.values()):
        return paths
    from transferkit import TransferClassifier
    from transferkit.modalities import load_dataset

    for name, (settings, rows) in BUNDLES.items():
        table = root / f"{name}.csv"
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(
            "text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8"
        )
        clf = TransferClassifier(
            backbone="all_minilm_l6_v2",
            strategy="adapter",
            strategy_params={**settings, "epochs": 2},
            progress=False,
        )
        clf.fit(load_dataset(table)).save(paths[name])
    return paths
