"""``adapter``: train a small adapter inside the frozen pretrained encoder, and a head.

LoRA (through peft) or a Houlsby / Pfeiffer bottleneck adapter (AdapterHub's layout) goes into
every transformer layer (``transferkit.finetune.adapters``); only the adapter and the head
learn. ``--objective auto`` (default) is ``contrastive`` for text, ``classify`` elsewhere.
``--objective classify`` trains them with fine-tuning's engine: head warm-up on
the cached embeddings, AdamW with warm-up and cosine decay, early stopping on a validation split,
checkpoints and ``--resume``. ``--objective contrastive`` (text) trains the adapter with the
``contrastive`` strategy's in-batch pair loss, then fits a head on the new embeddings.
``--adapter-from DIR`` starts from an adapter peft or AdapterHub saved for the same base model
(``finetune/adapters/interop.py``; one for another model is refused naming both) and trains it
further.

The bundle stores the adapter (``adapter.safetensors``, a few hundred kB for MiniLM) and names
the base encoder by its pretrained weights' sha256, as a ``features`` bundle does; loading puts
the adapter back into the installed base and refuses other base weights, naming both. The
adapted encoder's identity (what the embedding cache keys vectors by) is the sha256 of the base
weights' and the adapter file's: base and adapted vectors are never mixed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transferkit.errors import BadInputError
from transferkit.finetune.adapters.spec import METHODS, TARGET_SETS, AdapterSpec
from transferkit.finetune.config import FinetuneConfig
from transferkit.strategies.base import (
    Capabilities,
    FitContext,
    FitData,
    Option,
    ReportSection,
    StrategyResult,
    check_pretrained_weights,
)
from transferkit.strategies.contrastive import ContrastiveConfig, ContrastiveStrategy
from transferkit.strategies.finetune import FINETUNE_OPTIONS, FinetuneStrategy
from transferkit.strategies.options import EPOCHS, LR
from transferkit.strategies.registry import register_strategy

OBJECTIVES = ("auto", "classify", "contrastive")
# the learning rate of adapters and head when none is given: adapters start at the pretrained
# function and need larger steps than full fine-tuning (LoRA's papers use 5e-4 to 1e-3)
ADAPTER_LR = 1e-3
CLASSIFY_EPOCHS = 12
# the pair objective reads long texts through 64-token windows, one a text an epoch, as its
# figures before contrastive's whole-text reading were measured; contrastive's epoch rule then
# gives long texts (~60 tokens an epoch) a little fewer epochs (20 Newsgroups 4 x 64: 5, not 6),
# which BENCHMARKS.md ``adapter`` measured at f3ef113
ADAPTER_PAIR_MAX_LENGTH = 64

ADAPTER_OPTIONS = (
    EPOCHS,
    LR,
    next(o for o in FINETUNE_OPTIONS if o.flag == "--patience"),
    Option(
        "--adapter",
        "adapter",
        str,
        "the adapter --strategy adapter trains: lora (default; through peft), houlsby or "
        "pfeiffer (bottleneck adapters, AdapterHub's layout)",
        choices=METHODS,
    ),
    Option(
        "--adapter-rank",
        "adapter_rank",
        int,
        "LoRA rank r (default 16)",
        valid=lambda v: v >= 1,
        must_be="at least 1",
    ),
    Option(
        "--adapter-alpha",
        "adapter_alpha",
        float,
        "LoRA alpha: the update is scaled by alpha / r (default 32)",
        valid=lambda v: v > 0,
        must_be="greater than 0",
    ),
    Option(
        "--adapter-reduction",
        "adapter_reduction",
        float,
        "bottleneck adapters: hidden size / bottleneck size (default 16)",
        valid=lambda v: v > 0,
        must_be="greater than 0",
    ),
    Option(
        "--adapter-targets",
        "adapter_targets",
        str,
        "LoRA on every attention and feed-forward linear layer (all, default) or on the "
        "attention query and value layers only (attention)",
        choices=TARGET_SETS,
    ),
    Option(
        "--objective",
        "objective",
        str,
        "what trains the adapter: auto (default: contrastive for a text encoder, else "
        "classify), classify (a softmax head, fine-tuning's engine) or contrastive (text: the "
        "contrastive strategy's pair loss, then a head)",
        choices=OBJECTIVES,
    ),
    Option(
        "--adapter-from",
        "adapter_from",
        str,
        "a folder with an adapter saved by peft (LoRA) or AdapterHub (LoRA, Houlsby, "
        "Pfeiffer) for this backbone's model: training starts from it and trains it further "
        "(its settings replace --adapter, --adapter-rank and the like)",
    ),
)


@dataclass
class AdapterConfig(FinetuneConfig):
    """``finetune``'s settings plus the adapter's; ``epochs`` None: 12 for classify, the
    contrastive rule for contrastive; ``lr`` None: ``ADAPTER_LR`` (no LR finder)."""

    epochs: int | None = None
    lr: float | None = None
    adapter: str = "lora"
    # r=16, alpha=32 (the same alpha / r scale as 8 / 16, twice the rank), chosen on draws the
    # benchmark does not report, with development rows from the training pools: on 20
    # Newsgroups K=64 (seed 10, 100 posts a group) 0.853 against 0.818 for r=8, full
    # contrastive 0.855; on Rotten Tomatoes K=64 (seeds 11 and 12, 400 rows) 0.718 against
    # 0.716 for r=8, full contrastive 0.729. Twice the steps at r=8 also reached 0.855 on the
    # posts but lost 1.8 points on the snippets. 2.9 % of MiniLM's parameters are trained
    adapter_rank: int = 16
    adapter_alpha: float = 32.0
    adapter_reduction: float = 16.0
    # every attention and feed-forward linear layer: on Rotten Tomatoes draws the benchmark does
    # not use (K=64, seeds 10 and 11, 500 development rows each from the training pool, never
    # the test rows), with the contrastive objective at lr 1e-3: 0.747 against 0.702 for query
    # and value only and 0.733 for full contrastive fine-tuning (lr 3e-3 on query/value: 0.721;
    # 2e-3 on all: 0.704), for 1.5 % of MiniLM's parameters instead of 0.3 %
    adapter_targets: str = "all"
    # auto: contrastive for text, as --strategy auto picks contrastive over finetune there. On
    # Rotten Tomatoes K=64 development draws (seeds 10 and 11, rows from the training pool) the
    # pair loss scored 0.747 against 0.646-0.659 for classify
    objective: str = "auto"
    adapter_from: str | None = None

    def __post_init__(self) -> None:
        epochs = self.epochs
        self.epochs = CLASSIFY_EPOCHS if epochs is None else epochs  # checked as a given one
        super().__post_init__()
        self.epochs = epochs
        if self.objective not in OBJECTIVES:
            raise BadInputError(
                f"objective must be one of {', '.join(OBJECTIVES)}; got {self.objective!r}"
            )
        self.spec()  # refuses a bad adapter setting now, naming it

    def spec(self) -> AdapterSpec:
        """The adapter these settings describe (targets not yet resolved for a backbone)."""
        if self.adapter == "lora":
            return AdapterSpec.make(
                "lora",
                r=self.adapter_rank,
                alpha=self.adapter_alpha,
                target_modules=self.adapter_targets,
            )
        return AdapterSpec.make(self.adapter, reduction_factor=self.adapter_reduction)

    def engine(self) -> FinetuneConfig:
        """The settings fine-tuning's engine runs with (defaults resolved)."""
        return dataclasses.replace(
            self,
            epochs=self.epochs or CLASSIFY_EPOCHS,
            lr=self.lr or ADAPTER_LR,
        )

    def pairs(self) -> ContrastiveConfig:
        """The contrastive strategy's settings for ``--objective contrastive``."""
        # 64-token windows (see ADAPTER_PAIR_MAX_LENGTH): contrastive's whole-text reads of long
        # texts were tuned with the whole encoder training only
        return ContrastiveConfig(
            epochs=self.epochs,
            lr=self.lr or ADAPTER_LR,
            batch_size=None,
            augment="none",
            pair_max_length=ADAPTER_PAIR_MAX_LENGTH,
        )


