"""Adapters as files people share: a folder saved by peft or by AdapterHub's ``adapters``
read (``read_adapter_dir``), checked against our backbone (``check_base``) and put into it
(``attach``); ours are written in either form by ``peft_folder`` / ``adapterhub_folder``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transferkit.errors import BadInputError
from transferkit.finetune.adapters.shared_folder import CONFIG, SharedAdapter, read_config
from transferkit.finetune.adapters.spec import AdapterSpec

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from transferkit.backbones import BackboneRef, BackboneSpec


def read_adapter_dir(path: str | Path) -> SharedAdapter:
    """A peft or AdapterHub adapter folder, told apart by its ``adapter_config.json``."""
    from transferkit.finetune.adapters import adapterhub_folder, peft_folder

    folder = Path(path)
    config = read_config(folder)
    if "peft_type" in config:
        return peft_folder.read_peft_dir(folder, config)
    if isinstance(config.get("config"), dict) and "name" in config:
        return adapterhub_folder.read_adapterhub_dir(folder, config)
    raise BadInputError(
        f"{folder / CONFIG}: neither peft's (no 'peft_type') nor AdapterHub's (no 'config' and "
        "'name') adapter configuration; give the folder peft's save_pretrained or AdapterHub's "
        "save_adapter wrote"
    )


def start_from(
    module: nn.Module, ref: BackboneRef, path: str | Path
) -> tuple[AdapterSpec, dict[str, Any]]:
    """``--adapter-from PATH``: the adapter saved in ``path`` put into ``module`` (``ref``'s
    pretrained encoder) with its weights, to train further. Returns the spec and where it came
    from (the bundle records both)."""
    adapter = read_adapter_dir(path)
    check_base(adapter, ref)
    return attach(module, adapter), adapter.provenance()


def attach(module: nn.Module, adapter: SharedAdapter) -> AdapterSpec:
    """Inject ``adapter`` into ``module`` (a backbone module, its base's weights) with the
    imported weights loaded; BadInputError when its layers or shapes do not fit the module.
    Returns the spec as the bundle stores it."""
    from transferkit.finetune.adapters import adapter_state, inject, load_adapter_state
    from transferkit.finetune.adapters.targets import encoder_root

    _, root = encoder_root(module)
    state = adapter.state
    if adapter.method == "lora":
        state, targets, prefix = _lora_layers(module, root, adapter)
        _leave_beside(module, adapter, prefix)
        spec = _spec(adapter, target_modules=targets)
    else:
        spec = _spec(adapter)
    spec = inject(module, spec)
    state = _without_prefix(state, set(adapter_state(module, spec)))
    load_adapter_state(module, spec, state)
    return spec


def _spec(adapter: SharedAdapter, **more: Any) -> AdapterSpec:
    try:
        return AdapterSpec.make(adapter.method, **adapter.settings, **more)
    except BadInputError as exc:
        raise BadInputError(f"{adapter.path / CONFIG}: {exc}") from None


def _without_prefix(state: dict, expected: set[str]) -> dict:
    """``state`` without the leading names (``base_model.model.``, ``bert.``) its saving
    model put before ours; unchanged when no prefix makes its keys ours (the load says why)."""
    first = next(iter(state))
    parts = first.split(".")
    for n in range(len(parts)):
        prefix = ".".join(parts[:n]) + ("." if n else "")
        if all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) == expected:
                return stripped
    return state


def _lora_layers(module: nn.Module, root: nn.Module, adapter: SharedAdapter):
    """(state without prefix, peft target_modules, the prefix) for an imported LoRA: the
    layers its keys name, each by its shortest name that picks no layer the adapter leaves
    alone."""
    from torch import nn

    linear = [n for n, m in root.named_modules() if isinstance(m, nn.Linear)]
    layers = sorted({re.sub(r"\.lora_[AB]\.weight$", "", k) for k in adapter.state})
    unknown = [k for k in adapter.state if not re.search(r"\.lora_[AB]\.weight$", k)]
    if unknown:
        raise BadInputError(
            f"{adapter.path}: {unknown[0]} is not a LoRA tensor (…lora_A.weight / lora_B.weight)"
        )
    first = layers[0].split(".")
    for n in range(len(first)):
        prefix = ".".join(first[:n]) + ("." if n else "")
        if all(x.startswith(prefix) and x[len(prefix) :] in linear for x in layers):
            paths = {x[len(prefix) :] for x in layers}
            state = {k[len(prefix) :]: v for k, v in adapter.state.items()}
            names = [_shortest_name(p, paths, linear) for p in sorted(paths)]
            return state, sorted(set(names)), prefix
    name = getattr(module, "name", type(module).__name__)
    raise BadInputError(
        f"{adapter.path}: the adapter adapts {layers[0]}, a layer {name} does not have: it was "
        f"made for another model (it names {adapter.base_model or 'no base model'})"
    )


def _leave_beside(module: nn.Module, adapter: SharedAdapter, prefix: str) -> None:
    """Leave out what peft trained whole beside the adapter outside the encoder (a task
    head: transferkit fits its own), with a warning; refuse it inside the encoder, whose
    weights transferkit's adapters never change."""
    if not adapter.beside:
        return
    inside = sorted(k for k in adapter.beside if k.startswith(prefix))
    if inside:
        name = getattr(module, "name", type(module).__name__)
        raise BadInputError(
            f"{adapter.path}: the adapter also changes {inside[0][len(prefix) :]} of {name} "
            "itself (modules_to_save), which transferkit's adapters keep frozen; save the "
            "adapter without it"
        )
    modules = sorted({k.rsplit(".", 1)[0] for k in adapter.beside})
    warnings.warn(
        f"{adapter.path / CONFIG}: the adapter's own {', '.join(modules)} (modules_to_save) is "
        "not used: transferkit fits a head on your data",
        stacklevel=3,
    )


def _shortest_name(path: str, chosen: set[str], linear: list[str]) -> str:
    parts = path.split(".")
    for n in range(1, len(parts) + 1):
        suffix = ".".join(parts[-n:])
        picks = {x for x in linear if x == suffix or x.endswith("." + suffix)}
        if picks <= chosen:
            return suffix
    return path


def base_aliases(ref: BackboneRef) -> list[str]:
    """The names a shared adapter may give ``ref``'s model by: ours, its Hub id."""
    names = [ref.name]
    hub = getattr(ref.spec.weights, "hf_hub_id", None) if ref.spec.weights else None
    if hub:
        names.append(hub)
    _, sep, repo = ref.name.partition(":")
    if sep:
        names.append(repo)
    return names


def hub_name(spec: BackboneSpec) -> str:
    """How other libraries load the model of backbone ``spec``: its Hub id, else our name."""
    hub = getattr(spec.weights, "hf_hub_id", None) if spec.weights else None
    return hub or spec.name


def check_base(adapter: SharedAdapter, ref: BackboneRef) -> None:
    """Refuse an adapter whose files name another base model than ``ref``'s (naming both).
    A folder it names that exists here counts by its weights' sha256; an adapter that names no
    base is let through (its shapes are checked when it is attached) with a warning."""
    named = adapter.base_model
    if not named:
        warnings.warn(
            f"{adapter.path / CONFIG} does not name its base model: it is checked against "
            f"{ref.name} by its layers and shapes only",
            stacklevel=2,
        )
        return
    if _same_model(named, ref):
        return
    field = "base_model_name_or_path" if adapter.source == "peft" else "model_name"
    example = "" if Path(named).is_absolute() else f" (e.g. --backbone hf:{named})"
    raise BadInputError(
        f"{adapter.path}: this adapter was made for {named} ({CONFIG}: {field}), but the "
        f"backbone is {ref.name} ({', '.join(base_aliases(ref)[1:]) or 'no Hub id'}): an adapter "
        f"only works on the model it was trained on. Train with that model as --backbone"
        f"{example}, or use an adapter made for {ref.name}."
    )


def _same_model(named: str, ref: BackboneRef) -> bool:
    local = Path(named)
    weights = local / "model.safetensors"
    if ref.weights_sha256 and weights.is_file():
        from transferkit.weights.resolver import sha256_file

        return sha256_file(weights) == ref.weights_sha256
    want = _plain(named)
    for alias in base_aliases(ref):
        plain = _plain(alias)
        if want == plain or want.rsplit("/", 1)[-1] == plain.rsplit("/", 1)[-1]:
            return True
    return False


def _plain(name: str) -> str:
    return name.strip().rstrip("/").lower().replace("_", "-")
