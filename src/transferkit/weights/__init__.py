"""Pretrained weight files: where they come from and proof that they are the right ones."""

from transferkit.weights.resolver import (
    ResolvedWeights,
    WeightsSpec,
    find_offline_weights,
    load_state_dict_file,
    resolve_weights,
    sha256_file,
)

__all__ = [
    "ResolvedWeights",
    "WeightsSpec",
    "find_offline_weights",
    "load_state_dict_file",
    "resolve_weights",
    "sha256_file",
]
