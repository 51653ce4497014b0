"""AdapterHub's adapter folder (``model.save_adapter(DIR, NAME, use_safetensors=True)``,
adapters 1.x): bottleneck adapters (Houlsby, Pfeiffer) and LoRA.

``adapter_config.json`` holds ``name``, ``model_name``, ``model_type``, ``hidden_size`` and
``config`` (the adapter's settings, AdapterHub's keys); ``adapter.safetensors`` holds
``<site>.adapters.NAME.adapter_down.0.weight`` … for bottleneck adapters (bottleneck.py uses the
same names, with NAME ``default``) and ``<layer>.loras.NAME.lora_A`` (no ``.weight``) for LoRA
(peft's ``<layer>.lora_A.weight`` in ours). Keys are relative to the base model (``bert.``
first when saved from a model with heads).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferkit.errors import BadInputError
from transferkit.finetune.adapters.shared_folder import (
    CONFIG,
    SharedAdapter,
    read_config,
    read_weights,
    renamed,
    write_folder,
)
from transferkit.finetune.adapters.spec import AdapterSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

WEIGHTS, PICKLE = "adapter.safetensors", "pytorch_adapter.bin"
# the AdapterHub format version our files follow (their loader adjusts older LoRA files)
VERSION = "adapters.1.3.0"

_HUB_FIXED = {
    "ln_before": False,
    "ln_after": False,
    "adapter_residual_before_ln": False,
    "use_gating": False,
    "is_parallel": False,
    "phm_layer": False,
    "inv_adapter": None,
    "cross_adapter": False,
}
_HUB_BOTTLENECK = ("reduction_factor", "non_linearity", "mh_adapter", "output_adapter")
_HUB_PLACEMENT = ("original_ln_before", "original_ln_after", "residual_before_ln")
_HUB_LORA_FIXED = {"composition_mode": "add", "use_gating": False, "vera_d": None, "vera_b": None}


def read_adapterhub_dir(path: str | Path, config: dict[str, Any] | None = None) -> SharedAdapter:
    """A folder AdapterHub's ``save_adapter`` wrote: a bottleneck adapter (Houlsby, Pfeiffer)
    or LoRA."""
    folder = Path(path)
    doc = config if config is not None else read_config(folder)
    where = folder / CONFIG
    settings = doc.get("config")
    if not isinstance(settings, dict):
        raise BadInputError(f"{where}: 'config' must be the adapter's settings (an object)")
    name = str(doc.get("name") or "")
    architecture = settings.get("architecture") or "bottleneck"
    state, sha = read_weights(
        folder,
        WEIGHTS,
        PICKLE,
        "save it again with save_adapter(..., use_safetensors=True)",
    )
    if architecture == "lora":
        method, ours = "lora", _hub_lora_settings(settings, where)
        state = renamed(state, rf"\.loras\.{re.escape(name)}\.(lora_[AB])$", r".\1.weight")
    elif architecture == "bottleneck":
        method, ours = _hub_bottleneck_settings(settings, where)
        from transferkit.finetune.adapters.bottleneck import ADAPTER_NAME

        state = renamed(state, rf"\.adapters\.{re.escape(name)}\.", f".adapters.{ADAPTER_NAME}.")
    else:
        raise BadInputError(
            f"{where}: a {architecture!r} adapter; transferkit reads AdapterHub's bottleneck "
            "adapters (Houlsby, Pfeiffer) and LoRA"
        )
    return SharedAdapter(
        path=folder,
        source="adapterhub",
        method=method,
        settings=ours,
        state=state,
        base_model=doc.get("model_name") or None,
        weights_sha256=sha,
    )


def _refuse_settings(where: Path, settings: dict, fixed: dict[str, Any]) -> None:
    for key, value in fixed.items():
        if key in settings and settings[key] != value:
            raise BadInputError(
                f"{where}: config.{key} = {settings[key]!r}; transferkit's adapters follow "
                f"{key} = {json.dumps(value)} only"
            )


def _hub_bottleneck_settings(settings: dict, where: Path) -> tuple[str, dict]:
    _refuse_settings(where, settings, _HUB_FIXED)
    if float(settings.get("scaling", 1.0)) != 1.0:
        raise BadInputError(f"{where}: config.scaling = {settings['scaling']!r}; only 1.0 is read")
    if settings.get("leave_out"):
        raise BadInputError(
            f"{where}: config.leave_out = {settings['leave_out']!r}; transferkit puts an adapter "
            "in every layer"
        )
    missing = [k for k in _HUB_BOTTLENECK + _HUB_PLACEMENT if k not in settings]
    if missing:
        raise BadInputError(f"{where}: config lacks {', '.join(missing)}")
    ours = {k: settings[k] for k in _HUB_BOTTLENECK + _HUB_PLACEMENT}
    # Houlsby's adapters follow attention too; a Pfeiffer-style one only the feed-forward block
    return ("houlsby" if ours["mh_adapter"] else "pfeiffer"), ours


def _hub_lora_settings(settings: dict, where: Path) -> dict:
    _refuse_settings(where, settings, _HUB_LORA_FIXED)
    if settings.get("use_dora"):
        raise BadInputError(f"{where}: config.use_dora is true; transferkit reads plain LoRA")
    return {
        "r": settings.get("r"),
        "alpha": settings.get("alpha"),
        "dropout": settings.get("dropout", 0.0),
    }


def write_adapterhub_dir(
    path: str | Path,
    spec: AdapterSpec,
    state: dict[str, torch.Tensor],
    *,
    base_model: str,
    base_config: dict[str, Any],
    name: str = "transferkit",
) -> Path:
    """Write an adapter as AdapterHub saves one: ``model.load_adapter(path)`` adds it to
    ``base_model`` (whose Hugging Face ``config.json`` is ``base_config``) as ``name``."""
    from transferkit.finetune.adapters.bottleneck import ADAPTER_NAME

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise BadInputError(f"an AdapterHub adapter name is an identifier; got {name!r}")
    if spec.is_lora:
        settings = _lora_as_hub(spec, state, int(base_config.get("num_hidden_layers", 0)))
        tensors = renamed(state, r"\.(lora_[AB])\.weight$", rf".loras.{name}.\1")
    else:
        c = spec.config
        settings = {
            **_HUB_FIXED,
            **{k: c[k] for k in _HUB_BOTTLENECK + _HUB_PLACEMENT},
            "scaling": 1.0,
            "dropout": 0.0,
            "leave_out": [],
            # their initialisation with a zero up-projection, as ours (weights load over it)
            "init_weights": "mam_adapter",
            "inv_adapter_reduction_factor": None,
            "stochastic_depth": 0.0,
        }
        tensors = renamed(state, rf"\.adapters\.{ADAPTER_NAME}\.", f".adapters.{name}.")
    architectures = base_config.get("architectures") or []
    doc = {
        "config": settings,
        "hidden_size": base_config.get("hidden_size"),
        "model_class": architectures[0] if architectures else None,
        "model_name": base_model,
        "model_type": base_config.get("model_type"),
        "name": name,
        "version": VERSION,
    }
    return write_folder(Path(path), doc, tensors, WEIGHTS)


# AdapterHub's LoRA places: attention matrices by letter, the feed-forward layers by flag
_HUB_LORA_PLACES = (
    (re.compile(r"\.layer\.(\d+)\.attention\.self\.(query|key|value)$"), None),
    (re.compile(r"\.layer\.(\d+)\.intermediate\.dense$"), "intermediate_lora"),
    (re.compile(r"\.layer\.(\d+)\.output\.dense$"), "output_lora"),
)


def _lora_as_hub(spec: AdapterSpec, state: dict, n_layers: int) -> dict[str, Any]:
    """AdapterHub's LoRA settings for our LoRA layers (BERT-family names)."""
    places: dict[str, set[int]] = {}
    for key in state:
        layer = "." + re.sub(r"\.lora_[AB]\.weight$", "", key)
        for pattern, flag in _HUB_LORA_PLACES:
            found = pattern.search(layer)
            if found:
                place = flag or found.group(2)[0]  # query -> "q"
                places.setdefault(place, set()).add(int(found.group(1)))
                break
        else:
            raise BadInputError(
                f"AdapterHub's LoRA has no place for {layer[1:]} (it adapts attention query/"
                "key/value and the feed-forward layers); write this adapter in peft's form "
                "(--format peft)"
            )
    every = set(range(n_layers)) or set().union(*places.values())
    partial = sorted(p for p, layers in places.items() if layers != every)
    if partial:
        raise BadInputError(
            f"AdapterHub's LoRA adapts the same places in every layer; this one adapts "
            f"{', '.join(partial)} in some layers only: write it in peft's form (--format peft)"
        )
    c = spec.config
    return {
        "architecture": "lora",
        "r": c["r"],
        "alpha": c["alpha"],
        "dropout": c["dropout"],
        "attn_matrices": [m for m in "qkv" if m in places],
        "selfattn_lora": any(m in places for m in "qkv"),
        "intermediate_lora": "intermediate_lora" in places,
        "output_lora": "output_lora" in places,
        **_HUB_LORA_FIXED,
        "init_weights": "lora",
        "leave_out": [],
        "use_dora": False,
    }
