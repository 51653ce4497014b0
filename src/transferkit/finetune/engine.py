"""The fine-tuning loop shared by every modality: head warm-up, gradual unfreezing, resume.

Stage 1 (head warm-up) trains only the new linear head, on the frozen backbone's embeddings.
Those come from the embedding cache, so the warm-up costs milliseconds instead of an epoch of
forward passes per step, and the backbone — BatchNorm statistics included — is untouched.

Stage 2 unfreezes the backbone's layer groups from the top, one more every ``unfreeze_every``
epochs, up to ``unfreeze_groups``; each group learns ``lr_decay`` times slower than the one
above it (discriminative learning rates). Frozen BatchNorm layers stay in eval mode. AdamW with
linear warm-up then cosine decay per step; early stopping on validation accuracy restores the
best weights. Frozen lower layers cost no backward pass (autograd does not record them), so an
epoch costs about one forward pass over the images plus the backward of the top groups.

A checkpoint is written atomically after the warm-up and after every epoch of stage 2, holding
everything the next epoch depends on (weights, optimizer groups and state, schedule, unfreeze
stage, early stopping, history, hook states, torch and numpy generator states): a resumed run
continues exactly as the uninterrupted one would have.

What a method adds to the loop comes in from outside, so adding one needs no edit here: engine
hooks (``hooks.py``: extra loss terms such as L2-SP, callbacks at the start of training, of each
epoch and after each step, state kept in the checkpoint, modules of their own trained beside the
model such as a domain discriminator) and the trainable-parameter policy
(``trainable.py``: which parameters train, in which optimizer groups, when more join; gradual
layer-group unfreezing by default).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from transferkit.errors import BadInputError
from transferkit.events import NULL_EVENTS, Event, Events
from transferkit.finetune.checkpoint import load_checkpoint, save_checkpoint
from transferkit.finetune.config import FinetuneConfig
from transferkit.finetune.early_stopping import EarlyStopping
from transferkit.finetune.freezing import keep_bn_statistics, train_mode
from transferkit.finetune.hooks import HOOKS_PREFIX, EngineHook, EngineState, Hooks, StepContext
from transferkit.finetune.model import ClassifierModel
from transferkit.finetune.regularizers import regularizer_hooks
from transferkit.finetune.schedule import warmup_cosine_scheduler
from transferkit.finetune.trainable import LayerGroupUnfreezing, TrainableParameters

log = logging.getLogger("transferkit")

CHECKPOINT_NAME = "checkpoint.safetensors"
# early stopping ranks epochs by validation accuracy, ties broken by the lower validation loss:
# accuracy moves in steps of 1/n_val (>= 1e-5), the loss term stays below 1e-5
_LOSS_TIEBREAK = 1e-6
_LOSS_CAP = 9.0


def selection_score(val_accuracy: float, val_loss: float) -> float:
    """What early stopping maximises: accuracy first, then the lower loss among equals."""
    if math.isnan(val_loss):
        return val_accuracy
    return val_accuracy - _LOSS_TIEBREAK * min(val_loss, _LOSS_CAP)


# the LR finder's suggestion is clipped to this range: outside it, fine-tuning a pretrained
# network either does nothing or wrecks it, whatever a noisy 40-step curve says
LR_RANGE = (1e-5, 3e-3)
HEAD_LR_RANGE = (1e-4, 1e-1)
# images used to recompute BatchNorm statistics after each epoch when they train (pycls uses
# 1024 for ImageNet; a hundred settle the mean/var of a small dataset, and each image costs a
# forward pass)
PRECISE_BN_IMAGES = 128


class Batches(Protocol):
    """What the loop needs from a modality's data: shuffled training and fixed eval batches."""

    batch_size: int

    def __len__(self) -> int: ...

    def num_batches(self) -> int: ...

    def train_epoch(self, rng: np.random.Generator) -> Iterable[tuple[torch.Tensor, ...]]: ...

    def eval_batches(self) -> Iterable[tuple[torch.Tensor, ...]]: ...


@dataclass
class EpochRecord:
    """One row of the training history (also the report's training curves)."""

    epoch: int
    stage: str  # "head" (warm-up), "probe" (fitted head), "unfreeze:<groups>" or "scratch"
    unfrozen_groups: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None  # None: trained without a validation split
    val_accuracy: float | None
    lr: float
    seconds: float


@dataclass
class FinetuneResult:
    history: list[EpochRecord]
    best_epoch: int
    best_val_accuracy: float | None
    lrs: dict[str, Any]
    stopped_early: bool
    resumed_from_epoch: int | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = [asdict(r) for r in self.history]
        return out


