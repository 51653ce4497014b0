"""Engine hooks: extra loss terms, callbacks and hook state in checkpoints, none of which needs an
edit of engine.py (the hooks here are written beside the tests, as a new method would be)."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
)

from transferkit.backbones import load_backbone
from transferkit.errors import BadInputError
from transferkit.finetune.config import REGULARIZERS, FinetuneConfig
from transferkit.finetune.engine import Finetuner
from transferkit.finetune.hooks import EngineHook, EngineState, StepContext
from transferkit.finetune.image_batches import ImageBatches
from transferkit.finetune.l2sp import L2SPHook
from transferkit.finetune.model import ClassifierModel, state_sha256
from transferkit.finetune.regularizers import REGULARIZER_HOOKS, regularizer_hooks


class HeadShrinkage(EngineHook):
    """An extra loss that pulls the head's weights towards zero, ``coefficient`` · ‖W‖²."""

    def __init__(self, coefficient: float) -> None:
        self.coefficient = coefficient

    def extra_loss(self, step: StepContext) -> torch.Tensor:
        return self.coefficient * step.run.model.head.weight.pow(2).sum()


class EpochRecorder(EngineHook):
    """Records what each callback saw."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_start(self, run: EngineState) -> None:
        self.calls.append(("train_start", run.epoch))

    def on_epoch_start(self, run: EngineState) -> None:
        self.calls.append(("epoch_start", run.epoch, run.stage))

    def on_step_end(self, step: StepContext) -> None:
        assert step.features.shape == (len(step.targets), step.run.model.head.in_features)
        self.calls.append(("step", step.run.epoch, step.batch))

    def on_epoch_end(self, run: EngineState) -> None:
        self.calls.append(("epoch_end", run.epoch, run.history[-1].train_loss))


class ScheduledShrinkage(EngineHook):
    """Head shrinkage whose weight rises as DANN's gradient-reversal coefficient does,
    λ(p) = 2 / (1 + exp(-10 p)) - 1 over the steps it has counted: state a resume must keep.

    ``stop_before_epoch`` interrupts the run there (after the previous epoch's checkpoint)."""

    def __init__(self, total_steps: int, stop_before_epoch: int | None = None) -> None:
        self.total_steps = total_steps
        self.stop_before_epoch = stop_before_epoch
        self.steps = 0

    def on_epoch_start(self, run: EngineState) -> None:
        if run.epoch == self.stop_before_epoch:
            raise KeyboardInterrupt

    def extra_loss(self, step: StepContext) -> torch.Tensor:
        p = min(1.0, self.steps / self.total_steps)
        weight = 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0
        return 0.05 * weight * step.run.model.head.weight.pow(2).sum()

    def on_step_end(self, step: StepContext) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])


class ForgetfulShrinkage(ScheduledShrinkage):
    """The same schedule with its counter lost on resume (as tllib's ``iter_num`` is)."""

    name = "ScheduledShrinkage"  # the checkpoint's name for it: resumes the same run

    def load_state_dict(self, state: dict) -> None:
        pass


def _run(weights, data, *, hooks=(), checkpoint_dir=None, resume=False, **settings):
    train, val = data
    backbone = load_backbone(NAME, weights=weights)
    torch.manual_seed(3)  # the head's initial weights
    model = ClassifierModel(backbone, len(train.labels))
    cfg = FinetuneConfig(
        **{"epochs": 3, "head_epochs": 0, "lr": 5e-3, "unfreeze_groups": 2, **settings}
    )

    def batches(ds, augment):
        return ImageBatches(
            ds.paths, ds.targets, backbone.preprocess, augment=augment, batch_size=8
        )

    runner = Finetuner(model, cfg, seed=3, hooks=hooks, checkpoint_dir=checkpoint_dir)
    result = runner.fit(batches(train, "light"), batches(val, "none"), resume=resume)
    return model, result, runner


def test_an_extra_loss_hook_pulls_the_head_towards_zero(tiny_weights, shape_data):
    # AdamW moves each weight by about lr per step whatever the gradient's size: a large lr
    # lets nine steps show the pull
    plain, _, _ = _run(tiny_weights, shape_data, lr=2e-2)
    shrunk, _, _ = _run(tiny_weights, shape_data, lr=2e-2, hooks=[HeadShrinkage(1.0)])
    norm = float(plain.head.weight.detach().norm())
    assert float(shrunk.head.weight.detach().norm()) < 0.6 * norm, norm


