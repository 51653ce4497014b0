"""``--strategy adapter`` on a tiny random BERT: only the adapter and the head train, the bundle
holds the adapter alone and names the base by its weights, a reload predicts the same through
the same identity, other base weights and frozen or attention-less backbones are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("transformers")

from test_text_backbone import _tiny_bert_folder  # noqa: E402
from test_text_training import NEG, POS, _dataset  # noqa: E402

from transferkit.bundle import ADAPTER_FILE, BACKBONE_FILE, _sealed, load_bundle  # noqa: E402
from transferkit.errors import BadInputError, BundleError  # noqa: E402
from transferkit.estimator import TransferClassifier  # noqa: E402
from transferkit.strategies.adapter import AdapterConfig, adapted_identity  # noqa: E402

# the classification engine (its checkpoints, head warm-up); --objective auto is tested apart
QUICK = {"epochs": 3, "head_epochs": 5, "val_size": 0, "augment": "none", "objective": "classify"}


@pytest.fixture()
def tiny_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    return _tiny_bert_folder(tmp_path / "tiny") / "model.safetensors"


def _fit(weights, **params) -> TransferClassifier:
    return TransferClassifier(
        backbone="hf:test/tiny",
        weights=weights,
        strategy="adapter",
        strategy_params={**QUICK, **params},
        progress=False,
    ).fit(_dataset(POS * 2, NEG * 2))


def _reload(path, weights) -> TransferClassifier:
    # no embedding cache: the reloaded encoder must compute the vectors itself
    return TransferClassifier.load(path, weights=weights, progress=False, cache=False)


@pytest.mark.parametrize("method", ["lora", "houlsby", "pfeiffer"])
def test_only_the_adapter_and_head_train_and_the_bundle_holds_only_them(
    tiny_weights, tmp_path, method
):
    from transferkit.backbones import resolve_backbone

    base = resolve_backbone("hf:test/tiny", weights=tiny_weights)
    before = {k: v.clone() for k, v in base.materialize().model.state_dict().items()}
    # r=8 (not the default 16, which is the tiny BERT's whole width)
    clf = _fit(tiny_weights, adapter=method, lr=1e-2, adapter_rank=8, adapter_alpha=16)
    root = clf.backbone_.model.state_dict()
    for name, tensor in before.items():  # peft keeps the base layer as base_layer
        key = name if name in root else name.replace(".weight", ".base_layer.weight")
        key = key if key in root else key.replace(".bias", ".base_layer.bias")
        torch.testing.assert_close(root[key], tensor, rtol=0, atol=0)
    counts = clf.fit_info_["parameters"]
    assert 0 < counts["trained"] < counts["total"] / 2  # r=8 is half a 16-wide tiny BERT
    assert clf.strategy_metrics_["parameters"] == counts
    assert clf.strategy_metrics_["adapter"]["method"] == method

    clf.save(tmp_path / "model")
    bundle = load_bundle(tmp_path / "model")
    assert set(bundle.manifest["files"]) == {"head.safetensors", ADAPTER_FILE}
    assert not (tmp_path / "model" / BACKBONE_FILE).exists()
    state = bundle.load_adapter_state()
    marker = "lora_" if method == "lora" else ".adapters.default."
    assert state and all(marker in k for k in state)
    assert sum(v.numel() for v in state.values()) + 2 * 16 + 2 == counts["trained"]
    manifest = bundle.manifest
    assert manifest["backbone"]["weights_sha256"] == base.weights_sha256  # the base's, named
    assert manifest["adapter"]["base"] == {
        "name": "hf:test/tiny",
        "weights_sha256": base.weights_sha256,
    }
    assert manifest["adapter"]["trained_parameters"] == counts["trained"]

    again = _reload(tmp_path / "model", tiny_weights)
    ds = _dataset()
    np.testing.assert_allclose(again.predict_proba(ds), clf.predict_proba(ds), atol=1e-5)
    # one identity for the trained and the reloaded encoder, neither the base's
    identity = adapted_identity(base.weights_sha256, manifest["files"][ADAPTER_FILE])
    assert again.backbone_.weights_sha256 == clf.backbone_.weights_sha256 == identity
    # no backbone weights in the bundle, yet not the pretrained encoder: `serve` must not share
    # it as a frozen one, nor a re-save drop the adapter
    assert "backbone_untouched" not in again.fit_info_


def test_the_adapter_learns_the_task(tiny_weights):
    clf = _fit(tiny_weights, epochs=30, lr=1e-2, head_epochs=0, batch_size=8, adapter_targets="all")
    history = clf.fit_info_["training"]["history"]
    assert [r["stage"] for r in history] == ["adapters"] * 30
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert clf.score(_dataset()) >= 0.9
    lora_b = [p for n, p in clf.backbone_.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # it moved from its zero start


def test_the_contrastive_objective_trains_the_adapter_with_the_pair_loss(tiny_weights, tmp_path):
    clf = _fit(tiny_weights, objective="contrastive", epochs=20, lr=1e-2)
    info = clf.fit_info_["contrastive"]
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    assert info["cached_lower_layers"] is True  # the frozen embedding layer runs once per text
    assert clf.head_.name == "logistic" and clf.head_.info_["cv_folds"] == 0
    assert clf.score(_dataset()) >= 0.9
    section = clf.strategy_.report_section(clf.strategy_metrics_)
    assert section.facts["adapter"].startswith("LoRA r=16, alpha=32")
    assert "parameters trained" in section.facts
    clf.save(tmp_path / "model")
    again = _reload(tmp_path / "model", tiny_weights)
    np.testing.assert_allclose(
        again.predict_proba(_dataset()), clf.predict_proba(_dataset()), atol=1e-5
    )


def test_an_adapter_for_other_base_weights_is_refused_naming_both(tiny_weights, tmp_path):
    clf = _fit(tiny_weights, epochs=1)
    clf.save(tmp_path / "model")
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_weights.parent, other)
    from safetensors.torch import load_file, save_file

    state = load_file(str(other / "model.safetensors"))
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(other / "model.safetensors"))
    with pytest.raises(
        BundleError, match=r"trained on hf:test/tiny weights with sha256 .*have sha256"
    ):
        _reload(tmp_path / "model", other / "model.safetensors")


def _edit_manifest(path: Path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(_sealed(manifest)))


def test_a_manifest_whose_adapter_description_is_broken_is_refused(tiny_weights, tmp_path):
    clf = _fit(tiny_weights, epochs=1)
    clf.save(tmp_path / "model")
    model = tmp_path / "model"
    _edit_manifest(model, lambda m: m["adapter"]["base"].update(name="all_minilm_l6_v2"))
    with pytest.raises(
        BundleError, match="'adapter.base' .*all_minilm_l6_v2.* is not the backbone"
    ):
        load_bundle(model)
    clf.save(model)
    _edit_manifest(model, lambda m: m.pop("adapter"))
    with pytest.raises(BundleError, match="lists adapter.safetensors but has no 'adapter' object"):
        load_bundle(model)
    clf.save(model)
    _edit_manifest(model, lambda m: m["adapter"].update(method="prefix"))
    with pytest.raises(BundleError, match="'adapter.method' must be one of"):
        load_bundle(model)


def test_frozen_or_attention_less_backbones_are_refused_naming_them(tiny_weights, tmp_path):
    with pytest.raises(BadInputError, match="glove_6b_50d is a frozen encoder.*timm: vision"):
        TransferClassifier(backbone="glove_6b_50d", strategy="adapter", progress=False).fit(
            _dataset()
        )
    from conftest import make_shapes_folder
    from tiny_backbone import NAME, register_tiny, write_tiny_weights

    from transferkit.backbones import registry

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
        register_tiny()
        images = make_shapes_folder(tmp_path / "shapes", per_class=3)
        clf = TransferClassifier(
            backbone=NAME,
            weights=write_tiny_weights(tmp_path / "cnn.safetensors"),
            strategy="adapter",
            progress=False,
        )
        with pytest.raises(BadInputError, match=f"{NAME} has no transformer layers.*features"):
            clf.fit(images)


def test_adapter_settings_are_checked_up_front():
    with pytest.raises(BadInputError, match="objective must be one of auto, classify, contrastive"):
        AdapterConfig(objective="triplet")
    with pytest.raises(BadInputError, match="adapter r must be"):
        AdapterConfig(adapter_rank=0)
    with pytest.raises(BadInputError, match="epochs must be"):
        AdapterConfig(epochs=0)
    assert AdapterConfig().engine().epochs == 12 and AdapterConfig().engine().lr == 1e-3
    assert AdapterConfig(objective="contrastive").pairs().epochs is None  # contrastive's rule
    # long texts through 64-token windows (not contrastive's whole 256-token reads)
    assert AdapterConfig(objective="contrastive").pairs().pair_max_length == 64
    # the LoRA the strategy trains by default (r=16, alpha=32, every linear layer), as the
    # benchmark's notes and the README state it
    config = AdapterConfig().spec().config
    assert (config["r"], config["alpha"], config["target_modules"]) == (16, 32, "all")


def test_objective_auto_is_the_pair_loss_for_text_and_classification_elsewhere(tiny_weights):
    from transferkit.backbones import get_spec
    from transferkit.strategies import FitData, make_strategy

    text = make_strategy("adapter")
    text.settle(FitData(train=_dataset(POS, NEG)), get_spec("hf:test/tiny"))
    assert text.config.objective == "contrastive" and text.default_head == "logistic"
    given = make_strategy("adapter", objective="classify")
    given.settle(FitData(train=_dataset(POS, NEG)), get_spec("hf:test/tiny"))
    assert given.config.objective == "classify"
    clf = _fit(tiny_weights, objective="auto", epochs=2)
    assert clf.strategy_.config.objective == "contrastive"
