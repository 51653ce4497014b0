"""``finetune`` and ``scratch`` through the Python API on the tiny registered backbone.

Fit, evaluate, save (backbone + head + manifest), reload without the pretrained weights and get
the very same probabilities; refused settings and data; batch sizes that do not fit.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import torch
from conftest import make_shapes_folder
from safetensors.torch import load_file
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.errors import BadInputError
from transferkit.estimator import TransferClassifier
from transferkit.modalities import load_dataset

# an explicit validation share: with 8 images per class the automatic choice is no split;
# the softmax warm-up (at 8 a class images would start from the frozen-features probe, tested
# on its own below): the path every run above 20 a class and every method built on it takes
PARAMS = {"epochs": 1, "lr": 1e-3, "head_epochs": 3, "val_size": 0.15, "head_start": "warm-up"}
COMMON = {"runtime": "torch", "progress": False}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def world(tmp_path_factory):  # after the module's autouse tiny_registered
    """Data, 'pretrained' weights and one fitted finetune model, shared by the module."""
    root = tmp_path_factory.mktemp("finetune-api")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERKIT_CACHE_DIR", str(root / "cache"))
        train = make_shapes_folder(root / "train", per_class=8)
        test = make_shapes_folder(root / "test", per_class=3, seed=5)
        weights = write_tiny_weights(root / "tiny.safetensors")
        clf = TransferClassifier(
            backbone=NAME, weights=weights, strategy="finetune", strategy_params=PARAMS, **COMMON
        ).fit(train)
        bundle = clf.save(root / "model")
    return {"root": root, "train": train, "test": test, "weights": weights, "clf": clf,
            "bundle": bundle}  # fmt: skip


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _trained_state(backbone) -> dict[str, torch.Tensor]:
    """The backbone's weights under the names of the pretrained file ('model.' prefix off)."""
    return {k.removeprefix("model."): v for k, v in backbone.state_dict().items()}


def test_fit_and_evaluate(world):
    clf = world["clf"]
    assert clf.strategy_.name == "finetune"
    assert clf.labels_ == ["circle", "square", "triangle"]
    metrics = clf.evaluate(world["test"])
    assert metrics["n_test"] == 9
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["strategy"] == "finetune"
    assert metrics["head"] == "linear"
    assert metrics["weights_source"].startswith(f"finetune of {NAME}")
    training = clf.fit_info_["training"]
    assert [r["stage"] for r in training["history"]] == ["head", "unfreeze:1"]
    assert training["lrs"]["lr"] == pytest.approx(1e-3)
    assert clf.fit_info_["config_used"]["lr"] == pytest.approx(1e-3)
    assert clf.fit_info_["layer_groups"] == 3
    assert clf.fit_info_["n_val"] >= 3  # one validation example per class at least
    assert clf.n_train_ + clf.fit_info_["n_val"] == 24
    predictions = clf.predict(world["test"])
    assert len(predictions) == 9 and set(predictions) <= set(clf.labels_)


def test_bundle_holds_backbone_head_and_the_training_record(world):
    bundle = world["bundle"]
    assert (bundle / "backbone.safetensors").is_file()
    assert (bundle / "head.safetensors").is_file()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {"backbone.safetensors", "head.safetensors"}
    strategy = manifest["strategy"]
    assert strategy["name"] == "finetune"
    assert strategy["config"]["epochs"] == 1
    assert strategy["config"]["lr"] == pytest.approx(1e-3)
    assert strategy["config"]["head_epochs"] == 3
    assert strategy["config_used"]["lr"] == pytest.approx(1e-3)
    assert [r["stage"] for r in strategy["training"]["history"]] == ["head", "unfreeze:1"]
    assert "best_epoch" in strategy["training"]
    backbone = manifest["backbone"]
    assert backbone["name"] == NAME
    assert backbone["pretrained_weights_sha256"] == _sha256(world["weights"])
    # the fine-tuned weights are identified by their own hash, not the pretrained file's
    assert backbone["weights_sha256"] != _sha256(world["weights"])
    assert backbone["weights_sha256"] == world["clf"].backbone_.weights_sha256
    assert manifest["head"]["name"] == "linear"


def test_reload_without_weights_predicts_the_same(world):
    clf = world["clf"]
    loaded = TransferClassifier.load(world["bundle"], cache=False, **COMMON)
    assert loaded.labels_ == clf.labels_
    assert loaded.strategy_.name == "finetune"
    assert loaded.backbone_.weights_sha256 == clf.backbone_.weights_sha256
    clf.cache = False  # both compute their embeddings: none comes from the other's cache
    try:
        ours = clf.predict_proba(world["test"])
    finally:
        clf.cache = True
    theirs = loaded.predict_proba(world["test"])
    assert ours.shape == (9, 3)
    np.testing.assert_array_equal(theirs, ours)
    assert loaded.evaluate(world["test"])["accuracy"] == clf.evaluate(world["test"])["accuracy"]


