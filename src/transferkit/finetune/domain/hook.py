"""Deep domain adaptation as an engine hook: target batches beside the source ones, a domain loss.

Each training step of stage 2 the hook draws a batch of unlabelled target inputs (built by the
same batch builder and preprocessing as the training batches, cycling through the target when
it has fewer batches than the source), runs the model's backbone on it (the head too for CDAN),
and adds ``weight × domain loss`` between the source batch's features and these. The domain
loss is one of ``METHODS`` (``dann``, ``cdan``, ``mmd``); an adversarial one trains its
discriminator in the same optimizer step, through the gradient reversal layer whose coefficient
follows the warm-up schedule of the training progress (``grl.warm_up_coefficient``).

Resume: the step counter (hence the schedule), the per-epoch history and a fingerprint of the
target data are the hook's JSON state; the discriminator (and CDAN's random map) are modules
of the hook, whose weights and optimizer state the engine checkpoints. The target batches of
an epoch come from their own generator, seeded by the run's seed and the epoch, so a run
resumed at an epoch boundary draws the same target inputs as the uninterrupted one, and the
source stream is untouched.

Source and target batches go through the backbone separately (as pytorch-adapt does): BatchNorm
layers that train normalise each domain's batch by its own statistics during training, and after
each epoch their running statistics are re-estimated on target batches (precise BN on the
target, ``statistics_batches``), so the model is evaluated and deployed with the statistics of
the domain it is for (AdaBN's argument, Li et al. 2016). The validation split (source data) is
then judged with the target's statistics too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.errors import BadInputError
from transferkit.finetune.domain.adversarial import (
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    conditioning_map,
)
from transferkit.finetune.domain.discriminator import DEFAULT_HIDDEN, DomainDiscriminator
from transferkit.finetune.domain.grl import warm_up_coefficient
from transferkit.finetune.domain.mmd import MultipleKernelMMD
from transferkit.finetune.hooks import EngineHook, EngineState, StepContext

# salts of the hook's own random streams (target batches, their BatchNorm statistics after each
# epoch, the discriminator's initial weights)
_TARGET_STREAM, _BN_STREAM, _INIT = 0xDA, 0xDB, 0xD15C


@dataclass(frozen=True)
class Domain:
    """One domain's side of a step: the backbone's features and the head's logits."""

    features: torch.Tensor
    logits: torch.Tensor | None


@dataclass(frozen=True)
class Method:
    """How a domain loss is built (features dim, classes, generator) and called."""

    build: Callable[[int, int, torch.Generator, dict[str, Any]], nn.Module]
    call: Callable[[nn.Module, Domain, Domain], torch.Tensor]
    needs_logits: bool = False
    adversarial: bool = True


def _dann(features: int, classes: int, gen: torch.Generator, options: dict) -> nn.Module:
    return DomainAdversarialLoss(
        DomainDiscriminator(features, options.get("hidden", DEFAULT_HIDDEN))
    )


def _cdan(features: int, classes: int, gen: torch.Generator, options: dict) -> nn.Module:
    conditioning, dim = conditioning_map(features, classes, generator=gen)
    return ConditionalDomainAdversarialLoss(
        DomainDiscriminator(dim, options.get("hidden", DEFAULT_HIDDEN)),
        conditioning=conditioning,
        entropy_conditioning=options.get("entropy_conditioning", True),
    )


def _mmd(features: int, classes: int, gen: torch.Generator, options: dict) -> nn.Module:
    return MultipleKernelMMD(estimate=options.get("estimate", "quadratic"))


def _mmd_call(loss: nn.Module, s: Domain, t: Domain) -> torch.Tensor:
    if loss.estimate == "linear":  # the linear estimate pairs rows: as many of each
        n = min(len(s.features), len(t.features))
        return loss(s.features[:n], t.features[:n])
    return loss(s.features, t.features)


METHODS: dict[str, Method] = {
    "dann": Method(_dann, lambda loss, s, t: loss(s.features, t.features)),
    "cdan": Method(
        _cdan, lambda loss, s, t: loss(s.logits, s.features, t.logits, t.features), True
    ),
    "mmd": Method(_mmd, _mmd_call, adversarial=False),
}


def _autocast(device: torch.device):
    # the engine's forward passes run under float16 autocast on a GPU: the target's must match
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", enabled=False)


