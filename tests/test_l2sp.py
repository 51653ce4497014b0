"""L2-SP: the penalty's value by hand, frozen parameters, bad coefficients, and its effect."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.backbones import load_backbone
from transferkit.errors import BadInputError
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.early_stopping import EarlyStopping
from transferkit.finetune.engine import Finetuner
from transferkit.finetune.image_batches import ImageBatches
from transferkit.finetune.l2sp import L2SP
from transferkit.finetune.model import ClassifierModel
from transferkit.modalities import load_dataset


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny_weights(tmp_path):
    return write_tiny_weights(tmp_path / "tiny.safetensors")


def _model(weights, n_classes=3, seed=0):
    backbone = load_backbone(NAME, weights=weights)
    torch.manual_seed(seed)  # the head's initial weights
    return ClassifierModel(backbone, n_classes)


def _perturb(model, seed=1, scale=0.1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def _by_hand(model, reference, alpha, beta):
    sp = head = 0.0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("head."):
            head += float((p.detach().double() ** 2).sum())
        else:
            sp += float(((p.detach().double() - reference[name].double()) ** 2).sum())
    return alpha / 2 * sp + beta / 2 * head


def test_backbone_term_is_zero_at_the_starting_point(tiny_weights):
    model = _model(tiny_weights)
    penalty = L2SP(model, alpha=5.0, beta=0.0)
    assert float(penalty(model).detach()) == 0.0
    # with beta only the head's plain L2 remains
    both = L2SP(model, alpha=5.0, beta=0.3)
    head = sum(float((p.detach() ** 2).sum()) for p in model.head.parameters())
    assert float(both(model).detach()) == pytest.approx(0.15 * head, rel=1e-5)


def test_penalty_matches_the_formula_by_hand(tiny_weights):
    model = _model(tiny_weights)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    alpha, beta = 0.7, 0.05
    penalty = L2SP(model, alpha=alpha, beta=beta)
    _perturb(model)
    value = penalty(model)
    assert value.ndim == 0
    assert float(value.detach()) == pytest.approx(_by_hand(model, start, alpha, beta), rel=1e-5)
    # the reference is a copy: moving the weights did not move the starting point
    for name, ref in penalty.reference.items():
        assert torch.equal(ref, start[name])
    assert not any(name.startswith("head.") for name in penalty.reference)


def test_penalty_has_the_expected_gradient(tiny_weights):
    model = _model(tiny_weights)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    penalty = L2SP(model, alpha=2.0, beta=0.5)
    _perturb(model)
    penalty(model).backward()
    for name, p in model.named_parameters():
        want = 0.5 * p.detach() if name.startswith("head.") else 2.0 * (p.detach() - start[name])
        torch.testing.assert_close(p.grad, want, rtol=1e-5, atol=1e-7)


def test_frozen_parameters_are_left_out(tiny_weights):
    model = _model(tiny_weights)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    penalty = L2SP(model, alpha=1.0, beta=0.1)
    _perturb(model)
    everything = float(penalty(model).detach())
    frozen = [n for n, _ in model.named_parameters() if n.startswith("backbone.model.stem")]
    assert frozen
    for name, p in model.named_parameters():
        if name in frozen:
            p.requires_grad_(False)
    without = float(penalty(model).detach())
    assert without < everything
    assert without == pytest.approx(_by_hand(model, start, 1.0, 0.1), rel=1e-5)
    # every backbone parameter frozen: only the head term is left
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head."))
    head = sum(float((p.detach() ** 2).sum()) for p in model.head.parameters())
    assert float(penalty(model).detach()) == pytest.approx(0.05 * head, rel=1e-5)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"alpha": -0.1}, "alpha"),
        ({"beta": -1.0}, "beta"),
        ({"alpha": math.nan}, "alpha"),
    ],
)
def test_bad_coefficients_are_refused(tiny_weights, params, name):
    model = _model(tiny_weights)
    with pytest.raises(BadInputError, match=f"L2-SP {name} must be >= 0"):
        L2SP(model, **params)


def test_zero_coefficients_are_allowed(tiny_weights):
    model = _model(tiny_weights)
    penalty = L2SP(model, alpha=0.0, beta=0.0)
    _perturb(model)
    assert float(penalty(model).detach()) == 0.0


def _batches(ds, backbone, augment, batch_size=4):
    return ImageBatches(
        ds.paths, ds.targets, backbone.preprocess, augment=augment, batch_size=batch_size
    )


def _backbone_distance(model, start) -> float:
    total = 0.0
    for name, p in model.named_parameters():
        if not name.startswith("head."):
            total += float(((p.detach() - start[name]) ** 2).sum())
    return math.sqrt(total)


def test_l2sp_keeps_the_backbone_closer_to_its_start(tiny_weights, tmp_path, monkeypatch):
    from conftest import make_shapes_folder

    ds = load_dataset(make_shapes_folder(tmp_path / "shapes", per_class=8))
    train, val = ds.split(test_size=0.0, val_size=0.25, seed=0)[:2]
    # the distance after the last epoch, not after early stopping restored the best epoch
    # (which may be the untouched starting point in both runs)
    monkeypatch.setattr(EarlyStopping, "restore", lambda self, model: model)

    def run(regularize: str) -> float:
        model = _model(tiny_weights, len(train.labels), seed=3)
        start = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = FinetuneConfig(
            epochs=3,
            head_epochs=0,
            lr=1e-2,
            unfreeze_groups=3,
            patience=5,
            batch_size=4,
            regularize=regularize,
            l2sp_alpha=10.0,
            l2sp_beta=0.01,
        )
        backbone = model.backbone
        Finetuner(model, cfg, seed=3).fit(
            _batches(train, backbone, "light"), _batches(val, backbone, "none")
        )
        return _backbone_distance(model, start)

    plain, l2sp = run("none"), run("l2sp")
    assert plain > 0 and l2sp > 0
    assert l2sp < 0.8 * plain, (l2sp, plain)
