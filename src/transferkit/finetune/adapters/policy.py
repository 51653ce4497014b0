"""The trainable-parameter policy of adapter training: the adapters and the head learn, every
weight of the pretrained encoder stays frozen, from the first epoch to the last (one stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from transferkit.finetune.adapters.bottleneck import ADAPTER_NAME, ADAPTERS
from transferkit.finetune.model import HEAD_PREFIX
from transferkit.finetune.trainable import TrainableParameters

# how adapter parameters are named: peft's LoRA layers and our bottleneck modules
_ADAPTER_MARKERS = (".lora_A.", ".lora_B.", f".{ADAPTERS}.{ADAPTER_NAME}.")


def is_adapter_parameter(name: str) -> bool:
    """Whether parameter ``name`` belongs to an injected adapter."""
    return any(marker in f".{name}" for marker in _ADAPTER_MARKERS)


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(parameters that train now, all parameters) of ``module``."""
    trained = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return int(trained), int(sum(p.numel() for p in module.parameters()))


@dataclass(frozen=True)
class AdapterOnly(TrainableParameters):
    """Adapters at ``lr · adapter_lr_ratio`` and the head at ``lr``; nothing else trains."""

    adapter_lr_ratio: float = 1.0
    final_stage: int = 0

    def names(self, model: nn.Module) -> list[str]:
        """The parameters that train: the adapters', then the head's."""
        names = [n for n, _ in model.named_parameters()]
        adapters = [n for n in names if is_adapter_parameter(n)]
        if not adapters:
            raise ValueError("the model carries no adapter: inject one before training")
        return adapters + [n for n in names if n.startswith(HEAD_PREFIX)]

    def apply(self, model: nn.Module, stage: int) -> None:
        chosen = set(self.names(model))
        for name, param in model.named_parameters():
            param.requires_grad_(name in chosen)

    def param_groups(
        self, model: nn.Module, stage: int, *, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        params = dict(model.named_parameters())
        names = self.names(model)
        head = [n for n in names if n.startswith(HEAD_PREFIX)]
        adapters = [n for n in names if not n.startswith(HEAD_PREFIX)]
        # the head first: the training history records the first group's learning rate
        return [
            {
                "params": [params[n] for n in head],
                "param_names": head,
                "lr": lr,
                "weight_decay": weight_decay,
                "group_name": "head",
            },
            {
                "params": [params[n] for n in adapters],
                "param_names": adapters,
                "lr": lr * self.adapter_lr_ratio,
                "weight_decay": weight_decay,
                "group_name": "adapters",
            },
        ]

    def stage_name(self, stage: int) -> str:
        return "adapters"
