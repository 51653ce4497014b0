"""The pretrained classifier a backbone was trained with (e.g. ImageNet's 1000-way Linear).

LEEP and NCE score transferability from the *source* model's predictions on the target data.
Our embeddings are exactly the input of that classifier (``headless`` removes it), so its
weights turn cached embeddings into source logits with one matrix product — no re-encoding.

The classifier is found generically: build the published model, load its weights, apply the
spec's ``headless`` and take the ``nn.Linear`` it removed whose input width is the embedding
width. Backbones without such a layer (sentence encoders, word vectors) have no source
classifier, and LEEP / NCE are simply not computed for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def find_source_linear(model: nn.Module, headless, embedding_dim: int) -> nn.Linear | None:
    """The Linear layer of ``model`` that ``headless(model)`` drops, reading ``embedding_dim``
    features; None if there is none (``model`` is modified by ``headless``)."""
    from torch import nn

    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    kept = {id(m) for m in headless(model).modules()}
    dropped = [m for m in linears.values() if id(m) not in kept and m.in_features == embedding_dim]
    return dropped[-1] if dropped else None


def source_classifier(backbone) -> tuple[np.ndarray, np.ndarray] | None:
    """(W (Z, D), b (Z,)) of ``backbone``'s pretrained source classifier, or None.

    ``backbone`` is a resolved ``BackboneRef``; None also when it is randomly initialised
    (no weights: its classifier means nothing) or when the spec has no fixed architecture.
    """
    spec = backbone.spec
    if spec.build is None or spec.headless is None or backbone.weights is None:
        return None
    from transferkit.weights.resolver import load_state_dict_file

    model = spec.load_state(spec.build(), load_state_dict_file(backbone.weights.path))
    linear = find_source_linear(model, spec.headless, backbone.num_features)
    if linear is None:
        return None
    weight = linear.weight.detach().double().numpy()
    bias = linear.bias.detach().double().numpy() if linear.bias is not None else None
    return weight, np.zeros(len(weight)) if bias is None else bias


def source_probabilities(
    embeddings: np.ndarray, classifier: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Softmax of the source classifier over pooled embeddings (N, D) -> (N, Z)."""
    weight, bias = classifier
    logits = np.asarray(embeddings, dtype=np.float64) @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)  # stable softmax
    proba = np.exp(logits)
    return proba / proba.sum(axis=1, keepdims=True)
