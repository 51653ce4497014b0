"""``--strategy auto`` from evidence and a time budget (issue 17, ``--budget`` minutes).

``strategies/auto.py`` decides by rules measured on our benchmarks; here the data at hand
decides, within the time the user gives. In stages (one log line each; the record goes to
metrics.json ``auto`` and to the report's "What auto compared" section):

1. **Candidates**: ``features`` always. With a trainable backbone, one strategy that trains it:
   the modality's own choice when that trains the encoder (text: ``contrastive``), ``finetune``
   when the modality leaves it to a probe (images); none when the modality decided on frozen
   features (audio: measured, see ``modalities/audio.py``; text an encoder cannot read, see
   ``backbones/scripts.py``) or the encoder is frozen.
2. **Features' evidence** (seconds: the embedding cache): ``features`` fitted and scored on
   examples it did not see, never the test split: the validation split when the run has one
   (the one fine-tuning would watch), else 2-fold cross-fitting on stratified halves of the
   training data (``finetune_guard``'s scheme: every example is scored once, by a model that
   did not see it, and every candidate on the same examples).
3. **Skips that cost nothing**: the frozen embeddings' cross-validated accuracy at
   ``FROZEN_ENOUGH_CV`` (the text rule, measured there); or features misses fewer held-out
   examples than the sign test needs to call anything a clear win.
4. **A probe and the budget**: the candidate's real fit on the evidence data, stopped after
   ``PROBE_STEPS`` optimizer steps. Setup + seconds per step x its planned steps estimates one
   fit; the evidence fits plus the final run (twice for a run the small-data guard will
   cross-fit again) must fit in what is left of the budget, else the candidate is skipped.
5. **The evidence**: the candidate fitted and scored like features. It wins only if, on the
   held-out examples where the two disagree, it is right clearly more often: a one-sided sign
   test at ``finetune_guard.MAX_P`` (the guard's bar, not tuned again here). Otherwise
   ``features``: the cheaper model unless the data shows the costlier one is better.

Where the modality's measured rules already pick the strategy that trains the encoder (text:
``contrastive``), stage 5 is not run: that strategy is kept when the frozen embeddings' check
(stage 3) leaves it and its run fits the budget (stage 4). Its held-out evidence would cost two
more fits of it - double what a text user waits for - and with a few texts a class it is a
handful of disagreements: on election tweets 2 x 16 one disagreement, so the sign test kept
features (0.765) where contrastive scored 0.8025. Its probe fits on exactly what the run fits on
(training and validation examples together: it watches no validation split), so when the
estimate after the timed steps is within the budget left the probe's fit goes on to its end,
showing the run's progress, and is the run's model (``take_fitted``): probing and then fitting
the same thing again had made auto on Rotten Tomatoes 8 a class take 7-8 s where contrastive
alone took 2 s, and on tweets 64 a class (a validation split held out) 22 s against 17 s.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferkit.errors import BadInputError
from transferkit.events import Event, Events

log = logging.getLogger("transferkit")

# a run a user waits for on a CPU laptop, not tuned: on 2 busy cores (BENCHMARKS.md,
# auto_budget) finetune's evidence and final run were estimated at 52 s for Tux Paint 4 x 10
# and 110 s for MNIST 5 a class (10 classes), so sets several times larger still get weighed,
# while a large set's fine-tuning (tens of minutes) is skipped unless given the time
DEFAULT_BUDGET_MINUTES = 10.0
# steps timed after the first (which pays one-off costs: allocation, first-batch tracing)
PROBE_STEPS = 3


def check_budget(budget: Any) -> float:
    """``budget`` as positive minutes, or a BadInputError that says what to pass."""
    value = None
    if not isinstance(budget, bool):
        try:
            value = float(budget)
        except (TypeError, ValueError):
            value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise BadInputError(
            f"--budget must be a positive number of minutes (e.g. --budget 10); got {budget!r}"
        )
    return value


@dataclass
class Weigher:
    """Decides ``--strategy auto`` for one run: ``choose`` calls it with the backbone chosen.

    ``train``: what the evidence fits on; ``val``: the validation split the run will have (None:
    cross-fit ``train``); ``started``: when the run began (``time.perf_counter()``), since the
    budget is the whole run's; ``fit_params``: TransferClassifier settings of the run.
    """

    train: Any
    val: Any
    budget_minutes: float
    started: float
    seed: int = 0
    weights: Any = None
    head: str | None = None
    fit_params: Mapping[str, Any] = field(default_factory=dict)
    # fits made while weighing that are what the run would fit (see _probe's keep)
    fitted: dict[str, Fitted] = field(default_factory=dict)

    def __call__(self, dataset, backbone: str, spec, *, frozen_cv: float | None = None):
        """(strategy, the reason in one sentence, the record for metrics.json ``auto``)."""
        candidates, preset, prior = _candidates(dataset, spec)
        record: dict[str, Any] = {"budget_minutes": self.budget_minutes, "candidates": []}
        if not candidates:
            return _decided(record, "features", preset)
        from transferkit.strategies.auto import FROZEN_ENOUGH_CV

        if frozen_cv is not None and frozen_cv >= FROZEN_ENOUGH_CV:
            why = (
                f"a logistic head on the frozen {spec.name} embeddings scores {frozen_cv:.1%} in "
                f"cross-validation (>= {FROZEN_ENOUGH_CV:.0%}): they already separate the classes"
            )
            return self._all_skipped(record, candidates, why)
        if prior in candidates:
            # the rules pick a strategy that trains the encoder (text: contrastive, which helped
            # the short texts of our text suite); fitting it twice more for held-out evidence
            # would double what the user waits for (issue 17: auto in 1/3 of SetFit's time), so
            # its evidence is the frozen embeddings' check above, and its run must fit the budget
            row = self._weigh(prior, backbone, [(self._run_data(prior), None)], None)
            record["candidates"].append(row)
            if row["status"] == "skipped":
                return _decided(record, "features", f"features kept: {prior} {row['reason']}")
            return _decided(record, prior, f"{prior} chosen: {row['reason']}")
        folds, record["evidence"] = self._folds()
        if min(self.train.class_counts().get(label, 0) for label in self.train.labels) < 2:
            why = "a class has fewer than 2 training examples: none could be scored held out"
            return self._all_skipped(record, candidates, why)
        t0 = time.perf_counter()
        base = self._hits("features", backbone, folds)
        n = len(base)
        record["features"] = {
            "accuracy": float(base.mean()),
            "n_scored": n,
            "seconds": time.perf_counter() - t0,
        }
        log.info(
            "auto: features scores %.3f on %d held-out training examples (%s, %.1f s)",
            base.mean(),
            n,
            record["evidence"],
            record["features"]["seconds"],
        )
        needed = _wins_needed()
        misses = int((~base).sum())
        if misses < needed:
            why = (
                f"features misses {misses} of {n} held-out training examples; a clear win "
                f"(sign test p <= {_max_p()}) needs at least {needed} that it misses"
            )
            return self._all_skipped(record, candidates, why)
        best = None
        for name in candidates:
            row = self._weigh(name, backbone, folds, base)
            record["candidates"].append(row)
            if row.get("clear_win") and (best is None or row["accuracy"] > best["accuracy"]):
                best = row
        if best is not None:
            return _decided(
                record, best["strategy"], f"{best['strategy']} chosen: {best['reason']}"
            )
        why = "; ".join(f"{r['strategy']} {r['reason']}" for r in record["candidates"])
        return _decided(record, "features", f"features kept: {why}")

    # -- the stages ---------------------------------------------------------------------------
    def _folds(self):
        """[(fit on, score on)] and the scheme in words."""
        if self.val is not None:
            return [(self.train, self.val)], f"the validation split ({len(self.val)} examples)"
        first, second, _ = self.train.split(test_size=0.0, val_size=0.5, seed=self.seed)
        return [(first, second), (second, first)], "2-fold cross-fit on the training data"

    def _weigh(self, name: str, backbone: str, folds, base: np.ndarray | None) -> dict[str, Any]:
        """One candidate's row: its probe and estimate, then (if it fits) its evidence against
        features' hits ``base`` (None: the rules' pick, only checked against the budget)."""
        row: dict[str, Any] = {"strategy": name}
        # the rules' pick, fitted on exactly what the run fits on, with the run's settings:
        # its probe may as well be the run - unless the run would watch the validation split
        # the probe cannot see, or a guard the probe switches off would have cross-fitted it
        keep = (
            base is None
            and (self.val is None or not self._uses_validation(name))
            and not self._has_guard(name)
        )
        try:
            probe = self._probe(name, backbone, folds[0][0], keep=keep)
        except BadInputError as exc:  # the candidate refuses this data: the others still run
            row.update(status="skipped", reason=f"skipped: it refuses this data ({exc})")
            log.info("auto: %s %s", name, row["reason"])
            return row
        row["probe"] = probe.to_dict()
        per_fit = [probe.estimate(len(fit_on)) for fit_on, _ in folds] if base is not None else []
        final = probe.estimate(len(self.train) + (0 if self.val is None else len(self.val)))
        guard = self._guard_reruns(name)
        estimate = sum(per_fit) + final * (1 + guard)
        left = self._left()
        row["estimate_seconds"] = estimate
        row["estimate_evidence_seconds"] = sum(per_fit)
        row["budget_left_seconds"] = left
        if name in self.fitted:
            row["status"] = "fits"
            row["probe_is_the_run"] = True
            row["reason"] = (
                f"the measured rule for this data; its run fitted within the budget "
                f"({self.fitted[name].seconds:.0f} s, timed as it went; {left / 60:.1f} min of "
                f"the {self.budget_minutes:g} min budget left), and that fit is the run's model"
            )
            log.info("auto: %s: %s", name, row["reason"])
            return row
        log.info(
            "auto: %s probe: %.2f s a step x %d steps (+ %.1f s setup); evidence and final "
            "run about %.1f min, %.1f min of the budget left",
            name,
            probe.seconds_per_step,
            probe.planned_steps,
            probe.setup_seconds,
            estimate / 60,
            left / 60,
        )
        if estimate > left:
            row["status"] = "skipped"
            row["reason"] = (
                f"skipped: its evidence and final run would take about {estimate / 60:.1f} min "
                f"(measured {probe.seconds_per_step:.2f} s a step x {probe.planned_steps} "
                f"steps{', run twice by the small-data guard' if guard else ''}); "
                f"{max(left, 0) / 60:.1f} min of the {self.budget_minutes:g} min budget left"
            )
            log.info("auto: %s %s", name, row["reason"])
            return row
        if base is None:
            row["status"] = "fits"
            row["reason"] = (
                f"the measured rule for this data; its run fits the budget (about "
                f"{estimate / 60:.1f} min, {left / 60:.1f} min of the {self.budget_minutes:g} min "
                "budget left)"
            )
            log.info("auto: %s: %s", name, row["reason"])
            return row
        t0 = time.perf_counter()
        hits = self._hits(name, backbone, folds)
        wins, losses = int((hits & ~base).sum()), int((base & ~hits).sum())
        from transferkit.strategies.finetune_guard import sign_test_p

        p = sign_test_p(wins, losses)
        clear = wins > losses and p <= _max_p()
        row.update(
            status="compared",
            accuracy=float(hits.mean()),
            features_accuracy=float(base.mean()),
            only_right=wins,
            features_only_right=losses,
            sign_test_p=p,
            seconds=time.perf_counter() - t0,
            clear_win=clear,
            reason=(
                f"{hits.mean():.3f} against features' {base.mean():.3f} on {len(hits)} held-out "
                f"training examples; where they disagree {wins} to {losses} (one-sided sign "
                f"test p = {p:.2f}, a clear win needs p <= {_max_p()}): "
                + ("clearly better" if clear else "not clearly better")
            ),
        )
        log.info("auto: %s %s (%.1f s)", name, row["reason"], row["seconds"])
        return row

    def _all_skipped(self, record, candidates, why: str):
        for name in candidates:
            record["candidates"].append({"strategy": name, "status": "skipped", "reason": why})
        log.info("auto: %s skipped: %s", " and ".join(candidates), why)
        return _decided(record, "features", f"features kept: {why}")

    # -- fitting ------------------------------------------------------------------------------
    def _classifier(self, name: str, backbone: str, progress: bool | Events = False):
        from transferkit.estimator import TransferClassifier

        params = dict(self.fit_params)
        own = dict(params.pop("strategy_params", None) or {})
        if self._has_guard(name):
            # the evidence is this cross-fit; a guard inside each fit would cross-fit again
            own["guard"] = "off"
        params.pop("progress", None)
        return TransferClassifier(
            backbone=backbone,
            strategy=name,
            strategy_params=own,
            head=self.head,
            weights=self.weights,
            seed=self.seed,
            progress=progress,
            **params,
        )

    def _hits(self, name: str, backbone: str, folds) -> np.ndarray:
        """Whether ``name`` fitted on each fold's first part gets each example of its second
        right (an unreadable example counts as wrong for every strategy alike)."""
        hits = []
        for fit_on, held in folds:
            clf = self._classifier(name, backbone).fit(fit_on)
            predicted = clf.predict(held)
            hits.append(np.array([p == s.label for p, s in zip(predicted, held.samples)]))
        return np.concatenate(hits)

    def _probe(self, name: str, backbone: str, fit_on, keep: bool = False) -> Probe:
        """Time ``name``'s fit on ``fit_on``, stopped after its first steps; with ``keep``, a
        fit whose estimate is within the budget left goes on to its end and is kept in
        ``fitted`` (the run then takes it instead of fitting the same thing again)."""
        limit = self._left() if keep else None
        probe = Probe(limit_seconds=limit)
        subscribers = [probe]
        if keep:  # it may be the run's own fit: show its progress as the run's
            from transferkit.progress import as_events

            subscribers += as_events(self.fit_params.get("progress", True)).subscribers
        t0 = time.perf_counter()
        try:
            clf = self._classifier(name, backbone, progress=Events(subscribers)).fit(fit_on)
        except _ProbeDone:
            clf = None
        probe.finish(len(fit_on))
        if keep and clf is not None:
            self.fitted[name] = Fitted(clf, time.perf_counter() - t0, fit_on)
        return probe

    def _left(self) -> float:
        """Seconds of the budget left (the budget is the whole run's)."""
        return self.budget_minutes * 60 - (time.perf_counter() - self.started)

    def take_fitted(self, name: str, train) -> Fitted | None:
        """The fit made while weighing ``name`` when it was fitted on exactly ``train`` (the
        run fitting it with no validation split), else None. Taken once."""
        fitted = self.fitted.pop(name, None)
        if fitted is None or fitted.data != train:
            return None
        return fitted

    def _run_data(self, name: str):
        """What the run fits ``name`` on: the training part when it watches the validation
        split, else training and validation together (contrastive and features train on the
        validation examples rather than waste them; see training.py)."""
        if self.val is None or self._uses_validation(name):
            return self.train
        return self.train.merge(self.val)

    def _uses_validation(self, name: str) -> bool:
        from transferkit.strategies import strategy_class

        return strategy_class(name).capabilities.uses_validation

    def _has_guard(self, name: str) -> bool:
        from transferkit.strategies import strategy_class

        return "guard" in strategy_class(name).Config.__dataclass_fields__

    def _guard_reruns(self, name: str) -> int:
        """How many more full runs the final fit makes for its small-data guard (0 or 1)."""
        from transferkit.strategies import make_strategy

        strategy = make_strategy(name, **(self.fit_params.get("strategy_params") or {}))
        if not hasattr(strategy.config, "guard") or self.val is not None:
            return 0
        from transferkit.strategies.finetune_guard import guard_skip_reason

        # its two half-size fits cost about one full run
        return int(guard_skip_reason(self.train, None, strategy.config) is None)


@dataclass(frozen=True)
class Fitted:
    """A classifier fitted to its end while weighing, its seconds, and the data it was fitted
    on (the run takes it only when that is exactly what the run fits)."""

    classifier: Any
    seconds: float
    data: Any


class _ProbeDone(BaseException):
    """Raised from the probe's event subscriber to end a fit once its steps are timed (a
    BaseException, as the studio's cancel: the strategy's ``except Exception`` must not eat it)."""


class Probe:
    """An event subscriber that times a fit: setup until the first optimizer step, then seconds
    per step over ``PROBE_STEPS`` more, and the steps the fit planned (its stage's start event:
    ``steps``, or ``epochs`` x the batches of its first epoch's counter)."""

    def __init__(self, limit_seconds: float | None = None) -> None:
        # None: always stopped after the timed steps; else the fit goes on to its end when the
        # estimate of the whole fit is within ``limit_seconds`` (then the probe is the run)
        self.limit_seconds = limit_seconds
        self.stopped = False
        self.started = time.perf_counter()
        self.steps: list[float] = []
        self.planned: int | None = None
        self.epochs: int | None = None
        self.per_epoch: int | None = None
        self.setup_seconds = self.seconds_per_step = 0.0
        self.planned_steps = 0
        self.n_fit = 1
        self.completed = False

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.kind == "stage" and data.get("state") == "start" and self.planned is None:
            if "steps" in data:
                self.planned = int(data["steps"])
            elif "epochs" in data:
                self.epochs = int(data["epochs"])
        elif event.kind == "progress" and data.get("state") == "open" and self.epochs:
            if data.get("unit") == "batch" and self.per_epoch is None:
                self.per_epoch = int(data["total"])
        elif event.kind == "step":
            self.steps.append(time.perf_counter())
            if len(self.steps) == PROBE_STEPS + 1:
                self._measure()
                whole = self.setup_seconds + self.seconds_per_step * self.planned_steps
                if self.limit_seconds is None or whole > self.limit_seconds:
                    self.stopped = True
                    raise _ProbeDone

    def _measure(self) -> None:
        """Setup, seconds per step and the planned steps, from the steps timed so far."""
        self.setup_seconds = self.steps[0] - self.started
        self.seconds_per_step = (self.steps[-1] - self.steps[0]) / (len(self.steps) - 1)
        planned = self.planned or (self.epochs or 0) * (self.per_epoch or 0)
        self.planned_steps = max(planned, len(self.steps))

    def finish(self, n_fit: int) -> None:
        """Settle the measurements once the fit ended or was stopped (``n_fit`` examples)."""
        self.n_fit = max(n_fit, 1)
        if not self.stopped:  # the fit ran to its end: its time is the measure
            self.completed = True
            self.setup_seconds = time.perf_counter() - self.started
            self.seconds_per_step = 0.0
            self.planned_steps = len(self.steps)
            return
        self._measure()

    def estimate(self, n_examples: int) -> float:
        """Seconds one fit of ``n_examples`` would take: the steps grow with the examples."""
        scale = n_examples / self.n_fit
        if self.completed:
            return self.setup_seconds * max(scale, 1.0)
        return self.setup_seconds + self.seconds_per_step * self.planned_steps * scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup_seconds": self.setup_seconds,
            "seconds_per_step": self.seconds_per_step,
            "planned_steps": self.planned_steps,
            "timed_steps": max(len(self.steps) - 1, 0),
            "ran_to_end": self.completed,
            "n_examples": self.n_fit,
        }


