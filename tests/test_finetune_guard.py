"""Fine-tuning at 10 images per class does not fall below the frozen features (issue 17).

Real object photos (Tux Paint's stamps: Debian ``tuxpaint-stamps-default``, installed by ``make
system``), cut out and composited onto white, 10 a class to train on and every other photo of
the class to test on; MobileNetV2 with its packaged ImageNet weights. With 10 a class there is
no validation split, so the small-data guard (``strategies/finetune_guard.py``) decides between
the fine-tuned model and the frozen features (what ``--strategy features`` gives) by
cross-fitting on the training data. The floor is that features run on the same photos.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_offline_weights

from transferkit.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
# four of the seven classes keep the test near a minute on two cores
CLASSES = ("bird", "mammal", "christmas", "halloween")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    if str(ROOT) not in sys.path:  # the benchmark's dataset builder is reused, not copied
        sys.path.insert(0, str(ROOT))
    from benchmarks.photo_datasets import TUXPAINT_STAMPS, write_tuxpaint

    if not TUXPAINT_STAMPS.is_dir():
        message = f"{TUXPAINT_STAMPS} is missing: run `make system` (tuxpaint-stamps-default)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    require_offline_weights("mobilenet_v2")
    root = tmp_path_factory.mktemp("tuxpaint")
    train, test = write_tuxpaint(10, 0, root=root, classes=CLASSES)
    return {"train": train, "test": test}


def _train(photos, out: Path, strategy: str, augment: str = "light") -> dict:
    code = main(
        ["-q", "train", str(photos["train"]), "--test", str(photos["test"]), "--out", str(out),
         "--backbone", "mobilenet_v2", "--strategy", strategy, "--augment", augment,
         "--no-progress"]
    )  # fmt: skip
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


# "none": the floor must be --strategy features with the same --augment (no mirrored views);
# it had kept them, and so beat that features run by 1.2 points on MNIST without fine-tuning
@pytest.mark.parametrize("augment", ["light", "none"])
def test_finetune_at_10_per_class_does_not_fall_below_the_frozen_features(
    photos, tmp_path, augment
):
    frozen = _train(photos, tmp_path / "features", "features", augment)
    tuned = _train(photos, tmp_path / "tuned", "finetune", augment)

    guard = tuned["training"]["guard"]
    assert guard["applied"] and guard["n_scored"] == 40
    assert guard["decision"] in ("finetune", "features")
    assert tuned["hyperparameters"]["backbone_lr_max"] == pytest.approx(1e-4)
    assert tuned["hyperparameters"]["update_bn_stats"] is False  # kept pretrained at 10 a class
    assert tuned["n_test"] == frozen["n_test"] > 0
    # the floor: what --strategy features gets on the same test photos
    assert tuned["accuracy"] >= frozen["accuracy"], (tuned["accuracy"], frozen["accuracy"], guard)
    if guard["decision"] == "features":  # then it is that features run, no better
        assert tuned["training"]["best_epoch"] == 0
        assert tuned["head"] == frozen["head"] == "logistic"
        from transferkit import TransferClassifier, load_dataset

        test = load_dataset(photos["test"])
        kept, features = (
            TransferClassifier.load(tmp_path / run / "model", progress=False).predict_proba(test)
            for run in ("tuned", "features")
        )
        np.testing.assert_allclose(kept, features, atol=1e-5)
        # the pretrained weights under their own identity (the embedding cache's key)
        kept_sha, features_sha = (
            json.loads((tmp_path / run / "model" / "manifest.json").read_text())["backbone"][
                "weights_sha256"
            ]
            for run in ("tuned", "features")
        )
        assert kept_sha == features_sha is not None
        assert not (tmp_path / "tuned" / "model" / "backbone.safetensors").exists()

    page = (tmp_path / "tuned" / "report.html").read_text()
    assert "small-data guard" in page
    assert "BatchNorm statistics" in page  # and that they stayed pretrained
    kept = "frozen features kept" if guard["decision"] == "features" else "fine-tuned model kept"
    assert kept in page


# -- the parts, on the tiny backbone and shapes (fast) ------------------------------------------


def test_the_floor_takes_the_views_features_would_take_with_the_same_augment():
    from transferkit.strategies.finetune_guard import features_augment

    assert features_augment("light") == "light"
    assert features_augment("none") == "none"
    assert features_augment("strong") == "light"  # features has no "strong": its nearest


def test_the_backbone_ceiling_caps_the_top_group_and_keeps_the_decay_below(tmp_path):
    import torch
    from tiny_backbone import NAME, register_tiny, write_tiny_weights

    from transferkit.backbones import load_backbone
    from transferkit.finetune.config import FinetuneConfig
    from transferkit.finetune.model import ClassifierModel
    from transferkit.finetune.trainable import LayerGroupUnfreezing

    register_tiny()
    model = ClassifierModel(
        load_backbone(NAME, weights=write_tiny_weights(tmp_path / "tiny.safetensors")), 3
    )
    config = FinetuneConfig(unfreeze_groups=None, lr_decay=0.5, backbone_lr_max=1e-4)
    policy = LayerGroupUnfreezing.from_config(model, config)
    stage = policy.final_stage
    policy.apply(model, stage)
    optimizer = torch.optim.AdamW(policy.param_groups(model, stage, lr=3e-3, weight_decay=0.01))
    lrs = {g["group_name"].split("/")[0]: g["lr"] for g in optimizer.param_groups}
    top = len(model.layer_groups()) - 1
    assert lrs["head"] == pytest.approx(3e-3)  # the head keeps its finder rate
    assert lrs[f"group{top}"] == pytest.approx(1e-4)
    assert lrs[f"group{top - 1}"] == pytest.approx(0.5e-4)
    # below the ceiling the head's rate rules, as before
    assert policy.decays_for(5e-5)[0] == 1.0
    uncapped = LayerGroupUnfreezing.from_config(model, FinetuneConfig(backbone_lr_max=None))
    assert uncapped.decays_for(3e-3) == list(uncapped.decays)


def test_the_ceiling_and_the_guard_apply_to_tiny_data_only(tmp_path):
    from conftest import make_shapes_folder

    from transferkit.finetune.config import FinetuneConfig
    from transferkit.modalities import load_dataset
    from transferkit.strategies.finetune_guard import (
        guard_skip_reason,
        resolve_backbone_lr_max,
        resolve_bn_statistics,
        sign_test_p,
    )

    tiny = load_dataset(make_shapes_folder(tmp_path / "tiny", per_class=10))
    more = load_dataset(make_shapes_folder(tmp_path / "more", per_class=21))
    config = FinetuneConfig()
    assert resolve_backbone_lr_max(config, tiny).backbone_lr_max == pytest.approx(1e-4)
    assert resolve_backbone_lr_max(config, more).backbone_lr_max is None
    given = FinetuneConfig(backbone_lr_max=1.0)
    assert resolve_backbone_lr_max(given, tiny).backbone_lr_max == 1.0

    # the BatchNorm statistics: kept pretrained on tiny data, learned above it, a given
    # choice kept, and a from-scratch model (no pretrained statistics) always learns them
    def bn(cfg, data):  # in the order the strategy resolves them: the ceiling first
        return resolve_bn_statistics(resolve_backbone_lr_max(cfg, data), data).update_bn_stats

    assert bn(config, tiny) is False
    assert bn(config, more) is True
    assert bn(FinetuneConfig(update_bn_stats=True), tiny) is True
    assert bn(FinetuneConfig(pretrained=False), tiny) is True
    # above the ceiling (the head's rate) kept statistics collapsed MNIST: learned again
    assert bn(FinetuneConfig(backbone_lr_max=1.0), tiny) is True
    assert bn(FinetuneConfig(backbone_lr_max=5e-5), tiny) is False
    assert guard_skip_reason(tiny, None, config) is None
    assert "more than 20" in guard_skip_reason(more, None, config)
    assert "validation split" in guard_skip_reason(tiny, tiny, config)
    assert "--guard off" in guard_skip_reason(tiny, None, FinetuneConfig(guard="off"))
    # 5 wins against 3 is no evidence; 9 against 1 is
    assert sign_test_p(5, 3) == pytest.approx(93 / 256)
    assert sign_test_p(9, 1) == pytest.approx(11 / 1024)
    assert sign_test_p(0, 0) == 1.0


def test_the_probe_start_applies_to_tiny_image_data_under_the_ceiling_only(tmp_path):
    from conftest import make_shapes_folder

    from transferkit.finetune.config import FinetuneConfig
    from transferkit.modalities import load_dataset
    from transferkit.strategies.finetune_guard import resolve_backbone_lr_max, resolve_head_start

    tiny = load_dataset(make_shapes_folder(tmp_path / "tiny", per_class=10))
    more = load_dataset(make_shapes_folder(tmp_path / "more", per_class=21))

    def start(cfg, data):  # in the order the strategy resolves them: the ceiling first
        return resolve_head_start(resolve_backbone_lr_max(cfg, data), data).head_start

    assert start(FinetuneConfig(), tiny) == "probe"
    assert start(FinetuneConfig(), more) == "warm-up"
    assert start(FinetuneConfig(head_start="warm-up"), tiny) == "warm-up"  # a given choice
    assert start(FinetuneConfig(head_start="probe"), more) == "probe"
    # above the ceiling the probe was measured to lose (3e-4: 4-12 points): the warm-up
    assert start(FinetuneConfig(backbone_lr_max=1.0), tiny) == "warm-up"
    # measured on images only
    texts = tiny.__class__(samples=tiny.samples, labels=tiny.labels, modality="text")
    assert start(FinetuneConfig(), texts) == "warm-up"
