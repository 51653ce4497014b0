"""The source classifier recovered from a backbone turns its embeddings into its own logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.backbones import get_spec, resolve_backbone
from transferkit.backbones.source_classifier import (
    find_source_linear,
    source_classifier,
    source_probabilities,
)


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18", "efficientnet_lite0"])
def test_source_linear_on_the_embedding_reproduces_the_full_model(name):
    spec = get_spec(name)
    torch.manual_seed(0)
    full = spec.build().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = full(x)
        linear = find_source_linear(full, spec.headless, spec.embedding_dim)
        assert linear is not None and linear.out_features == 1000
        got = linear(full(x))  # `full` is headless now: it returns the embedding
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_probabilities_are_a_stable_softmax():
    weight, bias = np.eye(3) * 1000.0, np.zeros(3)
    proba = source_probabilities(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), (weight, bias))
    np.testing.assert_allclose(proba, [[1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_encoders_without_a_classifier_and_random_weights_have_none():
    assert source_classifier(resolve_backbone("mobilenet_v2", pretrained=False)) is None
    assert source_classifier(resolve_backbone("use_multilingual", allow_download=False)) is None
