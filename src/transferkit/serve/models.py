"""The models a server answers for, each under a name: bundles, loaded through
``TransferClassifier`` as ``transferkit predict`` loads them (the frozen backbones they have in
common loaded once), and exported folders, run by the torch-free ``transferkit.runtime``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from transferkit.errors import BadInputError
from transferkit.modalities import Modality, get_modality

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# a bundle written by `transferkit train` lives in RUN/model: the run names it
_RUN_BUNDLE = "model"


@dataclass
class BatchResult:
    """What a model made of a list of inputs, one row per input in their order."""

    proba: np.ndarray  # (N, C); NaN rows where the input could not be read
    reasons: list[str | None]  # why each input could not be read, or None
    named: list[dict[str, Any]]  # how the answer names each input ({"input": ...})


def upload_name(filename: str | None) -> str:
    """A client's file name as an input is named in answers: the last part of it only."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    return name or "upload"


class ServedModel:
    """A model the server predicts with, and what ``/v1/models`` says about it.

    Inputs are ``(file name, bytes)`` uploads, or for a model of texts the texts themselves.
    Subclasses run them (``_run``) and describe themselves.
    """

    format: ClassVar[str]

    def __init__(self, name: str, path: Path, modality: str, labels: list[str]):
        self.name = name
        self.path = path
        self.modality: Modality = get_modality(modality)
        self.labels = list(labels)

    @property
    def backbone(self) -> Any:
        """The object in memory that encodes this model's inputs."""
        raise NotImplementedError

    def shareable_backbone(self) -> tuple[str, ...] | None:
        """What identifies a frozen backbone other models may share (then ``share`` it), or
        None when it is this model's own."""
        return None

    def weights_in_memory(self) -> Any:
        """The object holding the weights this model runs on, which other models may hold
        too (a shared frozen backbone, the base of adapter bundles)."""
        return self.backbone

    def share(self, backbone: Any) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _run(self, keyed: list) -> tuple[np.ndarray, np.ndarray, list[tuple[Any, str]], list]:
        """(probabilities, ok mask, (name, reason) problems, how each input is named)."""
        raise NotImplementedError

    def predict(self, inputs: list) -> BatchResult:
        """Predict ``inputs``; an unreadable upload gives a NaN row and its reason."""
        # a key per upload, so a problem report can tell two uploads of the same name apart
        keyed = [
            (f"{i}/{upload_name(item[0])}", item[1]) if isinstance(item, tuple) else item
            for i, item in enumerate(inputs)
        ]
        proba, ok, problems, named = self._run(keyed)
        why = {str(name): reason for name, reason in problems}
        reasons = []
        for item, good in zip(keyed, ok):
            key = str(Path(item[0])) if isinstance(item, tuple) else str(item)
            reasons.append(None if good else why.get(key, "cannot be read"))
        named = [
            {**entry, "input": upload_name(item[0])} if isinstance(item, tuple) else entry
            for item, entry in zip(inputs, named)
        ]
        return BatchResult(proba, reasons, named)

    def unreadable(self, inputs: list) -> list[dict[str, str]]:
        """The uploads of ``inputs`` that cannot be read, and why (the modality's probe)."""
        found = []
        for item in inputs:
            if isinstance(item, tuple):
                reason = "empty file (0 bytes)" if not item[1] else self.modality.probe(item[1])
                if reason:
                    found.append({"input": upload_name(item[0]), "reason": reason})
        return found


class ServedBundle(ServedModel):
    """A bundle (``transferkit train``), predicted by ``TransferClassifier.predict_details``."""

    format = "bundle"

    def __init__(self, name: str, path: Path, clf, manifest: dict[str, Any]):
        super().__init__(name, path, clf.backbone_.spec.modality, clf.labels_)
        self.clf = clf
        self.manifest = manifest

    @property
    def backbone(self) -> Any:
        return self.clf.backbone_

    def shareable_backbone(self) -> tuple[str, ...] | None:
        if not self.clf.fit_info_.get("backbone_untouched"):
            return None  # trained weights or an adapter: this model's own (see load's fit info)
        bb = self.clf.backbone_
        preprocess = json.dumps(bb.preprocess.to_dict(), sort_keys=True)
        return (bb.name, str(bb.weights_sha256), preprocess)

    def share(self, backbone: Any) -> None:
        self.clf.backbone_ = backbone

    def weights_in_memory(self) -> Any:
        from transferkit.finetune.adapters.shared import base_of

        # an adapter bundle's encoder runs on the process-wide base of its backbone
        return base_of(self.clf.backbone_)

    def describe(self) -> dict[str, Any]:
        mf = self.manifest
        adapter = mf.get("adapter")
        return {
            "name": self.name,
            "format": self.format,
            "modality": self.modality.name,
            "labels": self.labels,
            "backbone": mf["backbone"]["name"],
            "weights_sha256": mf["backbone"].get("weights_sha256"),
            "strategy": mf["strategy"]["name"],
            "head": mf["head"]["name"],
            "metrics": mf.get("metrics"),
            "manifest_sha256": mf.get("manifest_sha256"),
            "adapter": {"method": adapter["method"], "config": adapter["config"]}
            if isinstance(adapter, dict)
            else None,
        }

    def _run(self, keyed: list):
        # strings sent to a server are texts, never names of the server's files
        options = {"literal": True} if self.modality.inline_inputs else {}
        proba, ok, problems, ds = self.clf.predict_details(keyed, **options)
        return proba, ok, problems, [self.modality.describe_input(s) for s in ds.samples]


