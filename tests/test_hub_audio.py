"""Hugging Face audio encoders by hub name: every line but the download, on tiny randomly
initialised wav2vec2 and AST models built from a config (with their feature extractors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transferkit.backbones import get_spec, resolve_backbone
from transferkit.backbones.hub_audio import is_audio_hub_model

transformers = pytest.importorskip("transformers")
sf = pytest.importorskip("soundfile")


def _tiny_wav2vec2(folder: Path) -> Path:
    config = transformers.Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    transformers.Wav2Vec2Model(config).save_pretrained(folder, safe_serialization=True)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(folder)
    return folder / "model.safetensors"


def _tiny_ast(folder: Path) -> Path:
    config = transformers.ASTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_mel_bins=32,
        max_length=64,
        frequency_stride=16,
        time_stride=16,
    )
    transformers.ASTModel(config).save_pretrained(folder, safe_serialization=True)
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(folder)
    return folder / "model.safetensors"


def _tiny_whisper(folder: Path) -> Path:
    config = transformers.WhisperConfig(
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=80,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    transformers.WhisperModel(config).save_pretrained(folder, safe_serialization=True)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder / "model.safetensors"


def _tones(root: Path, *, per_class: int) -> Path:
    """root/low and root/high: half-second tones around 200 Hz and 1.8 kHz."""
    t = np.arange(8000) / 16000
    for label, freq in (("low", 200.0), ("high", 1800.0)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            tone = 0.3 * np.sin(2 * np.pi * (freq + 15 * i) * t)
            sf.write(root / label / f"{i}.wav", tone, 16000)
    return root


def test_audio_hub_names_are_told_apart_from_text_ones_without_network():
    assert get_spec("hf:facebook/wav2vec2-base").modality == "audio"
    assert get_spec("hf:MIT/ast-finetuned-audioset-10-10-0.4593").modality == "audio"
    assert get_spec("hf:facebook/hubert-base-ls960").modality == "audio"
    assert get_spec("hf:bert-base-chinese").modality == "text"
    assert not is_audio_hub_model("sentence-transformers/all-MiniLM-L6-v2")


@pytest.mark.parametrize(
    "build,name", [(_tiny_wav2vec2, "wav2vec2"), (_tiny_ast, "ast"), (_tiny_whisper, "whisper")]
)
def test_tiny_hub_audio_model_embeds_clips_of_any_length(tmp_path, build, name):
    weights = build(tmp_path / name)
    backbone = resolve_backbone(f"hf:test/tiny-{name}-audio", weights=weights)
    assert backbone.spec.modality == "audio" and backbone.num_features == 32
    assert backbone.preprocess.sample_rate == 16000
    module = backbone.materialize()
    rng = np.random.default_rng(0)
    short, long = rng.normal(0, 0.1, 800), rng.normal(0, 0.1, 16000 * 23)  # 0.05 s and 23 s
    (a, windows_short), (b, windows_long) = module.embed_many([short, long])
    assert a.shape == b.shape == (32,) and np.isfinite(a).all() and np.isfinite(b).all()
    assert windows_long > windows_short  # the 23 s clip is read in 10 s pieces


def test_hub_audio_model_trains_through_the_pipeline(tmp_path):
    from transferkit import TransferClassifier, load_dataset

    weights = _tiny_wav2vec2(tmp_path / "model")
    data = load_dataset(_tones(tmp_path / "data", per_class=4))
    clf = TransferClassifier(
        backbone="hf:test/tiny-wav2vec2", weights=weights, strategy="auto", progress=False
    ).fit(data)
    assert clf.describe()["strategy"] == "features"  # auto keeps audio on features
    assert len(clf.predict(data)) == 8


@pytest.mark.parametrize("build,name", [(_tiny_wav2vec2, "wav2vec2"), (_tiny_ast, "ast")])
def test_hub_audio_forward_pools_like_extraction(tmp_path, build, name):
    import torch

    from transferkit.finetune.audio_batches import pack_windows

    backbone = resolve_backbone(f"hf:test/tiny-{name}-ft", weights=build(tmp_path / name))
    module = backbone.materialize().eval()
    rng = np.random.default_rng(1)
    waves = [rng.normal(0, 0.1, n).astype(np.float32) for n in (3000, 16000 * 12)]
    x = pack_windows([module.window_inputs(w) for w in waves])  # 1 and 2 pieces, ragged
    with torch.inference_mode():
        pooled = module(x).numpy()
    expected = np.stack([v for v, _ in module.embed_many(waves)])
    np.testing.assert_allclose(pooled, expected, atol=1e-4, rtol=1e-3)
    names = [n for group in module.layer_groups() for n in group]
    assert sorted(names) == sorted(n for n, _ in module.named_parameters())


def test_hub_audio_model_fine_tunes_and_its_bundle_reloads(tmp_path):
    import torch

    from transferkit import TransferClassifier, load_dataset

    weights = _tiny_wav2vec2(tmp_path / "model")
    data = load_dataset(_tones(tmp_path / "data", per_class=6))
    params = {"epochs": 2, "head_epochs": 3, "lr": 1e-3, "val_size": 0.34}
    clf = TransferClassifier(
        backbone="hf:test/tiny-wav2vec2-ft",
        weights=weights,
        strategy="finetune",
        strategy_params=params,
        progress=False,
        cache=False,
    ).fit(data)
    assert len(clf.fit_info_["training"]["history"]) >= 2
    assert clf.fit_info_["training"]["best_epoch"] > 0  # stage 2 won: the encoder changed
    pretrained = resolve_backbone("hf:test/tiny-wav2vec2-ft", weights=weights).materialize()
    before = dict(pretrained.named_parameters())
    assert any(not torch.equal(p, before[n]) for n, p in clf.backbone_.named_parameters())
    proba = clf.predict_proba(data)
    clf.save(tmp_path / "bundle")
    # no embedding cache: the reloaded network itself must give the same probabilities
    again = TransferClassifier.load(
        tmp_path / "bundle", weights=weights, progress=False, cache=False
    )
    np.testing.assert_allclose(again.predict_proba(data), proba, atol=1e-5)
