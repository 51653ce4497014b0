"""The deep domain adaptation hook in the fine-tuning engine: target batches beside the source
ones, the discriminator trained by the same optimizer and kept in the checkpoint, and a run
interrupted after an epoch that resumes to exactly the uninterrupted result."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_shapes_folder
from safetensors import safe_open
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
)

from transferkit.backbones import load_backbone
from transferkit.errors import BadInputError
from transferkit.estimator import load_unlabelled
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.domain.grl import warm_up_coefficient
from transferkit.finetune.domain.hook import DomainAdaptationHook
from transferkit.finetune.engine import CHECKPOINT_NAME, Finetuner
from transferkit.finetune.image_batches import ImageBatches
from transferkit.finetune.model import ClassifierModel, state_sha256

EPOCHS = 3
DISCRIMINATOR = "hooks.DomainAdaptationHook.loss.discriminator.0.weight"


@pytest.fixture
def target(tmp_path):
    """10 unlabelled shapes of another draw: fewer batches than the source, so it cycles."""
    folder = make_shapes_folder(tmp_path / "target", per_class=4, seed=7)
    images = sorted(folder.rglob("*.png"))[:10]
    return load_unlabelled(images, modality="image")


class StoppingHook(DomainAdaptationHook):
    """Interrupts the run before ``stop_before_epoch`` (after the previous epoch's checkpoint)."""

    name = "DomainAdaptationHook"

    def __init__(self, *args, stop_before_epoch=None, forget=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_before_epoch = stop_before_epoch
        self.forget = forget

    def on_epoch_start(self, run):
        if run.epoch == self.stop_before_epoch:
            raise KeyboardInterrupt
        super().on_epoch_start(run)

    def load_state_dict(self, state):
        if not self.forget:  # forget: the schedule restarts, as tllib's iter_num does
            super().load_state_dict(state)


def _hook(method, target, backbone, **kw):
    batches = ImageBatches(
        target.paths, target.targets, backbone.preprocess, augment="light", batch_size=8
    )
    return StoppingHook(
        method,
        batches,
        weight=1.0,
        target_fingerprint=target.fingerprint(),
        options={"hidden": 16},
        **kw,
    )


def _run(weights, data, target, method="dann", *, checkpoint_dir=None, resume=False, **kw):
    train, val = data
    backbone = load_backbone(NAME, weights=weights)
    torch.manual_seed(3)
    model = ClassifierModel(backbone, len(train.labels))
    cfg = FinetuneConfig(epochs=EPOCHS, head_epochs=0, lr=5e-3, unfreeze_groups=2, patience=9)
    hook = _hook(method, target, backbone, **kw)

    def batches(ds, augment):
        return ImageBatches(
            ds.paths, ds.targets, backbone.preprocess, augment=augment, batch_size=8
        )

    runner = Finetuner(model, cfg, seed=3, hooks=[hook], checkpoint_dir=checkpoint_dir)
    result = runner.fit(batches(train, "light"), batches(val, "none"), resume=resume)
    return model, result, hook


def _discriminator(hook) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in hook.loss.state_dict().items()}


@pytest.mark.parametrize("method", ["dann", "cdan", "mmd"])
def test_interrupted_after_epoch_one_then_resumed_matches_the_uninterrupted_run(
    tiny_weights, shape_data, target, tmp_path, method
):
    model, result, straight = _run(tiny_weights, shape_data, target, method)
    steps = EPOCHS * math.ceil(len(shape_data[0]) / 8)
    assert straight.step == steps
    assert [r["epoch"] for r in straight.history] == [1, 2, 3]

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_weights, shape_data, target, method, checkpoint_dir=run, stop_before_epoch=2)
    resumed, resumed_result, again = _run(
        tiny_weights, shape_data, target, method, checkpoint_dir=run, resume=True
    )
    assert resumed_result.resumed_from_epoch == 1
    assert again.step == steps
    assert again.history == straight.history
    assert state_sha256(resumed) == state_sha256(model)
    assert [r.train_loss for r in resumed_result.history] == [r.train_loss for r in result.history]
    ours, theirs = _discriminator(again), _discriminator(straight)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_schedule_that_restarts_on_resume_ends_elsewhere(
    tiny_weights, shape_data, target, tmp_path
):
    """The check above has teeth: the gradient reversal restarting at 0 changes the result."""
    model, _, _ = _run(tiny_weights, shape_data, target)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _run(tiny_weights, shape_data, target, checkpoint_dir=run, stop_before_epoch=2)
    forgetful, _, hook = _run(
        tiny_weights, shape_data, target, checkpoint_dir=run, resume=True, forget=True
    )
    assert hook.step < EPOCHS * math.ceil(len(shape_data[0]) / 8)
    assert state_sha256(forgetful) != state_sha256(model)


