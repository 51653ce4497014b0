"""Freezing helpers and the BatchNorm rule: frozen BN layers keep their running statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from finetune_models import TinyNet, tiny_groups
from torch import nn

from transferkit.finetune.freezing import (
    freeze,
    frozen_bn_layers,
    set_frozen_bn_eval,
    set_unfrozen_groups,
    train_mode,
    unfreeze,
)


def _bn_stats(bn: nn.Module) -> list[torch.Tensor]:
    return [bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()]


def _train(model: nn.Module, steps: int) -> None:
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(steps):
        train_mode(model)
        loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8) * 3 + 1), torch.randint(0, 3, (4,)))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_freeze_and_unfreeze_a_module():
    model = TinyNet()
    freeze(model.stem)
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    unfreeze(model.stem)
    assert all(p.requires_grad for p in model.stem.parameters())


def test_freeze_with_train_bn_keeps_batchnorm_trainable():
    model = TinyNet()
    freeze([model.stem, model.block1], train_bn=True)
    assert not model.stem[0].weight.requires_grad
    assert model.stem[1].weight.requires_grad and model.block1[1].bias.requires_grad


def test_freeze_plain_parameters():
    model = TinyNet()
    freeze([model.head[1].weight])
    assert not model.head[1].weight.requires_grad and model.head[1].bias.requires_grad


def test_set_unfrozen_groups_freezes_all_but_the_top():
    model = TinyNet()
    set_unfrozen_groups(model, tiny_groups(model), 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "block2.0.weight", "block2.0.bias", "block2.1.weight", "block2.1.bias",
        "head.1.weight", "head.1.bias",
    }  # fmt: skip
    with pytest.raises(ValueError, match="between 0 and 3"):
        set_unfrozen_groups(model, tiny_groups(model), 4)


def test_stage_one_leaves_frozen_batchnorm_statistics_untouched():
    torch.manual_seed(0)
    model = TinyNet()
    set_unfrozen_groups(model, tiny_groups(model), 0)  # stage 1: only the head trains
    bns = [model.stem[1], model.block1[1], model.block2[1]]
    before = [_bn_stats(bn) for bn in bns]
    _train(model, steps=5)
    assert model.training and model.head.training
    for bn, stats in zip(bns, before):
        assert not bn.training
        for old, new in zip(stats, _bn_stats(bn)):
            assert torch.equal(old, new)


def test_unfrozen_batchnorm_statistics_do_change():
    torch.manual_seed(0)
    model = TinyNet()
    set_unfrozen_groups(model, tiny_groups(model), 1)
    stem_before, top_before = _bn_stats(model.stem[1]), _bn_stats(model.block2[1])
    _train(model, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(stem_before, _bn_stats(model.stem[1])))
    top_after = _bn_stats(model.block2[1])
    assert not torch.equal(top_before[0], top_after[0])
    assert not torch.equal(top_before[1], top_after[1])
    assert int(top_after[2]) == 3 and model.block2[1].training


def test_model_train_alone_would_undo_it_train_mode_does_not():
    model = TinyNet()
    freeze(model.stem)
    assert set_frozen_bn_eval(model) == [model.stem[1]]
    model.train()
    assert model.stem[1].training
    train_mode(model)
    assert not model.stem[1].training and model.block1[1].training


def test_explicit_frozen_names_and_affine_free_batchnorm():
    block = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, affine=False))
    model = nn.Sequential(block, nn.BatchNorm2d(3))
    assert frozen_bn_layers(model, ["0.0.weight", "0.0.bias"]) == [block[1]]
    assert frozen_bn_layers(model, ["1.weight", "1.bias"]) == [model[1]]
    assert frozen_bn_layers(model, []) == []
