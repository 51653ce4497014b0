"""The fine-tuning loop on a tiny registered backbone: stages, BatchNorm, LRs, early stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
)

from transferkit.backbones import load_backbone
from transferkit.errors import BadInputError
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.engine import Finetuner, selection_score
from transferkit.finetune.image_batches import ImageBatches
from transferkit.finetune.model import ClassifierModel, state_sha256


def _batches(ds, backbone, augment="light", batch_size=8):
    return ImageBatches(
        ds.paths, ds.targets, backbone.preprocess, augment=augment, batch_size=batch_size
    )


def _bn_stats(module):
    return {
        name: (m.running_mean.clone(), m.running_var.clone())
        for name, m in module.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    }


def _embeddings(model, train, val):
    def make():
        out = []
        for ds in (train, val):
            x = torch.cat([x for x, _ in _batches(ds, model.backbone, "none").eval_batches()])
            with torch.no_grad():
                out.append((model.backbone.eval()(x), torch.as_tensor(ds.targets)))
        return tuple(out)

    return make


def test_stage_one_leaves_every_batchnorm_statistic_untouched(tiny_weights, shape_data):
    train, val = shape_data
    backbone = load_backbone(NAME, weights=tiny_weights)
    model = ClassifierModel(backbone, len(train.labels))
    before = _bn_stats(backbone)
    weights_before = {k: v.clone() for k, v in backbone.state_dict().items()}
    cfg = FinetuneConfig(epochs=1, head_epochs=5, lr=1e-3, head_lr=1e-2, unfreeze_groups=0)
    Finetuner(model, cfg).fit(
        _batches(train, backbone),
        _batches(val, backbone, "none"),
        embeddings=_embeddings(model, train, val),
    )
    # unfreeze_groups=0: the head trains through the frozen backbone for an epoch too
    for name, (mean, var) in _bn_stats(backbone).items():
        assert torch.equal(mean, before[name][0]), name
        assert torch.equal(var, before[name][1]), name
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, weights_before[k]), k


# None: no strategy chose; the engine alone learns them
@pytest.mark.parametrize("update_bn_stats", [False, True, None])
def test_stage_two_unfreezes_from_the_top_and_frozen_bn_stays_put(
    tiny_weights, shape_data, update_bn_stats
):
    train, val = shape_data
    backbone = load_backbone(NAME, weights=tiny_weights)
    model = ClassifierModel(backbone, len(train.labels))
    before = _bn_stats(backbone)
    cfg = FinetuneConfig(
        epochs=2,
        head_epochs=3,
        lr=5e-3,
        head_lr=1e-2,
        unfreeze_groups=2,
        patience=5,
        update_bn_stats=update_bn_stats,
    )
    finetuner = Finetuner(model, cfg)
    result = finetuner.fit(
        _batches(train, backbone),
        _batches(val, backbone, "none"),
        embeddings=_embeddings(model, train, val),
    )
    assert [r.stage for r in result.history] == ["head", "unfreeze:1", "unfreeze:2"]
    after = _bn_stats(backbone)
    # the stem was never unfrozen: its statistics are the pretrained ones either way
    assert torch.equal(after["model.stem.1"][0], before["model.stem.1"][0])
    for name in ("model.block2.1", "model.block1.1"):  # the two top groups trained
        changed = not torch.equal(after[name][0], before[name][0])
        assert changed == (update_bn_stats is not False), name
    assert result.history[-1].unfrozen_groups == 2


def test_unfreeze_every_zero_trains_all_target_groups_from_the_first_epoch(
    tiny_weights, shape_data
):
    train, val = shape_data
    backbone = load_backbone(NAME, weights=tiny_weights)
    model = ClassifierModel(backbone, len(train.labels))
    cfg = FinetuneConfig(
        epochs=2, head_epochs=2, lr=5e-3, head_lr=1e-2, unfreeze_groups=2, unfreeze_every=0
    )
    result = Finetuner(model, cfg).fit(
        _batches(train, backbone),
        _batches(val, backbone, "none"),
        embeddings=_embeddings(model, train, val),
    )
    assert [r.stage for r in result.history] == ["head", "unfreeze:2", "unfreeze:2"]


def test_lower_groups_learn_slower(tiny_weights, shape_data):
    from transferkit.finetune.param_groups import discriminative_param_groups

    train, _ = shape_data
    model = ClassifierModel(load_backbone(NAME, weights=tiny_weights), len(train.labels))
    groups = discriminative_param_groups(
        model, model.layer_groups(), head_lr=1e-3, decay=0.5, unfrozen_groups=3
    )
    lr = {g["group_name"].split("/")[0]: g["lr"] for g in groups}
    assert lr["head"] == pytest.approx(1e-3)
    assert lr["group2"] == pytest.approx(5e-4)
    assert lr["group1"] == pytest.approx(2.5e-4)
    assert lr["group0"] == pytest.approx(1.25e-4)


def test_early_stopping_restores_the_best_epoch(tiny_weights, shape_data):
    train, val = shape_data
    backbone = load_backbone(NAME, weights=tiny_weights)
    model = ClassifierModel(backbone, len(train.labels))
    # a learning rate this large wrecks the network after the warm-up: the warm-up must win
    cfg = FinetuneConfig(epochs=4, head_epochs=20, lr=5.0, head_lr=1e-2, patience=2)
    result = Finetuner(model, cfg).fit(
        _batches(train, backbone),
        _batches(val, backbone, "none"),
        embeddings=_embeddings(model, train, val),
    )
    best = next(r for r in result.history if r.epoch == result.best_epoch)
    assert result.best_val_accuracy == best.val_accuracy
    assert result.best_val_accuracy == max(r.val_accuracy for r in result.history)
    from transferkit.finetune.engine import evaluate_batches

    _, acc = evaluate_batches(model, _batches(val, backbone, "none"), torch.device("cpu"))
    assert acc == pytest.approx(best.val_accuracy)


def test_selection_prefers_accuracy_then_lower_loss():
    assert selection_score(0.9, 2.0) > selection_score(0.8, 0.1)
    assert selection_score(0.9, 0.2) > selection_score(0.9, 0.3)
    assert selection_score(0.5, float("nan")) == 0.5


def test_seeded_runs_are_identical_on_cpu(tiny_weights, shape_data):
    train, val = shape_data

    def run():
        backbone = load_backbone(NAME, weights=tiny_weights)
        torch.manual_seed(3)  # the new head's initial weights (the strategy seeds this too)
        model = ClassifierModel(backbone, len(train.labels))
        cfg = FinetuneConfig(epochs=2, head_epochs=3, lr=5e-3, head_lr=1e-2, unfreeze_groups=3)
        result = Finetuner(model, cfg, seed=3).fit(
            _batches(train, backbone),
            _batches(val, backbone, "none"),
            embeddings=_embeddings(model, train, val),
        )
        return state_sha256(model), [r.train_loss for r in result.history]

    assert run() == run()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"lr": 0.0}, "lr must be a positive learning rate"),
        ({"lr": -1e-3}, "lr must be a positive learning rate"),
        ({"epochs": 0}, "epochs must be a whole number >= 1"),
        ({"batch_size": 0}, "batch-size must be a whole number >= 1"),
        ({"regularize": "l1"}, "regularize must be one of"),
        ({"augment": "wild"}, "augment must be one of"),
        ({"lr_decay": 1.5}, "lr-decay must be in"),
        ({"pretrained": False, "regularize": "l2sp"}, "from-scratch model has none"),
    ],
)
def test_bad_settings_are_refused_with_the_option_named(params, match):
    with pytest.raises(BadInputError, match=match):
        FinetuneConfig(**params)


def test_history_is_json_friendly(tiny_weights, shape_data):
    train, val = shape_data
    backbone = load_backbone(NAME, weights=tiny_weights)
    model = ClassifierModel(backbone, len(train.labels))
    cfg = FinetuneConfig(epochs=1, head_epochs=2, lr=1e-3, head_lr=1e-2)
    result = Finetuner(model, cfg).fit(
        _batches(train, backbone),
        _batches(val, backbone, "none"),
        embeddings=_embeddings(model, train, val),
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["history"][0]["stage"] == "head"
    assert np.isfinite(data["history"][-1]["val_loss"])


# What three short runs gave before the engine's loss terms and trainable parameters became
# hooks and a policy object (CPU, torch's own kernels): a refactor of the loop must reproduce
# them. Weights are summed per layer group: (sum, sum of absolute values).
REFERENCE_RUNS = {
    "l2sp_gradual": dict(
        epochs=3,
        head_epochs=3,
        lr=5e-3,
        head_lr=1e-2,
        unfreeze_groups=3,
        regularize="l2sp",
        l2sp_alpha=0.5,
        patience=5,
    ),
    "finder_all_at_once": dict(
        epochs=2, head_epochs=3, unfreeze_groups=2, unfreeze_every=0, patience=5
    ),
    "scratch_no_val": dict(epochs=2, pretrained=False),
}
REFERENCE_NUMBERS = {
    "l2sp_gradual": {
        "lr": 0.005,
        "head_lr": 0.01,
        "best_epoch": 3,
        "history": [
            ("head", 1.0985105, 0.33333333, 1.0965287, 0.33333333, 0.01),
            ("unfreeze:1", 1.0125799, 0.61111111, 0.72604322, 1.0, 0.005),
            ("unfreeze:2", 0.87311906, 0.72222222, 0.63210905, 1.0, 0.00375),
            ("unfreeze:3", 0.80599544, 0.94444444, 0.56065178, 1.0, 0.00125),
        ],
        "weights": {
            "block1/buffers": (2.1485541, 3.4106019),
            "block1/params": (13.08049, 64.778343),
            "block2/buffers": (3.6580583, 5.8746329),
            "block2/params": (18.114267, 99.154921),
            "head/params": (-2.7387377, 7.1739863),
            "stem/buffers": (2.5335047, 4.8839972),
            "stem/params": (6.022613, 28.458789),
        },
    },
    "finder_all_at_once": {
        "lr": 0.003,
        "head_lr": 0.1,
        "best_epoch": 2,
        "history": [
            ("head", 1.0689867, 0.61111111, 1.0623224, 0.66666667, 0.1),
            ("unfreeze:2", 0.78894601, 0.66666667, 0.44333017, 1.0, 0.003),
            ("unfreeze:2", 0.62967139, 0.88888889, 0.42615306, 1.0, 0.0015),
        ],
        "weights": {
            "block1/buffers": (0.54183799, 1.7613672),
            "block1/params": (13.076042, 64.912236),
            "block2/buffers": (3.199832, 6.1444119),
            "block2/params": (15.825015, 98.952333),
            "head/params": (-4.0947083, 10.468116),
            "stem/buffers": (9.7282846, 10.039768),
            "stem/params": (6.0082862, 28.459395),
        },
    },
    "scratch_no_val": {
        "lr": 3.4551073e-05,
        "head_lr": None,
        "best_epoch": 2,
        "history": [
            ("scratch", 1.0780215, 0.38888889, None, None, 3.4551073e-05),
            ("scratch", 1.0915714, 0.33333333, None, None, 1.7275536e-05),
        ],
        "weights": {
            "block1/buffers": (2.2158603, 3.2803583),
            "block1/params": (13.443409, 64.682121),
            "block2/buffers": (1.0687759, 4.2447755),
            "block2/params": (13.892418, 98.492984),
            "head/params": (-2.4418184, 6.9828671),
            "stem/buffers": (2.9509515, 5.0527875),
            "stem/params": (6.0082992, 28.459297),
        },
    },
}


def _weight_sums(model) -> dict[str, tuple[float, float]]:
    sums: dict[str, list[float]] = {}
    for name, value in model.state_dict().items():
        if not value.is_floating_point():
            continue
        part = name.split(".")[2] if name.startswith("backbone.") else "head"
        kind = "buffers" if "running" in name else "params"
        total = sums.setdefault(f"{part}/{kind}", [0.0, 0.0])
        total[0] += float(value.double().sum())
        total[1] += float(value.double().abs().sum())
    return {k: tuple(v) for k, v in sums.items()}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the reference numbers are CPU numbers")
@pytest.mark.parametrize("run", sorted(REFERENCE_RUNS))
def test_short_runs_reproduce_the_reference_numbers(tiny_weights, shape_data, run):
    train, val = shape_data
    backbone = load_backbone(NAME, weights=tiny_weights)
    torch.manual_seed(3)
    model = ClassifierModel(backbone, len(train.labels))
    cfg = FinetuneConfig(**REFERENCE_RUNS[run])
    with_val = run != "scratch_no_val"
    result = Finetuner(model, cfg, seed=3).fit(
        _batches(train, backbone),
        _batches(val, backbone, "none") if with_val else None,
        embeddings=_embeddings(model, train, val) if cfg.pretrained else None,
    )
    expected = REFERENCE_NUMBERS[run]
    close = dict(rel=1e-5, abs=1e-7)
    assert result.lrs["lr"] == pytest.approx(expected["lr"], **close)
    if expected["head_lr"] is None:  # no warm-up from scratch
        assert "head_lr" not in result.lrs
    else:
        assert result.lrs["head_lr"] == pytest.approx(expected["head_lr"], **close)
    assert result.best_epoch == expected["best_epoch"]
    got = [
        (r.stage, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.lr)
        for r in result.history
    ]
    assert [g[0] for g in got] == [e[0] for e in expected["history"]]
    for row, want in zip(got, expected["history"]):
        # no validation split: its columns stay None
        assert list(row[1:]) == [v if v is None else pytest.approx(v, **close) for v in want[1:]]
    sums = _weight_sums(model)
    assert sums.keys() == expected["weights"].keys()
    for key, want in expected["weights"].items():
        assert sums[key] == pytest.approx(want, **close), key
