"""Discriminative (layer-wise) learning rates and adding unfrozen layer groups to an optimizer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.optim import Optimizer

from transferkit.errors import BadInputError
from transferkit.finetune.freezing import unfreeze

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Parameters that should get no weight decay: biases, norm parameters and other 1-D ones."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for param_name, param in module.named_parameters(recurse=False):
            # decaying a scale or shift towards zero fights normalisation instead of regularising
            if is_norm or param.ndim <= 1 or param_name == "bias":
                names.add(f"{module_name}.{param_name}" if module_name else param_name)
    return names


def group_lr_factors(decay: float | Sequence[float], n_groups: int) -> list[float]:
    """Learning-rate multiplier of each layer group, ordered from the stem (0) to the top.

    A float ``decay`` multiplies once per group going down from the head (top group
    ``decay``, the next ``decay**2``, ...). A sequence gives the factor of each step down, top
    first, and needs one entry per group.
    """
    steps = [decay] * n_groups if isinstance(decay, int | float) else list(decay)
    if len(steps) != n_groups:
        raise BadInputError(
            f"decay must be a number or one factor per layer group ({n_groups}); "
            f"got {len(steps)} factors."
        )
    for factor in steps:
        if not (0 < factor <= 1) or math.isnan(factor):
            raise BadInputError(
                f"Each learning-rate decay factor must be in (0, 1]; got {factor}. Lower layers "
                "hold general features and learn more slowly than the head, not faster."
            )
    top_down = [math.prod(steps[: k + 1]) for k in range(n_groups)]
    return top_down[::-1]


def _check_lr(head_lr: float, weight_decay: float) -> None:
    if not head_lr > 0:
        raise BadInputError(f"head_lr must be > 0; got {head_lr}.")
    if not weight_decay >= 0:
        raise BadInputError(f"weight_decay must be >= 0; got {weight_decay}.")


def _split_by_decay(
    model: nn.Module, names: Sequence[str], *, lr: float, weight_decay: float, tag: str
) -> list[dict[str, Any]]:
    """One param group with weight decay and one without, dropping empty ones."""
    params = dict(model.named_parameters())
    skip = no_weight_decay_names(model)
    out = []
    for suffix, wd, chosen in (
        ("decay", weight_decay, [n for n in names if n not in skip]),
        ("no_decay", 0.0, [n for n in names if n in skip]),
    ):
        if chosen:
            out.append(
                {
                    "params": [params[n] for n in chosen],
                    "param_names": list(chosen),
                    "lr": lr,
                    "weight_decay": wd,
                    "group_name": f"{tag}/{suffix}",
                }
            )
    return out


def head_parameter_names(model: nn.Module, groups: Sequence[Sequence[str]]) -> list[str]:
    """Parameters in no backbone layer group: the newly added head."""
    in_groups = {n for g in groups for n in g}
    return [n for n, _ in model.named_parameters() if n not in in_groups]


def discriminative_param_groups(
    model: nn.Module,
    groups: Sequence[Sequence[str]],
    *,
    head_lr: float,
    decay: float | Sequence[float] = 0.5,
    weight_decay: float = 0.01,
    unfrozen_groups: int = 0,
) -> list[dict[str, Any]]:
    """AdamW-ready param groups: the head at ``head_lr``, each lower unfrozen group slower.

    ``groups`` are parameter names ordered stem to top (``Backbone.layer_groups()``); only the
    top ``unfrozen_groups`` are included, frozen ones are left out. Every group carries
    ``param_names`` (torch keeps it in the optimizer's state dict) and a ``group_name``.
    ``requires_grad`` is not touched here: ``set_unfrozen_groups`` sets it for the same stage.
    """
    _check_lr(head_lr, weight_decay)
    if not 0 <= unfrozen_groups <= len(groups):
        raise BadInputError(
            f"unfrozen_groups must be between 0 and {len(groups)}; got {unfrozen_groups}."
        )
    factors = group_lr_factors(decay, len(groups))
    out = _split_by_decay(
        model,
        head_parameter_names(model, groups),
        lr=head_lr,
        weight_decay=weight_decay,
        tag="head",
    )
    for index in range(len(groups) - 1, len(groups) - 1 - unfrozen_groups, -1):
        out += _split_by_decay(
            model,
            groups[index],
            lr=head_lr * factors[index],
            weight_decay=weight_decay,
            tag=f"group{index}",
        )
    return out


def unfreeze_next_group(
    optimizer: Optimizer,
    model: nn.Module,
    groups: Sequence[Sequence[str]],
    stage: int,
    *,
    head_lr: float,
    decay: float | Sequence[float] = 0.5,
    weight_decay: float = 0.01,
    scheduler: Any = None,
) -> int:
    """Unfreeze the highest still-frozen layer group and add it to ``optimizer``; return stage+1.

    ``stage`` is the number of layer groups already unfrozen. Existing param groups and their
    optimizer state are left as they are (Lightning's ``unfreeze_and_add_param_group``). Pass the
    ``scheduler`` built by ``warmup_cosine_scheduler`` so the new group starts at the current
    point of the schedule rather than at its full base learning rate.
    """
    _check_lr(head_lr, weight_decay)
    if not 0 <= stage < len(groups):
        raise BadInputError(
            f"Cannot unfreeze another layer group: stage {stage} of {len(groups)} groups "
            "(all are unfrozen already, or the stage is negative)."
        )
    index = len(groups) - 1 - stage
    factor = group_lr_factors(decay, len(groups))[index]
    params = dict(model.named_parameters())
    unfreeze([params[n] for n in groups[index]])
    for group in _split_by_decay(
        model, groups[index], lr=head_lr * factor, weight_decay=weight_decay, tag=f"group{index}"
    ):
        optimizer.add_param_group(group)
    if scheduler is not None and hasattr(scheduler, "sync_new_groups"):
        scheduler.sync_new_groups()
    return stage + 1
