"""``serve.models.load_models``: which bundles share one backbone in memory.

A frozen backbone is shared by every bundle that names the same weights and preprocessing; a
fine-tuned one is its bundle's own; a finetune bundle whose small-data guard kept the pretrained
weights (it stores none) is a frozen one and shares. Tiny registered backbone, its "pretrained"
weights found where a user's would be (the torch hub cache).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import make_shapes_folder
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.backbones import registry
from transferkit.estimator import TransferClassifier
from transferkit.serve.models import backbone_groups, load_models
from transferkit.strategies import finetune_guard

COMMON = {"backbone": NAME, "runtime": "torch", "progress": False, "cache": False}
TUNE = {"epochs": 1, "lr": 1e-3, "head_epochs": 3}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):  # after the module's autouse tiny_registered
    """A features, a fine-tuned and a guard-kept finetune model of the same data, each saved:
    fitted once for the module's tests."""
    tmp_path = tmp_path_factory.mktemp("serve-models")
    with pytest.MonkeyPatch.context() as mp:
        # the tiny backbone as a torchvision one is: a download address (never reached here)
        # whose file, once in the torch hub cache, is found there offline
        spec = registry._REGISTRY[NAME]
        url = "https://download.invalid/tiny_cnn_test.safetensors"
        mp.setitem(registry._REGISTRY, NAME, replace(spec, weights=replace(spec.weights, url=url)))
        torch_home = tmp_path / "torch"
        mp.setenv("TORCH_HOME", str(torch_home))
        mp.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
        checkpoints = torch_home / "hub" / "checkpoints"
        checkpoints.mkdir(parents=True)
        write_tiny_weights(checkpoints / "tiny_cnn_test.safetensors")
        train = make_shapes_folder(tmp_path / "train", per_class=8)
        test = make_shapes_folder(tmp_path / "test", per_class=3, seed=5)
        out = {"test": test}
        out["frozen"] = TransferClassifier(strategy="features", **COMMON).fit(train)
        tuned = TransferClassifier(
            strategy="finetune", strategy_params={**TUNE, "guard": "off"}, **COMMON
        )
        out["tuned"] = tuned.fit(train)
        with mp.context() as guarded:
            guarded.setattr(finetune_guard, "MAX_P", -1.0)  # no evidence can keep fine-tuning
            kept = TransferClassifier(strategy="finetune", strategy_params=TUNE, **COMMON)
            kept.fit(train)
        assert kept.fit_info_["training"]["guard"]["decision"] == "features"
        out["kept"] = kept
        for name in ("frozen", "tuned", "kept"):
            out[name].save(tmp_path / name)
            out[f"{name}_path"] = tmp_path / name
        yield out


def test_a_guard_kept_finetune_bundle_shares_the_frozen_backbone(bundles):
    models = load_models([str(bundles[f"{n}_path"]) for n in ("frozen", "tuned", "kept")])
    assert models["kept"].backbone is models["frozen"].backbone
    assert models["tuned"].backbone is not models["frozen"].backbone
    groups = backbone_groups(models.values())
    assert groups == {"frozen": ["kept"], "kept": ["frozen"], "tuned": []}


def test_each_served_bundle_predicts_as_the_model_that_saved_it(bundles):
    models = load_models([str(bundles[f"{n}_path"]) for n in ("frozen", "tuned", "kept")])
    images = sorted(bundles["test"].rglob("*.png"))
    uploads = [(p.name, p.read_bytes()) for p in images]
    for name in ("frozen", "tuned", "kept"):
        served = models[name].predict(uploads).proba
        np.testing.assert_allclose(
            served, bundles[name].predict_proba([str(p) for p in images]), atol=1e-5
        )
