"""``adapt``: choose the adaptation method without target labels, and never do harm.

``--method auto`` (the default) validates source-only (the head on the plain training
embeddings) and every registered frozen-embedding method (each ``FeatureAdaptation``
subclass, with its defaults: a new one joins without an edit here) with DEV (see
validator.py), then keeps source-only unless a method's estimated target accuracy beats it
by ``margin`` — and says so. The bundle is the chosen candidate's: frozen backbone + head.
``--method NAME`` means ``--strategy NAME`` (``resolve_method``, before anything else).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from transferkit.errors import BadInputError
from transferkit.strategies.adapt.base import (
    DomainEmbeddings,
    FeatureAdaptation,
    HeadTrainingSet,
)
from transferkit.strategies.adapt.config import SOURCE_SELECT, AdaptConfig, check_number
from transferkit.strategies.adapt.validator import SOURCE_ONLY, Validation, choose, validate
from transferkit.strategies.base import FitContext, Option
from transferkit.strategies.registry import STRATEGIES, register_strategy

AUTO = "auto"
MARGIN = 0.02

METHOD = Option(
    "--method",
    "method",
    str,
    "adapt: auto (default) chooses among source-only and the frozen-embedding methods without "
    "target labels (DEV), keeping source-only unless a method is expected to beat it; a "
    "strategy's name (e.g. coral, dann) means --strategy NAME",
)
GUARD_MARGIN = Option(
    "--adapt-margin",
    "margin",
    float,
    f"adapt: how much higher (accuracy, 0-1) a method's estimated target accuracy must be than "
    f"source-only's for it to be chosen (default {MARGIN})",
    valid=lambda v: 0 <= v < 1,
    must_be="in [0, 1)",
)


@dataclass
class ChooserConfig(AdaptConfig):
    """``method``: only "auto" here (a named method is its own strategy, see
    ``resolve_method``); ``margin``: the guard's, in accuracy (0.02 = 2 points)."""

    method: str = AUTO
    margin: float = MARGIN

    strategy: ClassVar[str] = "adapt"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method != AUTO:
            raise BadInputError(
                f"method {self.method!r} of the adapt strategy names a strategy of its own: use "
                f"strategy={self.method!r} (the command line's --strategy adapt --method NAME "
                "does this), or method='auto' to choose without target labels"
            )
        check_number("margin", "--adapt-margin", self.margin, low=0, high=1, high_open=True)


def adaptation_methods() -> list[str]:
    """Every registered strategy that adapts to a target domain (what ``--method`` may name):
    from its unlabelled inputs (--target) or, with a few labelled target examples, from a
    labelled source domain (--source: tradaboost)."""
    return [
        n
        for n, c in STRATEGIES.items()
        if (c.capabilities.needs_target or c.capabilities.accepts_source) and n != "adapt"
    ]


def resolve_method(strategy: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``adapt`` with a named method is that method's strategy: (strategy, params) to run.

    A method outside ``adapt`` is refused, as is a name that is no adaptation strategy.
    """
    method = params.get("method")
    if strategy != "adapt":
        if method is not None:
            raise BadInputError(
                f"--method chooses the adaptation method of --strategy adapt; with --strategy "
                f"{strategy} drop it, or use --strategy adapt --method {method}"
            )
        return strategy, params
    if method in (None, AUTO):
        return strategy, params
    names = adaptation_methods()
    if method not in names:
        raise BadInputError(
            f"--method {method!r} is not an adaptation method; use auto or one of "
            f"{', '.join(names)}"
        )
    rest = {k: v for k, v in params.items() if k not in ("method", "margin")}
    return method, rest


def candidates() -> dict[str, type[FeatureAdaptation]]:
    """The registered frozen-embedding methods the chooser compares (not those that need a
    labelled source domain or train the backbone)."""
    return {
        name: cls
        for name, cls in STRATEGIES.items()
        if issubclass(cls, FeatureAdaptation)
        and cls is not AdaptStrategy
        and not cls.capabilities.accepts_source
        and not cls.capabilities.trains_backbone
    }


def source_only(emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
    """The training embeddings as they are: no adaptation."""
    return HeadTrainingSet(
        X=emb.source.X, y=emb.source.y, weight=emb.source_weight, groups=emb.source.groups
    )


def choose_method(
    emb: DomainEmbeddings, methods: dict, make_head, seed: int, margin: float, events=None
):
    """Validate source-only and each of ``methods`` (name -> ``prepare(emb, seed)``), choose
    with the guard; (the choice, the chosen candidate's training set on all of ``emb``)."""
    preparers = {SOURCE_ONLY: source_only, **methods}
    validations: list[Validation] = []
    bar = None if events is None else events.progress(len(preparers), "adapt: validating", "method")
    for name, prepare in preparers.items():
        validations.append(validate(name, prepare, emb, make_head, seed))
        if bar is not None:
            bar.update(1, method=name)
    if bar is not None:
        bar.close()
    choice = choose(validations, margin)
    return choice, preparers[choice.chosen](emb, seed)


def validation_heads(head, emb: DomainEmbeddings, seed: int):
    """A factory of unfitted heads like ``head``, for the validation fits. A head that picks
    its C by cross-validation gets the C it picks on the plain training rows, fixed: the
    validation varies the training rows, not the model (as the learning curve does), and ten
    fits with a fixed C cost what one grid search costs."""
    from transferkit.heads import make_head

    params = head.get_params()
    if len(params.get("Cs", ())) > 1:
        probe = make_head(head.name, **params)
        probe.fit(emb.source.X, emb.source.y, seed=seed, groups=emb.source.groups)
        params = {**params, "Cs": (probe.info_["C"],)}
    return lambda: make_head(head.name, **params)


@register_strategy
class AdaptStrategy(FeatureAdaptation):
    """Domain adaptation on frozen embeddings, the method chosen without target labels:
    source-only and each frozen-embedding method are scored by Deep Embedded Validation, and
    source-only is kept unless a method is expected to beat it by --adapt-margin."""

    name = "adapt"
    title = "Adaptation method, chosen without target labels"
    Config = ChooserConfig
    options = (METHOD, GUARD_MARGIN, SOURCE_SELECT)

    def prepare(self, emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
        from transferkit.heads import make_head

        return self._choose(emb, validation_heads(make_head(), emb, seed), seed, None)

    def training_set(self, emb: DomainEmbeddings, ctx: FitContext) -> HeadTrainingSet:
        heads = validation_heads(ctx.head, emb, ctx.seed)
        return self._choose(emb, heads, ctx.seed, ctx.events)

    def _choose(self, emb, make_head, seed: int, events) -> HeadTrainingSet:
        methods = {name: cls().prepare for name, cls in candidates().items()}
        choice, prepared = choose_method(emb, methods, make_head, seed, self.config.margin, events)
        info = {**choice.record(), "chosen_info": prepared.info}
        return replace(prepared, info=info)

    def report_facts(self, block: dict) -> dict:
        facts: dict[str, Any] = {"chosen": block.get("chosen"), "why": block.get("reason")}
        for name, found in (block.get("candidates") or {}).items():
            if not isinstance(found, dict):
                continue
            if found.get("skipped"):
                facts[name] = f"not validated: {found['skipped']}"
                continue
            facts[name] = (
                f"estimated target accuracy {_f3(found.get('estimated_target_accuracy'))}, "
                f"held-out source accuracy {_f3(found.get('held_out_source_accuracy'))}, "
                f"domain classifier accuracy {_f3(found.get('domain_classifier_accuracy'))}"
            )
        facts["validator"] = block.get("validator")
        return facts


def _f3(value) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"
