"""The strategy contract: how knowledge moves from the pretrained backbone to the new task.

A strategy never reads files or prints: it gets the backbone, the data to learn from
(``FitData``) and how to run (``FitContext``: a function that embeds a dataset — decoding and
caching live elsewhere —, a fresh head, the seed, checkpointing), and returns what it did.
What it can do is declared as data (``Capabilities``, ``options``), so the CLI and the training
run ask instead of guessing; it contributes its own metrics block and report section, and
restores what it changed when a bundle is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.heads import Head
from transferkit.modalities import MODALITIES

# by default a strategy takes every registered modality
ALL_MODALITIES = frozenset(MODALITIES)


@dataclass(frozen=True)
class FitData:
    """What a strategy learns from."""

    train: Any  # a labelled Dataset
    val: Any = None  # held out, for strategies whose capabilities.uses_validation
    target: Any = None  # unlabelled inputs of the target domain
    source: Any = None  # labelled data of another (source) domain
    sample_weight: np.ndarray | None = None  # one weight per train sample


@dataclass
class FitContext:
    """How a strategy runs."""

    # embed(dataset, view="identity", backbone=None) -> ExtractionResult
    embed: Callable[..., Any]
    head: Head  # a fresh head
    seed: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False
    events: Events = NULL_EVENTS  # stages, epochs, steps, progress (see transferkit.events)


@dataclass(frozen=True)
class Capabilities:
    """What a strategy does with the data, for the CLI and the training run to ask."""

    uses_validation: bool = False
    needs_target: bool = False
    accepts_source: bool = False
    accepts_sample_weight: bool = False
    trains_backbone: bool = False  # True: the bundle stores the trained backbone
    pretrained_weights: bool = True  # False: the backbone starts from random weights
    modalities: frozenset[str] = ALL_MODALITIES


@dataclass(frozen=True)
class Option:
    """One command-line option of a strategy, as data (the CLI builds its flag from it).

    ``valid`` checks a parsed value and ``must_be`` says what it checks, for the error
    ("must be greater than 0, got -1"). Strategies that share a flag share the Option.
    """

    flag: str
    field: str
    type: type
    help: str
    choices: tuple | None = None
    valid: Callable[[Any], bool] | None = None
    must_be: str = ""


@dataclass(frozen=True)
class Chart:
    """One chart of per-epoch curves: ``keys`` of the history rows against their ``epoch``."""

    title: str
    keys: tuple[str, ...]
    fixed_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ReportSection:
    """A strategy's part of report.html, as data (the report renders it).

    ``history``: rows with an ``epoch`` (and a ``stage``, whose changes are marked), drawn as
    ``charts``; ``facts``: a key/value table; ``shows``: the metrics.json keys the section
    presents, which the report's "Details" then leaves out.
    """

    anchor: str
    title: str
    history: tuple[Mapping[str, Any], ...] = ()
    charts: tuple[Chart, ...] = ()
    best_epoch: int | None = None
    note: str = ""  # how to read the charts
    facts: Mapping[str, Any] = field(default_factory=dict)
    shows: tuple[str, ...] = ()


@dataclass
class StrategyResult:
    """What fitting produced, for the manifest and the report."""

    n_train: int
    info: dict[str, Any] = field(default_factory=dict)
    # strategies that train the backbone return it (and the head trained with it)
    backbone: Any = None
    head: Any = None


class Strategy:
    name: ClassVar[str]
    Config: ClassVar[type]
    capabilities: ClassVar[Capabilities] = Capabilities()
    options: ClassVar[tuple[Option, ...]] = ()
    default_head: ClassVar[str] = "logistic"
    # settings for the default head when the user sets none (e.g. no C search after contrastive)
    default_head_params: ClassVar[dict] = {}

    def __init__(self, **params: Any):
        self.config = self.Config(**params)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": asdict(self.config)}

    def settle(self, data: FitData, spec) -> None:
        """Resolve the settings left to the data (``auto``) before the head is chosen: the
        estimator calls it with the training data and the chosen backbone's spec."""

    def fit(self, backbone, data: FitData, ctx: FitContext) -> StrategyResult:
        """Fit on ``data.train`` (and what else ``data`` carries that the strategy uses)."""
        raise NotImplementedError

    def metrics_block(self, result: StrategyResult) -> dict[str, Any]:
        """What of ``result`` goes into metrics.json (merged at its top level)."""
        return {}

    def report_section(self, metrics: Mapping[str, Any]) -> ReportSection | None:
        """This strategy's section of report.html, from the run's metrics (None: no section)."""
        return None

    def restore(self, backbone, bundle):
        """The backbone as this strategy left it, from ``bundle``: a frozen one is the
        pretrained one, whose weights must be those the model was trained on."""
        check_pretrained_weights(backbone, bundle)
        return backbone

    def bundle_parts(self, backbone, info: Mapping[str, Any]) -> dict[str, Any]:
        """What the bundle keeps of ``backbone`` as ``fit`` (or ``restore``) left it:
        ``save_bundle`` keyword arguments, and under ``"backbone"`` entries of the manifest's
        backbone object. A frozen backbone: nothing (the manifest names its pretrained
        weights); one that trained: all its weights (``info``: the fit's). A strategy that
        trains but whose guard kept the pretrained weights untouched (they kept their identity,
        ``info["pretrained_weights_sha256"]``) is saved as a frozen one: a features-sized
        bundle that loads the installed weights after checking their sha256."""
        if not self.capabilities.trains_backbone or untouched(backbone, info):
            return {}
        return {
            "backbone_state": {k: v.detach().cpu() for k, v in backbone.state_dict().items()},
            "backbone": {"pretrained_weights_sha256": info.get("pretrained_weights_sha256")},
        }