def test_fine_tuning_changed_the_backbone_weights(world, tmp_path):
    data = make_shapes_folder(tmp_path / "data", per_class=8)
    # two unfrozen groups with a sizeable learning rate after a short warm-up: the epochs
    # improve on the warm-up, so early stopping keeps trained rather than pretrained weights
    params = {"epochs": 2, "lr": 1e-2, "head_epochs": 1, "head_lr": 1e-2, "unfreeze_groups": 2}
    params["guard"] = "off"  # 8 a class: the small-data guard would judge, not the epochs
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune", strategy_params=params,
        **COMMON,
    ).fit(data)  # fmt: skip
    training = clf.fit_info_["training"]
    assert training["best_epoch"] >= 1, training["history"]
    loaded = TransferClassifier.load(clf.save(tmp_path / "model"), **COMMON)
    pretrained = load_file(str(world["weights"]))
    trained = _trained_state(loaded.backbone_)
    assert set(trained) == set(pretrained) - {"classifier.weight", "classifier.bias"}
    changed = {k for k in trained if not torch.equal(trained[k], pretrained[k])}
    assert "block2.0.weight" in changed
    assert "block1.0.weight" in changed
    # two groups from the top were trained; the stem stayed frozen
    assert "stem.0.weight" not in changed
    # the bundle stores exactly the in-memory weights
    for k, v in _trained_state(clf.backbone_).items():
        assert torch.equal(v, trained[k]), k


def test_another_head_is_refused(world):
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune", strategy_params=PARAMS,
        head="svm", **COMMON,
    )  # fmt: skip
    with pytest.raises(BadInputError, match="--head svm"):
        clf.fit(world["train"])


def test_a_validation_set_missing_a_class_is_refused(world, tmp_path):
    val = make_shapes_folder(tmp_path / "val", per_class=2, seed=7, classes=("circle", "square"))
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune", strategy_params=PARAMS,
        **COMMON,
    )  # fmt: skip
    with pytest.raises(BadInputError, match=r"no examples of class 'triangle' \(8 examples\)"):
        clf.fit(world["train"], val=val)


def test_a_class_too_small_to_validate_is_refused(world, tmp_path):
    data = make_shapes_folder(tmp_path / "data", per_class=6, classes=("circle", "square"))
    make_shapes_folder(tmp_path / "data", per_class=1, seed=3, classes=("triangle",))
    assert load_dataset(data).class_counts() == {"circle": 6, "square": 6, "triangle": 1}
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune", strategy_params=PARAMS,
        **COMMON,
    )  # fmt: skip
    with pytest.raises(BadInputError, match=r"'triangle' \(1 examples\)") as err:
        clf.fit(data)
    assert "validation split" in str(err.value)


def test_too_few_images_for_a_useful_validation_split_train_on_all_of_them(world):
    params = {k: v for k, v in PARAMS.items() if k != "val_size"}  # the automatic choice
    params["guard"] = "off"  # what is kept after the last epoch is the small-data guard's test
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune",
        strategy_params={**params, "epochs": 2}, **COMMON,
    ).fit(world["train"])  # fmt: skip
    assert clf.n_train_ == 24 and clf.fit_info_["n_val"] == 0
    training = clf.fit_info_["training"]
    # nothing to choose by: every epoch of the budget runs and the last one is kept
    assert [r["stage"] for r in training["history"]] == ["head", "unfreeze:1", "unfreeze:2"]
    assert training["best_epoch"] == 2 and training["best_val_accuracy"] is None
    assert all(r["val_accuracy"] is None for r in training["history"])


def test_scratch_needs_no_pretrained_weights_and_reloads(world, tmp_path):
    clf = TransferClassifier(
        backbone=NAME, weights=None, strategy="scratch", strategy_params={"epochs": 1},
        **COMMON,
    ).fit(world["train"])  # fmt: skip
    assert clf.strategy_.name == "scratch"
    assert [r["stage"] for r in clf.fit_info_["training"]["history"]] == ["scratch"]
    assert clf.fit_info_["config_used"]["pretrained"] is False
    assert "random init" in clf.backbone_.weights_source
    bundle = clf.save(tmp_path / "model")
    assert (bundle / "backbone.safetensors").is_file()
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["strategy"]["name"] == "scratch"
    assert manifest["backbone"]["weights_sha256"]
    loaded = TransferClassifier.load(bundle, cache=False, **COMMON)
    clf.cache = False
    np.testing.assert_array_equal(
        loaded.predict_proba(world["test"]), clf.predict_proba(world["test"])
    )


