"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2020) as AdapterHub builds them.

Each adapter is ``adapter_down`` (Linear to ``width // reduction_factor``, then the
non-linearity) → ``adapter_up`` (Linear back), added to what it reads: AdapterHub's ``Adapter``
module and parameter names, stored as ``<site>.adapters.default.adapter_down.0.weight`` etc.,
so an AdapterHub file maps onto ours by renaming its adapter. The up projection starts at zero
(AdapterHub's "mam_adapter" initialisation of it), so training starts at the pretrained
function exactly.

Placement follows AdapterHub's ``BottleneckLayer`` in a BERT-style output module
(``h = dropout(dense(x))``, then ``LayerNorm(h + input)``):

- ``original_ln_before`` false (Houlsby): ``LayerNorm(h + up(down(h)) + input)``;
- ``original_ln_before`` true (Pfeiffer): ``z = h + input``, ``LayerNorm(z + up(down(LN(z))))``
  with the layer's own LayerNorm both times.

In a pre-norm timm ViT the adapter follows the attention or MLP branch (``out + up(down(out))``)
or, Pfeiffer, the block's output (the residual stream).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import BadInputError
from transferkit.finetune.adapters.spec import AdapterSpec
from transferkit.finetune.adapters.targets import Site, bottleneck_sites, encoder_root

ADAPTER_NAME = "default"  # AdapterHub keys carry an adapter name; ours is this one
ADAPTERS = "adapters"  # the ModuleDict each site holds them in (AdapterHub's attribute name)

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


class Bottleneck(nn.Module):
    """AdapterHub's sequential bottleneck: ``adapter_up(adapter_down(x))`` (the residual is
    added by the site)."""

    def __init__(self, width: int, reduction_factor: float, non_linearity: str) -> None:
        super().__init__()
        down = max(1, int(width // reduction_factor))
        self.adapter_down = nn.Sequential(nn.Linear(width, down), _ACTIVATIONS[non_linearity]())
        self.adapter_up = nn.Linear(down, width)
        nn.init.zeros_(self.adapter_up.weight)
        nn.init.zeros_(self.adapter_up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter_up(self.adapter_down(x))


class _AdaptedOutput:
    """Mixed into a BERT-style output module's class: its forward with the adapter placed as
    AdapterHub places it (``_ln_before`` chooses Pfeiffer's or Houlsby's placement)."""

    _ln_before: bool

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        adapter = getattr(self, ADAPTERS)[ADAPTER_NAME]
        h = self.dropout(self.dense(hidden_states))
        norm = self.LayerNorm
        if not self._ln_before:
            return norm(h + adapter(h) + input_tensor)
        z = h + input_tensor
        read = F.layer_norm(z, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        return norm(z + adapter(read))


_ADAPTED_CLASSES: dict[tuple[type, bool], type] = {}


def _adapted_class(cls: type, ln_before: bool) -> type:
    key = (cls, ln_before)
    if key not in _ADAPTED_CLASSES:
        name = f"{cls.__name__}With{'Pfeiffer' if ln_before else 'Houlsby'}Adapter"
        _ADAPTED_CLASSES[key] = type(name, (_AdaptedOutput, cls), {"_ln_before": ln_before})
    return _ADAPTED_CLASSES[key]


def _add_to_output(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    """Forward hook of a pre-norm branch or block: its output plus its adapter's."""
    return output + getattr(module, ADAPTERS)[ADAPTER_NAME](output)


def inject(module: nn.Module, spec: AdapterSpec) -> AdapterSpec:
    """Add ``spec``'s bottleneck adapters to ``module``'s encoder in place; returns ``spec``."""
    c = spec.config
    _, root = encoder_root(module)
    if has_bottleneck(module):
        raise BadInputError(f"{getattr(module, 'name', '')} already carries a bottleneck adapter")
    sites = bottleneck_sites(
        module, mh=c["mh_adapter"], output=c["output_adapter"], ln_before=c["original_ln_before"]
    )
    for site in sites:
        _place(root.get_submodule(site.path), site, spec)
    return spec


def _place(target: nn.Module, site: Site, spec: AdapterSpec) -> None:
    c = spec.config
    adapter = Bottleneck(site.width, c["reduction_factor"], c["non_linearity"])
    target.add_module(ADAPTERS, nn.ModuleDict({ADAPTER_NAME: adapter}))
    if site.kind == "post_norm":
        target.__class__ = _adapted_class(type(target), bool(c["original_ln_before"]))
    else:
        target.register_forward_hook(_add_to_output)


def has_bottleneck(module: nn.Module) -> bool:
    """Whether ``module`` carries bottleneck adapters already."""
    return any(isinstance(m, Bottleneck) for m in module.modules())


def adapter_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The bottleneck tensors, named relative to the encoder root (AdapterHub's layout)."""
    _, root = encoder_root(module)
    marker = f".{ADAPTERS}.{ADAPTER_NAME}."
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in root.state_dict().items()
        if marker in f".{name}"
    }


def load_adapter_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` (``adapter_state``'s keys) into the injected adapters, strictly."""
    _, root = encoder_root(module)
    own = adapter_state(module)
    check_same_keys(module, own, state)
    with torch.no_grad():
        params = dict(root.named_parameters())
        for name, tensor in state.items():
            params[name].copy_(tensor)


def check_same_keys(module: nn.Module, own: dict, given: dict) -> None:
    """Refuse an adapter state whose tensors are not exactly the injected adapter's."""
    name = getattr(module, "name", type(module).__name__)
    missing, extra = sorted(set(own) - set(given)), sorted(set(given) - set(own))
    if missing or extra:
        raise BadInputError(
            f"the adapter does not fit {name}: "
            + (f"it lacks {len(missing)} tensors (e.g. {missing[0]})" if missing else "")
            + ("; " if missing and extra else "")
            + (f"it has {len(extra)} unknown tensors (e.g. {extra[0]})" if extra else "")
            + ". It was made for another base model or another adapter configuration."
        )
    for key, tensor in given.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise BadInputError(
                f"the adapter does not fit {name}: {key} has shape {tuple(tensor.shape)}, "
                f"{tuple(own[key].shape)} expected (another base model or configuration)"
            )
