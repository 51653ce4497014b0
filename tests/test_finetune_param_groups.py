"""Discriminative learning rates and adding unfrozen layer groups to a live optimizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from finetune_models import TinyNet as _TinyNet
from finetune_models import tiny_groups
from torch import nn

from transferkit.errors import BadInputError
from transferkit.finetune.freezing import set_unfrozen_groups
from transferkit.finetune.param_groups import (
    discriminative_param_groups,
    group_lr_factors,
    no_weight_decay_names,
    unfreeze_next_group,
)
from transferkit.finetune.schedule import lr_factor, warmup_cosine_scheduler


def TinyNet() -> _TinyNet:  # noqa: N802 (stands in for the class)
    return _TinyNet(block2_norm="layer")


def _lr_by_tag(groups: list[dict]) -> dict[str, float]:
    lrs: dict[str, float] = {}
    for g in groups:
        tag = g["group_name"].split("/")[0]
        assert lrs.setdefault(tag, g["lr"]) == g["lr"]  # decay/no_decay halves share the lr
    return lrs


def test_learning_rates_decrease_strictly_from_head_to_stem():
    model = TinyNet()
    groups = discriminative_param_groups(model, tiny_groups(model), head_lr=1e-2, unfrozen_groups=3)
    lrs = _lr_by_tag(groups)
    order = [lrs["head"], lrs["group2"], lrs["group1"], lrs["group0"]]
    assert all(a > b for a, b in zip(order, order[1:]))
    assert order == pytest.approx([1e-2, 5e-3, 2.5e-3, 1.25e-3])


def test_each_parameter_in_exactly_one_group_and_frozen_groups_left_out():
    model = TinyNet()
    layer_groups = tiny_groups(model)
    everything = discriminative_param_groups(model, layer_groups, head_lr=1e-3, unfrozen_groups=3)
    names = [n for g in everything for n in g["param_names"]]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    ids = [id(p) for g in everything for p in g["params"]]
    assert len(ids) == len(set(ids))
    top_only = discriminative_param_groups(model, layer_groups, head_lr=1e-3, unfrozen_groups=1)
    names = {n for g in top_only for n in g["param_names"]}
    assert names == set(layer_groups[2]) | {"head.1.weight", "head.1.bias"}


def test_no_weight_decay_on_biases_and_norm_parameters():
    model = TinyNet()
    groups = discriminative_param_groups(
        model, tiny_groups(model), head_lr=1e-3, weight_decay=0.05, unfrozen_groups=3
    )
    wd = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    for name in ("stem.1.weight", "stem.1.bias", "block1.0.bias", "block2.1.weight", "head.1.bias"):
        assert wd[name] == 0.0, name
    for name in ("stem.0.weight", "block1.0.weight", "block2.0.weight", "head.1.weight"):
        assert wd[name] == 0.05, name
    assert "block2.1.weight" in no_weight_decay_names(model)  # LayerNorm weight, 3-D


def test_factor_per_group_and_bad_values():
    assert group_lr_factors([0.5, 0.2, 1.0], 3) == pytest.approx([0.1, 0.1, 0.5])
    with pytest.raises(BadInputError, match="one factor per layer group"):
        group_lr_factors([0.5], 3)
    with pytest.raises(BadInputError, match=r"\(0, 1\]"):
        group_lr_factors(1.5, 3)
    model = TinyNet()
    with pytest.raises(BadInputError, match="head_lr"):
        discriminative_param_groups(model, tiny_groups(model), head_lr=0)
    with pytest.raises(BadInputError, match="unfrozen_groups"):
        discriminative_param_groups(model, tiny_groups(model), head_lr=1e-3, unfrozen_groups=4)


def _step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 3, (4,)))
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_unfreezing_adds_the_next_group_and_keeps_existing_state():
    torch.manual_seed(0)
    model = TinyNet()
    layer_groups = tiny_groups(model)
    set_unfrozen_groups(model, layer_groups, 0)
    opt = torch.optim.AdamW(discriminative_param_groups(model, layer_groups, head_lr=1e-2))
    for _ in range(3):
        _step(model, opt)
    head_w = model.head[1].weight
    before = {k: v.clone() for k, v in opt.state[head_w].items()}
    n_groups = len(opt.param_groups)

    stage = unfreeze_next_group(opt, model, layer_groups, 0, head_lr=1e-2)
    assert stage == 1
    assert all(model.get_parameter(n).requires_grad for n in layer_groups[2])
    assert not any(model.get_parameter(n).requires_grad for n in layer_groups[1])
    new = opt.param_groups[n_groups:]
    assert {n for g in new for n in g["param_names"]} == set(layer_groups[2])
    assert all(g["lr"] == pytest.approx(5e-3) for g in new)
    for key, value in before.items():
        assert torch.equal(opt.state[head_w][key], value)

    _step(model, opt)
    assert float(opt.state[head_w]["step"]) == 4.0
    assert float(opt.state[model.block2[0].weight]["step"]) == 1.0
    stage = unfreeze_next_group(opt, model, layer_groups, stage, head_lr=1e-2)
    stage = unfreeze_next_group(opt, model, layer_groups, stage, head_lr=1e-2)
    assert stage == 3 and all(p.requires_grad for p in model.parameters())
    with pytest.raises(BadInputError, match="Cannot unfreeze"):
        unfreeze_next_group(opt, model, layer_groups, stage, head_lr=1e-2)


def test_unfrozen_group_joins_the_schedule_where_it_stands():
    model = TinyNet()
    layer_groups = tiny_groups(model)
    set_unfrozen_groups(model, layer_groups, 0)
    opt = torch.optim.AdamW(discriminative_param_groups(model, layer_groups, head_lr=1.0))
    sched = warmup_cosine_scheduler(opt, total_steps=10, warmup_steps=0, floor=0.0)
    for _ in range(5):
        opt.step()
        sched.step()
    unfreeze_next_group(opt, model, layer_groups, 0, head_lr=1.0, decay=0.1, scheduler=sched)
    factor = lr_factor(5, 10, 0)
    assert opt.param_groups[-1]["lr"] == pytest.approx(0.1 * factor)
    assert opt.param_groups[-1]["initial_lr"] == pytest.approx(0.1)
