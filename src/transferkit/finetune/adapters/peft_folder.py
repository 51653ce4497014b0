"""peft's adapter folder (``PeftModel.save_pretrained``), LoRA only.

``adapter_config.json`` (``peft_type`` "LORA", ``r``, ``lora_alpha``, ``target_modules``,
``base_model_name_or_path``) and ``adapter_model.safetensors``
(``base_model.model.<layer>.lora_A.weight``; a model with a task head adds its base prefix,
e.g. ``bert.``): our LoRA keys are peft's own (lora.py), so only that prefix differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferkit.errors import BadInputError
from transferkit.finetune.adapters.shared_folder import (
    CONFIG,
    SharedAdapter,
    read_config,
    read_weights,
    write_folder,
)
from transferkit.finetune.adapters.spec import AdapterSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

WEIGHTS, PICKLE = "adapter_model.safetensors", "adapter_model.bin"
PREFIX = "base_model.model."


def read_peft_dir(path: str | Path, config: dict[str, Any] | None = None) -> SharedAdapter:
    """A folder peft's ``save_pretrained`` wrote (LoRA only)."""
    folder = Path(path)
    config = config if config is not None else read_config(folder)
    where = folder / CONFIG
    if config.get("peft_type") != "LORA":
        raise BadInputError(
            f"{where}: peft_type {config.get('peft_type')!r}; transferkit reads LoRA adapters "
            "(peft_type LORA)"
        )
    unsupported = {
        "use_dora": "DoRA",
        "rank_pattern": "per-layer ranks",
        "alpha_pattern": "per-layer alphas",
        "target_parameters": "LoRA on parameters",
        "trainable_token_indices": "trained token embeddings",
        "lora_bias": "LoRA biases",
        "fan_in_fan_out": "fan_in_fan_out layers",
    }
    for key, what in unsupported.items():
        if config.get(key):
            raise BadInputError(
                f"{where}: {key} = {config[key]!r}: {what} are not part of transferkit's LoRA "
                "(plain LoRA on linear layers); save the adapter without it"
            )
    if config.get("bias", "none") != "none":
        raise BadInputError(
            f"{where}: bias = {config['bias']!r} trains the base model's biases too; "
            "transferkit's adapters leave the base untouched (bias 'none')"
        )
    state, sha = read_weights(
        folder,
        WEIGHTS,
        PICKLE,
        "save it again with save_pretrained(safe_serialization=True)",
    )
    r, alpha = config.get("r"), config.get("lora_alpha")
    if config.get("use_rslora") and isinstance(r, int) and isinstance(alpha, int | float):
        alpha = alpha * r**0.5  # rsLoRA scales by alpha/sqrt(r): the same as (alpha*sqrt(r))/r
    settings = {"r": r, "alpha": alpha, "dropout": config.get("lora_dropout", 0.0)}
    # modules_to_save: modules peft trained whole (a task head: "classifier", "score")
    whole = [str(m) for m in config.get("modules_to_save") or []]
    beside = {
        k: v
        for k, v in state.items()
        if any(f".{m}." in f".{k}" for m in whole) and "lora_" not in k
    }
    return SharedAdapter(
        path=folder,
        source="peft",
        method="lora",
        settings=settings,
        state={k: v for k, v in state.items() if k not in beside},
        base_model=config.get("base_model_name_or_path") or None,
        weights_sha256=sha,
        beside=beside,
    )


def write_peft_dir(
    path: str | Path, spec: AdapterSpec, state: dict[str, torch.Tensor], *, base_model: str
) -> Path:
    """Write a LoRA adapter as peft saves one: ``PeftModel.from_pretrained(base, path)`` loads
    it onto ``base_model`` (a Hub id or a local folder of that model)."""
    from peft import LoraConfig

    from transferkit.finetune.adapters.lora import peft_config

    if not spec.is_lora:
        raise BadInputError(
            f"peft has no {spec.method} adapter (it has LoRA); write this one in AdapterHub's "
            "form (--format adapterhub)"
        )
    config: LoraConfig = peft_config(spec)
    config.base_model_name_or_path = base_model
    config.inference_mode = True
    doc = {k: sorted(v) if isinstance(v, set) else v for k, v in config.to_dict().items()}
    tensors = {PREFIX + k: v for k, v in state.items()}
    return write_folder(Path(path), doc, tensors, WEIGHTS)
