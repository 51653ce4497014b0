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
