"""What every feature-level and instance-based adaptation method shares.

Such a method changes only what the head learns from — it moves, re-weights, selects or adds
training rows in the frozen embedding space — so the bundle stays a plain "frozen backbone +
head" and predicting a target-domain input needs nothing the method computed. A method
implements ``prepare`` (embeddings in, the head's training set out); the base class embeds,
fits the head and records what the method did. ``--strategy adapt --method auto`` calls
``prepare`` of each candidate to compare them without target labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from transferkit.errors import BadInputError
from transferkit.strategies.adapt.selection import describe_selection, select_source
from transferkit.strategies.base import (
    Capabilities,
    FitContext,
    FitData,
    ReportSection,
    Strategy,
    StrategyResult,
)
from transferkit.strategies.features import TrainingEmbeddings, embed_training_set


@dataclass(frozen=True)
class DomainEmbeddings:
    """The frozen embeddings an adaptation method reads."""

    source: TrainingEmbeddings  # labelled training rows (``.X``, ``.y``, ``.rows``, ``.groups``)
    target: np.ndarray  # (n_target, d) readable unlabelled target inputs
    source_weight: np.ndarray | None = None  # one per row of ``source.X`` (user's weights)
    selection: dict | None = None  # what --source-select kept and dropped (None: not asked)
    labels: tuple[str, ...] = ()  # class names by index, for per-class metrics

    def label(self, index: int) -> str:
        """The name of class ``index`` (its number when the names are not known)."""
        return str(self.labels[index]) if index < len(self.labels) else str(index)


@dataclass(frozen=True)
class HeadTrainingSet:
    """What the head is fitted on: rows, class indices, optional weights and groups (rows
    that are views of one sample share a group, for the head's internal CV), and what the
    method did (merged into metrics.json under the method's name)."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray | None = None
    groups: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # for each row of X, the row of the source embeddings it is (-1: no labelled source row,
    # e.g. a pseudo-labelled target row); None: X's rows are the source rows, in order
    source_rows: np.ndarray | None = None

    def source_part(self, n_source: int) -> tuple[np.ndarray, np.ndarray]:
        """(the rows of X that are labelled source rows, the source row each is); refused
        (ValueError) when X's rows are not the ``n_source`` source rows and nothing says which."""
        if self.source_rows is None:
            if len(self.X) != n_source:
                raise ValueError(
                    f"its {len(self.X)} training rows are not the {n_source} source rows and it "
                    "does not say which are (HeadTrainingSet.source_rows)"
                )
            return np.arange(n_source), np.arange(n_source)
        keep = np.flatnonzero(np.asarray(self.source_rows) >= 0)
        return keep, np.asarray(self.source_rows)[keep]


ADAPT_CAPABILITIES = Capabilities(needs_target=True, accepts_sample_weight=True)


class FeatureAdaptation(Strategy):
    """Base of the frozen-embedding adaptation strategies: subclasses implement ``prepare``."""

    capabilities: ClassVar[Capabilities] = ADAPT_CAPABILITIES
    # "feature" (moves the rows) or "instance" (weights / selects them)
    family: ClassVar[str] = "feature"
    title: ClassVar[str] = ""  # of its report section

    def prepare(self, emb: DomainEmbeddings, seed: int) -> HeadTrainingSet:
        """The head's training set, from the source and target embeddings."""
        raise NotImplementedError

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        emb = embed_domains(
            backbone,
            data,
            ctx,
            getattr(self.config, "augment", "light"),
            getattr(self.config, "source_select", None),
        )
        prepared = self.training_set(emb, ctx)
        weights = {} if prepared.weight is None else {"sample_weight": prepared.weight}
        chosen_on_labelled_rows(ctx.head, prepared, ctx.seed)
        ctx.head.fit(prepared.X, prepared.y, seed=ctx.seed, groups=prepared.groups, **weights)
        info = dict(emb.source.info)
        info[self.name] = dict(prepared.info, n_target=len(emb.target))
        if emb.selection is not None:
            info["source_select"] = emb.selection
        info["domain_gap"] = gap_change(emb, prepared, ctx.seed)
        return StrategyResult(n_train=emb.source.n_train, info=info)

    def metrics_block(self, result: StrategyResult) -> dict:
        keys = (self.name, "source_select", "domain_gap")
        return {key: result.info[key] for key in keys if key in result.info}

    def training_set(self, emb: DomainEmbeddings, ctx: FitContext) -> HeadTrainingSet:
        """What ``fit`` fits the head on: ``prepare``'s training set (the ``adapt`` chooser
        compares candidates with the run's head here)."""
        return self.prepare(emb, ctx.seed)

    def report_facts(self, block: dict) -> dict:
        """The method's own facts for its report section, from its metrics block."""
        return {}

    def report_section(self, metrics) -> ReportSection | None:
        block = metrics.get(self.name)
        if not isinstance(block, dict):
            return None
        facts = {"target inputs": block.get("n_target"), **self.report_facts(block)}
        shows: tuple[str, ...] = (self.name,)
        if isinstance(metrics.get("source_select"), dict):
            facts.update(describe_selection(metrics["source_select"]))
            shows += ("source_select",)
        return ReportSection(self.name, self.title, facts=facts, shows=shows)


def chosen_on_labelled_rows(head, prepared: HeadTrainingSet, seed: int) -> None:
    """Fix ``head``'s regularisation to the one its grid picks on the labelled rows alone,
    when the training set also holds rows the method labelled itself (selftrain's target
    rows): cross-validating on its own pseudo-labels would reward agreeing with them, and on
    2 cores the grid over source + pseudo-labelled rows made selftrain 10.8x source-only's
    fit time (MNIST -> digits, 1,200 + ~900 rows of 1,280 dimensions; benchmarks adapt). The
    head then fits once, on every row, with that C (recorded in the bundle's head params)."""
    from dataclasses import replace

    from transferkit.heads import make_head

    if prepared.source_rows is None or (np.asarray(prepared.source_rows) >= 0).all():
        return
    grid = getattr(head.config, "Cs", ())
    if len(grid) <= 1:
        return
    rows = np.flatnonzero(np.asarray(prepared.source_rows) >= 0)
    probe = make_head(head.name, **head.get_params())
    weights = {} if prepared.weight is None else {"sample_weight": prepared.weight[rows]}
    groups = None if prepared.groups is None else prepared.groups[rows]
    probe.fit(prepared.X[rows], prepared.y[rows], seed=seed, groups=groups, **weights)
    head.config = replace(head.config, Cs=(float(probe.info_["C"]),))


def embed_domains(
    backbone, data: FitData, ctx: FitContext, augment: str, source_select: int | None = None
) -> DomainEmbeddings:
    """Embed the training set (with its views) and the readable target inputs; with
    ``source_select``, keep only that many training examples, those most like the target."""
    source = embed_training_set(backbone, data.train, ctx.embed, augment)
    target = ctx.embed(data.target)
    found = target.embeddings[target.ok]
    if len(found) < 2:
        raise BadInputError(
            f"--target {data.target.source}: adaptation needs at least 2 readable target "
            f"inputs; {len(found)} could be read. Add target inputs."
        )
    source.info["seconds_extract"] += target.seconds
    selection = None
    if source_select is not None:
        source, selection = select_source(source, found, source_select, data.train.labels)
    weight = None if data.sample_weight is None else data.sample_weight[source.rows]
    return DomainEmbeddings(
        source=source,
        target=found,
        source_weight=weight,
        selection=selection,
        labels=tuple(data.train.labels),
    )


def gap_change(emb: DomainEmbeddings, prepared: HeadTrainingSet, seed: int) -> dict[str, Any]:
    """The proxy A-distance of the source to the target before the method and after it (the
    source rows it fits the head on, with its weights): what the adaptation changed."""
    from transferkit.strategies.adapt.domain_classifier import proxy_a_distance

    before = proxy_a_distance(emb.source.X, emb.target, seed=seed)
    out = {"before": before["a_distance"], "domain_error_before": before["domain_error"]}
    try:
        rows, source_rows = prepared.source_part(len(emb.source.X))
    except ValueError as exc:
        return {**out, "after": None, "why_no_after": str(exc)}
    weight = None if prepared.weight is None else prepared.weight[rows]
    if weight is None and _unchanged(emb.source.X, prepared.X[rows], source_rows):
        # the method left the source rows as they were (selftrain adds target rows; adapt may
        # keep source-only): the same rows, subsample and folds would measure the same again
        return {**out, "after": out["before"], "domain_error_after": out["domain_error_before"]}
    after = proxy_a_distance(prepared.X[rows], emb.target, source_weight=weight, seed=seed)
    return {**out, "after": after["a_distance"], "domain_error_after": after["domain_error"]}


def _unchanged(source: np.ndarray, rows: np.ndarray, source_rows: np.ndarray) -> bool:
    """Whether ``rows`` (source row ``source_rows[i]`` each) are the source rows, in order."""
    return (
        len(source_rows) == len(source)
        and bool((source_rows == np.arange(len(source))).all())
        and np.array_equal(rows, source)
    )
