"""Adapters inside tiny randomly initialised encoders (BERT, timm ViT, wav2vec2): they change
nothing until trained, their state holds only adapter tensors under peft's / AdapterHub's names,
it loads back exactly, peft itself loads our LoRA state, and the bottleneck sits where
AdapterHub puts it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from tiny_vit import tiny_vit  # noqa: E402

from transferkit.errors import BadInputError  # noqa: E402
from transferkit.finetune.adapters import (  # noqa: E402
    AdapterSpec,
    adapter_state,
    check_adaptable,
    inject,
    load_adapter_state,
)
from transferkit.finetune.adapters.policy import AdapterOnly, is_adapter_parameter  # noqa: E402
from transferkit.finetune.model import ClassifierModel  # noqa: E402

METHODS = ("lora", "houlsby", "pfeiffer")


class Wrapped(nn.Module):
    """A backbone-like module: the network under ``model`` (as TextEncoder and timm's
    Backbone hold it), pooled output."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model, self.name, self.num_features = model, name, 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.long:
            return self.model(input_ids=x).last_hidden_state.mean(1)
        return self.model(x)

    def layer_groups(self) -> list[list[str]]:
        return [[f"model.{n}" for n, _ in self.model.named_parameters()]]


def tiny_bert_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return transformers.BertModel(config).eval()


def _bert() -> tuple[Wrapped, torch.Tensor]:
    return Wrapped(tiny_bert_model(), "tiny-bert"), torch.randint(0, 30, (3, 7))


def _vit() -> tuple[Wrapped, torch.Tensor]:
    torch.manual_seed(0)
    return Wrapped(tiny_vit().eval(), "tiny-vit"), torch.randn(3, 3, 16, 16)


ENCODERS = {"bert": _bert, "vit": _vit}


def _randomised(state: dict) -> dict:
    g = torch.Generator().manual_seed(1)
    return {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in state.items()}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("encoder", sorted(ENCODERS))
def test_an_adapter_changes_nothing_until_trained_and_its_state_round_trips(encoder, method):
    module, x = ENCODERS[encoder]()
    with torch.no_grad():
        before = module(x)
    base = {k: v.clone() for k, v in module.model.state_dict().items()}
    spec = inject(module, AdapterSpec.make(method))
    with torch.no_grad():
        torch.testing.assert_close(module(x), before, rtol=0, atol=0)
    state = adapter_state(module, spec)
    assert state and all(k not in base for k in state)  # adapter tensors only
    new = _randomised(state)
    load_adapter_state(module, spec, new)
    with torch.no_grad():
        adapted = module(x)
    assert not torch.allclose(adapted, before, atol=1e-4)
    # a fresh encoder given the same spec and state computes the same function
    other, _ = ENCODERS[encoder]()
    inject(other, spec)
    load_adapter_state(other, spec, adapter_state(module, spec))
    with torch.no_grad():
        torch.testing.assert_close(other(x), adapted)
    # and the base weights were never touched
    for k, v in base.items():
        key = k if k in module.model.state_dict() else k.replace(".weight", ".base_layer.weight")
        key = key if key in module.model.state_dict() else key.replace(".bias", ".base_layer.bias")
        torch.testing.assert_close(module.model.state_dict()[key], v, rtol=0, atol=0)


def test_state_keys_are_peft_and_adapterhub_names_relative_to_the_encoder():
    bert, _ = _bert()
    lora = adapter_state(bert, inject(bert, AdapterSpec.make("lora")))
    assert "encoder.layer.0.attention.self.query.lora_A.weight" in lora
    assert "encoder.layer.1.attention.self.value.lora_B.weight" in lora
    assert len(lora) == 2 * 2 * 2  # A and B, query and value, two layers
    assert lora["encoder.layer.0.attention.self.query.lora_A.weight"].shape == (8, 16)
    bert, _ = _bert()
    houlsby = adapter_state(bert, inject(bert, AdapterSpec.make("houlsby")))
    prefix = "encoder.layer.0.attention.output.adapters.default."
    assert {prefix + "adapter_down.0.weight", prefix + "adapter_up.bias"} < set(houlsby)
    assert houlsby[prefix + "adapter_down.0.weight"].shape == (1, 16)  # 16 // reduction 16
    assert "encoder.layer.1.output.adapters.default.adapter_up.weight" in houlsby
    bert, _ = _bert()
    pfeiffer = adapter_state(bert, inject(bert, AdapterSpec.make("pfeiffer", reduction_factor=4)))
    assert all(".output.adapters.default." in k and ".attention." not in k for k in pfeiffer)
    assert pfeiffer["encoder.layer.0.output.adapters.default.adapter_down.0.weight"].shape == (
        4,
        16,
    )


