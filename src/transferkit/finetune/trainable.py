"""Trainable-parameter policies: which parameters train, in which optimizer groups, at which
learning rate, and when more of them join.

The engine asks its policy; it never decides by itself. The default, ``LayerGroupUnfreezing``,
is fine-tuning as ULMFiT and Lightning's ``BackboneFinetuning`` do it: the backbone's layer
groups unfreeze from the top, each group learning slower than the one above it. Another method
(adapters only, BatchNorm only, biases only) is another subclass, passed as
``Finetuner(..., policy=...)``.

A policy counts its progress in whole-number stages (0: nothing but the head); the engine keeps
the stage and saves it in the checkpoint, and the checkpoint restores the optimizer groups and
which parameters train, so a policy holds no state of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.optim import Optimizer

from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.freezing import set_unfrozen_groups
from transferkit.finetune.param_groups import discriminative_param_groups, unfreeze_next_group


class TrainableParameters:
    """Base class of trainable-parameter policies.

    Subclasses set ``final_stage`` (the stage training ends at: the report's "unfrozen
    groups"; 0 when nothing joins during training), implement ``apply`` and ``param_groups``
    and, when parameters join during training, ``advance``.
    """

    final_stage: int

    def first_stage(self) -> int:
        """The stage the first epoch of stage 2 trains at."""
        return self.final_stage

    def apply(self, model: nn.Module, stage: int) -> None:
        """Set ``requires_grad`` of every parameter for ``stage``."""
        raise NotImplementedError

    def param_groups(
        self, model: nn.Module, stage: int, *, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Optimizer groups of the parameters that train at ``stage``; ``lr`` is the head's.

        Each group carries ``param_names`` (the checkpoint rebuilds groups by name), and the
        parameters must be the model's own (a method's new modules, adapters, are added to the
        model before training). The training history records the first group's learning rate.
        """
        raise NotImplementedError

    def advance(
        self,
        epoch: int,
        stage: int,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        scheduler: Any,
        lr: float,
        weight_decay: float,
    ) -> int:
        """Before ``epoch``: let more parameters join (new optimizer groups); return the stage."""
        return stage

    def settled(self, stage: int) -> bool:
        """Whether nothing will join any more (until then early stopping keeps its patience)."""
        return stage >= self.final_stage

    def stage_name(self, stage: int) -> str:
        """The stage as the training history names it."""
        return f"{type(self).__name__}:{stage}"


@dataclass(frozen=True)
class LayerGroupUnfreezing(TrainableParameters):
    """Gradual unfreezing of the backbone's layer groups with discriminative learning rates.

    ``groups``: parameter names per layer group, stem to top (``ClassifierModel.layer_groups``).
    ``final_stage``: how many groups train by the end, counted from the top. ``every``: epochs
    between two unfreezing steps, 0 to train all of them from the first epoch. ``decays``: the
    learning-rate factor of each step down from the head, top group first. ``from_scratch``:
    a randomly initialised network, which every layer learns from the start.
    ``backbone_lr_max``: the most the top backbone group may learn at, whatever the head's rate
    (None: no ceiling); the groups below keep their ``decays`` relative to it.
    """

    groups: tuple[tuple[str, ...], ...]
    final_stage: int
    every: int
    decays: tuple[float, ...]
    from_scratch: bool = False
    backbone_lr_max: float | None = None

    @classmethod
    def from_config(cls, model: nn.Module, config: FinetuneConfig) -> LayerGroupUnfreezing:
        """The policy ``config`` describes for ``model`` (a ``ClassifierModel``)."""
        groups = tuple(tuple(group) for group in model.layer_groups())
        n_groups = len(groups)
        if not config.pretrained or config.unfreeze_groups is None:
            final = n_groups  # from scratch every layer learns from the start
        else:
            final = min(config.unfreeze_groups, n_groups)
        # the first step (head -> top backbone group) is backbone_lr_ratio: the new head needs
        # large steps, pretrained weights small ones; every further group down lr_decay. From
        # scratch every layer is new, so only lr_decay applies
        first = config.backbone_lr_ratio if config.pretrained else config.lr_decay
        return cls(
            groups=groups,
            final_stage=final,
            every=config.unfreeze_every if config.pretrained else 0,
            decays=(first,) + (config.lr_decay,) * (n_groups - 1),
            from_scratch=not config.pretrained,
            backbone_lr_max=config.backbone_lr_max if config.pretrained else None,
        )

    def decays_for(self, lr: float) -> list[float]:
        """``decays`` with the first step lowered so the top group learns at most
        ``backbone_lr_max`` when the head learns at ``lr``."""
        decays = list(self.decays)
        if self.backbone_lr_max is not None and decays:
            decays[0] = min(decays[0], self.backbone_lr_max / lr)
        return decays

    def first_stage(self) -> int:
        # every=0: every target group at once, else the top one first
        return self.final_stage if self.every == 0 else min(1, self.final_stage)

    def apply(self, model: nn.Module, stage: int) -> None:
        set_unfrozen_groups(model, self.groups, stage)

    def param_groups(
        self, model: nn.Module, stage: int, *, lr: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        return discriminative_param_groups(
            model,
            self.groups,
            head_lr=lr,
            decay=self.decays_for(lr),
            weight_decay=weight_decay,
            unfrozen_groups=stage,
        )

    def advance(
        self,
        epoch: int,
        stage: int,
        *,
        model: nn.Module,
        optimizer: Optimizer,
        scheduler: Any,
        lr: float,
        weight_decay: float,
    ) -> int:
        """One more group every ``every`` epochs, after the first, until ``final_stage``."""
        due = self.every and epoch > 1 and (epoch - 1) % self.every == 0
        if not due or stage >= self.final_stage:
            return stage
        return unfreeze_next_group(
            optimizer,
            model,
            self.groups,
            stage,
            head_lr=lr,
            decay=self.decays_for(lr),
            weight_decay=weight_decay,
            scheduler=scheduler,
        )

    def stage_name(self, stage: int) -> str:
        return "scratch" if self.from_scratch else f"unfreeze:{stage}"
