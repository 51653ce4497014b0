"""Specs for ``onnx:PATH``, ``keras:PATH`` and ``tfhub:PATH``, and how each becomes a checked
ONNX graph (no onnx, Keras or TensorFlow import until such a name is used).

The model file (a folder for ``tfhub:``) is the backbone's weights: its sha256 is verified when
the name resolves, recorded in the bundle's manifest, and checked again when a bundle loads
(``strategies.base.check_pretrained_weights``), so a changed file is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from transferkit.backbones.foreign.config import build_preprocess, read_sidecar
from transferkit.backbones.foreign_preprocess import ForeignPreprocess
from transferkit.backbones.registry import (
    KERAS_PREFIX,
    ONNX_PREFIX,
    TFHUB_PREFIX,
    BackboneSpec,
)
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec

_SUFFIXES = {ONNX_PREFIX: (".onnx",), KERAS_PREFIX: (".keras", ".h5", ".hdf5")}
_EXAMPLES = {
    ONNX_PREFIX: '{"scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406], '
    '"std": [0.229, 0.224, 0.225]} (torchvision ImageNet models)',
    KERAS_PREFIX: '{"scale": 1, "mean": 127.5, "std": 127.5} (Keras MobileNet: inputs in '
    '[-1, 1]), and "output": a layer name to embed with another layer',
}
# TF Hub's image models take RGB floats in [0, 1]
_TFHUB_CONVENTION = {"scale": 1.0 / 255.0, "mean": 0.0, "std": 1.0, "channel_order": "rgb"}
_DESCRIPTIONS = {
    ONNX_PREFIX: "ONNX model",
    KERAS_PREFIX: "Keras model (converted to ONNX by Keras on torch)",
    TFHUB_PREFIX: "TF Hub / SavedModel (converted to ONNX by tf2onnx)",
}

# built backbones by (name, model sha256, preprocessing), and probes by (name, model sha256,
# sidecar): resolving probes the model by running it, the estimator builds it right after, and
# cross-validation or a learning curve resolves the same name dozens of times
_BUILT: dict[tuple[str, str, str], object] = {}
_PROBED: dict[tuple[str, str, str], tuple[ForeignPreprocess, int]] = {}


def foreign_spec(name: str) -> BackboneSpec:
    """The spec for ``onnx:``, ``keras:`` or ``tfhub:`` + a local path."""
    prefix = next(p for p in _DESCRIPTIONS if name.startswith(p))
    given = name[len(prefix) :].strip()
    if not given:
        raise BadInputError(
            f"give a model path after {prefix!r}, e.g. 'onnx:features.onnx', "
            "'keras:model.keras' or 'tfhub:saved_model_folder'"
        )
    path = Path(given).expanduser().resolve()
    folder = prefix == TFHUB_PREFIX
    if folder and not (path / "saved_model.pb").is_file():
        raise BadInputError(
            f"{name}: {path} is not a SavedModel folder (no saved_model.pb in it); give the "
            "folder a TF Hub model unpacks to"
        )
    if not folder and path.suffix.lower() not in _SUFFIXES[prefix]:
        raise BadInputError(
            f"{name}: expected a {' / '.join(_SUFFIXES[prefix])} file after {prefix!r}"
        )
    return BackboneSpec(
        name=f"{prefix}{path}",
        source="file",
        embedding_dim=None,
        preprocess=ForeignPreprocess(),
        licence="see the model's source",
        description=f"{_DESCRIPTIONS[prefix]} {path.name}, frozen features",
        weights=WeightsSpec(filename=path.name + ("/" if folder else "")),
        loader=load_foreign,
        probe=probe_foreign,
        weights_path=str(path),
        trainable=False,
    )


def _prefix(spec: BackboneSpec) -> str:
    return next((p for p in _DESCRIPTIONS if spec.name.startswith(p)), ONNX_PREFIX)


def _onnx_model(spec: BackboneSpec, weights, layer: str):
    """(checked ONNX model, tensor to cut at relative to ``preprocess.output``, Keras facts)."""
    from transferkit.backbones.foreign.convert import keras_to_onnx, savedmodel_to_onnx
    from transferkit.backbones.foreign.onnx_graph import read_checked

    prefix, path = _prefix(spec), Path(weights.path)
    if prefix == KERAS_PREFIX:
        onnx_path, facts = keras_to_onnx(path, weights.sha256, layer, spec.name)
        # the converted graph ends at the layer already
        return read_checked(onnx_path, None, spec.name), "", facts
    if prefix == TFHUB_PREFIX:
        onnx_path = savedmodel_to_onnx(path, weights.sha256, spec.name)
        return read_checked(onnx_path, None, spec.name), layer, {}
    return read_checked(path, weights.sha256, spec.name), layer, {}


def load_foreign(spec: BackboneSpec, weights, preprocess=None):
    """The checked, cut, runnable backbone (``BackboneSpec.loader``)."""
    from transferkit.backbones.foreign.backbone import ForeignBackbone
    from transferkit.backbones.foreign.onnx_graph import cut_at, graph_facts

    if weights is None:
        raise BadInputError(
            f"{spec.name} is a frozen model from another framework (features only): there is "
            "no architecture to initialise at random, so --baseline / --strategy scratch do "
            "not apply to it"
        )
    preprocess = preprocess or spec.preprocess
    key = (spec.name, weights.sha256, preprocess.fingerprint())
    if key not in _BUILT:
        model, tensor, _ = _onnx_model(spec, weights, preprocess.output)
        facts = graph_facts(model, spec.name)
        model = cut_at(model, tensor, spec.name)
        _BUILT[key] = ForeignBackbone(spec, weights, preprocess, model, facts.input_name)
    return _BUILT[key]


def probe_foreign(spec: BackboneSpec, weights) -> tuple[ForeignPreprocess, int]:
    """(preprocessing, embedding width) from the sidecar and the graph (``BackboneSpec.probe``)."""
    prefix, path = _prefix(spec), Path(weights.path)
    declared = read_sidecar(path)
    key = (spec.name, weights.sha256, json.dumps(declared, sort_keys=True))
    if key not in _PROBED:
        _PROBED[key] = _probe(spec, weights, prefix, path, declared)
    return _PROBED[key]


def _probe(spec, weights, prefix: str, path: Path, declared: dict) -> tuple[ForeignPreprocess, int]:
    from transferkit.backbones.foreign.onnx_graph import graph_facts

    model, _, keras_facts = _onnx_model(spec, weights, str(declared.get("output", "")))
    facts = graph_facts(model, spec.name)
    if keras_facts:
        declared = {**declared, "output": keras_facts["layer"]}
    preprocess = build_preprocess(
        path,
        declared,
        graph_size=facts.size,
        graph_layout=facts.layout,
        convention=_TFHUB_CONVENTION if prefix == TFHUB_PREFIX else None,
        example=_EXAMPLES.get(prefix, ""),
    )
    return preprocess, load_foreign(spec, weights, preprocess).num_features