def pick_device() -> torch.device:
    """A GPU when present (mixed precision, bigger batches), else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def adapt_batch_size(requested: int, n_train: int, device: torch.device) -> int:
    """The batch size actually used: ×4 on a GPU, never more than the training set."""
    size = requested * 4 if device.type == "cuda" else requested
    if size > n_train:
        log.warning(
            "batch size %d is larger than the training set (%d examples): using %d",
            size,
            n_train,
            n_train,
        )
        size = n_train
    return max(1, size)


def _amp(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", enabled=False)


def evaluate_batches(
    model: nn.Module, batches: Batches, device: torch.device
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over ``batches.eval_batches()`` in eval mode."""
    was_training = model.training
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.inference_mode(), _amp(device):
        for x, y in batches.eval_batches():
            x, y = x.to(device), y.to(device)
            logits = model(x).float()
            total += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
    model.train(was_training)
    return (total / n, correct / n) if n else (math.nan, math.nan)


def head_lr_find(head: nn.Linear, X: torch.Tensor, y: torch.Tensor, seed: int, num_steps: int = 80):
    """LR range test of a fresh head on frozen embeddings (fastai's lr_find on a frozen body).

    The weights of ``head`` are restored afterwards. Cheap: no image goes through the backbone.
    """
    from transferkit.finetune.lr_finder import lr_find

    def batches():
        g = torch.Generator().manual_seed(seed)
        while True:
            idx = torch.randperm(len(y), generator=g)[: min(64, len(y))]
            yield X[idx], y[idx]

    result = lr_find(
        head,
        batches(),
        loss_fn=F.cross_entropy,
        build_optimizer=lambda lr: torch.optim.AdamW(head.parameters(), lr=lr),
        start_lr=1e-5,
        end_lr=1.0,
        num_steps=num_steps,
        seed=seed,
    )
    return result