def parameter_counts(module, head_arrays: Mapping[str, Any] | None = None) -> dict[str, int]:
    """``metrics["parameters"]``: how many numbers training set (the parameters of ``module``
    that require gradients, plus a head fitted apart from it: ``head_arrays``) out of all the
    model holds."""
    trained = sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = sum(p.numel() for p in module.parameters())
    head = sum(int(np.asarray(a).size) for a in (head_arrays or {}).values())
    return {"trained": int(trained + head), "total": int(total + head)}


def parameters_fact(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The report's fact line for ``metrics["parameters"]`` (nothing when absent)."""
    counts = metrics.get("parameters")
    if not isinstance(counts, Mapping) or not counts.get("total"):
        return {}
    trained, total = int(counts["trained"]), int(counts["total"])
    return {"parameters trained": f"{trained:,} of {total:,} ({100 * trained / total:.2f} %)"}


def check_pretrained_weights(backbone, bundle) -> None:
    """Refuse pretrained weights other than those ``bundle`` was trained on, naming both."""
    from transferkit.errors import BundleError

    info = bundle.manifest["backbone"]
    if not info.get("weights_sha256"):
        raise BundleError(
            f"{bundle.path} was trained on a randomly initialised backbone, whose weights are "
            "not stored; it cannot be reloaded. Re-train with pretrained weights."
        )
    if backbone.weights_sha256 != info["weights_sha256"]:
        raise BundleError(
            f"{bundle.path} was trained on {info['name']} weights with sha256 "
            f"{info['weights_sha256'][:16]}…, but the weights found now "
            f"({backbone.weights_source}) have sha256 {str(backbone.weights_sha256)[:16]}…. "
            "Install the original weights or pass them with --weights PATH."
        )


def untouched(backbone, info: Mapping[str, Any]) -> bool:
    """Whether ``backbone`` still holds the pretrained weights a fit started from: the fit says
    so (``info["backbone_untouched"]``: a guard kept them) and the module kept their identity,
    ``info["pretrained_weights_sha256"]``."""
    pretrained = info.get("pretrained_weights_sha256")
    return (
        info.get("backbone_untouched") is True
        and pretrained is not None
        and backbone.weights_sha256 == pretrained
    )


def restore_trained_backbone(backbone, bundle):
    """The backbone module with the trained weights ``bundle`` stores (verified by their
    sha256 when read), under the identity the manifest records; for a bundle without them
    (its guard kept the pretrained weights), the installed pretrained ones, checked as a
    frozen strategy's are."""
    if bundle.backbone_file is None:
        # exactly what a frozen strategy restores (so `serve` can share it with their bundles)
        check_pretrained_weights(backbone, bundle)
        return backbone
    module = backbone.materialize()
    bundle.load_backbone_state(module)
    strategy = bundle.manifest["strategy"]["name"]
    module.mark_trained(
        state_sha256=bundle.manifest["backbone"]["weights_sha256"],
        source=f"{strategy} bundle {bundle.path}",
    )
    return module.eval()
