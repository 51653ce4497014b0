"""AudioBackbone's fine-tuning path: the batched forward pools exactly as extraction does, its
gradients stay finite, and the tuned weights are the ones extraction then uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require_offline_weights

from transferkit.backbones import resolve_backbone
from transferkit.finetune.audio_batches import pack_windows


def _clips(rate: int) -> list[np.ndarray]:
    """A one-window clip, a few-window clip and a longer one (noise, so windows differ)."""
    rng = np.random.default_rng(0)
    return [rng.normal(0, 0.1, int(rate * s)).astype(np.float32) for s in (0.4, 4.0, 8.0)]


@pytest.fixture(params=["aisfx", "speaker_ge2e"])
def backbone(request):
    require_offline_weights(request.param)
    return resolve_backbone(request.param).materialize()


def _forward(module, waves):
    x = pack_windows([module.window_inputs(w) for w in waves])
    return module(x)


def test_forward_on_padded_windows_equals_extraction(backbone):
    waves = _clips(backbone.preprocess.sample_rate)
    counts = [len(backbone.window_inputs(w)) for w in waves]
    assert counts[0] == 1 and counts[2] > counts[1] > 1  # the batch really is ragged
    backbone.eval()
    with torch.inference_mode():
        pooled = _forward(backbone, waves).numpy()
    expected = np.stack([vector for vector, _ in backbone.embed_many(waves)])
    assert pooled.shape == (3, backbone.num_features)
    np.testing.assert_allclose(pooled, expected, atol=2e-5, rtol=1e-4)


def test_gradients_are_finite_even_for_a_one_window_clip(backbone):
    backbone.train().requires_grad_(True)
    waves = _clips(backbone.preprocess.sample_rate)[:1]  # std over one window is 0
    _forward(backbone, waves).sum().backward()
    grads = [p.grad for p in backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_extraction_uses_the_weights_as_they_are_after_training(backbone):
    waves = _clips(backbone.preprocess.sample_rate)
    before = backbone.eval().embed(waves[1])[0]
    backbone.train()
    with torch.no_grad():  # stands in for an optimiser step
        for p in backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
    backbone.eval()  # aisfx rebuilds its oneDNN weights here
    after = backbone.embed(waves[1])[0]
    assert not np.allclose(before, after, atol=1e-4)
    with torch.inference_mode():
        np.testing.assert_allclose(
            _forward(backbone, waves)[1].numpy(), after, atol=2e-5, rtol=1e-4
        )


def test_layer_groups_cover_every_parameter_once_from_input_to_output(backbone):
    groups = backbone.layer_groups()
    names = [n for group in groups for n in group]
    assert sorted(names) == sorted(n for n, _ in backbone.named_parameters())
    assert len(names) == len(set(names)) and len(groups) == 4
    # the state dict is the network's: what a bundle stores and reloads
    assert set(backbone.state_dict()) == {n for n, _ in backbone.named_parameters()}


def test_onnx_and_classical_audio_backbones_cannot_train():
    require_offline_weights("speech_embedding")
    for name in ("speech_embedding", "mfcc_stats"):
        module = resolve_backbone(name).materialize()
        assert not module.trainable and not resolve_backbone(name).spec.trainable
        with pytest.raises(TypeError, match="no torch network"):
            module.window_inputs(np.zeros(16000, dtype=np.float32))
