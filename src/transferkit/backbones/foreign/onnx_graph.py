"""An ONNX file from outside, checked before anything runs it, cut at the tensor that embeds.

Checks: the bytes are the ones whose sha256 was verified (read once, hashed, then parsed, so
the file cannot change in between); ``onnx.checker`` accepts the graph; every operator is one
ONNX Runtime ships (no custom-op library is ever loaded); all weights are inside the file
(external data files would escape the sha256). The embedding may be any tensor of the graph,
named by the user: it becomes the graph's only output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from transferkit.errors import BadInputError

# operator sets ONNX Runtime implements itself; any other domain needs a custom-op library
BUILTIN_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})


@dataclass(frozen=True)
class GraphFacts:
    """What the graph itself says about its image input."""

    input_name: str
    size: int | None  # None when the spatial size is not fixed (or not square)
    layout: str | None  # "nchw" / "nhwc", None when neither axis 1 nor 3 is 3 channels


def read_checked(path: Path, sha256: str | None, label: str):
    """The ONNX model at ``path``, refused unless its bytes hash to ``sha256`` and it passes the
    checks above (``label`` names it in messages)."""
    import onnx

    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise BadInputError(
            f"{label}: {path} changed after it was verified (sha256 {digest[:16]}…, expected "
            f"{sha256[:16]}…); refusing to run it"
        )
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say what it is not
        raise BadInputError(f"{label}: {path} is not an ONNX model ({exc})") from None
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise BadInputError(
            f"{label}: {path} keeps weights in external data files ({', '.join(external[:3])}"
            f"{' …' if len(external) > 3 else ''}), which its sha256 does not cover; save the "
            "model as one file (onnx.save_model(..., save_as_external_data=False))"
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and others
        raise BadInputError(f"{label}: {path} fails onnx.checker: {exc}") from None
    custom = sorted(
        {n.domain for n in model.graph.node if n.domain not in BUILTIN_DOMAINS}
        | {o.domain for o in model.opset_import if o.domain not in BUILTIN_DOMAINS}
    )
    if custom:
        raise BadInputError(
            f"{label}: {path} uses operators of {', '.join(repr(d) for d in custom)}, which "
            "need a custom-op library; transferkit runs only the operators ONNX Runtime ships"
        )
    return model


def graph_facts(model, label: str) -> GraphFacts:
    """The one image input of ``model``: its name, fixed size and layout where stated."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise BadInputError(
            f"{label}: an image backbone takes one input; this graph takes {len(inputs)} "
            f"({', '.join(i.name for i in inputs)})"
        )
    dims = [
        d.dim_value if d.HasField("dim_value") else None
        for d in inputs[0].type.tensor_type.shape.dim
    ]
    if len(dims) != 4:
        raise BadInputError(
            f"{label}: the input {inputs[0].name!r} has shape {_shown(dims)}; an image backbone "
            "takes (batch, 3, H, W) or (batch, H, W, 3)"
        )
    layout = size = None
    if dims[1] == 3 and dims[3] != 3:
        layout, side = "nchw", dims[2:]
    elif dims[3] == 3 and dims[1] != 3:
        layout, side = "nhwc", dims[1:3]
    else:
        side = [None, None]
    if side[0] is not None and side[0] == side[1]:
        size = int(side[0])
    return GraphFacts(inputs[0].name, size, layout)


def cut_at(model, tensor: str, label: str):
    """``model`` with ``tensor`` (a graph output or any intermediate tensor) as its only output;
    the first output when ``tensor`` is empty."""
    import onnx

    graph = model.graph
    name = tensor or graph.output[0].name
    outputs = [o for o in graph.output if o.name == name]
    if not outputs:
        produced = [out for node in graph.node for out in node.output]
        if name not in produced:
            last = ", ".join(repr(t) for t in produced[-8:])
            raise BadInputError(
                f"{label}: the graph has no tensor {name!r} to embed with; its outputs are "
                f"{[o.name for o in graph.output]} and its last tensors {last}. Name one as "
                '"output" in the sidecar JSON'
            )
        outputs = [onnx.helper.make_empty_tensor_value_info(name)]
    del graph.output[:]
    graph.output.extend(outputs)
    return model


def _shown(dims) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