class DomainAdaptationHook(EngineHook):
    """Adds ``weight × <method> loss`` between source and target features to every step.

    ``target``: the engine's batches (``Batches``) of the unlabelled target inputs, built like
    the training ones; ``target_fingerprint``: identifies them, so a resume with other target
    data is refused. ``options``: the method's settings (``hidden`` size of the discriminator,
    ``entropy_conditioning`` for CDAN, ``estimate`` for MMD).
    """

    def __init__(
        self,
        method: str,
        target,
        *,
        weight: float = 1.0,
        target_fingerprint: str = "",
        options: dict[str, Any] | None = None,
    ) -> None:
        if method not in METHODS:
            raise BadInputError(f"domain loss must be one of {', '.join(METHODS)}; got {method!r}")
        if len(target) < 2:
            raise BadInputError(
                f"deep domain adaptation needs at least 2 target inputs; got {len(target)}. "
                "Add unlabelled inputs of the target domain to --target."
            )
        if not weight > 0:
            raise BadInputError(f"the domain loss weight must be > 0; got {weight}")
        self.method = method
        self.target = target
        self.weight = float(weight)
        self.target_fingerprint = target_fingerprint
        self.options = dict(options or {})
        self.loss: nn.Module | None = None
        self.step = 0  # optimizer steps taken with the domain loss, over the whole run
        self.total_steps = 1
        self.history: list[dict[str, Any]] = []
        self._stream: Iterator | None = None
        self._sums: dict[str, float] = {}

    # -- the engine's calls ---------------------------------------------------------------------
    def on_train_start(self, run: EngineState) -> None:
        model = run.model
        features, classes = int(model.backbone.num_features), int(model.head.out_features)
        seed = run.seed * 7919 + _INIT
        generator = torch.Generator().manual_seed(seed)  # CDAN's random map
        # the discriminator's initial weights from a seed of their own (on the CPU, where
        # modules are built): the run's global stream (head, dropout) stays as without the hook
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed + 1)
            self.loss = METHODS[self.method].build(features, classes, generator, self.options)
        self.loss.to(run.device)
        self.total_steps = max(1, run.config.epochs * run.batches_per_epoch)

    def modules(self) -> dict[str, nn.Module]:
        return {} if self.loss is None else {"loss": self.loss}

    def on_epoch_start(self, run: EngineState) -> None:
        self.loss.train()
        self._close_stream()
        self._stream = self._target_stream(run.seed, run.epoch)
        self._sums = {"loss": 0.0, "accuracy": 0.0, "steps": 0}

    def extra_loss(self, step: StepContext) -> torch.Tensor:
        run = step.run
        model, method = run.model, METHODS[self.method]
        x, *_ = next(self._stream)
        with _autocast(run.device):
            features = model.backbone(x.to(run.device))
            logits = model.head(features) if method.needs_logits else None
        source = Domain(step.features.float(), _float(step.logits if method.needs_logits else None))
        target = Domain(features.float(), _float(logits))
        if method.adversarial:
            self.loss.grl.coefficient = self.coefficient
        value = method.call(self.loss, source, target)
        self._sums["loss"] += float(value.detach())
        self._sums["accuracy"] += getattr(self.loss, "discriminator_accuracy", None) or 0.0
        self._sums["steps"] += 1
        return self.weight * value

    def on_step_end(self, step: StepContext) -> None:
        self.step += 1

    def on_epoch_end(self, run: EngineState) -> None:
        self._close_stream()
        n = max(self._sums["steps"], 1)
        row = {"epoch": run.epoch, "domain_loss": self._sums["loss"] / n}
        if METHODS[self.method].adversarial:
            row["discriminator_accuracy"] = self._sums["accuracy"] / n
            row["grl_coefficient"] = self.coefficient
        self.history.append(row)

    def statistics_batches(self, run: EngineState):
        # the target was normalised by its own batch statistics in training; keeping the
        # source's for inference moved its features (MNIST → digits, dann 8 epochs: target
        # accuracy 0.113 with the source's statistics, 0.243 with the target's, same weights)
        return self.target.train_epoch(np.random.default_rng([run.seed, run.epoch, _BN_STREAM]))

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "step": self.step,
            "history": self.history,
            "target": self.target_fingerprint,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("target") != self.target_fingerprint or state.get("method") != self.method:
            raise BadInputError(
                "cannot resume: the run adapted to other --target inputs (or with another "
                "method) than this one. Resume with the --target it started with, or start a "
                "new run with another --out."
            )
        self.step = int(state["step"])
        self.history = [dict(row) for row in state["history"]]

    # -- helpers --------------------------------------------------------------------------------
    @property
    def coefficient(self) -> float:
        """The gradient reversal coefficient at this point of the run (0 → 1)."""
        return warm_up_coefficient(self.step / self.total_steps)

    def _target_stream(self, seed: int, epoch: int) -> Iterator:
        """Target batches for one epoch, shuffled again each time the target runs out."""
        cycle = 0
        while True:
            rng = np.random.default_rng([seed, epoch, cycle, _TARGET_STREAM])
            yield from self.target.train_epoch(rng)
            cycle += 1

    def _close_stream(self) -> None:
        # stops the batch builder's prefetch thread of an unfinished pass
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _float(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float()
