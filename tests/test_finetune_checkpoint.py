"""Checkpoints: exact resume, refusal of other models and damaged files, no pickle."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from finetune_models import TinyNet as _TinyNet
from finetune_models import tiny_groups
from torch import nn

import transferkit.finetune as finetune_pkg
from transferkit.errors import BadInputError
from transferkit.finetune.checkpoint import load_checkpoint, save_checkpoint
from transferkit.finetune.early_stopping import EarlyStopping
from transferkit.finetune.freezing import set_unfrozen_groups, train_mode
from transferkit.finetune.param_groups import discriminative_param_groups, unfreeze_next_group
from transferkit.finetune.schedule import warmup_cosine_scheduler


def TinyNet(classes: int = 3) -> _TinyNet:  # noqa: N802 (stands in for the class)
    return _TinyNet(classes, dropout=0.3)


TOTAL, HALF, UNFREEZE_AT, EPOCH = 12, 6, (3, 8), 3


def _scheduler(opt: torch.optim.Optimizer):
    return warmup_cosine_scheduler(opt, total_steps=TOTAL, warmup_steps=2, floor=0.1)


def _fresh_run(seed: int = 0):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = TinyNet()
    groups = tiny_groups(model)
    set_unfrozen_groups(model, groups, 0)
    opt = torch.optim.AdamW(discriminative_param_groups(model, groups, head_lr=1e-2))
    return model, groups, opt, _scheduler(opt), EarlyStopping(patience=5)


def _train(model, groups, opt, sched, stopper, stage, start, stop, losses):
    """Steps ``start..stop-1``: unfreezing, BN rule, all three RNGs and early stopping in play."""
    for step in range(start, stop):
        if step in UNFREEZE_AT:
            stage = unfreeze_next_group(opt, model, groups, stage, head_lr=1e-2, scheduler=sched)
        train_mode(model)
        x = torch.randn(4, 3, 8, 8) * (1 + np.random.rand())
        if random.random() < 0.5:
            x = x.flip(-1)
        loss = F.cross_entropy(model(x), torch.randint(0, 3, (4,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % EPOCH == 0:
            stopper.step(-loss.item(), model)
    return stage


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path):
    straight_losses: list[float] = []
    model, groups, opt, sched, stopper = _fresh_run()
    _train(model, groups, opt, sched, stopper, 0, 0, TOTAL, straight_losses)

    losses: list[float] = []
    m1, g1, o1, s1, e1 = _fresh_run()
    stage = _train(m1, g1, o1, s1, e1, 0, 0, HALF, losses)
    path = save_checkpoint(
        tmp_path / "ckpt.safetensors", model=m1, optimizer=o1, scheduler=s1,
        early_stopping=e1, epoch=HALF // EPOCH, stage=stage, extra={"run": "a"},
    )  # fmt: skip
    del m1, o1, s1, e1

    torch.manual_seed(1234)  # anything: the checkpoint must bring back every generator
    random.seed(1234)
    np.random.seed(1234)
    model2 = TinyNet()
    stopper2 = EarlyStopping(patience=5)
    loaded = load_checkpoint(
        path, model2, torch.optim.AdamW, build_scheduler=_scheduler, early_stopping=stopper2
    )
    assert (loaded.epoch, loaded.stage, loaded.extra) == (2, 1, {"run": "a"})
    # the resumed model is not re-frozen: the top group unfrozen at step 3 still trains
    trainable = {n for n, p in model2.named_parameters() if p.requires_grad}
    assert trainable == set(tiny_groups(model2)[2]) | {"head.2.weight", "head.2.bias"}
    _train(
        model2, tiny_groups(model2), loaded.optimizer, loaded.scheduler, stopper2,
        loaded.stage, HALF, TOTAL, losses,
    )  # fmt: skip

    assert losses == straight_losses
    for (name, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert torch.equal(a, b), name
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in loaded.optimizer.param_groups]
    assert stopper.best_score == stopper2.best_score and stopper.bad_epochs == stopper2.bad_epochs
    for k, v in stopper.best_state.items():
        assert torch.equal(v, stopper2.best_state[k])


def _saved(tmp_path: Path) -> Path:
    model, groups, opt, sched, stopper = _fresh_run()
    _train(model, groups, opt, sched, stopper, 0, 0, 2, [])
    return save_checkpoint(
        tmp_path / "c.safetensors", model=model, optimizer=opt, scheduler=sched, epoch=0, stage=0
    )


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path):
    path = _saved(tmp_path)
    with pytest.raises(BadInputError, match=r"different model.*head\.2\.weight.*\(3, 32\)"):
        load_checkpoint(path, TinyNet(classes=5), torch.optim.AdamW, build_scheduler=_scheduler)
    other = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(BadInputError, match=r"missing from the checkpoint: 0\.bias"):
        load_checkpoint(path, other, torch.optim.AdamW)


def test_damaged_or_foreign_files_are_refused(tmp_path: Path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="truncated"):
        load_checkpoint(truncated, TinyNet(), torch.optim.AdamW)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 7)
    with pytest.raises(BadInputError):
        load_checkpoint(garbage, TinyNet(), torch.optim.AdamW)
    with pytest.raises(BadInputError, match="No checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors", TinyNet(), torch.optim.AdamW)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(BadInputError, match="not a transferkit checkpoint"):
        load_checkpoint(plain, TinyNet(), torch.optim.AdamW)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path):
    path = _saved(tmp_path)
    _saved(tmp_path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_no_pickle_anywhere_in_the_engine():
    forbidden = re.compile(r"import pickle|pickle\.|torch\.save|torch\.load|joblib")
    for source in Path(finetune_pkg.__file__).parent.glob("*.py"):
        assert not forbidden.search(source.read_text()), source.name
