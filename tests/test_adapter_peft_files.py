"""peft's adapter folders: one peft saved is read into the packaged all-MiniLM encoder and gives
peft's outputs; ours, written in peft's form, is loaded by peft onto the same encoder and gives
ours. Pickle weights, another base model and shapes that do not fit are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import require_offline_weights

from transferkit.backbones import resolve_backbone
from transferkit.errors import BadInputError
from transferkit.finetune.adapters import AdapterSpec, adapter_state, inject
from transferkit.finetune.adapters.interop import attach, check_base, hub_name, read_adapter_dir
from transferkit.finetune.adapters.peft_folder import write_peft_dir

TEXTS = ["a wonderful, moving film", "dull and far too long", "the cast is superb"]


@pytest.fixture(scope="module")
def ref():
    require_offline_weights("all_minilm_l6_v2")
    return resolve_backbone("all_minilm_l6_v2", allow_download=False)


def _fresh(ref):
    import dataclasses

    return dataclasses.replace(ref, _module=None).materialize()


def _hf_model(ref):
    """The encoder as peft's users load it: transformers' own BertModel from the same folder."""
    from transformers import BertModel

    return BertModel.from_pretrained(ref.weights.path.parent).eval()


def _randomise(module, marker: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if marker in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def _pooled(encoder, hf_model, batch):
    """Our pooling of ``hf_model``'s token states (mean, unit length, as the encoder pools)."""
    with torch.no_grad():
        out = hf_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return encoder.pool(out.last_hidden_state, batch["attention_mask"])


def test_an_adapter_peft_saved_gives_peft_s_outputs(ref, tmp_path):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "intermediate.dense"])
    theirs = get_peft_model(_hf_model(ref), config)
    _randomise(theirs, "lora_", seed=0)
    theirs.eval().save_pretrained(tmp_path / "peft")

    adapter = read_adapter_dir(tmp_path / "peft")
    assert adapter.source == "peft" and adapter.method == "lora"
    check_base(adapter, ref)  # names the package's folder, whose weights are ours
    ours = _fresh(ref)
    spec = attach(ours, adapter)
    assert spec.config["r"] == 4 and spec.config["alpha"] == 8
    assert spec.config["target_modules"] == ["intermediate.dense", "query", "value"]
    batch = ours.tokenize(TEXTS)
    with torch.no_grad():
        got = ours.eval()(**batch)
    expected = _pooled(ours, theirs, batch)
    assert torch.allclose(got, expected, atol=1e-5)
    # and the adapter changed the encoder: the comparison is not of two plain encoders
    with torch.no_grad():
        plain = _fresh(ref)(**batch)
    assert (got - plain).abs().max() > 1e-3


def test_peft_loads_ours_onto_the_real_encoder(ref, tmp_path):
    from peft import PeftModel

    ours = _fresh(ref)
    spec = inject(ours, AdapterSpec.make("lora", r=8, alpha=16))
    _randomise(ours, "lora_", seed=1)
    out = write_peft_dir(
        tmp_path / "ours", spec, adapter_state(ours, spec), base_model=hub_name(ref.spec)
    )
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    theirs = PeftModel.from_pretrained(_hf_model(ref), out).eval()
    batch = ours.tokenize(TEXTS)
    with torch.no_grad():
        got = ours.eval()(**batch)
    assert torch.allclose(_pooled(ours, theirs, batch), got, atol=1e-5)
    # and it reads back as it was written
    again = _fresh(ref)
    assert attach(again, read_adapter_dir(out)).config == spec.config
    with torch.no_grad():
        assert torch.allclose(again.eval()(**batch), got, atol=1e-6)


def test_a_bottleneck_adapter_has_no_peft_form(ref, tmp_path):
    ours = _fresh(ref)
    spec = inject(ours, AdapterSpec.make("pfeiffer"))
    with pytest.raises(BadInputError, match="peft has no pfeiffer adapter.*--format adapterhub"):
        write_peft_dir(tmp_path / "x", spec, adapter_state(ours, spec), base_model="x")


