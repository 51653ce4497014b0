"""The contract every backbone keeps, parametrised over the registry (plus one timm model)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from transferkit.backbones import Backbone, get_spec, list_specs, load_backbone, preprocess_image
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.weights import find_offline_weights, load_state_dict_file

TIMM_NAME = "timm:mobilenetv3_small_050"
# image backbones; text backbones keep theirs in tests/test_text_backbone.py, frozen models from
# other frameworks (not torch modules) in tests/test_backbones_foreign_*.py
NAMES = [s.name for s in list_specs() if s.modality == "image" and s.trainable]
if importlib.util.find_spec("timm") is not None:
    NAMES.append(TIMM_NAME)

_BUILT: dict[str, Backbone] = {}


def _random_backbone(name: str) -> Backbone:
    # built once per session: some architectures take a second to initialise
    if name not in _BUILT:
        torch.manual_seed(0)
        _BUILT[name] = load_backbone(name, pretrained=False)
    return _BUILT[name]


def _batch(backbone: Backbone) -> torch.Tensor:
    size = backbone.preprocess.input_size
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", NAMES)
def test_metadata_matches_the_spec(name):
    backbone = _random_backbone(name)
    spec = get_spec(name)
    assert isinstance(backbone, Backbone) and not backbone.training
    assert backbone.name == spec.name and backbone.spec is spec
    assert backbone.num_features == spec.embedding_dim
    assert backbone.preprocess == spec.preprocess
    assert backbone.weights_sha256 is None and "random" in backbone.weights_source


@pytest.mark.parametrize("name", NAMES)
def test_embedding_shape_and_eval_determinism(name):
    backbone = _random_backbone(name)
    x = _batch(backbone)
    with torch.inference_mode():
        out = backbone(x)
        again = backbone(x)
    assert out.shape == (2, backbone.num_features)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out, again)


@pytest.mark.parametrize("name", NAMES)
def test_layer_groups_cover_every_parameter_once_in_order(name):
    backbone = _random_backbone(name)
    groups = backbone.layer_groups()
    order = [n for n, _ in backbone.named_parameters()]
    flat = [n for group in groups for n in group]
    assert len(groups) >= 2 and all(groups)
    assert sorted(flat) == sorted(order)  # every parameter, none twice
    firsts = [min(order.index(n) for n in group) for group in groups]
    assert firsts == sorted(firsts)  # stem first, output last
    assert order[0] in groups[0]


@pytest.mark.parametrize("name", NAMES)
def test_preprocess_fingerprint_is_stable(name):
    cfg = get_spec(name).preprocess
    again = ImagePreprocess.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.fingerprint() == cfg.fingerprint()
    assert get_spec(name).preprocess.fingerprint() == cfg.fingerprint()
    assert _random_backbone(name).preprocess.fingerprint() == cfg.fingerprint()


@pytest.fixture
def fake_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path (and never the developer's real one)."""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def _timm_checkpoint(seed: int):
    """A timm model with its 1000-class classifier, as published checkpoints are."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(seed)
    full = timm.create_model(TIMM_NAME.split(":", 1)[1], pretrained=False).eval()
    return full, {k: v.contiguous() for k, v in full.state_dict().items()}


def _expected_embedding(full, x):
    with torch.no_grad():
        return full.forward_head(full.forward_features(x), pre_logits=True)


def test_timm_weights_from_an_explicit_file(tmp_path):
    from safetensors.torch import save_file

    full, state = _timm_checkpoint(seed=3)
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    backbone = load_backbone(TIMM_NAME, weights=path)
    x = _batch(backbone)
    with torch.no_grad():
        assert torch.allclose(backbone(x), _expected_embedding(full, x), atol=1e-6)
    assert backbone.weights_source.startswith("explicit path")


def test_timm_weights_from_the_hugging_face_cache(fake_hf_cache):
    from safetensors.torch import save_file

    full, state = _timm_checkpoint(seed=4)
    spec = get_spec(TIMM_NAME)
    repo = fake_hf_cache / ("models--" + spec.weights.hf_hub_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(state, repo / "snapshots" / commit / spec.weights.hf_filename)

    backbone = load_backbone(TIMM_NAME, allow_download=False)
    x = _batch(backbone)
    with torch.no_grad():
        assert torch.allclose(backbone(x), _expected_embedding(full, x), atol=1e-6)
    assert backbone.weights_source.startswith("Hugging Face cache timm/")
    assert backbone.weights_sha256 is not None


# --- end to end on real packaged weights -----------------------------------------------------

SKLEARN_IMAGES = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "images"


def _pretrained_or_skip(name: str) -> Backbone:
    if find_offline_weights(get_spec(name).weights) is None:
        if os.environ.get("CI"):
            pytest.fail(f"offline weights for {name} missing in CI: run `make models`")
        pytest.skip(f"offline weights for {name} not installed (run `make models`)")
    return load_backbone(name, allow_download=False)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("name", "classifier"),
    [("mobilenet_v2", "classifier.1"), ("efficientnet_lite0", "_fc")],
)
def test_real_weights_give_sensible_embeddings(name, classifier):
    from PIL import Image
    from torchvision.models import MobileNet_V2_Weights

    backbone = _pretrained_or_skip(name)
    assert backbone.weights_sha256 == get_spec(name).weights.sha256
    assert backbone.weights_source.startswith("package ")

    photos = [Image.open(SKLEARN_IMAGES / f) for f in ("china.jpg", "flower.jpg")]
    x = torch.stack([preprocess_image(p, backbone.preprocess) for p in photos])
    with torch.no_grad():
        emb = backbone(x)
    assert emb.shape == (2, 1280) and torch.isfinite(emb).all()
    assert (emb >= 0).all()  # pooled ReLU6 activations
    assert torch.nn.functional.cosine_similarity(emb[0], emb[1], dim=0) < 0.9

    # the removed classifier, applied to our embedding, must still recognise the photo:
    # sklearn's china.jpg is a Chinese temple; both models answer "palace"
    state = load_state_dict_file(find_offline_weights(get_spec(name).weights).path)
    logits = emb @ state[f"{classifier}.weight"].T + state[f"{classifier}.bias"]
    categories = MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    assert categories[int(logits[0].argmax())] == "palace"