def adapted_identity(base_sha256: str, adapter_file_sha256: str) -> str:
    """The identity of a base encoder with an adapter: what the embedding cache keys by."""
    return hashlib.sha256(f"{base_sha256}+adapter:{adapter_file_sha256}".encode()).hexdigest()


def _check_adaptable(backbone) -> None:
    """Refuse a frozen-only backbone (no torch network to put an adapter in), naming it."""
    from transferkit.finetune.adapters.targets import WORKS_WITH

    if not backbone.spec.trainable:
        raise BadInputError(
            f"{backbone.name} is a frozen encoder: it has no network to put an adapter in. "
            f"--strategy adapter works with {WORKS_WITH}; use --strategy features with "
            f"{backbone.name}."
        )


class _PairTraining(ContrastiveStrategy):
    """The contrastive strategy's pair loss, training only the adapter of ``owner``."""

    name = "adapter"
    guards_script = False  # measured for contrastive only

    def __init__(self, owner: AdapterStrategy, seed: int) -> None:
        self.config = owner.config.pairs()
        self.owner, self.seed = owner, seed

    def encoder(self, backbone):
        return self.owner._backbone_module(backbone, self.seed)

    def set_trainable(self, module) -> int:
        from transferkit.finetune.adapters.policy import AdapterOnly, is_adapter_parameter

        AdapterOnly().apply(module, 0)
        groups = module.layer_groups()
        lowest = min(
            i for i, group in enumerate(groups) if any(is_adapter_parameter(n) for n in group)
        )
        return len(groups) - lowest  # the groups below the lowest adapter are cached


