"""Backbone names -> specs. A backbone module registers one ``BackboneSpec`` per model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transferkit.backbones.audio_preprocess import AudioPreprocess
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.errors import BadInputError
from transferkit.naming import did_you_mean
from transferkit.weights.resolver import WeightsSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

SOURCES = ("torchvision", "timm", "package", "sentence-transformers", "huggingface", "classical")
MODALITIES = ("image", "text", "audio")
TIMM_PREFIX = "timm:"
ST_PREFIX = "st:"  # any sentence-transformers model on the Hub
HF_PREFIX = "hf:"  # any Hugging Face encoder on the Hub
FASTTEXT_PREFIX = "fasttext:"  # word vectors from a local .vec / .bin file
DYNAMIC_PREFIXES = (TIMM_PREFIX, ST_PREFIX, HF_PREFIX, FASTTEXT_PREFIX)


def _load_strict(model: nn.Module, state: dict) -> nn.Module:
    # strict: a checkpoint that does not fit the architecture exactly is a bug, not a warning
    model.load_state_dict(state, strict=True)
    return model


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to build, load and describe one backbone.

    ``build`` returns the bare published architecture with random weights (classifier included,
    so the published state dict loads strictly); ``load_state`` puts a state dict into it and
    returns the model (timm rebuilds instead); ``headless`` strips the classifier so the module
    maps images to pooled embeddings; ``layer_groups`` groups the headless module's parameter
    names from stem to output.

    Backbones that are not a state dict in a fixed architecture (text encoders, whose config
    and tokenizer ship next to the weights) give ``loader(spec, weights) -> module`` instead of
    ``build``/``headless``/``layer_groups``; their ``embedding_dim`` may be None until the
    model's config is read (``st:`` / ``hf:`` names).
    """

    name: str
    source: str
    embedding_dim: int | None
    preprocess: ImagePreprocess | TextPreprocess | AudioPreprocess
    licence: str
    description: str
    weights: WeightsSpec
    build: Callable[[], nn.Module] | None = None
    headless: Callable[[nn.Module], nn.Module] | None = None
    layer_groups: Callable[[nn.Module], list[list[str]]] | None = None
    load_state: Callable[[nn.Module, dict], nn.Module] = _load_strict
    modality: str = "image"
    loader: Callable[..., nn.Module] | None = None
    # text: the languages the encoder was trained on (ISO 639-1), for cross-lingual use
    languages: tuple[str, ...] = ()
    # backbones whose width and preprocessing are only known from their files (st:, hf:,
    # fasttext:): probe(spec, weights) -> (preprocess, embedding_dim), run at resolve time
    probe: Callable[..., tuple] | None = None
    # a weight file named by the user in the backbone name itself (fasttext:<path>)
    weights_path: str | None = None
    # False for frozen encoders that only embed (USE, word vectors): features only
    trainable: bool = True
    # False for classical features with nothing learned (MFCC statistics): no weights to find
    needs_weights: bool = True
    # dimensions on scales orders of magnitude apart (MFCC energy vs deltas): linear heads
    # standardise each one on the training data instead of power-normalising
    standardize_features: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise ValueError(f"BackboneSpec.name must be a non-empty name; got {self.name!r}.")
        if self.source not in SOURCES:
            raise ValueError(
                f"BackboneSpec.source must be one of {list(SOURCES)}; got {self.source!r}."
            )
        if self.modality not in MODALITIES:
            raise ValueError(
                f"BackboneSpec.modality must be one of {list(MODALITIES)}; got {self.modality!r}."
            )
        if self.loader is None and None in (self.build, self.headless, self.layer_groups):
            raise ValueError(
                f"BackboneSpec {self.name!r} needs build, headless and layer_groups, or a loader."
            )
        if self.embedding_dim is None and self.loader is not None:
            return  # read from the model's config once its files are local
        if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, int):
            raise ValueError(
                f"BackboneSpec.embedding_dim must be an int; got {self.embedding_dim!r}."
            )
        if self.embedding_dim <= 0:
            raise ValueError(f"BackboneSpec.embedding_dim must be > 0; got {self.embedding_dim}.")


_REGISTRY: dict[str, BackboneSpec] = {}


def _normalise(name: str) -> str:
    # "EfficientNet-Lite0" and "efficientnet_lite0" mean the same built-in backbone
    return name.strip().lower().replace("-", "_")


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry; a second spec under the same name is an error."""
    if spec.name.startswith(DYNAMIC_PREFIXES):
        raise ValueError(f"names starting with {DYNAMIC_PREFIXES} are resolved dynamically.")
    key = _normalise(spec.name)
    if key in _REGISTRY and _REGISTRY[key] is not spec:
        raise ValueError(f"backbone {spec.name!r} is already registered.")
    _REGISTRY[key] = spec
    return spec


def list_specs() -> list[BackboneSpec]:
    """Registered specs, sorted by name (dynamic ``timm:<model>`` names are not listed)."""
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


def get_spec(name: str) -> BackboneSpec:
    """The spec for ``name``; ``timm:<model>`` resolves any timm model. Unknown -> BadInputError."""
    if not isinstance(name, str) or not name.strip():
        raise BadInputError(f"Backbone name must be a non-empty string; got {name!r}.")
    if name.startswith(TIMM_PREFIX):
        from transferkit.backbones.timm_models import timm_spec

        return timm_spec(name[len(TIMM_PREFIX) :])
    if name.startswith(HF_PREFIX):
        from transferkit.backbones.hub_audio import hub_audio_spec, is_audio_hub_model

        repo = name[len(HF_PREFIX) :].strip()
        if repo and not any(c.isspace() for c in repo) and is_audio_hub_model(repo):
            return hub_audio_spec(name, repo)
    if name.startswith((ST_PREFIX, HF_PREFIX)):
        from transferkit.backbones.text_specs import hub_text_spec

        return hub_text_spec(name)
    if name.startswith(FASTTEXT_PREFIX):
        from transferkit.backbones.text_specs import fasttext_spec

        return fasttext_spec(name)
    spec = _REGISTRY.get(_normalise(name))
    if spec is not None:
        return spec
    known = [s.name for s in list_specs()]
    hint = did_you_mean(_normalise(name), known, n=3, cutoff=0.5)
    raise BadInputError(
        f"Unknown backbone {name!r}.{hint} Known backbones: {', '.join(known)}; any timm model "
        f"as 'timm:<model>' (e.g. 'timm:resnet18'), any sentence-transformers model as "
        f"'st:<model>', any Hugging Face encoder as 'hf:<model>', word vectors as "
        "'fasttext:<file.vec|file.bin>'. Run `transferkit models` to list them."
    )
