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
