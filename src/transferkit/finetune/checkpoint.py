"""One-file training checkpoints: tensors in safetensors, everything else as JSON metadata.

Nothing is pickled. The file holds the model's state, the optimizer's param groups by parameter
name (so a resume rebuilds the same groups instead of re-freezing), their optimizer state, the
scheduler, the early-stopping state with its best weights, the unfreeze stage and RNG states.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn
from torch.optim import Optimizer

from transferkit.atomic import write_bytes_atomic
from transferkit.errors import BadInputError
from transferkit.finetune.early_stopping import EarlyStopping

FORMAT = "transferkit.finetune.checkpoint"
VERSION = 1
_META_KEY = "transferkit_checkpoint"
_MODEL, _OPTIM, _EARLY, _RNG = "model/", "optimizer/", "early_stopping/", "rng/"


@dataclass
class LoadedCheckpoint:
    """What ``load_checkpoint`` rebuilt: the optimizer, scheduler and loop counters."""

    optimizer: Optimizer
    scheduler: Any
    epoch: int
    stage: int
    extra: dict[str, Any] = field(default_factory=dict)


def capture_rng_states() -> dict[str, Any]:
    """The current python, numpy and torch (CPU and CUDA) random generator states."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the generators back to ``states`` as returned by ``capture_rng_states``."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _json_rng(states: dict[str, Any]) -> dict[str, Any]:
    version, internal, gauss = states["python"]
    name, keys, pos, has_gauss, cached = states["numpy"]
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
    }


