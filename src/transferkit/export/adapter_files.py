"""``transferkit export MODEL --format peft|adapterhub``: an adapter bundle's adapter as the folder
peft or AdapterHub's ``adapters`` saves, for people who use those libraries.

The folder holds the adapter only, named for the base model on the Hugging Face Hub: the
classifier head is transferkit's own (fit on the adapted embeddings) and stays in the bundle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError

FORMATS = ("peft", "adapterhub")
_HOW_TO_LOAD = {
    "peft": "PeftModel.from_pretrained(AutoModel.from_pretrained({base!r}), {out!r})",
    "adapterhub": "adapters.init(model); model.load_adapter({out!r}, use_safetensors=True)"
    " with model = AutoModel.from_pretrained({base!r})",
}


@dataclass
class AdapterExport:
    """Where an adapter went and how its library loads it."""

    path: Path
    format: str
    method: str
    base_model: str

    def summary(self) -> dict[str, Any]:
        out = str(self.path)
        return {
            "out": out,
            "format": self.format,
            "adapter": self.method,
            "base_model": self.base_model,
            "files": sorted(p.name for p in self.path.iterdir()),
            "load_with": _HOW_TO_LOAD[self.format].format(base=self.base_model, out=out),
        }


def export_adapter(
    model: str | Path,
    fmt: str,
    *,
    out: str | Path | None = None,
    weights: str | Path | None = None,
) -> AdapterExport:
    """Write the adapter of the bundle at ``model`` as peft (LoRA) or AdapterHub (LoRA,
    Houlsby, Pfeiffer) saves one; ``weights``: the base's weight file, if not installed
    (AdapterHub's form records the base's configuration, read beside its weights)."""
    from transferkit.atomic import recover
    from transferkit.bundle import load_bundle
    from transferkit.finetune.adapters import AdapterSpec

    if fmt not in FORMATS:
        raise BadInputError(f"--format must be one of onnx, {', '.join(FORMATS)}; got {fmt!r}")
    recover(model)
    bundle = load_bundle(model)
    info = bundle.manifest.get("adapter")
    if not isinstance(info, dict):
        strategy = bundle.manifest["strategy"]["name"]
        raise BadInputError(
            f"{model} is a {strategy} bundle: it holds no adapter. --format {fmt} writes the "
            "adapter of a `--strategy adapter` bundle; export this one with --format onnx"
        )
    spec = AdapterSpec.from_json({"method": info["method"], "config": info["config"]})
    state = bundle.load_adapter_state()
    folder = Path(out) if out is not None else _default_out(model, fmt)
    base, config = _base(bundle.manifest["backbone"]["name"], fmt, weights)
    if fmt == "peft":
        from transferkit.finetune.adapters.peft_folder import write_peft_dir

        write_peft_dir(folder, spec, state, base_model=base)
    else:
        from transferkit.finetune.adapters.adapterhub_folder import write_adapterhub_dir

        name = _adapter_name(Path(model))
        write_adapterhub_dir(folder, spec, state, base_model=base, base_config=config, name=name)
    return AdapterExport(folder, fmt, spec.method, base)


def _default_out(model: str | Path, fmt: str) -> Path:
    """``<MODEL>-peft`` / ``<MODEL>-adapterhub`` beside the bundle."""
    model = Path(model)
    model = model if model.name else model.resolve()
    return model.with_name(f"{model.name}-{fmt}")


def _base(name: str, fmt: str, weights: str | Path | None) -> tuple[str, dict[str, Any]]:
    """The base's Hub id and, for AdapterHub, its Hugging Face ``config.json``."""
    import json

    from transferkit.backbones import get_spec, resolve_backbone
    from transferkit.finetune.adapters.interop import hub_name

    hub = hub_name(get_spec(name))
    if fmt == "peft":
        return hub, {}
    ref = resolve_backbone(name, weights=weights, allow_download=False)
    file = ref.weights.path.parent / "config.json" if ref.weights else None
    if file is None or not file.is_file():
        raise BadInputError(
            f"AdapterHub's form records the base model's configuration, and {name} has no "
            "config.json beside its weights (AdapterHub adapts Hugging Face transformers "
            "models); write this adapter with --format peft"
        )
    return hub, json.loads(file.read_text(encoding="utf-8"))


def _adapter_name(model: Path) -> str:
    """The name AdapterHub gives the adapter: the run's (for RUN/model) or the folder's, as an
    identifier."""
    folder = model.resolve()
    named = folder.parent.name if folder.name == "model" and folder.parent.name else folder.name
    name = re.sub(r"\W", "_", named) or "transferkit"
    return name if not name[0].isdigit() else f"a_{name}"
