"""Early stopping: patience, min_delta, best weights and resumable state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transferkit.errors import BadInputError
from transferkit.finetune.early_stopping import EarlyStopping


def _model(value: float) -> nn.Module:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_stops_after_patience_and_restores_the_best_weights():
    stopper = EarlyStopping(patience=2, mode="max")
    model = _model(0.0)
    assert not stopper.step(0.5, model)
    with torch.no_grad():
        model.weight.fill_(1.0)
    assert not stopper.step(0.7, model)  # best: weight 1
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert not stopper.step(0.6, model)
    assert stopper.step(0.7, model)  # equal is no improvement
    assert stopper.best_score == 0.7 and stopper.best_epoch == 1 and stopper.should_stop
    stopper.restore(model)
    assert torch.all(model.weight == 1.0)


def test_min_mode_min_delta_and_nan():
    stopper = EarlyStopping(patience=3, min_delta=0.1, mode="min")
    model = _model(0.0)
    stopper.step(1.0, model)
    stopper.step(0.95, model)  # not better by more than min_delta
    stopper.step(float("nan"), model)
    assert stopper.bad_epochs == 2 and stopper.best_score == 1.0
    stopper.step(0.8, model)
    assert stopper.bad_epochs == 0 and stopper.best_score == 0.8


def test_best_copy_is_independent_of_later_training():
    stopper = EarlyStopping(patience=1)
    model = _model(3.0)
    stopper.step(1.0, model)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert torch.all(stopper.best_state["weight"] == 3.0)


def test_state_round_trip_continues_identically():
    model = _model(0.0)
    a = EarlyStopping(patience=3)
    for metric in (0.1, 0.3, 0.2):
        a.step(metric, model)
    b = EarlyStopping(patience=99, mode="min")
    b.load_state_dict(a.state_dict())
    for metric in (0.25, 0.29):
        assert a.step(metric, model) == b.step(metric, model)
    assert b.should_stop and b.state_dict()["best_score"] == 0.3 and b.epochs_seen == 5
    assert torch.equal(a.best_state["weight"], b.best_state["weight"])


@pytest.mark.parametrize(
    "kwargs", [{"patience": 0}, {"patience": 1.5}, {"min_delta": -1}, {"mode": "best"}]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(BadInputError):
        EarlyStopping(**kwargs)