def _cpu(t: torch.Tensor) -> torch.Tensor:
    # own contiguous storage: safetensors refuses tensors that share memory (tied weights)
    return t.detach().to("cpu", copy=True).contiguous()


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def _optimizer_layout(
    optimizer: Optimizer, model: nn.Module, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Param groups by name plus optimizer state; state tensors go into ``tensors``."""
    names = _param_names(model)
    groups, json_state = [], {}
    for group in optimizer.param_groups:
        group_names = []
        for p in group["params"]:
            if id(p) not in names:
                raise ValueError(
                    "The optimizer holds a parameter the model does not have; build the "
                    "optimizer from this model's parameters."
                )
            name = names[id(p)]
            group_names.append(name)
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{_OPTIM}{name}/{key}"] = _cpu(value)
                else:
                    json_state.setdefault(name, {})[key] = value
        hyper = {k: v for k, v in group.items() if k != "params"}
        groups.append({"names": group_names, "hyper": hyper})
    return {"class": type(optimizer).__name__, "param_groups": groups, "state": json_state}


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: Any = None,
    early_stopping: EarlyStopping | None = None,
    epoch: int,
    stage: int,
    rng_states: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a resumable checkpoint atomically as one safetensors file; return its path.

    ``rng_states`` defaults to the generators' current states (``capture_rng_states``);
    ``scheduler`` needs a JSON-able ``state_dict`` (``warmup_cosine_scheduler`` has one);
    ``extra`` must be JSON-able.
    """
    tensors = {f"{_MODEL}{k}": _cpu(v) for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "stage": int(stage),
        "extra": extra or {},
        "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
        "optimizer": _optimizer_layout(optimizer, model, tensors),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "early_stopping": None,
    }
    if early_stopping is not None:
        es = early_stopping.state_dict()
        best = es.pop("best_state")
        es["has_best_state"] = best is not None
        for k, v in (best or {}).items():
            tensors[f"{_EARLY}{k}"] = _cpu(v)
        meta["early_stopping"] = es
    rng = capture_rng_states() if rng_states is None else rng_states
    meta["rng"] = _json_rng(rng)
    tensors[f"{_RNG}torch"] = _cpu(rng["torch"])
    for i, state in enumerate(rng.get("cuda", [])):
        tensors[f"{_RNG}cuda/{i}"] = _cpu(state)
    try:
        text = json.dumps(meta)
    except TypeError as exc:
        raise TypeError(
            f"Checkpoint metadata must be JSON-able (scheduler state, extra): {exc}"
        ) from exc
    return write_bytes_atomic(path, safetensors_save(tensors, metadata={_META_KEY: text}))


def _read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Metadata and tensors of a checkpoint file, or a BadInputError saying why not."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except FileNotFoundError as exc:
        raise BadInputError(f"No checkpoint at {path}.") from exc
    except Exception as exc:  # safetensors raises its own error type for every kind of damage
        raise BadInputError(
            f"Checkpoint {path} cannot be read ({exc}); it is truncated or not a checkpoint. "
            "Resume from an earlier checkpoint or start the run again."
        ) from exc
    try:
        meta = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadInputError(f"{path} is a safetensors file but not a transferkit checkpoint.")
    if meta.get("version", 0) > VERSION:
        raise BadInputError(
            f"Checkpoint {path} has format version {meta['version']}, newer than this "
            f"transferkit reads ({VERSION}); upgrade transferkit."
        )
    return meta, tensors


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _check_model(path: Path, model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Refuse a checkpoint whose model state does not match ``model`` name for name and shape."""
    current = model.state_dict()
    missing = sorted(current.keys() - saved.keys())
    unexpected = sorted(saved.keys() - current.keys())
    shapes = [
        f"{k} (checkpoint {tuple(saved[k].shape)}, model {tuple(current[k].shape)})"
        for k in sorted(current.keys() & saved.keys())
        if saved[k].shape != current[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {_few(missing)}")
    if unexpected:
        problems.append(f"not in this model: {_few(unexpected)}")
    if shapes:
        problems.append(f"different shapes: {_few(shapes)}")
    if problems:
        raise BadInputError(
            f"Checkpoint {path} was saved from a different model; "
            + "; ".join(problems)
            + ". Resume with the same backbone and head, or start a new run."
        )


def _as_built(value: Any, key: str) -> Any:
    # JSON turns tuples (AdamW's betas) into lists; param_names is the one list-valued key
    return tuple(value) if isinstance(value, list) and key != "param_names" else value


def _rebuild_optimizer(
    path: Path,
    model: nn.Module,
    layout: dict[str, Any],
    saved: dict[str, torch.Tensor],
    build_optimizer: Callable[[list[dict[str, Any]]], Optimizer],
) -> tuple[Optimizer, list[dict[str, Any]]]:
    params = dict(model.named_parameters())
    hypers, groups = [], []
    for group in layout["param_groups"]:
        unknown = [n for n in group["names"] if n not in params]
        if unknown:
            raise BadInputError(
                f"Checkpoint {path} has optimizer groups with parameters this model does not "
                f"have: {_few(unknown)}."
            )
        hyper = {k: _as_built(v, k) for k, v in group["hyper"].items()}
        hypers.append(hyper)
        groups.append({**hyper, "params": [params[n] for n in group["names"]]})
    optimizer = build_optimizer(groups)
    built = [len(g["params"]) for g in optimizer.param_groups]
    if built != [len(g["names"]) for g in layout["param_groups"]]:
        raise ValueError(
            "build_optimizer must create one param group per given group, in the same order."
        )
    state: dict[int, dict[str, Any]] = {}
    index = 0
    for group in layout["param_groups"]:
        for name in group["names"]:
            entry = dict(layout["state"].get(name, {}))
            prefix = f"{_OPTIM}{name}/"
            entry.update({k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)})
            if entry:
                state[index] = entry
            index += 1
    counter = iter(range(index))
    optimizer.load_state_dict(
        {
            "state": state,
            "param_groups": [
                {**hyper, "params": [next(counter) for _ in g["names"]]}
                for hyper, g in zip(hypers, layout["param_groups"])
            ],
        }
    )
    return optimizer, hypers


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    build_optimizer: Callable[[list[dict[str, Any]]], Optimizer],
    *,
    build_scheduler: Callable[[Optimizer], Any] | None = None,
    early_stopping: EarlyStopping | None = None,
    restore_rng: bool = True,
) -> LoadedCheckpoint:
    """Restore ``model`` (in place) and rebuild optimizer, scheduler and counters from ``path``.

    ``build_optimizer`` receives the saved param groups (``params`` as this model's tensors, with
    their saved ``lr``, ``weight_decay``, ...), e.g. ``torch.optim.AdamW``. Parameters in no
    saved group are frozen again and the others unfrozen, exactly as when saved. A checkpoint of
    another model, or a damaged file, raises ``BadInputError``.
    """
    path = Path(path)
    meta, tensors = _read(path)
    saved_model = {k[len(_MODEL) :]: v for k, v in tensors.items() if k.startswith(_MODEL)}
    _check_model(path, model, saved_model)
    model.load_state_dict(saved_model)
    trainable = set(meta["trainable"])
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)

    optimizer, hypers = _rebuild_optimizer(path, model, meta["optimizer"], tensors, build_optimizer)
    scheduler = None
    if meta["scheduler"] is not None:
        if build_scheduler is None:
            raise ValueError(
                "This checkpoint holds a learning-rate scheduler; pass build_scheduler so the "
                "schedule resumes where it stopped."
            )
        scheduler = build_scheduler(optimizer)
        scheduler.load_state_dict(meta["scheduler"])
        # building a scheduler takes a step that overwrites the learning rates just restored
        for group, hyper in zip(optimizer.param_groups, hypers):
            group.update({k: hyper[k] for k in ("lr", "initial_lr") if k in hyper})
    elif build_scheduler is not None:
        scheduler = build_scheduler(optimizer)

    if early_stopping is not None and meta["early_stopping"] is not None:
        es = dict(meta["early_stopping"])
        has_best = es.pop("has_best_state")
        best = {k[len(_EARLY) :]: v for k, v in tensors.items() if k.startswith(_EARLY)}
        early_stopping.load_state_dict({**es, "best_state": best if has_best else None})

    if restore_rng:
        rng = dict(meta["rng"])
        rng["torch"] = tensors[f"{_RNG}torch"]
        cuda = sorted(
            (int(k[len(_RNG) + 5 :]), v) for k, v in tensors.items() if k.startswith(_RNG + "cuda/")
        )
        if cuda:
            rng["cuda"] = [v for _, v in cuda]
        restore_rng_states(rng)
    return LoadedCheckpoint(
        optimizer=optimizer,
        scheduler=scheduler,
        epoch=int(meta["epoch"]),
        stage=int(meta["stage"]),
        extra=meta["extra"],
    )


def read_checkpoint_extra(path: str | Path) -> dict[str, Any]:
    """The ``extra`` metadata of a checkpoint (what it was trained on), without loading it."""
    meta, _ = _read(Path(path))
    return dict(meta.get("extra") or {})
