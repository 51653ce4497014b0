"""Engine hooks: what a fine-tuning method adds to the loop without editing it.

In the manner of Lightning's ``Callback``: a hook overrides only the methods it needs. It can add
a term to the loss (L2-SP now; domain losses and gradient reversal next), watch or change the
run at the start of training, of each epoch and after each step, and keep a state that the
checkpoint saves, so a resumed run continues with the hook exactly where it was (e.g. a
gradient-reversal schedule's step counter; tllib's ``GradientReverseLayer`` keeps its
``iter_num`` on ``self`` and loses it on resume).

Hooks run in stage 2 (the loop through the network); the head warm-up on cached embeddings
does not call them. Which of the model's parameters train, and at which learning rate, is not a
hook's business but the trainable-parameter policy's (``finetune/trainable.py``). A hook may
train modules of its own beside the model (a domain discriminator, ``modules``): the engine
gives them to the optimizer and keeps them in the checkpoint, and the policy never sees them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.optim import Optimizer

from transferkit.errors import BadInputError
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.param_groups import no_weight_decay_names

# where the checkpoint keeps the hooks' own modules, beside the model's ``backbone.``/``head.``
HOOKS_PREFIX = "hooks."


@dataclass
class EngineState:
    """What every hook sees of the run; the engine keeps it current."""

    model: nn.Module
    config: FinetuneConfig
    device: torch.device
    seed: int
    epoch: int = 0  # the epoch of stage 2 under way (0: before the first)
    stage: int = 0  # the trainable-parameter policy's stage (layer groups unfrozen)
    batches_per_epoch: int = 0
    optimizer: Optimizer | None = None  # None until stage 2 has one
    history: list[Any] = field(default_factory=list)  # the EpochRecords so far


@dataclass(frozen=True)
class StepContext:
    """One training step, after the forward pass and before the backward pass."""

    run: EngineState
    batch: int  # index of this batch in the epoch
    inputs: torch.Tensor
    targets: torch.Tensor
    features: torch.Tensor  # the backbone's pooled output, what the head reads
    logits: torch.Tensor
    loss: torch.Tensor  # the classification loss, before any extra term


class EngineHook:
    """Base class of engine hooks: every method is optional and does nothing here.

    ``state_dict`` must be JSON-able (it goes into the checkpoint's metadata, never pickled).
    ``replaces_weight_decay``: the hook regularises the weights itself, so the optimizer's
    weight decay is turned off in stage 2 (they would fight).
    """

    replaces_weight_decay: ClassVar[bool] = False

    @property
    def name(self) -> str:
        """How the checkpoint names this hook's state."""
        return type(self).__name__

    def on_train_start(self, run: EngineState) -> None:
        """Once per ``fit``, before anything trains and before a checkpoint is restored: the
        model holds the weights training starts from."""

    def on_epoch_start(self, run: EngineState) -> None:
        """Before each epoch of stage 2, after the policy unfroze what joins in it."""

    def extra_loss(self, step: StepContext) -> torch.Tensor | None:
        """A term added to this step's loss (a scalar tensor), or None."""
        return None

    def on_step_end(self, step: StepContext) -> None:
        """After the optimizer and scheduler stepped."""

    def on_epoch_end(self, run: EngineState) -> None:
        """After each epoch of stage 2 (its record: ``run.history[-1]``), before the checkpoint."""

    def statistics_batches(self, run: EngineState) -> Iterable[tuple[torch.Tensor, ...]] | None:
        """Batches whose statistics the BatchNorm layers that train take after each epoch
        (precise BN), or None for shuffled training batches; e.g. a domain adaptation hook
        gives the target domain's, where the model will be used."""
        return None

    def modules(self) -> dict[str, nn.Module]:
        """Modules this hook trains beside the model, by name (e.g. a domain discriminator).

        Built by ``on_train_start`` at the latest, on ``run.device``. The engine adds their
        parameters to the optimizer (at the head's learning rate and the run's weight decay,
        none for biases and norms) and saves their weights and optimizer state in the
        checkpoint as ``hooks.<hook name>.<module name>.*``, so a resumed run restores them.
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue as this one would (JSON-able)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class Hooks:
    """The hooks of one run, called in the order given."""

    def __init__(self, hooks: Iterable[EngineHook] = ()) -> None:
        self.hooks = list(hooks)
        for hook in self.hooks:
            if not isinstance(hook, EngineHook):
                raise TypeError(
                    f"engine hooks must subclass transferkit.finetune.hooks.EngineHook; "
                    f"got {type(hook).__name__}"
                )

    @property
    def replace_weight_decay(self) -> bool:
        """Whether a hook regularises the weights itself (the optimizer's decay goes off)."""
        return any(hook.replaces_weight_decay for hook in self.hooks)

    def on_train_start(self, run: EngineState) -> None:
        for hook in self.hooks:
            hook.on_train_start(run)

    def on_epoch_start(self, run: EngineState) -> None:
        for hook in self.hooks:
            hook.on_epoch_start(run)

    def add_extra_losses(self, step: StepContext) -> torch.Tensor:
        """``step.loss`` plus every hook's extra term, added in the hooks' order."""
        loss = step.loss
        for hook in self.hooks:
            term = hook.extra_loss(step)
            if term is not None:
                loss = loss + term
        return loss

    def on_step_end(self, step: StepContext) -> None:
        for hook in self.hooks:
            hook.on_step_end(step)

    def on_epoch_end(self, run: EngineState) -> None:
        for hook in self.hooks:
            hook.on_epoch_end(run)

    def statistics_batches(self, run: EngineState) -> Iterable[tuple[torch.Tensor, ...]] | None:
        """The first hook's batches for precise BN, or None (the training batches)."""
        for hook in self.hooks:
            batches = hook.statistics_batches(run)
            if batches is not None:
                return batches
        return None

    def modules(self) -> nn.ModuleDict:
        """Every hook's own modules, as ``<hook name>`` → ``<module name>`` → module."""
        return nn.ModuleDict(
            {hook.name: nn.ModuleDict(hook.modules()) for hook in self.hooks if hook.modules()}
        )

    def param_groups(self, *, lr: float, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups of the hooks' trainable parameters, named as the checkpoint names
        them (``hooks.…``): one with weight decay, one without (biases, norms); none empty."""
        own = self.modules()
        skip = no_weight_decay_names(own)
        named = [(n, p) for n, p in own.named_parameters() if p.requires_grad]
        groups = []
        for suffix, decay, chosen in (
            ("decay", weight_decay, [(n, p) for n, p in named if n not in skip]),
            ("no_decay", 0.0, [(n, p) for n, p in named if n in skip]),
        ):
            if chosen:
                groups.append(
                    {
                        "params": [p for _, p in chosen],
                        "param_names": [HOOKS_PREFIX + n for n, _ in chosen],
                        "lr": lr,
                        "weight_decay": decay,
                        "group_name": f"hooks/{suffix}",
                    }
                )
        return groups

    def state_dict(self) -> list[dict[str, Any]]:
        """Each hook's name and state, in order (checkpoint metadata)."""
        return [{"hook": hook.name, "state": hook.state_dict()} for hook in self.hooks]

    def load_state_dict(self, saved: Sequence[dict[str, Any]], path: Path) -> None:
        """Give each hook its saved state; refuse a checkpoint written with other hooks."""
        names = [hook.name for hook in self.hooks]
        saved_names = [entry["hook"] for entry in saved]
        if saved_names != names:
            raise BadInputError(
                f"cannot resume from {path}: it was trained with the engine hooks "
                f"{saved_names or 'none'}, this run has {names or 'none'}. Resume with the "
                "settings the run started with, or start a new run with another --out."
            )
        for hook, entry in zip(self.hooks, saved):
            hook.load_state_dict(entry["state"])
