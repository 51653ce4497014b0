"""The models a server answers for, each under a name: bundles, loaded through
``TransferClassifier`` as ``transferkit predict`` loads them, and the frozen backbones they
have in common loaded once."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

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
    """A bundle the server predicts with, and what ``/v1/models`` says about it."""

    def __init__(self, name: str, path: Path, clf, manifest: dict[str, Any]):
        self.name = name
        self.path = path
        self.clf = clf
        self.manifest = manifest
        self.modality: Modality = get_modality(clf.backbone_.spec.modality)
        self.labels: list[str] = list(clf.labels_)

    @property
    def shareable_backbone(self) -> tuple[str, ...] | None:
        """What identifies a frozen backbone this model can share with others (name, weights,
        preprocessing); None when training changed it (it is this model's own)."""
        if self.clf.strategy_.capabilities.trains_backbone:
            return None
        bb = self.clf.backbone_
        preprocess = json.dumps(bb.preprocess.to_dict(), sort_keys=True)
        return (bb.name, str(bb.weights_sha256), preprocess)

    def describe(self) -> dict[str, Any]:
        mf = self.manifest
        return {
            "name": self.name,
            "format": "bundle",
            "modality": self.modality.name,
            "labels": self.labels,
            "backbone": mf["backbone"]["name"],
            "weights_sha256": mf["backbone"].get("weights_sha256"),
            "strategy": mf["strategy"]["name"],
            "head": mf["head"]["name"],
            "metrics": mf.get("metrics"),
            "manifest_sha256": mf.get("manifest_sha256"),
        }

    def predict(self, inputs: list) -> BatchResult:
        """Predict ``inputs``: ``(file name, bytes)`` uploads, or for a model of texts the
        texts themselves, through the same path as ``transferkit predict``."""
        # a key per upload, so an answer can tell two uploads of the same name apart
        keyed = [
            (f"{i}/{upload_name(item[0])}", item[1]) if isinstance(item, tuple) else item
            for i, item in enumerate(inputs)
        ]
        # strings sent to a server are texts, never names of the server's files
        options = {"literal": True} if self.modality.inline_inputs else {}
        proba, ok, problems, ds = self.clf.predict_details(keyed, **options)
        why = {str(path): reason for path, reason in problems}
        reasons = [
            None if good else why.get(str(sample.path), "cannot be read")
            for good, sample in zip(ok, ds.samples)
        ]
        named = []
        for item, sample in zip(inputs, ds.samples):
            entry = self.modality.describe_input(sample)
            if isinstance(item, tuple):  # named by the client's name, not the key
                entry = {**entry, "input": upload_name(item[0])}
            named.append(entry)
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


def load_models(args: list[str], **params: Any) -> dict[str, ServedModel]:
    """Load every model named on the command line, refusing a tampered or unreadable one (the
    bundle's own checks name the file) and two models under one name; frozen backbones that
    are the same (name, weights, preprocessing) are loaded once and shared."""
    from transferkit.bundle import read_manifest
    from transferkit.estimator import TransferClassifier
    from transferkit.run_folder import recover_before_reading

    models: dict[str, ServedModel] = {}
    for arg in args:
        name, path = parse_model_arg(arg)
        if name in models:
            raise BadInputError(
                f"two models are named {name!r} ({models[name].path} and {path}); name them "
                "apart with NAME=PATH"
            )
        recover_before_reading(path)
        clf = TransferClassifier.load(path, progress=False, cache=False, **params)
        models[name] = ServedModel(name, path, clf, read_manifest(path))
    share_backbones(models.values())
    return models


def share_backbones(models) -> None:
    """Point models whose frozen backbones are the same at one instance of it (the first)."""
    seen: dict[tuple[str, ...], Any] = {}
    for model in models:
        key = model.shareable_backbone
        if key is not None:
            model.clf.backbone_ = seen.setdefault(key, model.clf.backbone_)


def backbone_groups(models) -> dict[str, list[str]]:
    """For each model, the other models that use the same backbone instance."""
    by_instance: dict[int, list[str]] = {}
    for model in models:
        by_instance.setdefault(id(model.clf.backbone_), []).append(model.name)
    return {
        name: [other for other in names if other != name]
        for names in by_instance.values()
        for name in names
    }
