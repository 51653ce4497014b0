"""``--backbone auto`` and ``--strategy auto``: the choices a user would otherwise guess.

A missing ``--backbone`` takes the modality's default (``Modality.default_backbone``).
``--backbone auto`` ranks every offline backbone of the data's modality on the *training* data
(``ranking.py``: LogME and friends on frozen embeddings, which land in the embedding cache, so
the winner is not encoded twice) and takes the winner. ``--strategy auto`` then decides from the
data and the machine (``strategies/auto.py``), using the winner's frozen k-NN probe as its
measure of the domain gap. Both reasons end up in metrics.json and the report. A ``weigh``
function (``auto_evidence.Weigher``: ``transferkit train``'s ``--budget``) decides the strategy
from evidence on the data instead, and its record goes to metrics.json ``auto``.

The estimator and ``transferkit train`` share this one function, so that the CLI can decide
before it splits off a validation set (fine-tuning needs one; features do not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transferkit.events import NULL_EVENTS, Events

AUTO = "auto"


@dataclass
class Choice:
    backbone: str
    strategy: str
    backbone_reason: str | None = None
    strategy_reason: str | None = None
    ranking: dict[str, Any] | None = field(default=None, repr=False)
    evidence: dict[str, Any] | None = field(default=None, repr=False)
    # seconds of choosing spent importing libraries (a fit times those as loading, not work)
    load_seconds: float = 0.0

    def describe(self) -> dict[str, Any]:
        """The reasons, as recorded in metrics.json (only those that were decided)."""
        out: dict[str, Any] = {}
        if self.backbone_reason:
            out["backbone_reason"] = self.backbone_reason
        if self.strategy_reason:
            out["strategy_reason"] = self.strategy_reason
        if self.evidence is not None:
            out["auto"] = self.evidence
        return out


def choose(
    dataset,
    backbone: str | None,
    strategy: str,
    *,
    weights=None,
    batch_size: int = 64,
    cache: bool = True,
    runtime: str = "auto",
    events: Events = NULL_EVENTS,
    accept_licence: bool = False,
    weigh: Callable[..., tuple[str, str, dict[str, Any]]] | None = None,
) -> Choice:
    """Resolve ``auto`` (and a missing backbone) into concrete names for ``dataset``; a
    candidate for non-commercial use only is ranked only with ``accept_licence``.

    ``weigh(dataset, backbone, spec, frozen_cv=...)``: decides ``--strategy auto`` from
    evidence, returning (strategy, reason, record); None decides by the rules of
    ``strategies/auto.py``."""
    from transferkit.errors import BadInputError
    from transferkit.modalities import get_modality

    embed = {"batch_size": batch_size, "cache": cache, "runtime": runtime, "events": events}
    modality = get_modality(dataset.modality)
    choice = Choice(backbone or modality.default_backbone(dataset), strategy)
    if choice.backbone == AUTO:
        from transferkit.ranking import candidate_names, rank_backbones

        names = candidate_names(None, dataset.modality)
        choice.ranking = rank_backbones(dataset, names, accept_licence=accept_licence, **embed)
        if choice.ranking["winner"] is None:
            missing = choice.ranking["skipped"]
            skipped = "; ".join(f"{s['backbone']}: {s['reason']}" for s in missing)
            raise BadInputError(f"--backbone auto: no candidate could be scored ({skipped})")
        choice.backbone = choice.ranking["winner"]
        n_scored = len(choice.ranking["ranking"])
        choice.backbone_reason = f"best of {n_scored} ranked: {choice.ranking['explanation']}"
    if choice.strategy == AUTO:
        from transferkit.backbones import get_spec
        from transferkit.strategies import (
            choose_strategy,
            needs_frozen_check,
            needs_separability,
        )

        spec = get_spec(choice.backbone)
        separability = frozen_cv = None
        if weigh is not None:
            if needs_frozen_check(dataset, spec):
                choice.load_seconds += _load_head_libraries()
                frozen_cv = _frozen_cv(dataset, choice, weights=weights, **embed)
            choice.strategy, choice.strategy_reason, choice.evidence = weigh(
                dataset, choice.backbone, spec, frozen_cv=frozen_cv
            )
            return choice
        if needs_separability(dataset, spec):
            separability = _knn_probe(dataset, choice, weights=weights, **embed)
        if needs_frozen_check(dataset, spec):
            frozen_cv = _frozen_cv(dataset, choice, weights=weights, **embed)
        choice.strategy, choice.strategy_reason = choose_strategy(
            dataset, spec, separability=separability, frozen_cv=frozen_cv
        )
    return choice


def _load_head_libraries() -> float:
    """Import what the frozen check's logistic heads need; the seconds it took."""
    import time

    from transferkit.heads import make_head

    started = time.perf_counter()
    make_head("logistic").load_libraries()
    return time.perf_counter() - started


def _knn_probe(dataset, choice: Choice, *, weights, **embed) -> float:
    """Leave-one-out k-NN accuracy of the frozen embeddings (the ranking's, when it ran)."""
    if choice.ranking:
        for row in choice.ranking["ranking"]:
            if row["backbone"] == choice.backbone:
                return float(row["knn_loo"])
    from transferkit.transferability import knn_loo_accuracy

    return knn_loo_accuracy(*_frozen_embeddings(dataset, choice, weights=weights, **embed))


def _frozen_cv(dataset, choice: Choice, *, weights, **embed) -> float | None:
    """Cross-validated accuracy of a logistic head on the frozen embeddings."""
    from transferkit.transferability import cv_logistic_accuracy

    return cv_logistic_accuracy(*_frozen_embeddings(dataset, choice, weights=weights, **embed))


def _frozen_embeddings(dataset, choice: Choice, *, weights, **embed):
    """(embeddings, targets) of the readable examples by the frozen backbone."""
    from transferkit.backbones import resolve_backbone
    from transferkit.modalities import extract_embeddings, get_modality

    ref = resolve_backbone(choice.backbone, weights=weights)
    # measured before the estimator's own check: a backbone of another modality must be refused
    # by name here, not fail inside the extractor
    get_modality(dataset.modality).check_backbone(ref, dataset)
    # cached: a features run afterwards reuses these embeddings as they are
    result = extract_embeddings(ref, dataset, **embed)
    return result.embeddings[result.ok], dataset.targets[result.ok]
