"""``--strategy auto`` for text checks the frozen embeddings before training the encoder
(issue 17): a cross-validated logistic head on them at ``FROZEN_ENOUGH_CV`` or more keeps
``features``; below it, ``contrastive``; the reason names what was measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transferkit.backbones import get_spec
from transferkit.data import Dataset, Sample
from transferkit.strategies import choose_strategy, needs_frozen_check
from transferkit.strategies.auto import FROZEN_ENOUGH_CV
from transferkit.transferability import cv_logistic_accuracy


def _texts(per_class: int = 3) -> Dataset:
    samples = tuple(
        Sample(Path(f"d.csv:{i}"), "ab"[i % 2], f"text {i}") for i in range(2 * per_class)
    )
    return Dataset(samples, ("a", "b"), modality="text")


@pytest.mark.parametrize(
    "frozen_cv,expected,says",
    [
        (FROZEN_ENOUGH_CV + 0.05, "features", "already separate the classes"),
        (FROZEN_ENOUGH_CV, "features", "already separate the classes"),  # the bound keeps features
        (FROZEN_ENOUGH_CV - 0.05, "contrastive", "training the encoder can add"),
    ],
)
def test_the_frozen_embeddings_cross_validated_accuracy_decides(frozen_cv, expected, says):
    name, why = choose_strategy(_texts(), get_spec("all_minilm_l6_v2"), frozen_cv=frozen_cv)
    assert name == expected and says in why
    assert f"{frozen_cv:.1%}" in why and "cross-validation" in why  # what was measured


def test_without_a_measure_text_keeps_contrastive_and_only_encoder_training_is_checked():
    name, why = choose_strategy(_texts(), get_spec("all_minilm_l6_v2"))
    assert name == "contrastive" and "cross-validation" not in why
    assert needs_frozen_check(_texts(), get_spec("all_minilm_l6_v2"))
    assert not needs_frozen_check(_texts(), get_spec("glove_6b_50d"))  # frozen: features anyway
    images = Dataset(tuple(Sample(Path(f"{i}.png"), "ab"[i % 2]) for i in range(4)), ("a", "b"))
    assert not needs_frozen_check(images, get_spec("mobilenet_v2"))  # images: the k-NN probe


def test_cv_logistic_accuracy_measures_separation():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 10)
    centres = rng.normal(size=(3, 16)) * 5
    separated = centres[y] + rng.normal(size=(30, 16)) * 0.1
    assert cv_logistic_accuracy(separated, y) == 1.0
    noise = rng.normal(size=(30, 16))
    assert cv_logistic_accuracy(noise, y) < 0.7
    assert cv_logistic_accuracy(separated[:21], np.r_[y[:20], 3]) is None  # a class of one


@pytest.mark.e2e
def test_auto_measures_real_frozen_embeddings_before_choosing(tmp_path):
    """Two topics no sentence encoder confuses: auto measures MiniLM's frozen embeddings and
    keeps a head on them, saying so."""
    from conftest import require_offline_weights

    from transferkit.auto_choice import choose
    from transferkit.modalities import load_dataset

    require_offline_weights("all_minilm_l6_v2")
    topics = {
        "football": ["the striker scored a late goal", "the keeper saved a penalty kick",
                     "the team won the league match", "fans cheered the winning goal",
                     "the coach picked a new defender", "a red card for the midfielder"],
        "baking": ["knead the dough and let it rise", "bake the bread in a hot oven",
                   "whisk eggs and sugar for the cake", "the pastry needs cold butter",
                   "sift the flour before mixing", "the muffins cool on a rack"],
    }  # fmt: skip
    path = tmp_path / "topics.csv"
    rows = [f'"{text}",{label}' for label, texts in topics.items() for text in texts]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    choice = choose(load_dataset(path), "all_minilm_l6_v2", "auto", cache=False)
    assert choice.strategy == "features", choice.strategy_reason
    assert "100.0% in cross-validation" in choice.strategy_reason
