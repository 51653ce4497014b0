"""Adapters: small trainable modules inside a frozen pretrained encoder (LoRA through peft;
Houlsby / Pfeiffer bottleneck adapters with AdapterHub's names), the policy that trains only them,
their state as shareable files, and several adapters sharing one base in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from transferkit.finetune.adapters.spec import AdapterSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "AdapterSpec",
    "adapter_state",
    "check_adaptable",
    "has_adapter",
    "inject",
    "load_adapter_state",
]


# torch (and peft) load on first use: importing a strategy must not cost every command torch
def _method(spec: AdapterSpec):
    if spec.is_lora:
        from transferkit.finetune.adapters import lora

        return lora
    from transferkit.finetune.adapters import bottleneck

    return bottleneck


def inject(module: nn.Module, spec: AdapterSpec) -> AdapterSpec:
    """Put ``spec``'s adapter into ``module`` (a backbone module) in place, initialised to change
    nothing; returns the spec as resolved for this module (LoRA: its target layer names)."""
    if has_adapter(module):
        raise ValueError(f"{getattr(module, 'name', 'the module')} carries an adapter already")
    return _method(spec).inject(module, spec)


def check_adaptable(module: nn.Module, spec: AdapterSpec) -> None:
    """Refuse (BadInputError naming the backbone and what works) a module ``spec``'s adapter
    has no place in, without changing it."""
    from transferkit.finetune.adapters.targets import bottleneck_sites, lora_targets

    if spec.is_lora:
        lora_targets(module, spec.config["target_modules"])
    else:
        c = spec.config
        bottleneck_sites(
            module,
            mh=c["mh_adapter"],
            output=c["output_adapter"],
            ln_before=c["original_ln_before"],
        )


def has_adapter(module: nn.Module) -> bool:
    """Whether ``module`` carries a LoRA or bottleneck adapter."""
    from transferkit.finetune.adapters import bottleneck, lora

    return lora.has_lora(module) or bottleneck.has_bottleneck(module)


def adapter_state(module: nn.Module, spec: AdapterSpec) -> dict[str, Any]:
    """Only the adapter's tensors (CPU copies), named as peft / AdapterHub name them relative
    to the encoder (see lora.py and bottleneck.py)."""
    return _method(spec).adapter_state(module)


def load_adapter_state(module: nn.Module, spec: AdapterSpec, state: dict[str, Any]) -> None:
    """Load ``adapter_state``'s tensors into the adapter ``inject`` put into ``module``;
    BadInputError when they do not fit it (another base model or configuration)."""
    _method(spec).load_adapter_state(module, state)
