"""`transferkit export MODEL --format peft|adapterhub` on real adapter bundles: peft loads the
LoRA bundle's folder onto the real all-MiniLM encoder and gives the bundle's embeddings; what
has no such form is refused (exit 2) with the reason."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from adapter_bundles import adapter_bundles

TEXTS = ["a gripping story with superb acting", "the noodles were soggy and far too salty"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return adapter_bundles(tmp_path_factory)


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "transferkit.cli", "-q", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_peft_loads_the_exported_adapter_and_gives_the_bundle_s_embeddings(bundles, tmp_path):
    from peft import PeftModel
    from transformers import BertModel

    from transferkit import TransferClassifier

    out = tmp_path / "sentiment-peft"
    done = export(str(bundles["sentiment"]), "--format", "peft", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["format"] == "peft" and summary["adapter"] == "lora"
    assert summary["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert summary["files"] == ["adapter_config.json", "adapter_model.safetensors"]

    encoder = TransferClassifier.load(bundles["sentiment"], progress=False, cache=False).backbone_
    batch = encoder.tokenize(TEXTS)
    base = BertModel.from_pretrained(_package_folder()).eval()
    with torch.no_grad():
        ours = encoder.eval()(**batch)
        # peft puts the adapter into ``base`` itself: the plain encoder first
        plain = encoder.pool(base(**batch).last_hidden_state, batch["attention_mask"])
        hidden = PeftModel.from_pretrained(base, out).eval()(**batch).last_hidden_state
    assert torch.allclose(encoder.pool(hidden, batch["attention_mask"]), ours, atol=1e-5)
    assert (plain - ours).abs().max() > 1e-4  # the bundle's adapter changed the encoder


def _package_folder():
    from transferkit.backbones import resolve_backbone

    return resolve_backbone("all_minilm_l6_v2", allow_download=False).weights.path.parent


def test_what_has_no_such_form_is_refused(bundles, tmp_path):
    done = export(str(bundles["topic"]), "--format", "peft", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "peft has no pfeiffer adapter" in done.stderr and "--format adapterhub" in done.stderr
    assert not (tmp_path / "x").exists()
    done = export(str(bundles["topic"]), "--format", "adapterhub", "--quantize", "int8")
    assert done.returncode == 2 and "--quantize is for --format onnx" in done.stderr


def test_a_bundle_without_adapter_is_refused(tmp_path_factory, tmp_path):
    from serve_helpers import serve_bundles

    features = serve_bundles(tmp_path_factory)["reviews"]
    done = export(str(features), "--format", "adapterhub", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "is a features bundle: it holds no adapter" in done.stderr