def test_callbacks_see_each_epoch_its_stage_steps_and_record(tiny_weights, shape_data):
    recorder = EpochRecorder()
    _, result, _ = _run(tiny_weights, shape_data, hooks=[recorder])
    steps = math.ceil(len(shape_data[0]) / 8)
    expected = [("train_start", 0)]
    for record in result.history:
        expected.append(("epoch_start", record.epoch, record.unfrozen_groups))
        expected += [("step", record.epoch, b) for b in range(steps)]
        expected.append(("epoch_end", record.epoch, record.train_loss))
    assert recorder.calls == expected
    assert [r.unfrozen_groups for r in result.history] == [1, 2, 2]


def test_hook_state_is_kept_in_the_checkpoint_so_a_resumed_run_matches(
    tiny_weights, shape_data, tmp_path
):
    steps = 3 * math.ceil(len(shape_data[0]) / 8)

    def hook(cls=ScheduledShrinkage, **kw):
        return cls(total_steps=steps, **kw)

    straight = hook()
    model, result, _ = _run(tiny_weights, shape_data, hooks=[straight])
    assert straight.steps == steps

    def interrupted_then_resumed(cls):
        run = tmp_path / cls.__name__
        with pytest.raises(KeyboardInterrupt):
            _run(tiny_weights, shape_data, hooks=[hook(stop_before_epoch=3)], checkpoint_dir=run)
        again = hook(cls)
        resumed, resumed_result, _ = _run(
            tiny_weights, shape_data, hooks=[again], checkpoint_dir=run, resume=True
        )
        assert resumed_result.resumed_from_epoch == 2
        return again, resumed, resumed_result

    again, resumed, resumed_result = interrupted_then_resumed(ScheduledShrinkage)
    assert again.steps == steps
    assert state_sha256(resumed) == state_sha256(model)
    assert [r.train_loss for r in resumed_result.history] == [r.train_loss for r in result.history]
    # the check has teeth: the same schedule restarting from zero ends elsewhere
    _, forgetful, _ = interrupted_then_resumed(ForgetfulShrinkage)
    assert state_sha256(forgetful) != state_sha256(model)


def test_resume_refuses_a_checkpoint_written_with_other_hooks(tiny_weights, shape_data, tmp_path):
    _run(tiny_weights, shape_data, hooks=[EpochRecorder()], checkpoint_dir=tmp_path, epochs=1)
    with pytest.raises(BadInputError, match=r"engine hooks \['EpochRecorder'\], this run has"):
        _run(tiny_weights, shape_data, checkpoint_dir=tmp_path, resume=True, epochs=1)


def test_a_hook_must_be_an_engine_hook(tiny_weights, shape_data):
    with pytest.raises(TypeError, match="must subclass transferkit.finetune.hooks.EngineHook"):
        _run(tiny_weights, shape_data, hooks=[object()])


def test_every_regularize_choice_has_its_hooks():
    assert sorted(REGULARIZER_HOOKS) == sorted(REGULARIZERS)
    assert regularizer_hooks(FinetuneConfig()) == []
    (l2sp,) = regularizer_hooks(FinetuneConfig(regularize="l2sp", l2sp_alpha=0.3, l2sp_beta=0.2))
    assert isinstance(l2sp, L2SPHook) and (l2sp.alpha, l2sp.beta) == (0.3, 0.2)


def test_l2sp_turns_the_optimizer_weight_decay_off_and_runs_before_other_hooks(
    tiny_weights, shape_data
):
    _, _, runner = _run(
        tiny_weights, shape_data, hooks=[EpochRecorder()], regularize="l2sp", epochs=1
    )
    assert runner.weight_decay == 0.0
    assert [h.name for h in runner.hooks.hooks] == ["L2SPHook", "EpochRecorder"]
    _, _, plain = _run(tiny_weights, shape_data, epochs=1, weight_decay=0.05)
    assert plain.weight_decay == 0.05
