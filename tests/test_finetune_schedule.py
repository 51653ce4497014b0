"""Warm-up + cosine learning-rate factor and the scheduler that applies it per param group."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from transferkit.errors import BadInputError
from transferkit.finetune.schedule import lr_factor, warmup_cosine_scheduler


def test_warmup_rises_monotonically_to_one():
    values = [lr_factor(s, 100, 10, 0.1) for s in range(11)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert 0 < values[0] < 0.2 and values[10] == pytest.approx(1.0)


def test_cosine_falls_monotonically_to_the_floor_and_stays():
    values = [lr_factor(s, 100, 10, 0.1) for s in range(10, 101)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1)
    assert lr_factor(250, 100, 10, 0.1) == 0.1


def test_no_warmup_starts_at_full_rate():
    assert lr_factor(0, 50, 0) == 1.0
    assert lr_factor(25, 50, 0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "args", [(0, 0, 0, 0.0), (0, 10, 11, 0.0), (0, 10, -1, 0.0), (0, 10, 2, 1.5)]
)
def test_bad_settings_are_refused(args):
    with pytest.raises(BadInputError):
        lr_factor(*args)


def test_scheduler_scales_each_group_including_groups_added_later():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [a], "lr": 1.0}])
    sched = warmup_cosine_scheduler(opt, total_steps=10, warmup_steps=2, floor=0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor(0, 10, 2, 0.1))
    for _ in range(4):
        opt.step()
        sched.step()
    opt.add_param_group({"params": [b], "lr": 0.5})
    sched.sync_new_groups()
    factor = lr_factor(4, 10, 2, 0.1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([factor, 0.5 * factor])
    opt.step()
    sched.step()
    factor = lr_factor(5, 10, 2, 0.1)
    assert sched.get_last_lr() == pytest.approx([factor, 0.5 * factor])


def test_scheduler_state_is_json_and_round_trips():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine_scheduler(opt, total_steps=20, warmup_steps=3, floor=0.0)
    for _ in range(7):
        opt.step()
        sched.step()
    state = json.loads(json.dumps(sched.state_dict()))
    opt2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    other = warmup_cosine_scheduler(opt2, total_steps=5, warmup_steps=0)
    other.load_state_dict(state)
    for _ in range(3):
        for o, s in ((opt, sched), (opt2, other)):
            o.step()
            s.step()
    assert other.get_last_lr() == sched.get_last_lr()
    assert other.schedule == {"total_steps": 20, "warmup_steps": 3, "floor": 0.0}
