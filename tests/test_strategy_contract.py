"""The contract every registered strategy keeps, checked on tiny real data for each modality
it declares: it fits, saves a bundle, reloads and predicts the very same probabilities; a
strategy that needs an unlabelled target domain is given one, and a strategy is refused data
its capabilities do not declare (as timm's and sklearn's common tests do for their registries).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights
from tiny_backbone import (
    NAME,
    tiny_registered,  # noqa: F401 (module fixture: registers it)
    write_tiny_weights,
)

from transferkit.errors import BadInputError
from transferkit.estimator import TransferClassifier
from transferkit.modalities import load_dataset
from transferkit.strategies import STRATEGIES, Option, strategy_options

# quick settings for strategies that train for epochs (the others need none)
QUICK = {
    "finetune": {"epochs": 1, "head_epochs": 2, "lr": 1e-3, "val_size": 0},
    "scratch": {"epochs": 1, "lr": 1e-3, "val_size": 0},
    "contrastive": {"epochs": 2, "lr": 1e-3},
    "adapter": {"epochs": 1, "head_epochs": 2, "val_size": 0},
}
POS = ["good movie", "great fun film", "a good actor", "great plot", "fun movie", "good fun"]
NEG = ["bad movie", "dull film", "a bad actor", "awful plot", "dull movie", "not fun"]


def _image_world(root: Path) -> dict:
    return {
        "backbone": NAME,
        "weights": write_tiny_weights(root / "tiny.safetensors"),
        "architecture": NAME,
        "train": make_shapes_folder(root / "train", per_class=4, classes=("circle", "square")),
        "inputs": [make_shapes_folder(root / "more", per_class=2, seed=3)],
    }


def _text_world(root: Path) -> dict:
    pytest.importorskip("transformers")
    from test_text_backbone import _tiny_bert_folder

    table = root / "reviews.csv"
    rows = [f"{t},pos" for t in POS] + [f"{t},neg" for t in NEG]
    table.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    lines = root / "more.txt"
    lines.write_text("good fun film\nawful dull plot\ngreat actor\nnot good\n", encoding="utf-8")
    return {
        "backbone": "hf:test/tiny",
        "weights": _tiny_bert_folder(root / "tiny") / "model.safetensors",
        "architecture": "all_minilm_l6_v2",  # its tokenizer ships with the weights package
        "train": table,
        "inputs": [lines],
    }


def _audio_world(root: Path) -> dict:
    pytest.importorskip("transformers")
    pytest.importorskip("soundfile")
    from test_hub_audio import _tiny_wav2vec2, _tones

    return {
        "backbone": "hf:test/tiny-wav2vec2",
        "weights": _tiny_wav2vec2(root / "wav2vec2"),
        "architecture": "aisfx",
        "train": _tones(root / "train", per_class=4),
        "inputs": [root / "train" / "low" / "0.wav", root / "train" / "high" / "1.wav"],
    }


def _vit_world(root: Path) -> dict:
    from tiny_vit import VIT_NAME, register_tiny_vit, write_tiny_vit_weights

    register_tiny_vit()  # into the registry copy tiny_registered made for this module
    return {
        **_image_world(root),
        "backbone": VIT_NAME,
        "weights": write_tiny_vit_weights(root / "vit.safetensors"),
    }


WORLDS = {"image": _image_world, "text": _text_world, "audio": _audio_world}
# strategies that need a transformer: their image world is a tiny ViT rather than a CNN
TRANSFORMER_WORLDS = {"adapter": {"image": _vit_world}}


def _world(name: str, modality: str, root: Path) -> dict:
    """The tiny data and backbone; a strategy that starts from random weights gets an
    architecture built in code (a Hub model's architecture is in the files of its weights)."""
    world = TRANSFORMER_WORLDS.get(name, {}).get(modality, WORLDS[modality])(root)
    if getattr(STRATEGIES[name]().config, "pretrained", True):
        return world
    if world["architecture"] == "all_minilm_l6_v2":
        require_offline_weights("all_minilm_l6_v2")
    return {**world, "backbone": world["architecture"], "weights": None}


CASES = [
    pytest.param(name, modality, id=f"{name}-{modality}")
    for name, cls in STRATEGIES.items()
    for modality in sorted(cls.capabilities.modalities)
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))


def _classifier(name: str, world: dict) -> TransferClassifier:
    return TransferClassifier(
        backbone=world["backbone"],
        weights=world["weights"],
        strategy=name,
        strategy_params={"augment": "none", **QUICK.get(name, {})},
        runtime="torch",
        progress=False,
    )


