"""What a job's workers load: a bundle folder, an exported (ONNX) folder, or a backbone name.

The driver resolves the model once (``resolve_model``: verified, its labels, modality and
identity known) and sends workers the small ``ModelRef``; each worker opens it itself
(``OpenModel``), so no model crosses the network. The identity (the bundle's manifest digest,
the export's ``export_sha256``, or the backbone's name and weights digest) is what a resumed
run must match.

A bundle that predicts on Ray is run by its workers as its ONNX export (``with_export``): made
once by the driver with ``transferkit export``'s checks (probabilities within 1e-4 of the
bundle on its held-out examples) and cached by the bundle's manifest digest, so each worker
starts ONNX Runtime without importing torch (~3 s of a core per worker on a small machine).
A bundle that cannot be exported (its held-out examples gone, an audio front end that does not
export), or a worker that does not find the export on its node, runs the bundle with torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import BadInputError

log = logging.getLogger("transferkit")


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
    # a bundle's verified ONNX export (``with_export``), which workers run instead where found
    export: str | None = None


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


def with_export(ref: ModelRef) -> ModelRef:
    """``ref`` with its bundle's ONNX export for the workers to run, made here the first time
    (cached under the bundle's manifest digest); ``ref`` itself when the bundle cannot be
    exported, or the forward pass was asked of torch (``--runtime torch``)."""
    if ref.kind != "bundle" or ref.runtime == "torch":
        return ref
    from transferkit.paths import cache_dir

    folder = cache_dir() / "exports" / ref.identity["bundle_manifest_sha256"][:32]
    if export_problem(folder, ref) is not None:
        try:
            from transferkit.export import export_model

            export_model(ref.location, out=folder, weights=ref.weights)
        except Exception as exc:  # noqa: BLE001 - any exporter gap: the bundle is still right
            log.info("%s is not exported for the workers (%s): they run it with torch",
                     ref.location, str(exc).splitlines()[0])  # fmt: skip
            return ref
    return replace(ref, export=str(folder))


def export_problem(folder: Path, ref: ModelRef) -> str | None:
    """Why ``folder`` is not the float ONNX export of the bundle ``ref`` (None: it is)."""
    from transferkit.errors import BundleError
    from transferkit.runtime import is_exported, read_exported

    if not is_exported(folder):
        return "no exported model there"
    try:
        exported = read_exported(folder)  # export.json's hash and every file's sha256
    except BundleError as exc:
        return str(exc)
    manifest = exported.manifest
    source = manifest.get("source") or {}
    if source.get("bundle_manifest_sha256") != ref.identity.get("bundle_manifest_sha256"):
        return "exported from another bundle"
    if (tuple(exported.labels), exported.modality) != (ref.labels, ref.modality):
        return "other labels or modality than the bundle's"
    if manifest.get("quantization") is not None:
        return "quantised (its probabilities are not the bundle's)"
    return None


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


def _export_here(ref: ModelRef) -> bool:
    """Whether this worker's node holds the bundle's export the driver made (a cluster's
    other nodes may not: they run the bundle)."""
    problem = export_problem(Path(ref.export), ref)
    if problem is not None:
        import platform

        log.warning("%s on %s: %s; running the bundle %s with torch",
                    ref.export, platform.node(), problem, ref.location)  # fmt: skip
    return problem is None


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
        elif ref.export is not None and _export_here(ref):
            self._exported = _open_exported(ref.export, threads, gpu)
        elif ref.kind == "bundle":
            from transferkit.estimator import TransferClassifier

            clf = TransferClassifier.load(ref.location, weights=ref.weights, progress=False)
            self._backbone, self._head = clf.backbone_, clf.head_
        else:
            from transferkit.backbones import resolve_backbone

            self._backbone = resolve_backbone(ref.location, weights=ref.weights)

    @property
    def runs_export(self) -> bool:
        """Whether this worker runs the bundle's ONNX export (not the bundle with torch)."""
        return self.ref.kind == "bundle" and self._exported is not None

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
