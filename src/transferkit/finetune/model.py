"""The network fine-tuning trains: a backbone (pretrained or not) plus a new linear head."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

HEAD_PREFIX = "head."
BACKBONE_PREFIX = "backbone."


class ClassifierModel(nn.Module):
    """``backbone`` (pooled embeddings) → ``head`` (``nn.Linear`` to one logit per class).

    Parameter names start with ``backbone.`` or ``head.``; ``layer_groups`` are the backbone's
    own groups (stem → top) under that prefix, so freezing never guesses from names.
    """

    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes; got {n_classes}")
        self.backbone = backbone
        self.head = nn.Linear(int(backbone.num_features), int(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def layer_groups(self) -> list[list[str]]:
        return [[BACKBONE_PREFIX + n for n in group] for group in self.backbone.layer_groups()]


def state_sha256(module: nn.Module) -> str:
    """A content hash of ``module``'s state dict (names, dtypes, shapes and bytes).

    Identifies fine-tuned weights the way a file sha256 identifies pretrained ones, so caches
    keyed by weights (ONNX export, embeddings) never mix two different sets of weights.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()