@pytest.mark.parametrize(("name", "modality"), CASES)
def test_every_strategy_fits_saves_reloads_and_predicts_the_same(name, modality, tmp_path):
    world = _world(name, modality, tmp_path)
    needs_target = STRATEGIES[name].capabilities.needs_target
    domains = {"target": world["inputs"]} if needs_target else {}
    if STRATEGIES[name].capabilities.accepts_source:  # tradaboost: a source of the same classes
        domains["source"] = load_dataset(world["train"])
    clf = _classifier(name, world).fit(load_dataset(world["train"]), **domains)
    assert clf.strategy_.name == name and clf.n_train_ > 0
    proba = clf.predict_proba(world["inputs"])
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert isinstance(clf.strategy_metrics_, dict)
    section = clf.strategy_.report_section(clf.strategy_metrics_)
    assert section is None or set(section.shows) <= set(clf.strategy_metrics_)

    clf.save(tmp_path / "model")
    again = TransferClassifier.load(
        tmp_path / "model", weights=world["weights"], runtime="torch", progress=False, cache=False
    )
    assert again.strategy_.describe() == clf.strategy_.describe()
    np.testing.assert_allclose(again.predict_proba(world["inputs"]), proba, atol=1e-5)


@pytest.mark.parametrize("name", [n for n, c in STRATEGIES.items() if c.capabilities.needs_target])
def test_a_strategy_that_needs_a_target_refuses_to_fit_without_one(name, tmp_path):
    world = _image_world(tmp_path)
    with pytest.raises(BadInputError, match=f"--strategy {name} .*--target PATH"):
        _classifier(name, world).fit(load_dataset(world["train"]))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_data_a_strategy_does_not_declare_is_refused_naming_those_that_take_it(name, tmp_path):
    caps = STRATEGIES[name].capabilities
    world = _image_world(tmp_path)
    train = load_dataset(world["train"])
    extra = {"sample_weight": np.ones(len(train))} if not caps.accepts_sample_weight else {}
    if not caps.needs_target:
        extra["target"] = world["inputs"]
    if not caps.accepts_source and not extra:  # e.g. coral: target and weights are its own
        extra["source"] = load_dataset(world["train"])
    takers = [n for n, c in STRATEGIES.items() if c.capabilities.needs_target]
    with pytest.raises(BadInputError, match=f"the {name} strategy does not use") as refused:
        _classifier(name, world).fit(train, **extra)
    if "target" in extra and takers:
        assert f"--strategy {takers[0]}" in str(refused.value)


@pytest.mark.parametrize(
    "name", [n for n, c in STRATEGIES.items() if c.capabilities.accepts_sample_weight]
)
def test_sample_weights_reach_the_head(name, tmp_path):
    """A class weighted to almost nothing is never predicted: the weights reach the head."""
    world = _image_world(tmp_path)
    train = load_dataset(world["train"])
    weights = np.where(train.targets == 0, 1.0, 1e-6)
    target = {"target": world["inputs"]} if STRATEGIES[name].capabilities.needs_target else {}
    clf = _classifier(name, world).fit(train, sample_weight=weights, **target)
    assert set(clf.predict(world["inputs"])) == {train.labels[0]}
    plain = _classifier(name, world).fit(train, **target)
    assert len(set(plain.predict(world["inputs"]))) == 2  # unweighted, both classes occur


def test_sample_weights_must_be_one_per_sample(tmp_path):
    world = _image_world(tmp_path)
    train = load_dataset(world["train"])
    with pytest.raises(BadInputError, match="one weight per sample"):
        _classifier("features", world).fit(train, sample_weight=np.ones(len(train) - 1))


def test_strategies_that_share_a_flag_give_it_one_meaning():
    options = strategy_options()
    for flag, (option, takers) in options.items():
        assert isinstance(option, Option) and flag.startswith("--") and takers
        for name in takers:
            (mine,) = [o for o in STRATEGIES[name].options if o.flag == flag]
            assert (mine.field, mine.type) == (option.field, option.type)
            assert mine.field in {f for f in STRATEGIES[name]().describe()["config"]}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_the_pretrained_weights_capability_matches_what_the_strategy_trains_from(name):
    """The estimator loads pretrained weights by the capability; the engine reads its config."""
    strategy = STRATEGIES[name]
    from_config = getattr(strategy.Config(), "pretrained", True)
    assert strategy.capabilities.pretrained_weights == from_config
