"""Trainable-parameter policies: the default (gradual layer-group unfreezing) read from the
config, and another fine-tuning method as a policy written outside engine.py."""

from __future__ import annotations

import pytest
import torch
from finetune_methods import BatchNormOnly
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
)

from transferkit.backbones import load_backbone
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.engine import Finetuner
from transferkit.finetune.hooks import EngineHook, EngineState
from transferkit.finetune.image_batches import ImageBatches
from transferkit.finetune.model import ClassifierModel, state_sha256
from transferkit.finetune.schedule import warmup_cosine_scheduler
from transferkit.finetune.trainable import LayerGroupUnfreezing


class StopBefore(EngineHook):
    """Interrupts the run before ``epoch`` (after the previous epoch's checkpoint)."""

    def __init__(self, epoch: int | None) -> None:
        self.epoch = epoch

    def on_epoch_start(self, run: EngineState) -> None:
        if run.epoch == self.epoch:
            raise KeyboardInterrupt


def _model(weights, n_classes=3):
    backbone = load_backbone(NAME, weights=weights)
    torch.manual_seed(3)  # the head's initial weights
    return ClassifierModel(backbone, n_classes)


def _fit(model, data, *, policy=None, stop_before=None, checkpoint_dir=None, resume=False):
    train, val = data
    cfg = FinetuneConfig(epochs=3, head_epochs=0, lr=2e-2, patience=5)
    preprocess = model.backbone.preprocess

    def batches(ds, augment):
        return ImageBatches(ds.paths, ds.targets, preprocess, augment=augment, batch_size=8)

    runner = Finetuner(
        model,
        cfg,
        seed=3,
        policy=policy,
        hooks=[StopBefore(stop_before)],
        checkpoint_dir=checkpoint_dir,
    )
    return runner, runner.fit(batches(train, "light"), batches(val, "none"), resume=resume)


def test_a_batchnorm_only_policy_trains_nothing_else_without_editing_the_engine(
    tiny_weights, shape_data
):
    model = _model(tiny_weights)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    runner, result = _fit(model, shape_data, policy=BatchNormOnly())
    assert runner.target_groups == 0
    assert [r.stage for r in result.history] == ["batchnorm"] * 3
    trained = set(BatchNormOnly().names(model))
    assert {"head.weight", "head.bias"} < trained
    assert any(".1.weight" in n for n in trained)  # BatchNorm scales of the tiny CNN
    for name, param in model.named_parameters():
        changed = not torch.equal(param.detach(), before[name])
        assert changed == (name in trained), name


def test_a_run_with_another_policy_resumes_exactly(tiny_weights, shape_data, tmp_path):
    straight = _model(tiny_weights)
    _fit(straight, shape_data, policy=BatchNormOnly())
    with pytest.raises(KeyboardInterrupt):
        _fit(
            _model(tiny_weights),
            shape_data,
            policy=BatchNormOnly(),
            stop_before=3,
            checkpoint_dir=tmp_path,
        )
    resumed = _model(tiny_weights)
    _, result = _fit(
        resumed, shape_data, policy=BatchNormOnly(), checkpoint_dir=tmp_path, resume=True
    )
    assert result.resumed_from_epoch == 2
    assert state_sha256(resumed) == state_sha256(straight)


def test_the_default_policy_reads_the_config(tiny_weights):
    model = _model(tiny_weights)
    policy = LayerGroupUnfreezing.from_config

    gradual = policy(model, FinetuneConfig(unfreeze_groups=2, backbone_lr_ratio=0.5, lr_decay=0.7))
    assert (gradual.final_stage, gradual.first_stage(), gradual.every) == (2, 1, 1)
    assert gradual.decays == (0.5, 0.7, 0.7)
    assert gradual.stage_name(2) == "unfreeze:2" and not gradual.settled(1)
    assert policy(model, FinetuneConfig(unfreeze_groups=None)).final_stage == 3
    assert policy(model, FinetuneConfig(unfreeze_groups=10)).final_stage == 3
    at_once = policy(model, FinetuneConfig(unfreeze_groups=2, unfreeze_every=0))
    assert at_once.first_stage() == 2

    scratch = policy(model, FinetuneConfig(pretrained=False, unfreeze_groups=1, lr_decay=0.7))
    assert (scratch.final_stage, scratch.first_stage(), scratch.every) == (3, 3, 0)
    assert scratch.decays == (0.7, 0.7, 0.7)
    assert scratch.stage_name(3) == "scratch"


def test_the_default_policy_unfreezes_one_group_every_n_epochs(tiny_weights):
    model = _model(tiny_weights)
    policy = LayerGroupUnfreezing.from_config(
        model, FinetuneConfig(unfreeze_groups=None, unfreeze_every=2)
    )
    stage = policy.first_stage()
    policy.apply(model, stage)
    optimizer = torch.optim.AdamW(policy.param_groups(model, stage, lr=1e-3, weight_decay=0.01))
    scheduler = warmup_cosine_scheduler(optimizer, total_steps=10)
    stages = []
    for epoch in range(1, 7):
        stage = policy.advance(
            epoch,
            stage,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            lr=1e-3,
            weight_decay=0.01,
        )
        stages.append(stage)
    assert stages == [1, 1, 2, 2, 3, 3]
    assert policy.settled(stage)
    in_optimizer = {n for g in optimizer.param_groups for n in g["param_names"]}
    assert in_optimizer == {n for n, p in model.named_parameters() if p.requires_grad}
    assert in_optimizer == {n for n, _ in model.named_parameters()}
