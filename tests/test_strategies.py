"""Strategy registry and the features strategy's configuration."""

from __future__ import annotations

import pytest

from transferkit.errors import BadInputError
from transferkit.strategies import STRATEGIES, make_strategy


def test_unknown_strategy_names_the_choices_and_the_typo():
    with pytest.raises(BadInputError) as info:
        make_strategy("featurs")
    message = str(info.value)
    assert "features" in message and "Did you mean 'features'?" in message


def test_auto_picks_a_registered_strategy():
    assert make_strategy("auto").name in STRATEGIES


def test_features_augment_is_validated():
    assert make_strategy("features", augment="none").config.augment == "none"
    with pytest.raises(BadInputError, match="augment must be one of none, light"):
        make_strategy("features", augment="heavy")


def test_describe_is_json_ready():
    import json

    described = make_strategy("features").describe()
    assert json.loads(json.dumps(described)) == {"name": "features", "config": {"augment": "light"}}


def test_auto_strategy_follows_the_data_and_the_backbone():
    from pathlib import Path

    from transferkit.backbones import get_spec
    from transferkit.data import Dataset, Sample
    from transferkit.strategies import choose_strategy

    samples = tuple(Sample(Path(f"d.csv:{i}"), "ab"[i % 2], f"text {i}") for i in range(6))
    text = Dataset(samples, ("a", "b"), modality="text")
    name, why = choose_strategy(text, get_spec("all_minilm_l6_v2"))
    assert name == "contrastive" and "3-3 examples per class" in why
    assert choose_strategy(text, get_spec("glove_6b_50d"))[0] == "features"
    images = Dataset(tuple(Sample(Path(f"{i}.png"), "ab"[i % 2]) for i in range(4)), ("a", "b"))
    assert choose_strategy(images, get_spec("mobilenet_v2"))[0] == "features"
