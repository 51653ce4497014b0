"""What a job's workers load: a bundle folder, an exported (ONNX) folder, or a backbone name.

The driver resolves the model once (``resolve_model``: verified, its labels, modality and
identity known) and sends workers the small ``ModelRef``; each worker opens it itself
(``open_model``), so no model crosses the network. The identity (the bundle's manifest digest,
the export's ``export_sha256``, or the backbone's name and weights digest) is what a resumed
run must match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import BadInputError


@dataclass(frozen=True)
class ModelRef:
    """A model as workers find it: ``kind`` "bundle", "exported" or "backbone" at ``location``."""

    kind: str
    location: str
    modality: str
    labels: tuple[str, ...] = ()
    identity: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    runtime: str = "auto"


def resolve_model(
    text: str, *, weights: str | None = None, runtime: str = "auto", backbone_ok: bool = False
) -> ModelRef:
    """The model ``text`` names, verified: a bundle or exported folder, or (``backbone_ok``,
    for embeddings) a backbone name."""
    from transferkit.runtime import is_exported

    path = Path(text)
    if is_exported(path):
        return _exported(path)
    if path.exists() or not backbone_ok:
        return _bundle(path, weights, runtime)
    return _backbone(text, weights, runtime)


def _bundle(path: Path, weights: str | None, runtime: str) -> ModelRef:
    from transferkit.backbones import get_spec
    from transferkit.bundle import load_bundle, manifest_digest
    from transferkit.run_folder import recover_before_reading

    recover_before_reading(path)
    bundle = load_bundle(path)  # the manifest's digest and every file's sha256, checked
    name = bundle.manifest["backbone"]["name"]
    return ModelRef(
        kind="bundle",
        location=str(path.resolve()),
        modality=get_spec(name).modality,
        labels=tuple(bundle.labels),
        identity={"bundle_manifest_sha256": manifest_digest(bundle.manifest)},
        weights=weights,
        runtime=runtime,
    )


def _exported(path: Path) -> ModelRef:
    from transferkit.runtime import read_exported

    folder = read_exported(path)  # export.json's hash and every listed file's sha256, checked
    return ModelRef(
        kind="exported",
        location=str(path.resolve()),
        modality=folder.modality,
        labels=tuple(folder.labels),
        identity={"export_sha256": folder.manifest["export_sha256"]},
    )


def _backbone(name: str, weights: str | None, runtime: str) -> ModelRef:
    from transferkit.backbones import get_spec, resolve_backbone

    spec = get_spec(name)  # an unknown name is refused here, naming `transferkit models`
    ref = resolve_backbone(name, weights=weights)  # weights found and verified, nothing built
    return ModelRef(
        kind="backbone",
        location=name,
        modality=spec.modality,
        identity={"backbone": name, "weights_sha256": ref.weights_sha256},
        weights=weights,
        runtime=runtime,
    )


def check_gpu_capable(ref: ModelRef) -> None:
    """Refuse GPU workers for a model whose forward pass runs on CPU only."""
    if ref.kind != "exported":
        raise BadInputError(
            f"--gpus-per-worker: {ref.location} runs on the CPU in transferkit (the encoders' "
            "forward pass has no GPU path); export it (`transferkit export MODEL --format onnx`) "
            "and run the exported folder, with onnxruntime-gpu installed on the cluster."
        )


def _open_exported(location: str, threads: int, gpu: bool):
    """The exported model, on the worker's GPU (ONNX Runtime's CUDA provider) when ``gpu``."""
    from transferkit.runtime import load_exported

    if not gpu:
        return load_exported(location, threads=threads)
    model = load_exported(location, threads=threads, providers=[_CUDA, "CPUExecutionProvider"])
    used = model.session.get_providers()
    if _CUDA not in used:  # onnxruntime falls back to the CPU without a word
        import platform

        raise BadInputError(
            f"a GPU worker on {platform.node()} cannot run {location} on its GPU: onnxruntime "
            f"there offers {used}; install onnxruntime-gpu (and CUDA) on the cluster's nodes."
        )
    return model


_CUDA = "CUDAExecutionProvider"


class OpenModel:
    """A model opened in a worker: probabilities or embeddings of a batch of samples.

    Both return ``(values (N, K), ok (N,), problems [(input, reason)])``; rows where ``ok`` is
    False are not to be read.
    """

    def __init__(self, ref: ModelRef, *, batch_size: int, threads: int, gpu: bool = False) -> None:
        self.ref = ref
        self.batch_size = batch_size
        self.threads = threads
        self._exported = None
        self._head = None
        if ref.kind == "exported":
            self._exported = _open_exported(ref.location, threads, gpu)
        elif ref.kind == "bundle":
            from transferkit.estimator import TransferClassifier

            clf = TransferClassifier.load(ref.location, weights=ref.weights, progress=False)
            self._backbone, self._head = clf.backbone_, clf.head_
        else:
            from transferkit.backbones import resolve_backbone

            self._backbone = resolve_backbone(ref.location, weights=ref.weights)

    def predict_proba(self, samples) -> tuple[np.ndarray, np.ndarray, list]:
        if self._exported is not None:
            return self._exported.predict_proba(samples, batch_size=self.batch_size)
        if self._head is None:
            raise BadInputError(
                f"{self.ref.location} is a backbone: it embeds inputs but has no classes to "
                "predict; pass a trained bundle (RUN/model), or use `transferkit embed`."
            )
        embeddings, ok, problems = self.embed(samples)
        proba = np.full((len(samples), len(self.ref.labels)), np.nan)
        if ok.any():
            proba[ok] = self._head.predict_proba(embeddings[ok])
        return proba, ok, problems

    def embed(self, samples) -> tuple[np.ndarray, np.ndarray, list]:
        if self._exported is not None:
            return self._exported.embed(samples, batch_size=self.batch_size)
        from transferkit.data import Dataset
        from transferkit.modalities import extract_embeddings, get_modality

        modality = get_modality(self.ref.modality)
        batch = Dataset(samples, (), source="a batch", modality=modality.name, noun=modality.noun)
        # the cache is per machine and a pool is read once: caching it would only fill disks
        result = extract_embeddings(
            self._backbone,
            batch,
            batch_size=self.batch_size,
            cache=False,
            runtime=self.ref.runtime,
            num_threads=self.threads,
        )
        return result.embeddings, result.ok, result.problems
