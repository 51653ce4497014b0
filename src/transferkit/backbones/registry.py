"""Backbone names -> specs. A backbone module registers one ``BackboneSpec`` per model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transferkit.backbones.audio_preprocess import AudioPreprocess
from transferkit.backbones.preprocess import ImagePreprocess
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.weights.resolver import WeightsSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

SOURCES = (
    "torchvision",
    "timm",
    "package",
    "sentence-transformers",
    "huggingface",
    "classical",
    "file",  # a model file or folder the user names (onnx:, keras:, tfhub:)
)
MODALITIES = ("image", "text", "audio")
TIMM_PREFIX = "timm:"
ST_PREFIX = "st:"  # any sentence-transformers model on the Hub
HF_PREFIX = "hf:"  # any Hugging Face encoder on the Hub
FASTTEXT_PREFIX = "fasttext:"  # word vectors from a local .vec / .bin file
# frozen image encoders from other frameworks (backbones/foreign): a local file or folder
ONNX_PREFIX = "onnx:"
KERAS_PREFIX = "keras:"
TFHUB_PREFIX = "tfhub:"
FOREIGN_PREFIXES = (ONNX_PREFIX, KERAS_PREFIX, TFHUB_PREFIX)
DYNAMIC_PREFIXES = (TIMM_PREFIX, ST_PREFIX, HF_PREFIX, FASTTEXT_PREFIX, *FOREIGN_PREFIXES)


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
    # a licence that forbids commercial use (BirdNET: CC BY-NC-SA 4.0): `transferkit models`
    # and the report say so, and training with it needs --accept-licence
    non_commercial: bool = False

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


def normalise_name(name: str) -> str:
    """The registry's key for ``name``: "EfficientNet-Lite0" and "efficientnet_lite0" are one."""
    return name.strip().lower().replace("-", "_")


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add ``spec`` to the registry; a second spec under the same name is an error."""
    if spec.name.startswith(DYNAMIC_PREFIXES):
        raise ValueError(f"names starting with {DYNAMIC_PREFIXES} are resolved dynamically.")
    key = normalise_name(spec.name)
    if key in _REGISTRY and _REGISTRY[key] is not spec:
        raise ValueError(f"backbone {spec.name!r} is already registered.")
    _REGISTRY[key] = spec
    return spec


def list_specs() -> list[BackboneSpec]:
    """Registered specs, sorted by name (dynamic ``timm:<model>`` names are not listed)."""
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


def registered_spec(name: str) -> BackboneSpec | None:
    """The spec registered as ``name`` (any case, ``-`` for ``_``), or None.

    Names of every kind, dynamic ones included, resolve through ``catalog.get_spec``.
    """
    return _REGISTRY.get(normalise_name(name))
