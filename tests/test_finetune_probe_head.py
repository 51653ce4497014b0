"""``ProbeHead``: the frozen-features head as a torch layer (fine-tuning's LP-FT start).

It must score exactly as the fitted numpy head it was built from (or fine-tuning would not
start where ``--strategy features`` ends), and write trained weights back into a head of the
same type that scores as the layer does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.finetune.probe_head import ProbeHead
from transferkit.heads import make_head


def _embeddings(n: int, dim: int = 24, seed: int = 0) -> np.ndarray:
    # pooled ReLU features: non-negative, some exactly zero (sqrt's infinite slope)
    x = np.random.default_rng(seed).gamma(1.5, size=(n, dim)).astype(np.float32)
    x[:, :3] = 0.0
    return x


def _fitted(name: str, classes: int, seed: int = 0):
    X = _embeddings(12 * classes, seed=seed)
    y = np.repeat(np.arange(classes), 12)
    X[np.arange(len(y)), 3 + y] += 3.0  # a class signal
    return make_head(name).fit(X, y, seed=seed), X


def _logits(layer: ProbeHead, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return layer(torch.from_numpy(X)).numpy()


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("name", ["logistic", "svm"])
def test_the_layer_scores_as_the_head_it_was_built_from(name, classes):
    head, X = _fitted(name, classes)
    layer = ProbeHead(head)
    assert layer.out_features == classes and layer.in_features == X.shape[1]
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(_logits(layer, X)), 1).numpy(),
        head.predict_proba(X),
        atol=1e-4,
    )


@pytest.mark.parametrize("classes", [2, 3])
def test_trained_weights_go_back_into_a_head_of_the_same_type(classes):
    head, X = _fitted("logistic", classes)
    layer = ProbeHead(head)
    untouched = layer.to_head()
    np.testing.assert_allclose(untouched.predict_proba(X), head.predict_proba(X), atol=1e-6)
    with torch.no_grad():  # as stage 2 would move them
        layer.weight.add_(torch.randn_like(layer.weight) * 0.5)
        layer.bias.add_(torch.randn_like(layer.bias) * 0.5)
    trained = layer.to_head({"fine_tuned_lr": 1e-4})
    assert type(trained) is type(head) and trained.n_classes_ == classes
    assert trained.info_["fine_tuned_lr"] == 1e-4 and "C" in trained.info_  # the probe's C kept
    proba = torch.softmax(torch.from_numpy(_logits(layer, X)), 1).numpy()
    np.testing.assert_allclose(trained.predict_proba(X), proba, atol=1e-4)
    assert not np.allclose(trained.predict_proba(X), head.predict_proba(X), atol=1e-3)
    # the probe itself is left as it was fitted
    np.testing.assert_allclose(untouched.coef_, head.coef_)
    # a bundle stores it as it stores any head of that type
    config, arrays = trained.get_state()
    again = type(trained).from_state(config, arrays)
    np.testing.assert_allclose(again.predict_proba(X), trained.predict_proba(X), atol=1e-6)


def test_a_standardised_head_has_no_encoder_to_tune():
    X = _embeddings(24)
    y = np.repeat(np.arange(2), 12)
    head = make_head("logistic", standardize=True).fit(X, y, seed=0)
    with pytest.raises(ValueError, match="standardised"):
        ProbeHead(head)
