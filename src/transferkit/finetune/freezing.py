"""Freeze and unfreeze parameters, and keep frozen BatchNorm layers in eval mode."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

ModuleOrParams = nn.Module | Iterable[nn.Module] | Iterable[nn.Parameter]


def _is_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _parameters(module_or_params: ModuleOrParams, *, train_bn: bool) -> list[nn.Parameter]:
    """The parameters ``freeze`` acts on; BatchNorm parameters are skipped when ``train_bn``."""
    items = [module_or_params] if isinstance(module_or_params, nn.Module) else module_or_params
    params: list[nn.Parameter] = []
    for item in items:
        if isinstance(item, nn.Module):
            for module in item.modules():
                if train_bn and _is_bn(module):
                    continue
                params.extend(module.parameters(recurse=False))
        else:
            params.append(item)
    return params


def freeze(module_or_params: ModuleOrParams, *, train_bn: bool = False) -> None:
    """Stop gradients for the given modules or parameters.

    With ``train_bn=True`` the affine parameters of BatchNorm layers inside the given modules stay
    trainable (Lightning's ``freeze(..., train_bn=True)``); plain parameters are always frozen.
    """
    for param in _parameters(module_or_params, train_bn=train_bn):
        param.requires_grad_(False)


def unfreeze(module_or_params: ModuleOrParams) -> None:
    """Let gradients flow again through the given modules or parameters."""
    for param in _parameters(module_or_params, train_bn=False):
        param.requires_grad_(True)


def frozen_parameter_names(model: nn.Module) -> set[str]:
    """Names of ``model``'s parameters that do not require gradients."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def set_unfrozen_groups(
    model: nn.Module, groups: Sequence[Sequence[str]], unfrozen_groups: int
) -> None:
    """Freeze every layer group but the top ``unfrozen_groups``; other parameters (head) train."""
    if not 0 <= unfrozen_groups <= len(groups):
        raise ValueError(
            f"unfrozen_groups must be between 0 and {len(groups)} (the number of layer groups); "
            f"got {unfrozen_groups}."
        )
    params = dict(model.named_parameters())
    in_groups = {name for group in groups for name in group}
    unknown = sorted(in_groups - params.keys())
    if unknown:
        raise ValueError(f"layer groups name parameters the model does not have: {unknown[:5]}")
    first_unfrozen = len(groups) - unfrozen_groups
    for index, group in enumerate(groups):
        for name in group:
            params[name].requires_grad_(index >= first_unfrozen)
    for name, param in params.items():
        if name not in in_groups:
            param.requires_grad_(True)


def frozen_bn_layers(
    model: nn.Module, frozen_param_names: Iterable[str] | None = None
) -> list[nn.Module]:
    """BatchNorm layers all of whose parameters are frozen.

    ``frozen_param_names`` defaults to the parameters that do not require gradients. A BatchNorm
    without affine parameters has nothing to decide by, so it counts as frozen only when its
    enclosing module's parameters are all frozen (it belongs to a frozen block).
    """
    frozen = (
        frozen_parameter_names(model) if frozen_param_names is None else set(frozen_param_names)
    )
    layers: list[nn.Module] = []
    for module_name, module in model.named_modules():
        if not _is_bn(module):
            continue
        owner = module_name
        names = [f"{owner}.{n}" if owner else n for n, _ in module.named_parameters()]
        if not names:
            # affine=False: judge by the parent block's own parameters
            owner = module_name.rpartition(".")[0]
            parent = model.get_submodule(owner) if owner else model
            names = [f"{owner}.{n}" if owner else n for n, _ in parent.named_parameters()]
        if names and all(n in frozen for n in names):
            layers.append(module)
    return layers


def set_frozen_bn_eval(
    model: nn.Module, frozen_param_names: Iterable[str] | None = None
) -> list[nn.Module]:
    """Put frozen BatchNorm layers in eval mode so their running statistics stay untouched.

    Returns the layers switched. ``model.train()`` undoes this; use ``train_mode`` instead.
    """
    layers = frozen_bn_layers(model, frozen_param_names)
    for layer in layers:
        layer.eval()
    return layers


def train_mode(model: nn.Module, frozen: Iterable[str] | None = None) -> nn.Module:
    """``model.train()``, then put the BatchNorm layers of frozen parameters back in eval mode."""
    model.train()
    set_frozen_bn_eval(model, frozen)
    return model


def keep_bn_statistics(model: nn.Module) -> int:
    """Every BatchNorm layer to eval mode (running statistics used, never updated); return count.

    Their affine parameters still train when not frozen: only the statistics stay pretrained.
    """
    layers = [m for m in model.modules() if _is_bn(m)]
    for layer in layers:
        layer.eval()
    return len(layers)
