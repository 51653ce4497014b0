"""Dynamic ``timm:<model>`` specs: any timm model, preprocessing from its pretrained config."""

from __future__ import annotations

import difflib
import functools
import logging
import math
from typing import Any

import torch
from torch import nn

from transferkit.backbones.base import group_by_prefix
from transferkit.backbones.preprocess import INTERPOLATIONS, ImagePreprocess
from transferkit.backbones.registry import TIMM_PREFIX, BackboneSpec
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec

logger = logging.getLogger("transferkit")

_HF_DEFAULT_FILENAME = "model.safetensors"  # timm's HF repos all carry it; safe to load


def _import_timm():
    try:
        import timm
    except ImportError as exc:
        raise BadInputError(
            "Backbones named 'timm:<model>' need the package timm, which is not installed: "
            "pip install 'transferkit[timm]'."
        ) from exc
    return timm


def _check_name(timm, model_name: str) -> dict[str, Any]:
    """The model's pretrained config as a dict; unknown model or tag -> BadInputError."""
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(model_name)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = (
            f" Did you mean {' or '.join(repr(TIMM_PREFIX + c) for c in close)}?" if close else ""
        )
        raise BadInputError(
            f"Unknown timm model {model_name!r}.{hint} List them with "
            "python -c \"import timm; print(timm.list_models('*name*'))\"."
        )
    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError as exc:  # timm: "Invalid pretrained tag (x) for arch"
        tags = timm.list_pretrained(f"{arch}.*")
        raise BadInputError(
            f"Unknown pretrained tag {tag!r} for timm model {arch!r}; "
            f"known: {', '.join(TIMM_PREFIX + t for t in tags) or 'none'}."
        ) from exc
    return cfg.to_dict() if cfg is not None else {}


def _preprocess(name: str, cfg: dict[str, Any]) -> ImagePreprocess:
    from timm.data import resolve_data_config

    data = resolve_data_config({}, pretrained_cfg=cfg)
    _, height, width = data["input_size"]
    if height != width:
        raise BadInputError(
            f"timm model {name!r} expects a non-square {height}x{width} input; transferkit's image "
            "preprocessing is square only: pick another model."
        )
    interpolation = data["interpolation"]
    if interpolation not in INTERPOLATIONS:
        logger.warning("timm:%s uses %r interpolation; using bicubic", name, interpolation)
        interpolation = "bicubic"
    if data.get("crop_mode", "center") != "center":
        logger.warning("timm:%s uses crop_mode %r; using a center crop", name, data["crop_mode"])
    return ImagePreprocess(
        input_size=int(height),
        # timm's eval transform: scale_size = floor(img_size / crop_pct), then center crop
        resize_size=int(math.floor(height / data["crop_pct"])),
        interpolation=interpolation,
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
    )


def _weights_spec(name: str, cfg: dict[str, Any]) -> WeightsSpec:
    hf_hub_id = cfg.get("hf_hub_id")
    if hf_hub_id:
        filename = cfg.get("hf_hub_filename") or _HF_DEFAULT_FILENAME
        return WeightsSpec(filename=filename, hf_hub_id=hf_hub_id, hf_filename=filename)
    url = cfg.get("url")
    if url and not cfg.get("custom_load"):
        return WeightsSpec.from_url(url)
    # no published weights we can load (or only a foreign format such as .npz)
    return WeightsSpec(filename=f"{name} weights")


def _embedding_dim(timm, model_name: str) -> int:
    # the meta device builds the module graph without allocating or initialising weights
    try:
        with torch.device("meta"):
            model = timm.create_model(model_name, pretrained=False, num_classes=0)
    except Exception:  # a few models compute on tensors in __init__; fall back to CPU
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    # timm's pre-logits width: head_hidden_size when the head has its own hidden layer
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def _layer_groups(model: nn.Module) -> list[list[str]]:
    try:
        matcher = model.group_matcher(coarse=True)
    except (AttributeError, NotImplementedError):
        matcher = None
    if matcher is None:
        return group_by_prefix(model, [[name] for name, _ in model.named_children()])
    from timm.models import group_parameters

    # unmatched parameters (final norm, head) land in the last group, as in timm's own LR decay
    return [list(names) for _, names in sorted(group_parameters(model, matcher).items())]


@functools.lru_cache(maxsize=64)
def timm_spec(model_name: str) -> BackboneSpec:
    """A BackboneSpec for timm model ``model_name`` (an architecture, optionally ``.tag``)."""
    timm = _import_timm()
    model_name = model_name.strip()
    cfg = _check_name(timm, model_name)
    name = TIMM_PREFIX + model_name

    def build() -> nn.Module:
        return timm.create_model(model_name, pretrained=False, num_classes=0)

    def load_state(model: nn.Module, state: dict) -> nn.Module:
        # rebuild through timm so its checkpoint filter (e.g. ViT position-embedding resize) and
        # classifier removal run; a state_dict overlay (not file=) keeps custom .npz loaders out
        loaded = timm.create_model(
            model_name,
            pretrained=True,
            num_classes=0,
            pretrained_cfg_overlay={"state_dict": state},
        )
        missing = [k for k in loaded.state_dict() if k not in state]
        if missing:
            logger.warning(
                "timm:%s: weights file lacks %d tensors, e.g. %s",
                model_name,
                len(missing),
                missing[:3],
            )
        return loaded

    return BackboneSpec(
        name=name,
        source="timm",
        embedding_dim=_embedding_dim(timm, model_name),
        preprocess=_preprocess(model_name, cfg),
        licence=str(cfg.get("license") or "see the model card"),
        description=f"timm {model_name}"
        + (f" ({cfg['hf_hub_id']})" if cfg.get("hf_hub_id") else ""),
        weights=_weights_spec(model_name, cfg),
        build=build,
        load_state=load_state,
        headless=lambda model: model,  # num_classes=0: forward already returns pre-logits
        layer_groups=_layer_groups,
    )
