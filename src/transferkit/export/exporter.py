"""``export_model``: a bundle as one ONNX graph, checked against the bundle before it is kept.

1. The bundle is loaded (verified) and its backbone + head become one torch module, exported
   with a dynamic batch axis (``probabilities``, ``embedding``).
2. The graph and the bundle predict the bundle's held-out examples (``testset``); the graph's
   inputs are made through the files shipped beside it, as the runtime will make them. More
   than ``TOLERANCE`` between their probabilities and nothing is written.
3. ``quantize="int8"``: the graph is quantised and kept only if its accuracy on those examples
   is at most ``MAX_INT8_DROP_POINTS`` below the float graph's; otherwise refused (exit 2)
   with the measured drop, nothing written.
4. Size and latency are measured, and the folder is written atomically (``folder``).

Everything is staged in a scratch folder beside the output and removed whatever happens.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import BadInputError, TransferkitError
from transferkit.export.folder import FORMAT, FORMAT_VERSION, MODEL_FILE, export_versions

log = logging.getLogger("transferkit")

TOLERANCE = 1e-4  # max |probability difference| between the graph and the bundle
MAX_INT8_DROP_POINTS = 0.5  # accuracy points int8 may lose against the float graph
OPSET = 17
QUANTIZATIONS = ("int8",)
MAX_CALIBRATION = 64  # held-out examples that calibrate a static int8 graph
CALIBRATION_BATCH = 8


@dataclass
class ExportResult:
    """Where the export went and what ``export.json`` says about it."""

    path: Path
    document: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        doc = self.document
        return {
            "out": str(self.path),
            "size_mb": round(doc["size_bytes"] / 1e6, 3),
            "latency_ms_per_example": doc["latency_ms_per_example"],
            "parity_max_abs_diff": doc["parity"]["max_abs_diff_probabilities"],
            "parity_examples": doc["parity"]["examples"],
            "quantization": doc["quantization"],
        }


def default_out(model: str | Path, quantize: str | None) -> Path:
    """``<MODEL>-onnx``, or ``<MODEL>-onnx-int8`` when quantised."""
    model = Path(model)
    model = model if model.name else model.resolve()  # "." names no folder by itself
    return model.with_name(model.name + "-onnx" + (f"-{quantize}" if quantize else ""))


def export_model(
    model: str | Path,
    *,
    out: str | Path | None = None,
    quantize: str | None = None,
    data: str | Path | None = None,
    weights: str | Path | None = None,
    **columns: Any,
) -> ExportResult:
    """Export the bundle at ``model`` to ONNX (see the module's docstring); ``columns`` name
    the table columns of ``data`` (``text_col``, ``label_col``, ``path_col``)."""
    from transferkit.atomic import recover
    from transferkit.bundle import read_manifest
    from transferkit.estimator import TransferClassifier
    from transferkit.export import audio, image, text  # noqa: F401 - each registers its graph
    from transferkit.export.graphs import graph_for
    from transferkit.export.heads import head_graph
    from transferkit.export.testset import held_out_data
    from transferkit.run_folder import recover_before_reading

    if quantize is not None and quantize not in QUANTIZATIONS:
        raise BadInputError(
            f"--quantize must be one of {', '.join(QUANTIZATIONS)}; got {quantize!r}"
        )
    model = Path(model)
    recover_before_reading(model)  # a run folder's swap that a kill interrupted
    manifest = read_manifest(model)
    out = Path(out) if out is not None else default_out(model, quantize)
    if out.resolve() == model.resolve():
        raise BadInputError(f"--out {out} is the bundle itself; choose another folder")
    clf = TransferClassifier.load(model, weights=weights, cache=False, progress=False)
    graph = graph_for(clf.backbone_)
    head = head_graph(clf.head_)
    columns = {k: v for k, v in columns.items() if v is not None}
    test, source = held_out_data(model, data, **columns)
    test = _known_labels(test, clf.labels_, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    # named as atomic's temporaries are, so the next export deletes what a killed one left
    staging = out.with_name(f"{out.name}-export")
    recover(staging)
    scratch = Path(
        tempfile.mkdtemp(prefix=f".{staging.name}.{os.getpid()}-", suffix=".tmp", dir=out.parent)
    )
    try:
        return _export(clf, manifest, graph, head, test, source, scratch, out, quantize)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _known_labels(test, labels: list[str], source: str):
    unknown = sorted(set(test.labels) - set(labels))
    if unknown:
        raise BadInputError(
            f"the held-out data {source} has classes the model was not trained on: "
            f"{', '.join(unknown)}. The model knows: {', '.join(labels)}."
        )
    return test.with_labels(labels)


def _export(clf, manifest, graph, head, test, source, scratch: Path, out: Path, quantize):
    from transferkit.export.folder import write_export_folder
    from transferkit.export.graphs import FullGraph
    from transferkit.export.onnx_checks import BATCH, latency_ms, session

    float_path = scratch / MODEL_FILE
    side = graph.write_side_files(scratch)
    write_onnx = getattr(graph, "write_onnx", None)  # a graph joined in ONNX (foreign models)
    if write_onnx is not None:
        write_onnx(head, float_path, OPSET)
    else:
        _to_onnx(FullGraph(graph.embedder(), head).eval(), graph, float_path)
    bundle_proba, bundle_ok, _, _ = clf.predict_details(test)
    held = HeldOut(graph, test.samples)
    float_session = session(float_path)
    proba = held.run(float_session)
    keep = np.flatnonzero(bundle_ok & np.isfinite(proba).all(axis=1))
    if not len(keep):
        raise BadInputError(f"none of the held-out examples in {source} could be read")
    diff = float(np.abs(proba[keep] - bundle_proba[keep]).max())
    if not np.isfinite(diff) or diff > TOLERANCE:
        raise TransferkitError(
            f"the exported graph of {clf.backbone_.name} + {clf.head_.name} differs from the "
            f"bundle by {diff:.3g} in probability on {source} (tolerance {TOLERANCE}); nothing "
            "was written. This is a bug in transferkit's export: please report it."
        )
    targets = test.targets
    accuracy = float((proba[keep].argmax(axis=1) == targets[keep]).mean())
    timed = held.items(keep[:BATCH])
    final, final_session, quantization = float_path, float_session, None
    if quantize:
        final = scratch / "model.int8.onnx"
        final_session, quantization = _quantized(
            float_path, final, held, keep, targets, proba, bundle_proba, source
        )
        # int8 can be slower than float on a CPU (e.g. dynamic ConvInteger): both numbers, so
        # that size can be weighed against speed
        quantization["latency_ms_per_example_float"] = latency_ms(float_session, graph, timed)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "modality": graph.modality,
        "labels": list(clf.labels_),
        "inputs": graph.inputs_spec(),
        "outputs": {
            "probabilities": [None, len(clf.labels_)],
            "embedding": [None, int(clf.backbone_.num_features)],
        },
        "source": {
            "bundle_manifest_sha256": manifest.get("manifest_sha256"),
            "backbone": clf.backbone_.name,
            "strategy": manifest["strategy"]["name"],
            "head": clf.head_.name,
        },
        "quantization": quantization,
        "parity": {
            "max_abs_diff_probabilities": diff,
            "examples": int(len(keep)),
            "tolerance": TOLERANCE,
            "data": source,
            "accuracy": accuracy,
        },
        "opset": OPSET,
        "size_bytes": final.stat().st_size,
        "latency_ms_per_example": latency_ms(final_session, graph, timed),
        "versions": export_versions(),
    }
    files = {MODEL_FILE: final, **{name: scratch / name for name in side}}
    return ExportResult(write_export_folder(out, files, document), document)


def _quantized(float_path, dest, held, keep, targets, proba, bundle_proba, source: str):
    """(session, quantization record) of the int8 graph, or refused when it loses more than
    ``MAX_INT8_DROP_POINTS`` of the float graph's accuracy on the held-out rows ``keep`` (those
    not used to calibrate it)."""
    from transferkit.export.onnx_checks import quantize_int8, session

    graph = held.graph
    calibrate, judge = _calibration_split(keep, graph.int8_calibrated, source)
    items = held.items(calibrate)
    feeds = [
        graph.batch(items[start : start + CALIBRATION_BATCH])
        for start in range(0, len(items), CALIBRATION_BATCH)
    ]
    method = quantize_int8(float_path, dest, calibration=feeds, float_nodes=graph.float_nodes)
    quantized = session(dest)
    proba_q = held.run(quantized, judge)
    accuracy = float((proba[judge].argmax(axis=1) == targets[judge]).mean())
    accuracy_q = float((proba_q.argmax(axis=1) == targets[judge]).mean())
    drop = round(100.0 * (accuracy - accuracy_q), 4)
    if drop > MAX_INT8_DROP_POINTS:
        raise BadInputError(
            f"int8 quantisation loses {drop:.2f} accuracy points on {source} "
            f"({100 * accuracy:.2f}% float, {100 * accuracy_q:.2f}% int8, {len(judge)} "
            f"examples; at most {MAX_INT8_DROP_POINTS} allowed): refused, nothing written. "
            "Export without --quantize to keep the float graph."
        )
    return quantized, {
        "type": "int8",
        "method": method,
        "accuracy_float": accuracy,
        "accuracy_int8": accuracy_q,
        "drop_points": drop,
        "max_drop_points": MAX_INT8_DROP_POINTS,
        "examples": len(judge),
        "calibration_examples": len(calibrate),
        "split": source,
        "max_abs_diff_probabilities_vs_bundle": float(np.abs(proba_q - bundle_proba[judge]).max()),
    }


def _calibration_split(
    rows: np.ndarray, calibrated: bool, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """(rows to calibrate on, rows to judge on): a seeded draw of half the held-out ``rows``
    (at most ``MAX_CALIBRATION``) calibrates, the others judge, so that the gate never scores
    the examples the activation ranges were fitted to; no calibration: every row judges."""
    if not calibrated:
        return rows[:0], rows
    if len(rows) < 4:
        raise BadInputError(
            f"int8 quantisation of this model calibrates on half the held-out examples and "
            f"judges on the other half; {source} has {len(rows)} usable examples, at least 4 "
            "needed"
        )
    order = np.random.default_rng(0).permutation(len(rows))
    size = min(MAX_CALIBRATION, len(rows) // 2)
    return np.sort(rows[order[:size]]), np.sort(rows[order[size:]])


class HeldOut:
    """The held-out examples as the graph's inputs, prepared a batch at a time (as the runtime
    reads them), so memory stays bounded however many there are."""

    def __init__(self, graph, samples):
        self.graph = graph
        self.samples = samples
        self.unreadable: set[int] = set()

    def items(self, rows) -> list:
        """The prepared examples of ``rows`` (all readable)."""
        return [self.graph.prepare(self.samples[int(i)]) for i in rows]

    def run(self, sess, rows=None) -> np.ndarray:
        """Probabilities of ``rows`` (default: every example) by the graph in ``sess``; NaN
        rows for examples that cannot be read (left out, with a warning, as predict does)."""
        from transferkit.export.onnx_checks import BATCH, run_graph

        rows = np.arange(len(self.samples)) if rows is None else np.asarray(rows)
        out = None
        for start in range(0, len(rows), BATCH):
            chunk, items = [], []
            for j, i in enumerate(rows[start : start + BATCH], start):
                try:
                    items.append(self.graph.prepare(self.samples[int(i)]))
                except Exception as exc:  # noqa: BLE001 - an unreadable file, not a bug
                    if int(i) not in self.unreadable:
                        log.warning("%s: left out of the checks (%s)", self.samples[i].path, exc)
                    self.unreadable.add(int(i))
                    continue
                chunk.append(j)
            if not items:
                continue
            proba = run_graph(sess, self.graph, items)[0]
            if out is None:
                out = np.full((len(rows), proba.shape[1]), np.nan, dtype=np.float32)
            out[chunk] = proba
        if out is None:
            raise BadInputError("none of the held-out examples could be read")
        return out


def _to_onnx(module, graph, dest: Path) -> None:
    import torch

    with warnings.catch_warnings(), torch.inference_mode():
        # the TorchScript exporter is deprecated but needs no extra dependency (onnxscript)
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            graph.example(),
            str(dest),
            input_names=list(graph.input_names),
            output_names=["probabilities", "embedding"],
            dynamic_axes=graph.dynamic_axes(),
            opset_version=OPSET,
            dynamo=False,
        )