def test_the_discriminator_trains_in_the_optimizer_and_is_checkpointed(
    tiny_weights, shape_data, target, tmp_path
):
    backbone = load_backbone(NAME, weights=tiny_weights)
    before = _discriminator(_started(_hook("dann", target, backbone)))
    _, _, hook = _run(tiny_weights, shape_data, target, checkpoint_dir=tmp_path)
    after = _discriminator(hook)
    assert not torch.equal(before["discriminator.0.weight"], after["discriminator.0.weight"])
    with safe_open(str(tmp_path / CHECKPOINT_NAME), framework="pt") as fh:
        keys = set(fh.keys())
        saved = fh.get_tensor(f"model/{DISCRIMINATOR}")
    assert torch.equal(saved, after["discriminator.0.weight"])
    assert f"optimizer/{DISCRIMINATOR}/exp_avg" in keys  # AdamW's state for it too
    assert not any(k.startswith("model/model.") for k in keys)  # the model's names unchanged
    # the history: a discriminator that cannot tell the domains apart scores about ½
    assert all(0 <= r["discriminator_accuracy"] <= 1 for r in hook.history)
    coefficients = [r["grl_coefficient"] for r in hook.history]
    assert coefficients == sorted(coefficients) and coefficients[-1] < 1


def _started(hook):
    """The hook's loss module as ``on_train_start`` builds it for the tiny model (seed 3)."""
    from types import SimpleNamespace

    model = SimpleNamespace(
        backbone=SimpleNamespace(num_features=16), head=SimpleNamespace(out_features=3)
    )
    run = SimpleNamespace(
        model=model,
        seed=3,
        device=torch.device("cpu"),
        config=FinetuneConfig(epochs=EPOCHS),
        batches_per_epoch=3,
    )
    hook.on_train_start(run)
    return hook


def test_the_target_stream_cycles_and_reshuffles(tiny_weights, target):
    backbone = load_backbone(NAME, weights=tiny_weights)
    hook = _hook("dann", target, backbone)
    stream = hook._target_stream(seed=3, epoch=1)
    sizes = [len(next(stream)[0]) for _ in range(5)]
    assert sizes == [8, 2, 8, 2, 8]  # 10 target inputs in batches of 8, again and again
    again = hook._target_stream(seed=3, epoch=1)
    other_epoch = hook._target_stream(seed=3, epoch=2)
    first = next(hook._target_stream(seed=3, epoch=1))[0]
    assert torch.equal(next(again)[0], first)  # the same epoch draws the same inputs
    assert not torch.equal(next(other_epoch)[0], first)
    stream.close()
    again.close()
    other_epoch.close()


def test_schedule_follows_the_steps(tiny_weights, target):
    backbone = load_backbone(NAME, weights=tiny_weights)
    hook = _started(_hook("dann", target, backbone))
    assert hook.total_steps == EPOCHS * 3
    for step in range(hook.total_steps + 1):
        hook.step = step
        assert hook.coefficient == pytest.approx(warm_up_coefficient(step / 9))


def test_resume_with_another_target_is_refused(tiny_weights, target):
    backbone = load_backbone(NAME, weights=tiny_weights)
    hook = _hook("dann", target, backbone)
    state = {**hook.state_dict(), "target": "another"}
    with pytest.raises(BadInputError, match="other --target inputs"):
        hook.load_state_dict(state)


def test_too_small_a_target_or_an_unknown_method_is_refused(tiny_weights, target):
    backbone = load_backbone(NAME, weights=tiny_weights)
    one = ImageBatches(target.paths[:1], np.array([-1]), backbone.preprocess, batch_size=8)
    with pytest.raises(BadInputError, match="at least 2 target inputs"):
        DomainAdaptationHook("dann", one)
    with pytest.raises(BadInputError, match="one of dann, cdan, mmd"):
        _hook("wasserstein", target, backbone)


def test_batchnorm_statistics_end_as_the_targets(tiny_weights, shape_data, target):
    """After each epoch the BatchNorm layers that train are re-estimated on target batches:
    the model is evaluated and deployed with the statistics of the domain it is for."""
    import copy

    from torch import nn

    from transferkit.finetune.batchnorm import reestimate_bn_statistics
    from transferkit.finetune.domain.hook import _BN_STREAM
    from transferkit.finetune.engine import PRECISE_BN_IMAGES
    from transferkit.finetune.freezing import frozen_bn_layers

    model, _, hook = _run(tiny_weights, shape_data, target)
    frozen = {id(m) for m in frozen_bn_layers(model)}
    trained = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in frozen
    ]
    assert trained  # the top groups' BatchNorm layers trained

    def statistics(source_of_batches):
        again = copy.deepcopy(model)
        layers = [again.get_submodule(n) for n in trained]
        reestimate_bn_statistics(
            again,
            source_of_batches,
            torch.device("cpu"),
            layers=layers,
            max_images=PRECISE_BN_IMAGES,
        )
        return [again.get_submodule(n).running_mean for n in trained]

    rng = np.random.default_rng([3, EPOCHS, _BN_STREAM])
    kept = [model.get_submodule(n).running_mean for n in trained]
    for ours, expected in zip(kept, statistics(hook.target.train_epoch(rng))):
        torch.testing.assert_close(ours, expected)
    train, _ = shape_data
    source = ImageBatches(train.paths, train.targets, hook.target.preprocess, augment="light")
    source_stats = statistics(source.train_epoch(np.random.default_rng([3, EPOCHS, 0x42])))
    assert not all(torch.allclose(a, b) for a, b in zip(kept, source_stats))
