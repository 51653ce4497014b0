"""Every backbone by name: the built-in specs, and the names resolved by their modules.

The registry knows only what was registered into it. This module sits above it and above the
modules that register (importing them registers the built-in backbones), and sends the dynamic
names — ``timm:``, ``st:``, ``hf:`` (audio or text), ``fasttext:``, ``onnx:`` / ``keras:`` /
``tfhub:`` — to the module that builds their specs. timm, Hub, word-vector and foreign-model
modules are imported only when such a name is used.
"""

from __future__ import annotations

from transferkit.backbones import audio_specs as _audio_specs  # noqa: F401 (registers)
from transferkit.backbones import birdnet_audio as _birdnet_audio  # noqa: F401
from transferkit.backbones import e5_text as _e5_text  # noqa: F401
from transferkit.backbones import efficientnet_lite as _efficientnet_lite  # noqa: F401
from transferkit.backbones import text_specs as _text_specs  # noqa: F401
from transferkit.backbones import torchvision_models as _torchvision_models  # noqa: F401
from transferkit.backbones.foreign import packaged as _foreign_packaged  # noqa: F401
from transferkit.backbones.registry import (
    FASTTEXT_PREFIX,
    FOREIGN_PREFIXES,
    HF_PREFIX,
    ST_PREFIX,
    TIMM_PREFIX,
    BackboneSpec,
    list_specs,
    normalise_name,
    registered_spec,
)
from transferkit.errors import BadInputError
from transferkit.naming import did_you_mean


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
    if name.startswith(FOREIGN_PREFIXES):
        from transferkit.backbones.foreign.specs import foreign_spec

        return foreign_spec(name)
    spec = registered_spec(name)
    if spec is not None:
        return spec
    known = [s.name for s in list_specs()]
    hint = did_you_mean(normalise_name(name), known, n=3, cutoff=0.5)
    raise BadInputError(
        f"Unknown backbone {name!r}.{hint} Known backbones: {', '.join(known)}; any timm model "
        f"as 'timm:<model>' (e.g. 'timm:resnet18'), any sentence-transformers model as "
        f"'st:<model>', any Hugging Face encoder as 'hf:<model>', word vectors as "
        "'fasttext:<file.vec|file.bin>', a frozen image model from another framework as "
        "'onnx:<file.onnx>', 'keras:<file.keras|file.h5>' or 'tfhub:<SavedModel folder>'. "
        "Run `transferkit models` to list them."
    )