class ServedExport(ServedModel):
    """An exported folder (``transferkit export``), run by ONNX Runtime without torch."""

    format = "exported"

    def __init__(self, name: str, path: Path, model, batch_size: int):
        super().__init__(name, path, model.modality, model.labels)
        self.model = model
        self.batch_size = batch_size

    @property
    def backbone(self) -> Any:
        return self.model  # backbone and head are one graph

    def describe(self) -> dict[str, Any]:
        mf = self.model.manifest
        source = mf.get("source") or {}
        return {
            "name": self.name,
            "format": self.format,
            "modality": self.modality.name,
            "labels": self.labels,
            "backbone": source.get("backbone"),
            "strategy": source.get("strategy"),
            "head": source.get("head"),
            "metrics": {"quantization": mf.get("quantization"), "parity": mf.get("parity")},
            "manifest_sha256": mf.get("export_sha256"),
        }

    def _run(self, keyed: list):
        proba, ok, problems = self.model.predict_proba(keyed, batch_size=self.batch_size)
        named = [{"input": item} for item in keyed]  # uploads are renamed by ``predict``
        return proba.astype(np.float64), ok, problems, named


def parse_model_arg(arg: str) -> tuple[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named after its folder, or after the run of ``RUN/model``)."""
    name, sep, path = arg.partition("=")
    if not sep or not _NAME.fullmatch(name):
        name, path = "", arg
    folder = Path(path)
    if not name:
        named_by = folder.resolve()
        if named_by.name == _RUN_BUNDLE and named_by.parent.name:
            named_by = named_by.parent
        name = named_by.name
    if not _NAME.fullmatch(name):
        raise BadInputError(
            f"{arg}: the model name {name!r} cannot be part of a URL; name it with "
            "NAME=PATH (letters, digits, '.', '_' and '-')"
        )
    return name, folder


def load_models(
    args: list[str], *, forward_batch: int = 16, threads: int | None = None
) -> dict[str, ServedModel]:
    """Load every model named on the command line, refusing a tampered or unreadable one (the
    bundle's and the exported folder's own checks name the file) and two models under one
    name; frozen backbones that are the same (name, weights, preprocessing) are loaded once.
    ``forward_batch``: inputs per forward pass; ``threads``: of each forward pass (None: every
    core)."""
    models: dict[str, ServedModel] = {}
    for arg in args:
        name, path = parse_model_arg(arg)
        if name in models:
            raise BadInputError(
                f"two models are named {name!r} ({models[name].path} and {path}); name them "
                "apart with NAME=PATH"
            )
        models[name] = _load(name, path, forward_batch, threads)
    share_backbones(models.values())
    return models


def _load(name: str, path: Path, forward_batch: int, threads: int | None) -> ServedModel:
    from transferkit.runtime import is_exported, load_exported

    if is_exported(path):
        return ServedExport(name, path, load_exported(path, threads=threads), forward_batch)
    from transferkit.bundle import read_manifest
    from transferkit.estimator import TransferClassifier
    from transferkit.run_folder import recover_before_reading

    recover_before_reading(path)
    clf = TransferClassifier.load(
        path, progress=False, cache=False, batch_size=forward_batch, threads=threads
    )
    return ServedBundle(name, path, clf, read_manifest(path))


def share_backbones(models) -> None:
    """Point models whose frozen backbones are the same at one instance of it (the first)."""
    seen: dict[tuple[str, ...], Any] = {}
    for model in models:
        key = model.shareable_backbone()
        if key is not None:
            model.share(seen.setdefault(key, model.backbone))


def backbone_groups(models) -> dict[str, list[str]]:
    """For each model, the other models whose backbone weights are the same in memory (one
    frozen backbone instance, or adapter bundles on one base)."""
    by_instance: dict[int, list[str]] = {}
    for model in models:
        by_instance.setdefault(id(model.weights_in_memory()), []).append(model.name)
    return {
        name: [other for other in names if other != name]
        for names in by_instance.values()
        for name in names
    }
