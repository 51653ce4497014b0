"""The shape of a modality: everything that differs between images, texts and audio clips.

One ``Modality`` per kind of input, registered once (``modalities/__init__.py``). The rest of
transferkit asks ``get_modality(dataset.modality).<thing>`` instead of comparing names.
``data/``, ``backbones/``, ``features/`` and ``finetune/`` stay organised by concern; a modality
is the thin adapter that ties their parts together for one kind of input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from transferkit.data.dataset import Dataset, Sample, probe_reasons
from transferkit.errors import BadInputError
from transferkit.events import NULL_EVENTS, Events


@dataclass(frozen=True)
class Baseline:
    """The no-transfer reference a run is compared with (``--baseline``).

    ``strategy`` "scratch": the run's own architecture trained from random weights on the same
    epoch budget; "features" with a ``backbone``: that hand-made encoder with the run's head.
    """

    strategy: str
    backbone: str | None = None


class Modality:
    """What transferkit needs to know about one kind of input.

    Subclasses set the class attributes and implement the data methods (``detect``,
    ``load_labelled``, ``load_inputs``, ``probe``), ``extract`` and ``training_batches``;
    the rest has defaults that suit a modality of files.
    """

    name: ClassVar[str]  # what ``Dataset.modality`` and ``BackboneSpec.modality`` say
    noun: ClassVar[str]  # one input, in messages: "image", "text", "audio clip"
    default_backbone_name: ClassVar[str]
    trainable_example: ClassVar[str]  # encoders that can be fine-tuned, for messages
    # the views extraction can take: the input as it is, and label-preserving changes of it
    views: ClassVar[tuple[str, ...]] = ("identity",)
    # the --augment level that suits it (finetune/augment.py's operations are image operations)
    default_augment: ClassVar[str] = "none"
    # inputs can be given as strings themselves (``predict --text``), not only as files
    inline_inputs: ClassVar[bool] = False
    # keyword options of ``load_labelled`` for tables (``text_col`` is ``--text-col``)
    table_options: ClassVar[tuple[str, ...]] = ()
    baseline: ClassVar[Baseline] = Baseline("scratch")
    # its encoders are CNNs that run faster on CPU a few inputs per forward call
    # (``system.cpu_forward_chunk``); Ray's CPU workers then take such small batches
    small_cpu_passes: ClassVar[bool] = False

    # -- data ---------------------------------------------------------------------------------
    def detect(self, path: Path, **options: Any) -> bool:
        """Whether ``path`` is a labelled dataset of this modality (``options``: the
        ``table_options`` given, which may name the column that tells)."""
        raise NotImplementedError

    def claims(self, item) -> bool:
        """Whether one input to predict (a path, a ``(name, bytes)`` pair, a string) is of
        this modality, judged by its name only."""
        raise NotImplementedError

    def load_labelled(
        self, path: str | os.PathLike[str], *, strict: bool = False, **options: Any
    ) -> Dataset:
        """The labelled Dataset at ``path``; ``options`` are the ``table_options`` given."""
        raise NotImplementedError

    def load_inputs(self, items, **options: Any) -> Dataset:
        """Unlabelled inputs to predict, in the order given: paths (files or folders) and
        ``(name, bytes)`` pairs (files received in memory, never written to disk)."""
        raise NotImplementedError

    def list_inputs(self, items) -> list[Sample]:
        """Every input ``load_inputs`` reads from ``items``, readable or not, in its order (to
        put results back in place of the unreadable ones it leaves out)."""
        return list(self.load_inputs(items).samples)

    def probe(self, source: Path | bytes) -> str | None:
        """Why a file (or its bytes) cannot be used, or None."""
        raise NotImplementedError

    def readable(self, dataset: Dataset) -> tuple[np.ndarray, list[tuple[Path, str]]]:
        """Which samples can be used, and why the others cannot (the loader's probe).

        A safety net: data loaded from disk was probed already, so this finds nothing there; it
        catches files that broke since, or samples of a Dataset built in memory.
        """
        reasons = probe_reasons([s.raw for s in dataset.samples], self.probe)
        problems = [(s.path, r) for s, r in zip(dataset.samples, reasons) if r is not None]
        return np.array([r is None for r in reasons], dtype=bool), problems

    # -- backbones ------------------------------------------------------------------------------
    def accepts(self, spec) -> bool:
        """Whether the backbone ``spec`` encodes inputs of this modality."""
        return spec.modality == self.name

    def default_backbone(self, dataset: Dataset) -> str:
        """The backbone used for ``dataset`` when none is named."""
        return self.default_backbone_name

    def check_backbone(self, backbone, dataset: Dataset) -> None:
        """Refuse a ``backbone`` that cannot read ``dataset``, naming one that can."""
        if not self.accepts(backbone.spec):
            raise BadInputError(
                f"{dataset.source} holds {self.name} data but the backbone {backbone.name} "
                f"encodes {backbone.spec.modality}s; pick a {self.name} backbone, e.g. "
                f"--backbone {self.default_backbone(dataset)} (see `transferkit models`)."
            )

    def export_inputs(self, backbone) -> dict[str, Any]:
        """What a model exported from ``backbone`` takes as input (for ONNX export, a server)."""
        raise NotImplementedError

    # -- features and training -------------------------------------------------------------------
    def extract(
        self,
        backbone,
        dataset: Dataset,
        *,
        batch_size: int = 64,
        cache=True,
        events: Events = NULL_EVENTS,
        runtime: str = "auto",
        num_threads: int | None = None,
        view: str = "identity",
    ):
        """Embeddings of every sample of ``dataset`` by the frozen ``backbone``
        (an ``ExtractionResult``); ``view`` one of ``views``."""
        self._check_view(view)
        options = {"batch_size": batch_size, "cache": cache, "events": events}
        options.update(runtime=runtime, num_threads=num_threads, view=view)
        return self._extract(backbone, dataset, options)

    def _extract(self, backbone, dataset: Dataset, options: dict[str, Any]):
        """The modality's extractor, given the options of ``extract`` (it takes those it uses)."""
        raise NotImplementedError

    def training_batches(self, dataset: Dataset, module, *, batch_size: int, augment: str):
        """The fine-tuning engine's batches of ``dataset`` for the backbone ``module``."""
        raise NotImplementedError

    def auto_strategy(self, dataset: Dataset, spec) -> tuple[str, str] | None:
        """``--strategy auto``'s choice for a trainable encoder of this modality, with the
        reason; None to decide from a probe of the frozen embeddings."""
        return None

    # -- checks and the report ------------------------------------------------------------------
    def report_overlap(self, train: Dataset, test: Dataset) -> int:
        """Warn when test inputs also occur in the training data; how many do."""
        return 0

    def non_latin_share(self, dataset: Dataset) -> float:
        """Share of the letters in ``dataset`` outside the Latin script (0 without letters)."""
        return 0.0

    def preview(self, sample: Sample) -> dict[str, Any]:
        """The report's widget for one example: ``{"widget": "thumbnail" | "snippet" |
        "player", ...}`` with what it shows."""
        return {"widget": "thumbnail", "path": str(sample.path)}

    def describe_input(self, sample: Sample) -> dict[str, Any]:
        """How ``predict`` names an input in its output line."""
        return {"input": str(sample.path)}

    def _check_view(self, view: str) -> None:
        if view not in self.views:
            raise ValueError(f"view must be one of {self.views} for {self.noun}s; got {view!r}")


def refuse_options(path: Path, options: dict[str, Any], accepted: tuple[str, ...], noun: str):
    """Raise naming the ``options`` given for ``path`` that its reader does not take
    (``accepted``: none for a folder of class sub-folders; ``noun``: what its rows hold)."""
    extra = [k for k in options if k not in accepted]
    if not extra:
        return
    flags = ", ".join(_flag(k) for k in extra)
    if not accepted:
        raise BadInputError(
            f"{path} is a folder of class sub-folders; {flags} only apply to tables "
            "(CSV, TSV, JSONL, Parquet)."
        )
    raise BadInputError(
        f"{path} is a table of {noun}s; {flags} {'does' if len(extra) == 1 else 'do'} not apply "
        f"to it (its columns are named with {', '.join(_flag(k) for k in accepted)})."
    )


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")