def test_adapt_bn_reestimates_the_top_groups_before_the_warm_up(world):
    from safetensors.torch import load_file

    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune",
        strategy_params={**PARAMS, "adapt_bn": True, "unfreeze_groups": 1}, **COMMON,
    ).fit(world["train"])  # fmt: skip
    assert clf.fit_info_["bn_statistics_adapted_on"] > 0
    assert "BatchNorm statistics re-estimated" in clf.backbone_.weights_source
    pretrained = load_file(str(world["weights"]))
    state = clf.backbone_.state_dict()
    # the one group to unfreeze (block2) has this data's statistics; the stem kept its own
    assert not torch.equal(
        state["model.block2.1.running_mean"], pretrained["block2.1.running_mean"]
    )
    assert torch.equal(state["model.stem.1.running_mean"], pretrained["stem.1.running_mean"])


def test_a_batch_larger_than_the_training_set_adapts(world, caplog):
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy="finetune",
        strategy_params={**PARAMS, "head_epochs": 1, "batch_size": 64}, **COMMON,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="transferkit"):
        clf.fit(world["train"])
    records = [r for r in caplog.records if "larger than the training set" in r.getMessage()]
    assert records, caplog.text
    assert records[0].name == "transferkit"
    assert records[0].levelno == logging.WARNING
    assert f"using {clf.n_train_}" in records[0].getMessage()
    assert clf.fit_info_["batch_size"] == clf.n_train_


def test_a_method_is_a_strategy_subclass_with_its_own_hooks_and_policy(world, monkeypatch):
    """A fine-tuning method plugs in by overriding FinetuneStrategy.engine_hooks and
    trainable_parameters and registering itself: neither the engine nor fit is edited."""
    from finetune_methods import BatchNormOnly

    from transferkit import strategies
    from transferkit.finetune.hooks import EngineHook
    from transferkit.strategies.finetune import FinetuneStrategy

    class EpochCounter(EngineHook):
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def on_epoch_end(self, run) -> None:
            self.epochs.append(run.epoch)

    counter = EpochCounter()

    class BatchNormOnlyFinetune(FinetuneStrategy):
        name = "batchnorm_only_test"

        def engine_hooks(self, prep):
            return [counter]

        def trainable_parameters(self, prep):
            return BatchNormOnly()

    monkeypatch.setitem(strategies.STRATEGIES, BatchNormOnlyFinetune.name, BatchNormOnlyFinetune)
    params = {**PARAMS, "epochs": 2, "lr": 1e-2, "patience": 5}
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy=BatchNormOnlyFinetune.name,
        strategy_params=params, **COMMON,
    ).fit(world["train"])  # fmt: skip
    assert [r["stage"] for r in clf.fit_info_["training"]["history"]] == ["head"] + [
        "batchnorm"
    ] * 2
    assert counter.epochs == [1, 2]
    pretrained = load_file(str(world["weights"]))
    trained = _trained_state(clf.backbone_)
    changed = {k for k in trained if not torch.equal(trained[k], pretrained[k])}
    # BatchNorm scales and shifts (and, precise BN, their statistics); no convolution weight
    assert changed and all(".1." in k for k in changed), changed
    assert "block2.1.weight" in changed


def test_a_method_built_on_finetune_refuses_the_probe_start(world, monkeypatch):
    """The probe start was measured for plain fine-tuning: a method that judges its own result
    (small_data_guard False: domain adaptation, adapters) says so instead of trying it."""
    from transferkit import strategies
    from transferkit.strategies.finetune import FinetuneStrategy

    class Method(FinetuneStrategy):
        name = "unguarded_method_test"
        small_data_guard = False

    monkeypatch.setitem(strategies.STRATEGIES, Method.name, Method)
    clf = TransferClassifier(
        backbone=NAME, weights=world["weights"], strategy=Method.name,
        strategy_params={**PARAMS, "head_start": "probe"}, **COMMON,
    )  # fmt: skip
    with pytest.raises(BadInputError, match="measured for --strategy finetune only"):
        clf.fit(world["train"])
    # left to choose, such a method keeps the warm-up at any size
    params = {k: v for k, v in PARAMS.items() if k != "head_start"}
    clf.set_params(strategy_params=params).fit(world["train"])
    assert clf.strategy_metrics_["hyperparameters"]["head_start"] is None
    assert clf.head_.name == "linear"


