"""Subprocess: a Keras 3 model file -> an ONNX graph of the layer that embeds (see convert.py).

``python -m transferkit.backbones.foreign.keras_worker MODEL OUT LAYER`` with KERAS_BACKEND=torch
set by the caller. The file is read with ``safe_mode=True`` after its config has been searched
for Lambda layers (Python code in the file: refused by name, before anything is built). The last
stdout line is JSON: the layer used and the largest difference between Keras and the ONNX
graph on random inputs; on refusal ``{"error": ...}`` and exit status 2.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

_MATCH_ATOL = 1e-3  # on inputs in [-1, 1]; the tests hold real images to 1e-4
# layers that follow the pooled embedding in a classifier head
_HEAD_LAYERS = ("Dense", "Dropout", "Activation", "Softmax", "ReLU")


class Refused(Exception):
    """The model cannot be used; the message says why and how to fix it."""


def _config(path: Path) -> dict:
    """The model's architecture as saved, read without building anything."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    import h5py

    with h5py.File(path, "r") as h5:
        raw = h5.attrs.get("model_config")
    if raw is None:
        raise Refused(f"{path} holds no model_config: it is weights only, not a whole model")
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


def _code_layers(node) -> list[str]:
    """Names of the Lambda layers anywhere in a saved config."""
    found = []
    if isinstance(node, dict):
        if node.get("class_name") == "Lambda":
            found.append(str((node.get("config") or {}).get("name", "?")))
        for value in node.values():
            found += _code_layers(value)
    elif isinstance(node, list):
        for value in node:
            found += _code_layers(value)
    return found


def _embedding_layer(model, name: str):
    if name:
        try:
            return model.get_layer(name)
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise Refused(
                f"the model has no layer {name!r}; its layers are {names}. Name one as "
                '"output" in the sidecar JSON'
            ) from None
    layers = list(model.layers)
    # the pooled layer before the classifier: skip the head's Dense / Dropout / activation
    while len(layers) > 1 and type(layers[-1]).__name__ in _HEAD_LAYERS:
        layers.pop()
    return layers[-1]


def convert(source: Path, out: Path, layer_name: str) -> dict:
    # before Keras is imported: a refused file costs no Keras start-up
    try:
        config = _config(source)
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - a zip without config.json, a broken HDF5 file...
        raise Refused(f"{source} is not a Keras .keras / .h5 model file ({exc})") from None
    code = _code_layers(config)
    if code:
        raise Refused(
            f"{source} has Lambda layer(s) {code}: they hold Python code, which transferkit "
            "never runs from a model file (Keras safe_mode stays on). Re-save the model with "
            "those layers as built-in Keras layers"
        )
    import keras
    import numpy as np

    if keras.backend.backend() != "torch":
        raise Refused(f"Keras runs on {keras.backend.backend()!r} here, not torch")
    try:
        model = keras.models.load_model(source, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; all mean "cannot use"
        raise Refused(f"Keras cannot load {source} with safe_mode=True: {exc}") from None
    layer = _embedding_layer(model, layer_name)
    sub = keras.Model(model.inputs, layer.output)
    shape = [d if d else 224 for d in sub.input_shape[1:]]
    x = np.random.default_rng(0).uniform(-1, 1, (2, *shape)).astype("float32")
    # called once before export: Keras exports only a model that has run
    expected = np.asarray(sub.predict(x, verbose=0))
    sub.export(str(out), format="onnx", verbose=False)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not diff <= _MATCH_ATOL:
        raise Refused(
            f"the ONNX conversion of layer {layer.name!r} differs from Keras by {diff:.3g} "
            f"(shapes {got.shape} vs {expected.shape}); this model cannot be used faithfully"
        )
    return {"layer": layer.name, "max_abs_diff": diff, "keras": keras.__version__}


def main(argv: list[str]) -> int:
    source, out, layer = Path(argv[0]), Path(argv[1]), argv[2] if len(argv) > 2 else ""
    try:
        facts = convert(source, out, layer)
    except Refused as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
