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


def _images(per_class: int):
    from pathlib import Path

    from transferkit.data import Dataset, Sample

    n = 2 * per_class
    return Dataset(tuple(Sample(Path(f"{i}.png"), "ab"[i % 2]) for i in range(n)), ("a", "b"))


@pytest.mark.parametrize(
    "per_class,separability,gpu,expected,says",
    [
        (30, 0.9, False, "features", "already fit"),  # small gap: a head is enough
        (30, 0.4, False, "finetune", "large domain gap"),  # large gap, enough data, CPU-sized
        (10, 0.4, True, "features", "would overfit"),  # large gap, too few examples
        (2000, 0.4, False, "features", "on a CPU would take too long"),
        (2000, 0.4, True, "finetune", "a GPU"),  # the same data on a GPU
    ],
)
def test_auto_strategy_weighs_domain_gap_data_size_and_compute(
    per_class, separability, gpu, expected, says
):
    from transferkit.backbones import get_spec
    from transferkit.strategies import choose_strategy

    name, why = choose_strategy(
        _images(per_class), get_spec("mobilenet_v2"), separability=separability, gpu=gpu
    )
    assert name == expected and says in why
    assert f"{separability:.0%}" in why  # the measured number is in the reason