@pytest.mark.parametrize("start", ["warm-up", "probe"])
def test_the_guard_falls_back_to_exactly_what_features_gives(world, tmp_path, monkeypatch, start):
    """When the small-data guard keeps the frozen features, the model is --strategy features':
    the pretrained backbone and the default logistic head, saved and reloaded as such."""
    from transferkit.strategies import finetune_guard

    monkeypatch.setattr(finetune_guard, "MAX_P", -1.0)  # no evidence can keep fine-tuning
    params = {k: v for k, v in PARAMS.items() if k != "val_size"}  # 8 a class: no split
    params["head_start"] = start
    common = {"backbone": NAME, "weights": world["weights"], **COMMON}
    tuned = TransferClassifier(strategy="finetune", strategy_params=params, **common)
    tuned.fit(world["train"])
    frozen = TransferClassifier(strategy="features", **common).fit(world["train"])

    guard = tuned.fit_info_["training"]["guard"]
    assert guard["applied"] and guard["decision"] == "features" and guard["n_scored"] == 24
    assert 0.0 <= guard["features_cv_accuracy"] <= 1.0
    assert tuned.head_.name == frozen.head_.name == "logistic"
    assert tuned.fit_info_["unfrozen_groups"] == 0
    # the pretrained weights, back in place: same state as the file they came from
    pretrained = load_file(world["weights"])
    for name, value in _trained_state(tuned.backbone_).items():
        torch.testing.assert_close(value, pretrained[name])
    np.testing.assert_allclose(
        tuned.predict_proba(world["test"]), frozen.predict_proba(world["test"]), atol=1e-5
    )
    # saved as a features bundle is: no backbone weights, the pretrained ones named by sha256
    bundle = tuned.save(tmp_path / "model")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "backbone.safetensors" not in manifest["files"]
    assert manifest["backbone"]["weights_sha256"] == frozen.backbone_.weights_sha256
    loaded = TransferClassifier.load(bundle, weights=world["weights"], cache=False, **COMMON)
    assert loaded.head_.name == "logistic"
    np.testing.assert_allclose(
        loaded.predict_proba(world["test"]), tuned.predict_proba(world["test"]), atol=1e-6
    )
    assert finetune_guard.guard_fact(guard).startswith("frozen features kept")
    # and saved again after loading: still without backbone weights
    again = loaded.save(tmp_path / "again")
    assert json.loads((again / "manifest.json").read_text())["files"] == manifest["files"]
    assert not (again / "backbone.safetensors").exists()


def test_tiny_image_data_starts_stage_2_from_the_frozen_features_head(world):
    """LP-FT: at <= 20 images a class the head stage 2 trains is --strategy features' own,
    fitted first; with a learning rate too small to move anything the fine-tuned model is
    that features model, and the saved head is of its type."""
    common = {"backbone": NAME, "weights": world["weights"], **COMMON}
    frozen = TransferClassifier(strategy="features", **common).fit(world["train"])
    still = TransferClassifier(
        strategy="finetune", strategy_params={"epochs": 1, "guard": "off", "lr": 1e-12}, **common
    ).fit(world["train"])
    hyper = still.strategy_metrics_["hyperparameters"]
    assert hyper["head_start"] == "probe" and hyper["head_epochs"] == 0
    assert still.head_.name == frozen.head_.name == "logistic"
    np.testing.assert_allclose(
        still.predict_proba(world["test"]), frozen.predict_proba(world["test"]), atol=1e-4
    )
    training = still.fit_info_["training"]
    assert [r["stage"] for r in training["history"]] == ["probe", "unfreeze:1"]
    assert training["history"][0]["train_accuracy"] == pytest.approx(
        frozen.score(world["train"]), abs=1e-6
    )
    assert "finder" not in training["lrs"]  # no warm-up: no head rate to find

    # by default the head learns at the backbone's tiny-data ceiling, and the report says so
    tuned = TransferClassifier(
        strategy="finetune", strategy_params={"epochs": 1, "guard": "off"}, **common
    ).fit(world["train"])
    lrs = tuned.fit_info_["training"]["lrs"]
    assert lrs["lr"] == pytest.approx(1e-4) and "ceiling" in lrs["lr_source"]
    facts = tuned.strategy_.report_section(tuned.strategy_metrics_).facts
    assert facts["head start"].startswith("the frozen-features head")
    assert facts["learning rate (head, stage 2)"].startswith("0.0001 (the backbone's ceiling")
    assert not np.allclose(tuned.head_.coef_, frozen.head_.coef_)  # trained with the backbone


def test_a_loaded_model_saved_again_writes_the_bundle_it_came_from(world, tmp_path):
    """The manifest's training record and the pretrained weights' identity survive a load and
    a save (they live in fit_info_, which a loaded model rebuilds from its manifest)."""
    loaded = TransferClassifier.load(world["bundle"], cache=False, **COMMON)
    again = loaded.save(tmp_path / "again")
    first = json.loads((world["bundle"] / "manifest.json").read_text())
    second = json.loads((again / "manifest.json").read_text())
    # where the weights came from now names the bundle they were loaded from
    assert second["backbone"].pop("weights_source").startswith("finetune bundle ")
    first["backbone"].pop("weights_source")
    assert second["backbone"] == first["backbone"]
    assert second["strategy"] == first["strategy"]
    assert second["files"] == first["files"]
    assert _sha256(again / "backbone.safetensors") == _sha256(
        world["bundle"] / "backbone.safetensors"
    )
