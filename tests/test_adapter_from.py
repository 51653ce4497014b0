"""`transferkit train --strategy adapter --adapter-from DIR`: training starts from an adapter
peft saved (its settings, its weights) and trains it further; one made for another base model
is refused naming both."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import require_offline_weights
from serve_helpers import NEGATIVE, POSITIVE


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    require_offline_weights("all_minilm_l6_v2")
    table = tmp_path_factory.mktemp("adapter-from") / "reviews.csv"
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    table.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    return table


def train(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "transferkit.cli", "-q", "train", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _peft_adapter(folder):
    """A LoRA peft saved on the packaged all-MiniLM (random weights: a recognisable start)."""
    from peft import LoraConfig, get_peft_model
    from transformers import BertModel

    from transferkit.backbones import resolve_backbone

    ref = resolve_backbone("all_minilm_l6_v2", allow_download=False)
    model = BertModel.from_pretrained(ref.weights.path.parent)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "intermediate.dense"])
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    peft_model.save_pretrained(folder)
    return folder


def test_training_starts_from_a_peft_adapter(reviews, tmp_path):
    from safetensors.torch import load_file

    source = _peft_adapter(tmp_path / "peft")
    run = tmp_path / "run"
    done = train(reviews, "--strategy", "adapter", "--adapter-from", source, "--epochs", "2",
                 "--out", run)  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    config = manifest["adapter"]["config"]
    # the folder's settings, not --adapter-rank's default (8)
    assert (config["r"], config["alpha"]) == (4, 8)
    assert config["target_modules"] == ["intermediate.dense", "query", "value"]
    metrics = json.loads((run / "metrics.json").read_text())
    imported = metrics["adapter"]["imported"]
    assert imported["format"] == "peft" and imported["path"] == str(source)
    # trained further from the imported weights: close to them, not equal
    start = load_file(str(source / "adapter_model.safetensors"))
    end = load_file(str(run / "model" / "adapter.safetensors"))
    key = "encoder.layer.0.attention.self.query.lora_A.weight"
    before, after = start["base_model.model." + key].flatten(), end[key].flatten()
    assert not torch.equal(before, after)
    assert torch.nn.functional.cosine_similarity(before, after, dim=0) > 0.9


def test_an_adapter_for_another_base_is_refused(reviews, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "hub"
    folder.mkdir()
    doc = {
        "name": "sst",
        "model_name": "bert-base-uncased",
        "config": {
            "architecture": "lora",
            "r": 8,
            "alpha": 8,
            "attn_matrices": ["q", "v"],
            "composition_mode": "add",
        },
    }
    (folder / "adapter_config.json").write_text(json.dumps(doc))
    key = "encoder.layer.0.attention.self.query.loras.sst.lora_A"
    save_file({key: torch.zeros(8, 768)}, str(folder / "adapter.safetensors"))
    done = train(reviews, "--strategy", "adapter", "--adapter-from", folder, "--out",
                 tmp_path / "run")  # fmt: skip
    assert done.returncode == 2
    assert "made for bert-base-uncased" in done.stderr
    assert "all_minilm_l6_v2" in done.stderr
