"""What an exported graph takes, per modality: a registry keyed by the modality's name.

A ``ModalityGraph`` knows, for one kind of input, the torch module that maps the graph's inputs
to the backbone's embedding, the inputs' names and dynamic axes, what ``export.json`` says about
them (everything done outside the graph, stated exactly so the torch-free runtime can repeat
it), the files shipped beside the graph, and how to turn the bundle's own examples into graph
inputs (through those shipped files, as the runtime will) for the parity check. A backbone that
cannot be put in one faithful graph is refused by ``check`` with the names of those that can.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from transferkit.errors import BadInputError


class ModalityGraph:
    """One export of one backbone: subclasses set the class attributes and the methods."""

    modality: ClassVar[str]
    input_names: ClassVar[tuple[str, ...]]
    # which axes of each input vary (beyond the batch, always axis 0)
    varying_axes: ClassVar[dict[str, dict[int, str]]] = {}
    # int8: static quantisation calibrated on held-out examples (convolutional graphs), or
    # dynamic (transformers' matrix products)
    int8_calibrated: ClassVar[bool] = False

    def __init__(self, backbone):
        self.backbone = backbone

    def check(self) -> None:
        """Refuse a backbone this modality cannot export faithfully (BadInputError)."""

    def embedder(self) -> nn.Module:
        """The module mapping the graph's inputs (``input_names``) to embeddings (B, D)."""
        raise NotImplementedError

    def example(self) -> tuple[torch.Tensor, ...]:
        """Inputs to trace the export with (a batch of 2, so no axis is taken as fixed)."""
        raise NotImplementedError

    def inputs_spec(self) -> dict[str, Any]:
        """``export.json``'s ``inputs``: names, dtypes, shapes, and every step outside."""
        raise NotImplementedError

    def write_side_files(self, folder: Path) -> list[str]:
        """Write the files the runtime needs beside the graph into ``folder``; their names."""
        return []

    def prepare(self, sample) -> Any:
        """One example of a Dataset as the runtime reads it (decoded, before batching)."""
        raise NotImplementedError

    def batch(self, items: list[Any]) -> dict[str, np.ndarray]:
        """The graph's inputs for prepared examples (after ``write_side_files``)."""
        raise NotImplementedError

    def float_nodes(self, nodes) -> list[str]:
        """Names of the ONNX ``nodes`` that int8 quantisation leaves in float: the head (small,
        and its probabilities are the output) and, in a calibrated (convolutional) graph, the
        first and last convolution, where the input's and the embedding's precision matter
        most (MobileNetV2 on Fashion-MNIST: 5.1 accuracy points lost with them quantised, none
        without)."""
        names = [n.name for n in nodes if n.name.startswith("/head/")]
        convs = [n.name for n in nodes if n.op_type == "Conv"]
        if self.int8_calibrated and convs:
            names += [convs[0], convs[-1]]
        return names

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {name: {0: "batch", **self.varying_axes.get(name, {})} for name in self.input_names}
        return {**axes, "probabilities": {0: "batch"}, "embedding": {0: "batch"}}


GRAPHS: dict[str, Callable[[Any], ModalityGraph]] = {}


def register_graph(cls: type[ModalityGraph]) -> type[ModalityGraph]:
    """Add a modality's graph class to the registry, under its ``modality``."""
    GRAPHS[cls.modality] = cls
    return cls


def graph_for(backbone) -> ModalityGraph:
    """The checked graph maker for ``backbone``'s modality."""
    modality = backbone.spec.modality
    if modality not in GRAPHS:
        raise BadInputError(
            f"{backbone.name} encodes {modality}; ONNX export covers {', '.join(sorted(GRAPHS))}"
        )
    graph = GRAPHS[modality](backbone)
    graph.check()
    return graph


class FullGraph(nn.Module):
    """Backbone + head as one module: graph inputs -> (probabilities, embedding)."""

    def __init__(self, embedder: nn.Module, head: nn.Module):
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embedder(*inputs).float()
        return self.head(embedding), embedding
