"""Exported graphs of frozen models from other frameworks: their own ONNX graph, joined in ONNX.

A foreign backbone is not a torch module to trace, so its graph is put together from four ONNX
pieces with ``onnx.compose``: the pixels' normalisation (uint8 planar RGB in, as every image
graph takes; the model's channel order, scale, mean, std and layout), the model's graph cut at
its embedding tensor (the checked one the bundle runs), the pooling or flattening that makes
one vector per input, and the head (exported from torch, as for every other backbone). The
exporter then holds the joined graph to the bundle's probabilities like any other (1e-4);
``image.ForeignImageGraph`` is the image graph that uses it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

_PIXELS, _MODEL_IN, _FEATURES, _EMBEDDING = "pixels", "tk_model_input", "tk_features", "tk_emb"


def join_graph(backbone, head, dest: Path, opset: int) -> None:
    """``backbone``'s graph and ``head`` (a torch module) joined: ``pixels`` ->
    ``probabilities``, ``embedding``, written to ``dest``."""
    import onnx
    from onnx import compose, version_converter

    module = backbone.materialize()
    model = module.onnx_model()
    opset = max(opset, _opset(model))
    if _opset(model) != opset:
        model = version_converter.convert_version(model, opset)
    model = compose.add_prefix(model, "model/")
    pieces = [
        _normalisation(backbone.preprocess, opset),
        model,
        _to_vectors(backbone.preprocess, module.output_rank, opset),
        compose.add_prefix(_head(head, int(module.num_features), opset), "head/",
                           rename_outputs=False),
    ]  # fmt: skip
    ir = max(p.ir_version for p in pieces)
    for piece in pieces:
        piece.ir_version = ir
    joins = [
        [(_MODEL_IN, "model/" + module.input_name)],
        [(model.graph.output[0].name, _FEATURES)],
        [(_EMBEDDING, "head/" + _EMBEDDING)],
    ]
    joined = pieces[0]
    for piece, io_map in zip(pieces[1:], joins):
        joined = compose.merge_models(joined, piece, io_map=io_map)
    # merging repeats each piece's opset imports; tools (the int8 quantiser) expect one each
    versions: dict[str, int] = {}
    for entry in joined.opset_import:
        versions[entry.domain] = max(versions.get(entry.domain, 0), entry.version)
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
    onnx.checker.check_model(joined)
    onnx.save(joined, str(dest))


def _opset(model) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _normalisation(p, opset: int):
    """uint8 (B, 3, S, S) RGB -> the model's input: channel order, scale, mean, std, layout."""
    from onnx import TensorProto, helper, numpy_helper

    mean = np.asarray(p.mean, dtype=np.float32)
    std = np.asarray(p.std, dtype=np.float32)
    consts = {
        "tk_order": np.asarray([2, 1, 0] if p.channel_order == "bgr" else [0, 1, 2], np.int64),
        "tk_mul": (np.float32(p.scale) / std).reshape(1, 3, 1, 1),
        "tk_add": (-mean / std).reshape(1, 3, 1, 1),
    }
    nodes = [
        helper.make_node("Cast", [_PIXELS], ["tk_float"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["tk_float", "tk_order"], ["tk_ordered"], axis=1),
        helper.make_node("Mul", ["tk_ordered", "tk_mul"], ["tk_scaled"]),
    ]
    if p.layout == "nhwc":
        nodes.append(helper.make_node("Add", ["tk_scaled", "tk_add"], ["tk_nchw"]))
        nodes.append(helper.make_node("Transpose", ["tk_nchw"], [_MODEL_IN], perm=[0, 2, 3, 1]))
    else:
        nodes.append(helper.make_node("Add", ["tk_scaled", "tk_add"], [_MODEL_IN]))
    size = p.input_size
    graph = helper.make_graph(
        nodes,
        "normalisation",
        [helper.make_tensor_value_info(_PIXELS, TensorProto.UINT8, ["batch", 3, size, size])],
        [helper.make_tensor_value_info(_MODEL_IN, TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _to_vectors(p, rank: int, opset: int):
    """The model's output -> (B, D): averaged over the spatial axes when asked, flattened."""
    from onnx import TensorProto, helper

    nodes, source = [], _FEATURES
    if p.pool == "avg" and rank >= 3:
        axes = list(range(2, rank)) if p.layout == "nchw" else list(range(1, rank - 1))
        if opset >= 18:
            axes_const = helper.make_tensor("tk_axes", TensorProto.INT64, [len(axes)], axes)
            nodes.append(helper.make_node("Constant", [], ["tk_axes_v"], value=axes_const))
            nodes.append(
                helper.make_node("ReduceMean", [source, "tk_axes_v"], ["tk_pooled"], keepdims=0)
            )
        else:
            nodes.append(
                helper.make_node("ReduceMean", [source], ["tk_pooled"], axes=axes, keepdims=0)
            )
        source = "tk_pooled"
    nodes.append(helper.make_node("Flatten", [source], [_EMBEDDING], axis=1))
    graph = helper.make_graph(
        nodes,
        "vectors",
        [helper.make_tensor_value_info(_FEATURES, TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(_EMBEDDING, TensorProto.FLOAT, ["batch", None])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _head(head, dim: int, opset: int):
    """The torch head as ONNX: embedding -> (probabilities, embedding)."""
    import io

    import onnx
    import torch

    class HeadAndEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = head

        def forward(self, embedding):
            return self.head(embedding), embedding * 1.0  # a node, so the output is its own

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated (see exporter)
        torch.onnx.export(
            HeadAndEmbedding().eval(),
            (torch.zeros(2, dim),),
            buffer,
            input_names=[_EMBEDDING],
            output_names=["probabilities", "embedding"],
            dynamic_axes={_EMBEDDING: {0: "batch"}, "probabilities": {0: "batch"},
                          "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )  # fmt: skip
    model = onnx.load_model_from_string(buffer.getvalue())
    if opset != 17:
        from onnx import version_converter

        model = version_converter.convert_version(model, opset)
    return model
