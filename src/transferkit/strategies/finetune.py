"""``finetune`` and ``scratch``: train the backbone itself, from pretrained or random weights.

``finetune`` warms up a new head on the frozen (cached) embeddings, then unfreezes the backbone
from the top with layer-wise learning rates (see ``transferkit.finetune.engine``). ``scratch``
trains the same architecture from random initialisation with the same epoch budget: the
reference that shows whether pretraining helped at all (``--baseline``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from transferkit.errors import BadInputError
from transferkit.finetune.config import HEAD_STARTS, FinetuneConfig
from transferkit.strategies.base import (
    Capabilities,
    Chart,
    FitContext,
    FitData,
    Option,
    ReportSection,
    Strategy,
    StrategyResult,
    parameter_counts,
    parameters_fact,
    restore_trained_backbone,
)
from transferkit.strategies.finetune_guard import (
    cross_fit,
    fit_frozen_features,
    guard_fact,
    guard_skip_reason,
    resolve_backbone_lr_max,
    resolve_bn_statistics,
    resolve_head_start,
    start_from_probe,
    state_copy,
)
from transferkit.strategies.options import EPOCHS, LR
from transferkit.strategies.registry import register_strategy

log = logging.getLogger("transferkit")


def check_validation(val, train) -> None:
    """Every class needs a validation example, or early stopping judges it blind."""
    counts = val.class_counts()
    empty = [label for label in train.labels if counts.get(label, 0) == 0]
    if empty:
        have = train.class_counts()
        listed = ", ".join(f"'{e}' ({have.get(e, 0)} examples)" for e in empty)
        raise BadInputError(
            f"the validation split has no examples of class {listed}. Add examples to "
            "that class (it needs 2: one to train on, one to validate), or pass a separate "
            "validation set."
        )


def _maybe(fn, value):
    """``fn(value)``, or None when there is no validation split (``value`` None)."""
    return None if value is None else fn(value)


def _keep_readable(train, val, ok, val_ok):
    """``train`` and ``val`` without their unreadable files; every class still validated."""
    train = train.subset(np.flatnonzero(ok))
    if val is not None:
        val = val.subset(np.flatnonzero(val_ok))
        check_validation(val, train)
    return train, val


def _seconds(first, val_first) -> float:
    """Seconds spent embedding the training (and validation) data for the warm-up."""
    return sum(r.seconds for r in (first, val_first) if r is not None)


def top_group_bn_layers(module, n_groups: int) -> list:
    """BatchNorm layers inside the top ``n_groups`` layer groups of a backbone module."""
    from torch import nn

    groups = module.layer_groups()
    names = {n for group in groups[len(groups) - n_groups :] for n in group} if n_groups else set()
    return [
        m
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and any(f"{name}.{p}" in names for p, _ in m.named_parameters(recurse=False))
    ]


def adapt_bn_statistics(module, batches, device, pretrained_ref, layers=None) -> int:
    """AdaBN on the training images; the module gets a new weights identity (see batchnorm.py).

    ``layers``: the BatchNorm layers to re-estimate (default: all).
    """
    import torch

    from transferkit.finetune.batchnorm import reestimate_bn_statistics
    from transferkit.finetune.model import state_sha256

    if device.type == "cpu":
        module.to(memory_format=torch.channels_last)
    module.to(device)
    seen = reestimate_bn_statistics(module, batches, device, layers=layers)
    module.cpu()
    # the embedding cache must key its vectors by what produced them
    module.mark_trained(
        state_sha256=state_sha256(module),
        source=f"{pretrained_ref.weights_source}, BatchNorm statistics re-estimated on {seen} "
        "training images",
    )
    log.info("re-estimated BatchNorm statistics on %d training images (AdaBN)", seen)
    return seen


# --val-size auto: the share tried, and the validation examples every class must then have for
# early stopping to be worth the examples it takes from training. With fewer (50 images per
# class give ~8), validation accuracy moves in steps of 1-2 points and picks epochs by noise:
# on Fashion-MNIST 50/class every setting we tried with such a split restored the head warm-up
# (BENCHMARKS.md, finetune), while training on every example for the fixed budget gained points
AUTO_VAL_SHARE = 0.15
MIN_VAL_PER_CLASS = 10


def validation_too_small(val, labels) -> bool:
    """Whether a validation split has fewer than ``MIN_VAL_PER_CLASS`` examples of a class."""
    counts = val.class_counts()
    return min(counts.get(label, 0) for label in labels) < MIN_VAL_PER_CLASS


def split_validation(train, val_size: float | None, seed: int):
    """(training part, validation part or None) of ``train``.

    ``val_size`` None (auto): a stratified ``AUTO_VAL_SHARE`` when every class can give it
    ``MIN_VAL_PER_CLASS`` examples, else no split (train on everything for the fixed epoch
    budget, keep the last epoch); 0: no split; a fraction: that split, every class in it.
    """
    if val_size == 0:
        return train, None
    share = AUTO_VAL_SHARE if val_size is None else val_size
    train_part, val_part, _ = train.split(test_size=0.0, val_size=share, seed=seed)
    if val_size is None and validation_too_small(val_part, train.labels):
        log.info(
            "no validation split: %s would hold fewer than %d examples of a class, too few to "
            "choose epochs by; training on all %d examples for the full budget",
            f"{share:.0%}",
            MIN_VAL_PER_CLASS,
            len(train),
        )
        return train, None
    check_validation(val_part, train)
    return train_part, val_part


@dataclass
class ScratchConfig(FinetuneConfig):
    """``scratch``: every layer trains from random weights; no head warm-up, no unfreezing."""

    lr: float | None = 2e-3  # AdamW from scratch; a finder run over the whole net costs epochs
    head_epochs: int = 0
    augment: str = "light"
    update_bn_stats: bool = True  # random statistics are meaningless: learn them
    pretrained: bool = field(default=False)


FINETUNE_OPTIONS = (
    EPOCHS,
    LR,
    Option(
        "--lr-decay",
        "lr_decay",
        float,
        "learning-rate factor per layer group going down (default 0.7)",
        valid=lambda v: 0 < v <= 1,
        must_be="in (0, 1]",
    ),
    Option(
        "--backbone-lr-max",
        "backbone_lr_max",
        float,
        "most the top unfrozen backbone group learns at (default: 1e-4 when a class has <= 20 "
        "examples, else none; the head keeps the LR finder's rate; 1: the head's rate)",
        valid=lambda v: v > 0,
        must_be="> 0",
    ),
    Option(
        "--unfreeze-groups",
        "unfreeze_groups",
        int,
        "how many backbone layer groups to unfreeze, one per epoch from the top (default 5)",
    ),
    Option(
        "--unfreeze-every",
        "unfreeze_every",
        int,
        "epochs between unfreezing the next group (default 1; 0: all at once)",
    ),
    Option(
        "--patience",
        "patience",
        int,
        "stop after this many epochs without a better validation accuracy (default 4)",
        valid=lambda v: v >= 1,
        must_be="at least 1",
    ),
    Option(
        "--regularize",
        "regularize",
        str,
        "l2sp: penalise the distance to the pretrained weights instead of to zero",
        choices=("none", "l2sp"),
    ),
    Option(
        "--guard",
        "guard",
        str,
        "with no validation split and <= 20 examples in a class, keep the frozen features "
        "(what --strategy features gives) unless fine-tuning beats them, cross-fitted on two "
        "halves (default cross-fit; costs a 2nd run)",
        choices=("cross-fit", "off"),
    ),
    Option(
        "--head-start",
        "head_start",
        str,
        "where the trained head starts: probe = the frozen-features head (--strategy features' "
        "own, LP-FT), warm-up = a new softmax layer trained on the frozen embeddings first "
        "(default: probe for images with <= 20 examples in a class, else warm-up)",
        choices=HEAD_STARTS,
    ),
    Option(
        "--l2sp-alpha",
        "l2sp_alpha",
        float,
        "L2-SP weight on the distance to the pretrained backbone (default 0.01)",
        valid=lambda v: v >= 0,
        must_be=">= 0",
    ),
    Option(
        "--l2sp-beta",
        "l2sp_beta",
        float,
        "L2-SP weight of plain L2 on the new head (default 0.01)",
        valid=lambda v: v >= 0,
        must_be=">= 0",
    ),
)

# the report's words for FinetuneConfig.head_start
HEAD_START_WORDS = {
    "probe": "the frozen-features head (--strategy features' own), trained on with the "
    "backbone (LP-FT)",
    "warm-up": "a new softmax layer, warmed up on the frozen embeddings",
}

# how report.html draws a fine-tuning history
_CHARTS = (
    Chart("loss", ("train_loss", "val_loss")),
    Chart("accuracy", ("train_accuracy", "val_accuracy"), fixed_range=(0.0, 1.0)),
)
_CHART_NOTE = (
    "dotted grey: a stage begins (at epoch 0 the head: warmed up, or the frozen-features probe; "
    "then one more layer group unfrozen) "
    "· green: the best epoch, whose weights were kept"
)


@register_strategy
class FinetuneStrategy(Strategy):
    """Head warm-up on cached embeddings, then gradual unfreezing from the top with layer-wise
    learning rates, AdamW with warm-up + cosine, early stopping on the validation split."""

    name = "finetune"
    Config = FinetuneConfig
    capabilities = Capabilities(uses_validation=True, trains_backbone=True)
    options = FINETUNE_OPTIONS
    default_head = "linear"
    # the small-data guard (finetune_guard.py): measured for plain fine-tuning only; a method
    # built on this one (domain adaptation, adapters) judges its own result
    small_data_guard = True

    def _backbone_module(self, backbone, seed: int):
        return backbone.materialize()

    def engine_config(self) -> FinetuneConfig:
        """The settings the engine runs with (a method may resolve its own defaults here)."""
        return self.config

    def prepare(self, backbone, train, *, embed, seed=0, val=None):
        """Split, screen and batch the data and build the model (everything before training).

        The frozen embeddings (from the cache) warm the head up; the modality makes the batches
        that train the encoder (``Modality.training_batches``).
        """
        import torch

        from transferkit.finetune.engine import adapt_batch_size, pick_device
        from transferkit.finetune.model import ClassifierModel
        from transferkit.modalities import get_modality

        cfg = self.engine_config()
        modality = get_modality(train.modality)
        if not backbone.spec.trainable:
            raise BadInputError(
                f"{backbone.name} is a frozen encoder: it can only embed, not be trained. Use "
                f"--strategy features with it, or a trainable encoder "
                f"(e.g. {modality.trainable_example})."
            )
        if val is None:
            train, val = split_validation(train, cfg.val_size, seed)
        else:
            check_validation(val, train)

        adapt = cfg.pretrained and cfg.adapt_bn
        if cfg.pretrained and not adapt:
            # frozen embeddings for the head warm-up; they also flag unreadable files
            first, val_first = embed(train), _maybe(embed, val)
            ok, val_ok = first.ok, _maybe(lambda r: r.ok, val_first)
            problems = first.problems + (val_first.problems if val_first else [])
        else:  # only find the files training must skip; embeddings (if any) come later
            first = val_first = None
            ok, p1 = modality.readable(train)
            val_ok, p2 = modality.readable(val) if val is not None else (None, [])
            problems = p1 + p2
        train, val = _keep_readable(train, val, ok, val_ok)

        module = self._backbone_module(backbone, seed)
        device = pick_device()
        batch_size = adapt_batch_size(cfg.batch_size, len(train), device)

        def batches(ds, augment: str):
            return modality.training_batches(ds, module, batch_size=batch_size, augment=augment)

        train_batches = batches(train, cfg.augment)
        val_batches = _maybe(lambda v: batches(v, "none"), val)
        bn_adapted = 0
        if adapt:
            plain = batches(train, "none")
            # only the groups fine-tuning will unfreeze: their statistics would move to this data
            # during stage 2 anyway (precise BN), so the head is warmed up on where they land
            n_top = (
                len(module.layer_groups()) if cfg.unfreeze_groups is None else cfg.unfreeze_groups
            )
            bn_adapted = adapt_bn_statistics(
                module,
                plain.eval_batches(),
                device,
                backbone,
                layers=top_group_bn_layers(module, min(n_top, len(module.layer_groups()))),
            )
            # the warm-up embeddings come from the adapted network (cached under its own hash)
            first = embed(train, backbone=module)
            val_first = _maybe(lambda v: embed(v, backbone=module), val)
        seconds_extract = _seconds(first, val_first)
        source = module if adapt else None

        def embeddings():
            # rows of ``train``/``val`` as they are now (already stripped of unreadable files;
            # after AdaBN the re-embedding may flag more)
            rows = first.ok if adapt else np.ones(len(train), dtype=bool)
            X, y = first.embeddings[first.ok], train.targets[rows]
            if cfg.augment != "none" and "hflip" in modality.views:
                mirrored = embed(train, view="hflip", backbone=source)
                X = np.vstack([X, mirrored.embeddings[mirrored.ok]])
                y = np.concatenate([y, train.targets[mirrored.ok]])
            held_out = None
            if val_first is not None:
                val_rows = val_first.ok if adapt else np.ones(len(val), dtype=bool)
                held_out = (
                    torch.from_numpy(val_first.embeddings[val_first.ok]),
                    torch.from_numpy(val.targets[val_rows]),
                )
            return (torch.from_numpy(X), torch.from_numpy(y)), held_out

        # seeded after the backbone is built: whether building drew random numbers (it does
        # when nothing was cached yet) must not change the new head's initial weights
        torch.manual_seed(seed)
        model = ClassifierModel(module, len(train.labels))
        return Prepared(
            train=train,
            val=val,
            model=model,
            device=device,
            batch_size=batch_size,
            train_batches=train_batches,
            val_batches=val_batches,
            embeddings=embeddings if cfg.pretrained else None,
            seconds_extract=seconds_extract,
            problems=problems,
            runtime=first.runtime if first else None,
            n_cached=first.n_cached if first else 0,
            bn_adapted=bn_adapted,
        )

    def engine_hooks(self, prep: Prepared) -> list:
        """Engine hooks (``finetune/hooks.py``) a method adds beyond ``--regularize``'s."""
        return []

    def trainable_parameters(self, prep: Prepared):
        """The engine's trainable-parameter policy (``finetune/trainable.py``); None: the
        gradual layer-group unfreezing the config describes."""
        return None

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        import torch

        from transferkit.finetune.engine import Finetuner
        from transferkit.finetune.model import state_sha256
        from transferkit.heads.softmax import LinearSoftmaxHead

        cfg = self.engine_config()
        # read before training: an audio backbone is its own module, and marking the trained
        # module trained renames it too
        pretrained_sha256 = backbone.weights_sha256
        if ctx.head.name != "linear":
            raise BadInputError(
                f"--strategy {self.name} trains a linear softmax head with the backbone; "
                f"--head {ctx.head.name} works with --strategy features only. Leave --head out."
            )
        prep = self.prepare(backbone, data.train, embed=ctx.embed, seed=ctx.seed, val=data.val)
        cfg = resolve_backbone_lr_max(cfg, prep.train)
        if self.small_data_guard:
            # measured for plain fine-tuning only, like the guard (a domain adaptation hook
            # re-estimates them on the target domain on purpose)
            cfg = resolve_bn_statistics(cfg, prep.train)
            cfg = resolve_head_start(cfg, prep.train)
        elif cfg.head_start == "probe":
            raise BadInputError(
                f"head_start='probe' was measured for --strategy finetune only; --strategy "
                f"{self.name} starts from the warm-up. Leave head_start out."
            )
        model = prep.model
        probe, lr_given = None, cfg.lr is not None
        if cfg.head_start == "probe":
            # fitted now, while the module holds the weights its cached embeddings came from
            probe = fit_frozen_features(backbone, prep.train, ctx.embed, ctx.seed, cfg.augment)
            cfg = start_from_probe(model, probe, cfg)
        guard_skip = self._guard_skip(prep, cfg)
        # the guard refits from the pretrained state: fine-tuning changes the module in place
        pretrained = state_copy(model.backbone) if guard_skip is None else None
        pretrained_identity = model.backbone.weights_sha256
        runner = Finetuner(
            model,
            cfg,
            seed=ctx.seed,
            checkpoint_dir=ctx.checkpoint_dir,
            events=ctx.events,
            fingerprint={
                "backbone": backbone.name,
                "weights_sha256": pretrained_sha256,
                "dataset": prep.train.fingerprint(),
                "labels": list(prep.train.labels),
            },
            hooks=self.engine_hooks(prep),
            policy=self.trainable_parameters(prep),
        )
        result = runner.fit(
            prep.train_batches, prep.val_batches, embeddings=prep.embeddings, resume=ctx.resume
        )
        if probe is not None and not lr_given:
            result.lrs["lr_source"] = "the backbone's ceiling (the head starts fitted)"
        guard = self._guard(backbone, prep, ctx, cfg, guard_skip, pretrained)
        kept_features = guard is not None and guard.get("decision") == "features"
        if kept_features:
            # what --strategy features gives: the pretrained backbone and its default head
            model.backbone.load_state_dict(pretrained)
            fitted_head = (
                probe
                if probe is not None
                else fit_frozen_features(backbone, prep.train, ctx.embed, ctx.seed, cfg.augment)
            )
            result.best_epoch = 0
        elif probe is not None:
            # the probe's type (logistic) with the weights stage 2 gave it
            fitted_head = model.head.to_head({"fine_tuned_lr": result.lrs.get("lr")})
        else:
            fitted_head = LinearSoftmaxHead.from_torch(
                model.head, len(prep.train.labels), {"lr": result.lrs.get("lr")}
            )

        trained = model.backbone.cpu().eval()
        trained.to(memory_format=torch.contiguous_format)
        start = trained.weights_source if cfg.pretrained else "random init"
        if kept_features:
            start += "; the small-data guard kept the frozen features"
        # kept features: the weights are those the module held before fine-tuning, so they
        # keep that identity and the embedding cache serves the frozen features' vectors
        trained.mark_trained(
            state_sha256=pretrained_identity if kept_features else state_sha256(trained),
            source=f"{self.name} of {backbone.name} ({start})",
        )
        return StrategyResult(
            n_train=len(prep.train),
            info={
                "seconds_extract": prep.seconds_extract,
                "runtime": prep.runtime,
                "n_cached": prep.n_cached,
                "problems": prep.problems,
                "n_val": len(prep.val) if prep.val is not None else 0,
                "batch_size": prep.batch_size,
                "device": str(prep.device),
                "pretrained_weights_sha256": pretrained_sha256,
                "backbone_untouched": kept_features,
                "training": {**result.to_dict(), **({"guard": guard} if guard else {})},
                "config_used": {**asdict(cfg), "lr": result.lrs.get("lr")},
                "layer_groups": len(model.layer_groups()),
                "unfrozen_groups": 0 if kept_features else runner.target_groups,
                "bn_statistics_adapted_on": prep.bn_adapted,
                "parameters": parameter_counts(model),
            },
            backbone=trained,
            head=fitted_head,
        )

    def _guard_skip(self, prep: Prepared, cfg) -> str | None:
        """Why the small-data guard does not run (None: it runs; "" for methods without it)."""
        if not self.small_data_guard:
            return ""
        # a resumed run measures it again: it depends on the data and the seed, not on the run
        return guard_skip_reason(prep.train, prep.val, cfg)

    def _guard(self, backbone, prep, ctx, cfg, skip, pretrained) -> dict | None:
        """What the small-data guard measured and decided (None for methods without it)."""
        if skip == "":
            return None
        if skip is not None:
            return {"applied": False, "reason": skip}
        log.info(
            "small-data guard: %d training examples and no validation split; fitting each "
            "half and scoring it on the other half (frozen features vs fine-tuned)",
            len(prep.train),
        )
        guard = cross_fit(self, backbone, prep.train, ctx, cfg, pretrained)
        log.info("small-data guard: %s", guard["reason"])
        return guard

    def metrics_block(self, result: StrategyResult) -> dict:
        return {
            "training": result.info["training"],
            "hyperparameters": result.info.get("config_used", {}),
            **({"parameters": result.info["parameters"]} if "parameters" in result.info else {}),
        }

    def report_section(self, metrics) -> ReportSection | None:
        training = metrics.get("training")
        if not isinstance(training, Mapping):
            return None
        rows = training.get("history") or []
        history = [r for r in rows if isinstance(r, Mapping) and "epoch" in r]
        if not history:
            return None
        facts = {}
        lrs = training.get("lrs") or {}
        if isinstance(lrs, Mapping):
            if lrs.get("lr") is not None:
                source = lrs.get("lr_source") or "LR finder"
                source = {"lr finder": "LR finder"}.get(str(source), str(source))
                facts["learning rate (head, stage 2)"] = f"{float(lrs['lr']):.3g} ({source})"
            if lrs.get("head_lr") is not None:
                facts["learning rate (head warm-up)"] = f"{float(lrs['head_lr']):.3g}"
        hyper = metrics.get("hyperparameters") or {}
        if hyper.get("head_start") in HEAD_START_WORDS:
            facts["head start"] = HEAD_START_WORDS[hyper["head_start"]]
        ceiling = hyper.get("backbone_lr_max")
        if isinstance(ceiling, int | float):
            facts["learning rate ceiling (backbone)"] = f"{float(ceiling):.3g}"
        if hyper.get("update_bn_stats") is False:
            facts["BatchNorm statistics"] = "kept pretrained (not re-estimated on this data)"
        facts["best epoch"] = training.get("best_epoch")
        guard = guard_fact(training.get("guard"))
        if guard is not None:
            facts["small-data guard"] = guard
        facts["stopped early"] = "yes" if training.get("stopped_early") else "no"
        if training.get("resumed_from_epoch") is not None:
            facts["resumed after epoch"] = training.get("resumed_from_epoch")
        facts.update(parameters_fact(metrics))
        best = training.get("best_epoch")
        return ReportSection(
            anchor="training",
            title="Training curves",
            history=tuple(history),
            charts=_CHARTS,
            best_epoch=int(best) if isinstance(best, int | float) else None,
            note=_CHART_NOTE,
            facts=facts,
            shows=("training", "parameters"),
        )

    def restore(self, backbone, bundle):
        return restore_trained_backbone(backbone, bundle)


@dataclass
class Prepared:
    """Data and model ready for the engine."""

    train: Any
    val: Any
    model: Any
    device: Any
    batch_size: int
    train_batches: Any
    val_batches: Any
    embeddings: Any
    seconds_extract: float
    problems: list
    runtime: Any
    n_cached: int
    bn_adapted: int = 0


@register_strategy
class ScratchStrategy(FinetuneStrategy):
    name = "scratch"
    Config = ScratchConfig
    capabilities = Capabilities(
        uses_validation=True, trains_backbone=True, pretrained_weights=False
    )
    small_data_guard = False

    def _backbone_module(self, backbone, seed: int):
        import torch

        from transferkit.backbones import resolve_backbone

        # the same architecture and preprocessing; weights from the seeded global generator
        torch.manual_seed(seed)
        return resolve_backbone(backbone.name, pretrained=False).materialize()