@register_strategy
class AdapterStrategy(FinetuneStrategy):
    """An adapter (LoRA, Houlsby, Pfeiffer) in the frozen encoder, trained with a head."""

    name = "adapter"
    Config = AdapterConfig
    capabilities = Capabilities(uses_validation=True, trains_backbone=True)
    options = ADAPTER_OPTIONS
    small_data_guard = False  # finetune's guard was measured without this method
    imported_ = None  # --adapter-from's adapter (interop.SharedAdapter), read by ``fit``

    @property
    def default_head(self) -> str:  # type: ignore[override]
        return "linear" if self.config.objective == "classify" else "logistic"

    @property
    def default_head_params(self) -> dict:  # type: ignore[override]
        # after the pair loss, as for contrastive: C hardly matters, the search is skipped
        return (
            {}
            if self.config.objective == "classify"
            else dict(ContrastiveStrategy.default_head_params)
        )

    def engine_config(self) -> FinetuneConfig:
        return self.config.engine()

    def _backbone_module(self, backbone, seed: int):
        """The pretrained encoder with the adapter in it (initialised to change nothing)."""
        import torch

        from transferkit.finetune.adapters import inject

        module = backbone.materialize()
        torch.manual_seed(seed)  # the adapter's initial weights (LoRA's A, bottleneck down)
        if self.imported_ is not None:
            from transferkit.finetune.adapters.interop import attach

            self.adapter_spec_ = attach(module, self.imported_)
        else:
            self.adapter_spec_ = inject(module, self.config.spec())
        return module

    def trainable_parameters(self, prep):
        from transferkit.finetune.adapters.policy import AdapterOnly

        return AdapterOnly()

    def settle(self, data: FitData, spec) -> None:
        """``--objective auto``: the pair loss where the contrastive strategy applies (a text
        encoder on texts), the classification engine elsewhere."""
        if self.config.objective != "auto":
            return
        from transferkit.modalities import get_modality

        pairs = data.train.modality in ContrastiveStrategy.capabilities.modalities and (
            get_modality(data.train.modality).accepts(spec)
        )
        self.config.objective = "contrastive" if pairs else "classify"

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        from transferkit.finetune.adapters import check_adaptable

        self.settle(data, backbone.spec)

        _check_adaptable(backbone)
        self.imported_ = self._shared_adapter(backbone)
        check_adaptable(backbone.materialize(), self.config.spec())  # before any embedding
        base = (backbone.name, backbone.weights_sha256, backbone.weights_source)
        if base[1] is None:
            raise BadInputError(
                f"--strategy adapter adapts pretrained weights; {backbone.name} has none here. "
                "Install its weights (see `transferkit models`)."
            )
        if self.config.objective == "contrastive":
            result = self._fit_pairs(backbone, data, ctx)
        else:
            result = super().fit(backbone, data, ctx)
        module = result.backbone
        self.base_ = base
        self.parameters_ = result.info["parameters"]
        self._mark(module, adapter_file_sha(module, self.adapter_spec_), f"adapter of {base[0]}")
        result.info["adapter"] = self.adapter_spec_.to_json()
        if self.imported_ is not None:
            result.info["adapter"]["imported"] = self.imported_.provenance()
        return result

    def _shared_adapter(self, backbone):
        """``--adapter-from``'s adapter, read and checked against the base (refused naming
        both when it was made for another model); None without the option."""
        if not self.config.adapter_from:
            return None
        from transferkit.finetune.adapters.interop import check_base, read_adapter_dir

        adapter = read_adapter_dir(self.config.adapter_from)
        check_base(adapter, backbone)
        return adapter

    def _fit_pairs(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        from transferkit.modalities import get_modality

        if not get_modality(data.train.modality).accepts(backbone.spec) or (
            data.train.modality not in ContrastiveStrategy.capabilities.modalities
        ):
            raise BadInputError(
                f"--objective contrastive trains on pairs of texts; {backbone.name} is not a "
                "text encoder. Use --objective classify."
            )
        if ctx.resume:
            raise BadInputError(
                "--objective contrastive trains in a minute or two and keeps no checkpoints; "
                "run it again instead of --resume (or use --objective classify)"
            )
        # the pair loss uses no validation split: its examples are trained on
        train = data.train if data.val is None else data.train.merge(data.val)
        return _PairTraining(self, ctx.seed).fit(backbone, FitData(train=train), ctx)

    def _mark(self, module, file_sha256: str, source: str) -> None:
        module.mark_trained(
            state_sha256=adapted_identity(self.base_[1], file_sha256),
            source=f"{source} ({self.base_[2]})",
        )

    def bundle_parts(self, backbone, info: Mapping[str, Any]) -> dict[str, Any]:
        from transferkit.finetune.adapters import adapter_state

        name, sha256, source = self.base_
        return {
            "adapter_state": adapter_state(backbone, self.adapter_spec_),
            "adapter": {
                **self.adapter_spec_.to_json(),
                "trained_parameters": int(self.parameters_["trained"]),
                "total_parameters": int(self.parameters_["total"]),
                "base": {"name": name, "weights_sha256": sha256},
            },
            # as a features bundle: the base's name and pretrained weights
            "backbone": {"weights_sha256": sha256, "weights_source": source},
        }

    def restore(self, backbone, bundle):
        """The installed base encoder (refused, naming both, if its weights are not the ones
        the adapter was trained on) with the bundle's adapter in it."""
        from transferkit.bundle import ADAPTER_FILE
        from transferkit.finetune.adapters import inject, load_adapter_state

        check_pretrained_weights(backbone, bundle)
        info = bundle.manifest.get("adapter")
        if not isinstance(info, dict):
            raise bundle.refuse("an adapter bundle without its 'adapter' description")
        spec = AdapterSpec.from_json({"method": info["method"], "config": info["config"]})
        module = self._base_module(backbone)
        self.adapter_spec_ = inject(module, spec)
        try:
            load_adapter_state(module, self.adapter_spec_, bundle.load_adapter_state())
        except BadInputError as exc:
            raise bundle.refuse(str(exc)) from None
        self.base_ = (backbone.name, backbone.weights_sha256, backbone.weights_source)
        self.parameters_ = {
            "trained": info["trained_parameters"],
            "total": info["total_parameters"],
        }
        self._mark(module, bundle.manifest["files"][ADAPTER_FILE], f"adapter bundle {bundle.path}")
        return module.eval()

    def _base_module(self, backbone):
        """A module of the base encoder for one bundle's adapter, whose weights are the
        process-wide base's (``finetune/adapters/shared.py``): bundles on one base hold it once."""
        from transferkit.finetune.adapters.shared import shared_copy

        return shared_copy(backbone)

    def metrics_block(self, result: StrategyResult) -> dict:
        if "contrastive" in result.info:
            block = ContrastiveStrategy.metrics_block(self, result)
        else:
            block = super().metrics_block(result)
        return {**block, "adapter": result.info["adapter"]}

    def report_section(self, metrics) -> ReportSection | None:
        if isinstance(metrics.get("contrastive"), Mapping):
            section = ContrastiveStrategy.report_section(self, metrics)
        else:
            section = super().report_section(metrics)
        if section is None:
            return None
        adapter = metrics.get("adapter")
        facts = dict(section.facts)
        if isinstance(adapter, Mapping):
            facts["adapter"] = _describe(adapter)
        return dataclasses.replace(section, facts=facts, shows=(*section.shows, "adapter"))


def adapter_file_sha(module, spec: AdapterSpec) -> str:
    """The sha256 the adapter file of ``module`` will have in its bundle."""
    from transferkit.bundle import adapter_file_sha256
    from transferkit.finetune.adapters import adapter_state

    return adapter_file_sha256(adapter_state(module, spec))


def _describe(adapter: Mapping[str, Any]) -> str:
    config = adapter.get("config") or {}
    if adapter.get("method") == "lora":
        targets = config.get("target_modules")
        shown = ", ".join(targets) if isinstance(targets, list) else targets
        return f"LoRA r={config.get('r')}, alpha={config.get('alpha')} on {shown}"
    factor = config.get("reduction_factor")
    shown = f"{factor:g}" if isinstance(factor, int | float) and math.isfinite(factor) else factor
    return f"{adapter.get('method')} bottleneck, reduction factor {shown}"