def train_head(
    head: nn.Linear,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    epochs: int,
    lr: float | None,
    weight_decay: float,
    label_smoothing: float,
    batch_size: int,
    seed: int,
) -> tuple[float, list[dict[str, float]]]:
    """Stage 1: fit ``head`` on fixed embeddings (warm-up, then cosine annealing to zero).

    Returns the learning rate used and one history row per epoch (validation for the record).
    """
    # the embeddings live on the CPU (cache); the head may already sit on the GPU
    device = next(head.parameters()).device
    X, y = (t.to(device) for t in train)
    Xv, yv = (t.to(device) for t in val) if val is not None else (None, None)
    if lr is None:
        lr = float(np.clip(head_lr_find(head, X, y, seed).suggestion, *HEAD_LR_RANGE))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * math.ceil(len(y) / batch_size))
    sched = warmup_cosine_scheduler(opt, total_steps=steps, warmup_steps=steps // 10)
    rows = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(y), generator=g)
        total = correct = 0.0
        for i in range(0, len(y), batch_size):
            idx = order[i : i + batch_size].to(device)
            logits = head(X[idx])
            loss = F.cross_entropy(logits, y[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        val_loss = val_acc = None
        if Xv is not None:
            with torch.no_grad():
                val_logits = head(Xv)
                val_loss = float(F.cross_entropy(val_logits, yv))
                val_acc = float((val_logits.argmax(1) == yv).float().mean())
        rows.append(
            {
                "train_loss": total / len(y),
                "train_accuracy": correct / len(y),
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
        )
    # the last epoch is kept (the schedule has annealed to it): picking the best of many epochs
    # by the validation accuracy would inflate that accuracy, and fine-tuning's early stopping
    # compares its epochs against it
    return lr, rows


class Finetuner:
    """Runs stage 1 and stage 2 for one ``ClassifierModel``; see the module docstring.

    ``hooks`` run after those ``config.regularize`` asks for (L2-SP); ``policy`` decides which
    parameters train (default: ``LayerGroupUnfreezing.from_config``). ``events`` hears the run:
    a stage (``finetune``, or ``scratch`` from random weights) that starts and ends, an epoch
    event per history row, a step event per batch and a progress counter per epoch.
    """

    def __init__(
        self,
        model: ClassifierModel,
        config: FinetuneConfig,
        *,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        events: Events = NULL_EVENTS,
        fingerprint: dict[str, Any] | None = None,
        hooks: Sequence[EngineHook] = (),
        policy: TrainableParameters | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.seed = int(seed)
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
        self.events = events
        self.fingerprint = fingerprint or {}
        self.device = pick_device()
        self.hooks = Hooks([*regularizer_hooks(config), *hooks])
        self.policy = policy or LayerGroupUnfreezing.from_config(model, config)
        self.target_groups = self.policy.final_stage
        self._saved: nn.Module = model  # what checkpoints hold (``_checkpointed``)
        # a hook that regularises the weights itself (L2-SP) replaces the optimizer's decay
        self.weight_decay = 0.0 if self.hooks.replace_weight_decay else config.weight_decay

    def find_lr(self, batches: Batches, *, num_steps: int = 40):
        """LR range test on the stage-2 configuration (the top groups unfrozen)."""
        from transferkit.finetune.lr_finder import lr_find

        start = self.policy.final_stage
        self.policy.apply(self.model, start)
        groups = self.policy.param_groups(self.model, start, lr=1.0, weight_decay=self.weight_decay)
        rng = np.random.default_rng(self.seed)

        def stream():
            while True:
                yield from batches.train_epoch(rng)

        smoothing = self.config.label_smoothing
        result = lr_find(
            self.model,
            stream(),
            loss_fn=lambda logits, y: F.cross_entropy(logits, y, label_smoothing=smoothing),
            param_groups=groups,
            base_lr=1.0,
            start_lr=1e-6,
            end_lr=1.0,
            num_steps=num_steps,
            seed=self.seed,
            # after the head warm-up the curve is flat until it diverges: steepest descent
            # would pick noise, the minimum is a stable landmark (fastai's lr_min)
            rule="minimum" if self.config.pretrained else "steep",
        )
        self.policy.apply(self.model, 0)
        return result

    # -- the run ----------------------------------------------------------------------------
    def fit(
        self,
        train: Batches,
        val: Batches | None,
        *,
        embeddings: Callable[[], tuple[tuple[torch.Tensor, torch.Tensor], ...]] | None = None,
        resume: bool = False,
    ) -> FinetuneResult:
        """Train; ``embeddings()`` returns ((X, y) train, (X, y) val) for the head warm-up.

        ``val=None``: no validation split — every epoch of the budget runs and the last one is
        kept (with a handful of examples per class, a validation split is too small to choose
        epochs by and costs the training set a sixth of its examples)."""
        cfg = self.config
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        model = self.model.to(self.device)
        if self.device.type == "cpu":
            model.to(memory_format=torch.channels_last)
        rng = np.random.default_rng(self.seed)
        history: list[EpochRecord] = []
        lrs: dict[str, Any] = {}
        early = EarlyStopping(patience=cfg.patience, mode="max")
        state = EngineState(
            model, cfg, self.device, self.seed, batches_per_epoch=train.num_batches()
        )
        self.hooks.on_train_start(state)
        self._saved = self._checkpointed(model)
        resumed_from = None
        checkpoint = self._load(resume, early, rng) if resume else None

        if checkpoint is not None:
            optimizer, scheduler = checkpoint.optimizer, checkpoint.scheduler
            first_epoch, stage = checkpoint.epoch + 1, checkpoint.stage
            history = [EpochRecord(**r) for r in checkpoint.extra["history"]]
            if "hooks" in checkpoint.extra:  # absent from checkpoints older than hooks
                self.hooks.load_state_dict(checkpoint.extra["hooks"], self.checkpoint_path)
            lrs = dict(checkpoint.extra["lrs"])
            resumed_from = checkpoint.epoch
            log.info("resuming after epoch %d of %d", checkpoint.epoch, cfg.epochs)
        else:
            vectors = embeddings() if cfg.pretrained and embeddings is not None else None
            # the head warm-up's rate comes from the finder too (none needed without a warm-up)
            if cfg.lr is None or (vectors is not None and cfg.head_epochs and cfg.head_lr is None):
                lrs["finder"] = self._lr_from_finder(train, vectors)
            lrs["lr"] = cfg.lr if cfg.lr is not None else lrs["finder"]["used"]
            lrs["lr_source"] = "given" if cfg.lr is not None else "lr finder"
            if vectors is not None and cfg.head_epochs:
                history += self._warm_up_head(vectors, lrs)
            elif vectors is not None and cfg.head_start == "probe":
                history.append(self._probe_record(vectors))
            stage = self.policy.first_stage()
            self.policy.apply(model, stage)
            optimizer = torch.optim.AdamW(
                self.policy.param_groups(model, stage, lr=lrs["lr"], weight_decay=self.weight_decay)
                + self.hooks.param_groups(lr=lrs["lr"], weight_decay=self.weight_decay)
            )
            steps = cfg.epochs * train.num_batches()
            scheduler = warmup_cosine_scheduler(
                optimizer,
                total_steps=steps,
                warmup_steps=int(cfg.warmup * steps),
                # each newly unfrozen group ramps up over one epoch
                group_warmup_steps=train.num_batches(),
            )
            first_epoch = 1
            # the warm-up result is the bar stage 2 must beat (and what early stopping restores
            # if fine-tuning never helps)
            if val is not None:
                val_loss, val_acc = evaluate_batches(model, val, self.device)
                if history:  # the warm-up's record: measured the same way as every later epoch
                    history[-1].val_loss, history[-1].val_accuracy = val_loss, val_acc
                early.step(selection_score(val_acc, val_loss), model)
            self._save(optimizer, scheduler, early, 0, stage, history, lrs, rng)

        start = {"state": "start", "epochs": cfg.epochs, "resumed_from_epoch": resumed_from}
        self.events.emit(Event("stage", self._stage, start))
        for done in history:  # restored from the checkpoint, or the head warm-up
            self._tell_epoch(done)
        scaler = torch.amp.GradScaler("cuda") if self.device.type == "cuda" else None
        stopped = False
        for epoch in range(first_epoch, cfg.epochs + 1):
            if early.should_stop:
                stopped = True
                break
            stage = self.policy.advance(
                epoch,
                stage,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                lr=lrs["lr"],
                weight_decay=self.weight_decay,
            )
            state.epoch, state.stage, state.optimizer = epoch, stage, optimizer
            state.history = history
            self.hooks.on_epoch_start(state)
            record = self._epoch(state, train, val, scheduler, rng, scaler)
            history.append(record)
            self._tell_epoch(record)
            if val is not None:
                early.step(selection_score(record.val_accuracy, record.val_loss), model)
            if not self.policy.settled(stage):
                # patience counts from the last unfreeze: each new group first costs accuracy
                # (its features move under the head) before it pays, so stopping mid-way would
                # judge the schedule before it ran; the best weights are still tracked
                early.bad_epochs = 0
            self.hooks.on_epoch_end(state)
            self._save(optimizer, scheduler, early, epoch, stage, history, lrs, rng)
        else:
            stopped = early.should_stop and len(history) < cfg.epochs
        if val is not None:
            early.restore(model)
            best_epoch, best_accuracy = early.best_epoch or 0, _best_accuracy(history, early)
        else:  # nothing to choose by: the annealed last epoch
            best_epoch, best_accuracy = (history[-1].epoch if history else 0), None
        model.eval()
        result = FinetuneResult(
            history=history,
            best_epoch=int(best_epoch),
            best_val_accuracy=best_accuracy,
            lrs=lrs,
            stopped_early=stopped,
            resumed_from_epoch=resumed_from,
            seconds=time.perf_counter() - started,
        )
        end = ("best_epoch", "best_val_accuracy", "stopped_early", "seconds")
        self.events.emit(
            Event("stage", self._stage, {"state": "end", **{k: getattr(result, k) for k in end}})
        )
        return result

    @property
    def _stage(self) -> str:
        """The name of this run in its events."""
        return "finetune" if self.config.pretrained else "scratch"

    def _tell_epoch(self, record: EpochRecord) -> None:
        self.events.emit(Event("epoch", self._stage, asdict(record)))

    def _warm_up_head(self, vectors, lrs: dict[str, Any]) -> list[EpochRecord]:
        cfg = self.config
        (X, y), val = vectors
        head = self.model.head
        head_lr = cfg.head_lr
        if head_lr is None:
            head_lr = float(np.clip(lrs["finder"]["suggestion"], *HEAD_LR_RANGE))
        lr, rows = train_head(
            head,
            (X.float(), y.long()),
            (val[0].float(), val[1].long()) if val is not None else None,
            epochs=cfg.head_epochs,
            lr=head_lr,
            weight_decay=cfg.weight_decay,
            label_smoothing=cfg.label_smoothing,
            batch_size=cfg.batch_size,
            seed=self.seed,
        )
        lrs["head_lr"] = lr
        lrs["head_lr_source"] = "given" if cfg.head_lr is not None else "lr finder"
        best = rows[-1]
        # one record for the whole warm-up: its epochs take milliseconds each
        return [
            EpochRecord(
                epoch=0,
                stage="head",
                unfrozen_groups=0,
                train_loss=best["train_loss"],
                train_accuracy=best["train_accuracy"],
                val_loss=best["val_loss"],
                val_accuracy=best["val_accuracy"],
                lr=lr,
                seconds=sum(r["seconds"] for r in rows),
            )
        ]

    def _probe_record(self, vectors) -> EpochRecord:
        """Epoch 0 of a run whose head starts fitted (the probe, ``head_start="probe"``): how
        it does on the cached training embeddings, as a warm-up's record would say."""
        cfg = self.config
        (X, y), _ = vectors
        t0 = time.perf_counter()
        head = self.model.head
        device = next(head.parameters()).device
        with torch.no_grad():
            logits = head(X.float().to(device))
            y = y.long().to(device)
            loss = float(F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing))
            accuracy = float((logits.argmax(1) == y).float().mean())
        return EpochRecord(
            epoch=0,
            stage="probe",
            unfrozen_groups=0,
            train_loss=loss,
            train_accuracy=accuracy,
            val_loss=None,  # filled in with the other epochs' measure when there is a split
            val_accuracy=None,
            lr=0.0,
            seconds=time.perf_counter() - t0,
        )

    def _lr_from_finder(self, train: Batches, vectors) -> dict[str, Any]:
        """The LR range test used when no learning rate is given.

        With a pretrained backbone it runs on the cached embeddings with a fresh head — the
        frozen-body range test fastai's users run before ``fine_tune`` — costing no forward
        pass; from scratch it runs on the images through the whole network.
        """
        if vectors is not None:
            (X, y), _ = vectors
            head = nn.Linear(X.shape[1], self.model.head.out_features)
            with torch.random.fork_rng():
                torch.manual_seed(self.seed)
                head.reset_parameters()
            result = head_lr_find(head, X.float(), y.long(), self.seed)
            where = "fresh head on the cached embeddings"
        else:
            result = self.find_lr(train)
            where = "whole network on the training images"
        used = float(np.clip(result.suggestion, *LR_RANGE))
        log.info("LR finder (%s): %s -> using %.2g", where, result.reason, used)
        return {
            "suggestion": result.suggestion,
            "used": used,
            "reason": result.reason,
            "range_test": where,
        }

    def _epoch(self, state: EngineState, train, val, scheduler, rng, scaler):
        cfg = self.config
        model = self.model
        epoch, stage, optimizer = state.epoch, state.stage, state.optimizer
        t0 = time.perf_counter()
        lr_at_start = float(optimizer.param_groups[0]["lr"])  # the head's, as the epoch begins
        train_mode(model)  # frozen BatchNorm layers back to eval: statistics untouched
        learn_bn = cfg.update_bn_stats is not False  # None (not chosen by a strategy): learn
        if not learn_bn:
            keep_bn_statistics(model)
        total = correct = n = 0
        label = f"stage 2 ({stage} groups)" if cfg.pretrained else "scratch"
        bar = self.events.progress(
            train.num_batches(), f"Epoch {epoch}/{cfg.epochs} {label}", "batch"
        )
        for batch, (x, y) in enumerate(train.train_epoch(rng)):
            x, y = x.to(self.device), y.to(self.device)
            with _amp(self.device):
                features = model.backbone(x)
                logits = model.head(features)
            task_loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            step = StepContext(state, batch, x, y, features, logits, task_loss)
            loss = self.hooks.add_extra_losses(step)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step()
            self.hooks.on_step_end(step)
            step_loss = float(loss.detach())
            self.events.emit(
                Event("step", self._stage, {"epoch": epoch, "step": batch, "loss": step_loss})
            )
            total += step_loss * len(y)
            correct += int((logits.detach().argmax(1) == y).sum())
            n += len(y)
            bar.update(1, loss=f"{total / n:.3f}")
        if learn_bn:
            self._precise_bn(train, state)
        val_loss = val_acc = None
        if val is not None:
            val_loss, val_acc = evaluate_batches(model, val, self.device)
            bar.update(0, val_acc=f"{val_acc:.3f}")
        bar.close()
        return EpochRecord(
            epoch=epoch,
            stage=self.policy.stage_name(stage),
            unfrozen_groups=int(stage),
            train_loss=total / max(n, 1),
            train_accuracy=correct / max(n, 1),
            val_loss=val_loss,
            val_accuracy=val_acc,
            lr=lr_at_start,
            seconds=time.perf_counter() - t0,
        )

    def _precise_bn(self, train: Batches, state: EngineState) -> None:
        """Recompute the statistics of the BatchNorm layers that trained (see batchnorm.py).

        From shuffled training batches: the first ``PRECISE_BN_IMAGES`` in dataset order are a
        few classes only (folders are read class by class), whose statistics cost Fashion-MNIST
        5 points of test accuracy. Their own generator, seeded by the run and the epoch, leaves
        the training stream (and a resumed run) untouched. A hook may give other batches
        (``EngineHook.statistics_batches``: a domain adaptation hook, the target domain's)."""
        from transferkit.finetune.batchnorm import reestimate_bn_statistics
        from transferkit.finetune.freezing import frozen_bn_layers

        frozen = {id(m) for m in frozen_bn_layers(self.model)}
        layers = [
            m
            for m in self.model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in frozen
        ]
        batches = self.hooks.statistics_batches(state)
        if batches is None:
            batches = train.train_epoch(np.random.default_rng([self.seed, state.epoch, 0x42]))
        reestimate_bn_statistics(
            self.model,
            batches,
            self.device,
            layers=layers,
            max_images=PRECISE_BN_IMAGES,
        )

    # -- checkpoints ----------------------------------------------------------------------------
    def _checkpointed(self, model: nn.Module) -> nn.Module:
        """What the checkpoint saves and restores: ``model``, or, when hooks train modules of
        their own, a module holding the model's parts under their usual names and the hooks'
        modules beside them under ``hooks.``, so weights and optimizer state are named alike."""
        own = self.hooks.modules()
        if not len(own):
            return model
        holder = nn.Module()
        for name, child in model.named_children():
            holder.add_module(name, child)
        holder.add_module(HOOKS_PREFIX.rstrip("."), own)
        return holder

    def _save(self, optimizer, scheduler, early, epoch, stage, history, lrs, rng) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(
            self.checkpoint_path,
            model=self._saved,
            optimizer=optimizer,
            scheduler=scheduler,
            early_stopping=early,
            epoch=epoch,
            stage=stage,
            extra={
                "history": [asdict(r) for r in history],
                "lrs": lrs,
                "numpy_generator": rng.bit_generator.state,
                "fingerprint": self.fingerprint,
                "config": asdict(self.config),
                "seed": self.seed,
                "hooks": self.hooks.state_dict(),
            },
        )

    def _load(self, resume: bool, early: EarlyStopping, rng: np.random.Generator):
        if self.checkpoint_path is None or not self.checkpoint_path.is_file():
            return None
        from transferkit.finetune.checkpoint import read_checkpoint_extra

        extra = read_checkpoint_extra(self.checkpoint_path)
        check_resumable(self.checkpoint_path, extra, self.fingerprint, self.config, self.seed)
        loaded = load_checkpoint(
            self.checkpoint_path,
            self._saved,
            torch.optim.AdamW,
            build_scheduler=lambda opt: warmup_cosine_scheduler(opt, total_steps=1),
            early_stopping=early,
        )
        rng.bit_generator.state = loaded.extra["numpy_generator"]
        return loaded


def _best_accuracy(history: list[EpochRecord], early: EarlyStopping) -> float:
    if early.best_epoch is None:
        return math.nan
    # early stopping counts epochs from the warm-up evaluation (its epoch 0)
    for record in history:
        if record.epoch == early.best_epoch:
            return float(record.val_accuracy)
    return float(early.best_score)


def check_resumable(
    path: Path,
    extra: dict[str, Any],
    fingerprint: dict[str, Any],
    config: FinetuneConfig,
    seed: int,
) -> None:
    """Refuse a checkpoint of another dataset, backbone, strategy or training setup."""
    saved = extra.get("fingerprint", {})
    for key, what in (
        ("backbone", "backbone"),
        ("weights_sha256", "pretrained weights"),
        ("dataset", "training data"),
        ("labels", "labels"),
    ):
        if key in fingerprint and saved.get(key) != fingerprint[key]:
            raise BadInputError(
                f"cannot resume from {path}: it was trained with other {what} "
                f"({_short(saved.get(key))} there, {_short(fingerprint[key])} now). Resume with "
                "the same data and backbone, or start a new run with another --out."
            )
    now = asdict(config)
    diffs = [k for k, v in extra.get("config", {}).items() if now.get(k) != v]
    if diffs or extra.get("seed") != seed:
        what = ", ".join(diffs + (["seed"] if extra.get("seed") != seed else []))
        raise BadInputError(
            f"cannot resume from {path}: the training settings differ ({what}). A resumed run "
            "must use the settings it started with; drop the changed options or start a new run."
        )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:16] + "…"
