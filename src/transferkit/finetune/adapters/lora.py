"""LoRA (Hu et al., 2021) through peft: low-rank updates of the chosen linear layers.

peft's ``inject_adapter_in_model`` puts its own LoRA layers into the encoder (any torch module:
Hugging Face or timm), and its ``get_peft_model_state_dict`` / ``set_peft_model_state_dict``
name and load the tensors, so what we store is what peft stores: ``<layer>.lora_A.weight``,
``<layer>.lora_B.weight`` under the encoder's own module names (a ``PeftModel`` over the same
model adds ``base_model.model.``). peft initialises ``lora_B`` to zero: training starts at the
pretrained function exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from transferkit.finetune.adapters.bottleneck import check_same_keys
from transferkit.finetune.adapters.spec import AdapterSpec
from transferkit.finetune.adapters.targets import encoder_root, lora_targets


def peft_config(spec: AdapterSpec):
    """peft's ``LoraConfig`` for a LoRA spec whose targets are resolved (a list)."""
    from peft import LoraConfig

    c = spec.config
    return LoraConfig(
        r=int(c["r"]),
        lora_alpha=c["alpha"],
        lora_dropout=float(c["dropout"]),
        target_modules=list(c["target_modules"]),
    )


def inject(module: nn.Module, spec: AdapterSpec) -> AdapterSpec:
    """Add LoRA to ``module``'s encoder in place; returns the spec with its targets resolved
    (``"attention"``/``"all"`` → the module names of this architecture)."""
    from peft import inject_adapter_in_model

    _, root = encoder_root(module)
    targets = lora_targets(module, spec.config["target_modules"])
    resolved = AdapterSpec(spec.method, {**spec.config, "target_modules": targets})
    inject_adapter_in_model(peft_config(resolved), root)
    return resolved


def has_lora(module: nn.Module) -> bool:
    """Whether ``module``'s encoder carries peft adapters already."""
    _, root = encoder_root(module)
    return hasattr(root, "peft_config")


def adapter_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors under peft's names, relative to the encoder root."""
    from peft import get_peft_model_state_dict

    _, root = encoder_root(module)
    state = get_peft_model_state_dict(root, save_embedding_layers=False)
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def load_adapter_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load peft-named LoRA tensors into the injected layers, strictly."""
    from peft import set_peft_model_state_dict

    _, root = encoder_root(module)
    check_same_keys(module, adapter_state(module), state)
    result = set_peft_model_state_dict(root, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:  # check_same_keys makes this impossible unless peft renames keys
        raise RuntimeError(f"peft did not place {unexpected[:3]}")
