"""How a model from another framework wants its pixels: declared in a JSON file beside it, or
read from the model itself.

A foreign model states none of its normalisation (an ONNX or Keras file has no mean or std in
it), and the wrong one is the classic silent transfer-learning bug, so those are never guessed:
they come from ``<model path>.json`` (``model.onnx.json``, ``dogs.h5.json``, ``saved.json``
beside a SavedModel folder) or from a convention the format has (TF Hub image models take RGB
in [0, 1]). What the model does state — its input size and layout — is read from its graph and
checked against what is declared. The whole config goes into the bundle's manifest and the
embedding cache key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transferkit.backbones.foreign_preprocess import ForeignPreprocess
from transferkit.errors import BadInputError

# the keys a sidecar may hold, and what each means (shown when one is wrong)
SIDECAR_KEYS = {
    "size": "input side in pixels (read from the graph when it is fixed)",
    "resize": "shorter side before the centre crop (default: size / 0.875)",
    "interpolation": "bilinear | bicubic | nearest",
    "layout": "nchw | nhwc (read from the graph)",
    "channel_order": "rgb | bgr",
    "scale": "pixels (0-255) are multiplied by this first",
    "mean": "subtracted after scaling: one number or three, in channel_order",
    "std": "divided by after the mean: one number or three, in channel_order",
    "output": "graph output or intermediate tensor name (or Keras layer name)",
    "pool": "none | avg: average a feature map over its spatial axes",
}
NORMALISATION_KEYS = ("scale", "mean", "std")


def sidecar_path(model: Path) -> Path:
    """Where a model's declared preprocessing lives: ``<model path>.json``."""
    return model.with_name(model.name + ".json")


def read_sidecar(model: Path) -> dict[str, Any]:
    """The sidecar's keys (empty when there is none); unknown keys and wrong types refused."""
    path = sidecar_path(model)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(f"{path}: not a JSON object of preprocessing keys ({exc})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object of preprocessing keys")
    unknown = sorted(set(data) - set(SIDECAR_KEYS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in SIDECAR_KEYS.items())
        raise BadInputError(f"{path}: unknown key(s) {unknown}. Known keys: {known}.")
    return data


def _triple(value: Any, key: str, where: Path) -> tuple[float, float, float]:
    values = value if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = list(values) * 3
    ok = len(values) == 3 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    )
    if not ok:
        raise BadInputError(f"{where}: '{key}' must be a number or 3 numbers; got {value!r}")
    return tuple(float(v) for v in values)  # type: ignore[return-value]


def build_preprocess(
    model: Path,
    declared: dict[str, Any],
    *,
    graph_size: int | None,
    graph_layout: str | None,
    convention: dict[str, Any] | None = None,
    example: str,
) -> ForeignPreprocess:
    """The config of ``model`` from its sidecar keys ``declared``, what its graph states
    (``graph_size``, ``graph_layout``: None when not fixed) and the format's ``convention``
    (None: the normalisation must be declared).

    ``example`` is a sidecar to show when something is missing.
    """
    where = sidecar_path(model)
    values = {**(convention or {}), **declared}
    missing = [k for k in NORMALISATION_KEYS if k not in values]
    if missing:
        raise BadInputError(
            f"{model}: the model file does not say how its pixels are normalised, and no "
            f"{where.name} beside it declares {', '.join(missing)}. Write {where} with the "
            f"model's preprocessing, e.g. {example}"
        )
    for key, found in (("size", graph_size), ("layout", graph_layout)):
        if found is not None and key in declared and declared[key] != found:
            raise BadInputError(
                f"{where}: '{key}' is {declared[key]!r} but the model's input is {found!r}; "
                f"drop the key or fix it"
            )
    size = values.get("size", graph_size)
    if size is None:
        raise BadInputError(
            f"{model}: the model's input has no fixed size; declare it in {where} "
            '(e.g. "size": 224)'
        )
    layout = values.get("layout", graph_layout)
    if layout is None:
        raise BadInputError(
            f"{model}: cannot tell from the model's input whether channels come first or last; "
            f'declare "layout": "nchw" or "nhwc" in {where}'
        )
    try:
        return ForeignPreprocess(
            input_size=size,
            resize_size=values.get(
                "resize", int(round(size / 0.875)) if isinstance(size, int) else 0
            ),
            interpolation=values.get("interpolation", "bilinear"),
            mean=_triple(values["mean"], "mean", where),
            std=_triple(values["std"], "std", where),
            layout=layout,
            channel_order=values.get("channel_order", "rgb"),
            scale=values["scale"],
            output=values.get("output", ""),
            pool=values.get("pool", "none"),
        )
    except ValueError as exc:
        raise BadInputError(f"{where}: {exc}") from None
