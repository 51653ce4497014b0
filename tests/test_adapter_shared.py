"""Several adapted modules on one base: the base's tensors are the same objects, each module
predicts as an unshared one with the same adapter does, and two threads may run two of them."""

from __future__ import annotations

import gc
import threading

import pytest
import torch
from conftest import require_offline_weights

from transferkit.backbones import resolve_backbone
from transferkit.finetune.adapters.shared import copy_sharing_tensors, shared_base, shared_copy

TEXTS = ["a wonderful, moving film", "dull and far too long", "the cast is superb"]


@pytest.fixture(scope="module")
def ref():
    require_offline_weights("all_minilm_l6_v2")
    return resolve_backbone("all_minilm_l6_v2", allow_download=False)


def _lora(module, seed: int):
    """peft LoRA on query/value, with non-zero B so the adapter changes the output."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"])
    inject_adapter_in_model(config, module.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return module.eval()


def _embed(module):
    with torch.no_grad():
        return module(**module.tokenize(TEXTS))


def test_copies_hold_the_base_tensors_themselves(ref):
    a, b = _lora(shared_copy(ref), 1), _lora(shared_copy(ref), 2)
    base = shared_base(ref)
    base_params = dict(base.named_parameters())
    shared = 0
    for module in (a, b):
        for name, p in module.named_parameters():
            if "lora_" in name:
                continue
            # peft moved the wrapped Linear under .base_layer
            original = base_params[name.replace(".base_layer", "")]
            assert p is original and p.data_ptr() == original.data_ptr()
            assert not p.requires_grad
            shared += 1
    assert shared == 2 * len(base_params)
    # but the adapters are each module's own
    lora_a = dict(a.named_parameters())
    lora_b = dict(b.named_parameters())
    key = "model.encoder.layer.0.attention.self.query.lora_A.default.weight"
    assert lora_a[key] is not lora_b[key]
    assert not torch.equal(lora_a[key], lora_b[key])
    # the base itself gained no adapter
    assert not any("lora_" in n for n, _ in base.named_parameters())


def test_each_copy_predicts_as_its_own_unshared_module(ref):
    import dataclasses

    copies = [_lora(shared_copy(ref), seed) for seed in (1, 2)]
    for seed, module in zip((1, 2), copies):
        # the same adapter on a module built apart from the cache
        alone = _lora(dataclasses.replace(ref, _module=None).materialize(), seed)
        assert torch.allclose(_embed(module), _embed(alone), atol=1e-6)
    assert not torch.allclose(_embed(copies[0]), _embed(copies[1]), atol=1e-3)
    plain = _embed(shared_base(ref))
    assert not torch.allclose(_embed(copies[0]), plain, atol=1e-3)


def test_two_threads_run_two_copies_at_once(ref):
    copies = [_lora(shared_copy(ref), seed) for seed in (3, 4)]
    expected = [_embed(m) for m in copies]
    errors: list[str] = []
    start = threading.Barrier(len(copies))

    def run(i: int) -> None:
        start.wait()
        for _ in range(10):
            if not torch.allclose(_embed(copies[i]), expected[i], atol=1e-6):
                errors.append(f"copy {i} changed its answer while another ran")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(copies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_base_lives_while_a_copy_does(ref):
    import weakref

    module = shared_copy(ref)
    base = weakref.ref(shared_base(ref))
    gc.collect()
    assert base() is not None and shared_base(ref) is base()
    del module
    gc.collect()
    assert base() is None  # nothing else held it: a long-running process frees it


def test_random_weights_are_not_shared():
    require_offline_weights("all_minilm_l6_v2")
    with pytest.raises(ValueError, match="only pretrained weights"):
        shared_base(resolve_backbone("all_minilm_l6_v2", pretrained=False))


def test_an_object_pointing_into_the_tree_points_into_the_copy():
    from types import SimpleNamespace

    from torch import nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3, 2)
            # as an audio backbone's feature encoder: not a module, holding the network
            self.frames = SimpleNamespace(net=self.net)

    base = Encoder()
    twin = copy_sharing_tensors(base)
    assert twin.net is not base.net and twin.frames.net is twin.net
    assert twin.net.weight is base.net.weight
    twin.net.add_module("extra", nn.Identity())  # what an adapter does to its copy
    assert not hasattr(base.net, "extra")