def test_lora_targets_follow_the_architecture():
    bert, _ = _bert()
    spec = inject(bert, AdapterSpec.make("lora", target_modules="all"))
    assert spec.config["target_modules"] == [
        "query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"
    ]  # fmt: skip
    vit, _ = _vit()
    assert inject(vit, AdapterSpec.make("lora")).config["target_modules"] == ["qkv"]
    vit, _ = _vit()
    every = inject(vit, AdapterSpec.make("lora", target_modules="all")).config["target_modules"]
    assert every == ["qkv", "attn.proj", "mlp.fc1", "mlp.fc2"]
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2,
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    audio = Wrapped(transformers.Wav2Vec2Model(config), "tiny-wav2vec2")
    assert inject(audio, AdapterSpec.make("lora")).config["target_modules"] == ["q_proj", "v_proj"]
    audio = Wrapped(transformers.Wav2Vec2Model(config), "tiny-wav2vec2")
    with pytest.raises(BadInputError, match="tiny-wav2vec2.*--adapter lora"):
        check_adaptable(audio, AdapterSpec.make("houlsby"))


def test_a_network_without_transformer_layers_is_refused_naming_it_and_what_works():
    cnn = Wrapped(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), "tiny-cnn")
    for method in METHODS:
        with pytest.raises(BadInputError, match="tiny-cnn has no transformer layers.*timm"):
            check_adaptable(cnn, AdapterSpec.make(method))
    with pytest.raises(BadInputError, match="no linear layer named wq"):
        check_adaptable(_bert()[0], AdapterSpec.make("lora", target_modules=["wq"]))


def test_peft_loads_our_lora_state_and_computes_the_same():
    from peft import PeftModel, get_peft_model, set_peft_model_state_dict

    from transferkit.finetune.adapters.lora import peft_config

    ours, x = _bert()
    spec = inject(ours, AdapterSpec.make("lora", r=4, alpha=8))
    load_adapter_state(ours, spec, _randomised(adapter_state(ours, spec)))
    state = adapter_state(ours, spec)
    theirs = get_peft_model(tiny_bert_model(), peft_config(spec))
    assert isinstance(theirs, PeftModel)
    # a PeftModel saves (and loads) the same tensors under base_model.model.
    loaded = set_peft_model_state_dict(
        theirs, {f"base_model.model.{k}": v for k, v in state.items()}
    )
    assert not loaded.unexpected_keys
    with torch.no_grad():
        expected = ours.model(input_ids=x).last_hidden_state
        got = theirs(input_ids=x).last_hidden_state
    torch.testing.assert_close(got, expected)


def test_the_bottleneck_sits_where_adapterhub_puts_it():
    bert, _ = _bert()
    layer = bert.model.encoder.layer[0]
    h_in, residual = torch.randn(2, 5, 32), torch.randn(2, 5, 16)
    out = layer.output
    dense, norm = out.dense, out.LayerNorm
    inject(bert, AdapterSpec.make("pfeiffer", reduction_factor=4))
    adapter = out.adapters["default"]
    nn.init.normal_(adapter.adapter_up.weight)
    with torch.no_grad():
        h = dense(h_in)
        # AdapterHub SeqBn: z = h + input; LN(z + up(relu(down(LN(z)))))
        z = h + residual
        expected = norm(z + adapter.adapter_up(torch.relu(adapter.adapter_down[0](norm(z)))))
        torch.testing.assert_close(out(h_in, residual), expected)
    bert, _ = _bert()
    out = bert.model.encoder.layer[0].attention.output
    inject(bert, AdapterSpec.make("houlsby", reduction_factor=4))
    adapter = out.adapters["default"]
    nn.init.normal_(adapter.adapter_up.weight)
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        h = out.dense(x)
        # AdapterHub DoubleSeqBn: LN(h + up(swish(down(h))) + input)
        up = adapter.adapter_up(nn.functional.silu(adapter.adapter_down[0](h)))
        torch.testing.assert_close(out(x, residual), out.LayerNorm(h + up + residual))


def test_adapter_only_trains_the_adapter_and_the_head():
    bert, _ = _bert()
    inject(bert, AdapterSpec.make("lora"))
    model = ClassifierModel(bert, 3)
    policy = AdapterOnly()
    policy.apply(model, 0)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} < trained
    assert all(n.startswith("head.") or is_adapter_parameter(n) for n in trained)
    groups = policy.param_groups(model, 0, lr=1e-3, weight_decay=0.01)
    assert [g["group_name"] for g in groups] == ["head", "adapters"]
    assert sum(len(g["params"]) for g in groups) == len(trained)
    with pytest.raises(ValueError, match="no adapter"):
        AdapterOnly().names(ClassifierModel(_bert()[0], 3))


def test_an_adapter_spec_refuses_bad_settings_naming_them():
    with pytest.raises(BadInputError, match="lora, houlsby, pfeiffer"):
        AdapterSpec.make("prefix")
    with pytest.raises(BadInputError, match="adapter r must be"):
        AdapterSpec.make("lora", r=0)
    with pytest.raises(BadInputError, match="reduction_factor"):
        AdapterSpec.make("houlsby", reduction_factor=-1)
    with pytest.raises(BadInputError, match="has no setting 'r'"):
        AdapterSpec.make("pfeiffer", r=4)
    with pytest.raises(BadInputError, match="non_linearity"):
        AdapterSpec.from_json({"method": "pfeiffer", "config": {"non_linearity": "softmax"}})
    with pytest.raises(BadInputError, match="original_ln_after"):
        AdapterSpec.make("houlsby", original_ln_after=False)
    spec = AdapterSpec.make("houlsby", reduction_factor=8)
    assert AdapterSpec.from_json(spec.to_json()) == spec
