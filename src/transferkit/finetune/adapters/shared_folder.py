"""An adapter folder another library saved, read before it meets a backbone, and writing one.

Only safetensors weights are read: ``adapter_model.bin`` (peft) and ``pytorch_adapter.bin``
(AdapterHub) are pickle, which can run code when opened; they are refused with the command that
converts them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferkit.errors import BadInputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

CONFIG = "adapter_config.json"

_CONVERT = (
    'python -c "import torch; from safetensors.torch import save_file; '
    "save_file(torch.load('{src}', weights_only=True), '{dst}')\""
)


@dataclass(frozen=True)
class SharedAdapter:
    """An adapter read from a folder another library saved, before it meets a backbone.

    ``state``'s keys are ours but may still carry the saving model's prefix (``bert.``),
    settled by ``attach`` against the backbone; ``settings`` are the spec's (LoRA: without
    its target layers, which the keys tell)."""

    path: Path
    source: str  # "peft" | "adapterhub"
    method: str
    settings: dict[str, Any]
    state: dict[str, torch.Tensor]
    base_model: str | None  # the base the files name, if they do
    weights_sha256: str
    # modules the saving library trained whole beside the adapter (peft's modules_to_save)
    beside: dict[str, torch.Tensor] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        """What a bundle records about where its adapter started."""
        return {
            "path": str(self.path),
            "format": self.source,
            "base_model": self.base_model,
            "weights_sha256": self.weights_sha256,
        }


def read_config(folder: Path) -> dict[str, Any]:
    """The folder's ``adapter_config.json``, refused with the reason when it is not one."""
    file = folder / CONFIG
    if not folder.is_dir():
        raise BadInputError(
            f"{folder}: not a folder; give the adapter's folder ({CONFIG} + weights)"
        )
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(
            f"{folder}: no {CONFIG}; an adapter folder from peft or AdapterHub has one"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{file}: not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise BadInputError(f"{file}: an object is expected, got {type(config).__name__}")
    return config


def read_weights(folder: Path, safe: str, pickle: str, how: str) -> tuple[dict, str]:
    """The safetensors weights and their sha256; a pickle file is refused with the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from transferkit.weights.resolver import sha256_file

    file = folder / safe
    if not file.is_file():
        if (folder / pickle).is_file():
            convert = _CONVERT.format(src=folder / pickle, dst=file)
            raise BadInputError(
                f"{folder / pickle} is a pickle file, which can run code when it is opened: "
                f"transferkit reads adapter weights only from {safe}. Convert it on a machine "
                f"you trust: {convert} (or {how})"
            )
        raise BadInputError(f"{folder}: no {safe} next to {CONFIG}")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BadInputError(f"{file} cannot be read as safetensors ({exc})") from None
    if not state:
        raise BadInputError(f"{file} holds no tensors")
    return state, sha256_file(file)


def write_folder(folder: Path, config: dict[str, Any], tensors: dict, weights: str) -> Path:
    """Write ``adapter_config.json`` and the ``weights`` safetensors file as one folder,
    atomically (a reader sees the old folder or the new one, whole)."""
    from safetensors.torch import save_file

    from transferkit.atomic import atomic_directory, write_json_atomic

    with atomic_directory(folder) as tmp:
        write_json_atomic(tmp / CONFIG, config)
        own = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
        save_file(own, str(tmp / weights), metadata={"format": "pt"})
    return folder


def renamed(state: dict, pattern: str, replacement: str) -> dict:
    """``state`` with ``pattern`` replaced in every key."""
    return {re.sub(pattern, replacement, k): v for k, v in state.items()}