def _candidates(dataset, spec) -> tuple[list[str], str, str]:
    """(the strategies that train the encoder worth weighing, the reason when there are none,
    the strategy the modality's measured rules pick: what auto keeps when the evidence is not
    clear either way)."""
    from transferkit.modalities import get_modality
    from transferkit.strategies import choose_strategy, strategy_class

    if not spec.trainable:
        return [], choose_strategy(dataset, spec)[1], "features"
    decided = get_modality(dataset.modality).auto_strategy(dataset, spec)
    if decided is None:
        name, prior = "finetune", "features"
    elif strategy_class(decided[0]).capabilities.trains_backbone:
        name = prior = decided[0]
    else:
        return [], decided[1], "features"
    takes = strategy_class(name).capabilities.modalities
    if dataset.modality not in takes:
        return [], f"no strategy that trains the encoder takes {dataset.modality} data", "features"
    return [name], "", prior


def _decided(record: dict[str, Any], strategy: str, reason: str):
    record["winner"], record["reason"] = strategy, reason
    log.info("auto: %s", reason)
    return strategy, reason, record


def _max_p() -> float:
    from transferkit.strategies.finetune_guard import MAX_P

    return MAX_P


def _wins_needed() -> int:
    """The fewest examples a candidate alone must get right (losing none) for a clear win."""
    from transferkit.strategies.finetune_guard import sign_test_p

    wins = 1
    while sign_test_p(wins, 0) > _max_p():
        wins += 1
    return wins


def auto_section(metrics: Mapping[str, Any]):
    """The report's "What auto compared" section (None when auto did not weigh evidence)."""
    from transferkit.strategies import ReportSection

    record = metrics.get("auto")
    if not isinstance(record, Mapping):
        return None
    facts: dict[str, Any] = {"budget": f"{record.get('budget_minutes')} min"}
    if record.get("evidence"):
        facts["evidence"] = record["evidence"]
    features = record.get("features")
    if isinstance(features, Mapping):
        facts["features"] = (
            f"{features.get('accuracy', float('nan')):.3f} on {features.get('n_scored')} "
            "held-out training examples"
        )
    for row in record.get("candidates") or ():
        if isinstance(row, Mapping):
            facts[str(row.get("strategy"))] = str(row.get("reason", ""))
    facts["chosen"] = f"{record.get('winner')}: {record.get('reason', '')}"
    return ReportSection(anchor="auto", title="What auto compared", facts=facts, shows=("auto",))