def _peft_folder(folder: Path, **config) -> Path:
    folder.mkdir()
    doc = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}
    (folder / "adapter_config.json").write_text(json.dumps({**doc, **config}))
    return folder


def test_pickle_weights_are_refused_unopened(tmp_path):
    folder = _peft_folder(tmp_path / "pickled", base_model_name_or_path="x")
    # not even a valid pickle: a reader that tried to open it would fail otherwise
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(BadInputError) as err:
        read_adapter_dir(folder)
    message = str(err.value)
    assert "adapter_model.bin is a pickle file" in message
    assert "weights_only=True" in message and "adapter_model.safetensors" in message


def test_an_adapter_for_another_base_is_refused_naming_both(ref, tmp_path):
    from safetensors.torch import save_file

    folder = _peft_folder(tmp_path / "other", base_model_name_or_path="bert-base-uncased")
    key = "base_model.model.encoder.layer.0.attention.self.query.lora_A.weight"
    save_file({key: torch.zeros(4, 768)}, str(folder / "adapter_model.safetensors"))
    adapter = read_adapter_dir(folder)
    with pytest.raises(BadInputError) as err:
        check_base(adapter, ref)
    message = str(err.value)
    assert "made for bert-base-uncased" in message
    assert "all_minilm_l6_v2" in message and "sentence-transformers/all-MiniLM-L6-v2" in message


def test_an_adapter_whose_shapes_do_not_fit_is_refused(ref, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import BertConfig, BertModel

    # a BERT of another width: the same layer names, other shapes
    small = BertModel(BertConfig(hidden_size=64, num_hidden_layers=6, num_attention_heads=4))
    get_peft_model(small, LoraConfig(r=4, target_modules=["query", "value"])).save_pretrained(
        tmp_path / "small"
    )
    adapter = read_adapter_dir(tmp_path / "small")
    with pytest.raises(BadInputError, match=r"does not fit all_minilm_l6_v2.*\(4, 64\)"):
        attach(_fresh(ref), adapter)


def test_other_peft_methods_are_refused(tmp_path):
    folder = _peft_folder(tmp_path / "dora", use_dora=True)
    with pytest.raises(BadInputError, match="use_dora.*DoRA"):
        read_adapter_dir(folder)
    folder = _peft_folder(tmp_path / "ia3", peft_type="IA3")
    with pytest.raises(BadInputError, match="peft_type 'IA3'"):
        read_adapter_dir(folder)


def test_a_task_head_peft_trained_whole_is_left_out_with_a_warning(ref, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import BertForSequenceClassification

    classifier = BertForSequenceClassification.from_pretrained(
        ref.weights.path.parent, num_labels=2
    )
    config = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"])
    theirs = get_peft_model(classifier, config)
    _randomise(theirs, "lora_", seed=3)
    theirs.eval().save_pretrained(tmp_path / "seqcls")  # lora under bert., the classifier whole

    ours = _fresh(ref)
    with pytest.warns(UserWarning, match=r"base_model\.model\.classifier.*not used"):
        attach(ours, read_adapter_dir(tmp_path / "seqcls"))
    batch = ours.tokenize(TEXTS)
    with torch.no_grad():
        got = ours.eval()(**batch)
        hidden = theirs.base_model.model.bert(**batch).last_hidden_state
    assert torch.allclose(got, ours.pool(hidden, batch["attention_mask"]), atol=1e-5)


def test_an_encoder_module_peft_trained_whole_is_refused(ref, tmp_path):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, target_modules=["query", "value"], modules_to_save=["pooler"])
    get_peft_model(_hf_model(ref), config).save_pretrained(tmp_path / "pooler")
    with pytest.raises(BadInputError, match="also changes pooler.dense.* itself"):
        attach(_fresh(ref), read_adapter_dir(tmp_path / "pooler"))
