"""A fine-tuning method written outside the engine, shared by the engine and strategy tests."""

from __future__ import annotations

from torch import nn

from transferkit.finetune.trainable import TrainableParameters


class BatchNormOnly(TrainableParameters):
    """Only the BatchNorm scales and shifts train, with the head (Frankle, Schwab & Morcos,
    "Training BatchNorm and only BatchNorm", ICLR 2021)."""

    final_stage = 0

    def names(self, model: nn.Module) -> list[str]:
        """The parameters that train."""
        norm = {
            f"{module_name}.{name}"
            for module_name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            for name, _ in module.named_parameters(recurse=False)
        }
        return [n for n, _ in model.named_parameters() if n in norm or n.startswith("head.")]

    def apply(self, model: nn.Module, stage: int) -> None:
        chosen = set(self.names(model))
        for name, param in model.named_parameters():
            param.requires_grad_(name in chosen)

    def param_groups(self, model, stage, *, lr, weight_decay):
        params = dict(model.named_parameters())
        names = self.names(model)
        # scales and shifts get no decay (param_groups.no_weight_decay_names says why)
        group = {"params": [params[n] for n in names], "param_names": names, "lr": lr}
        return [{**group, "weight_decay": 0.0, "group_name": "batchnorm+head"}]

    def stage_name(self, stage: int) -> str:
        return "batchnorm"
