"""Running an exported graph: sessions, predictions over examples, latency, int8 quantisation."""

from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path

import numpy as np

from transferkit.system import available_cores

BATCH = 32


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session over ``path``, on ``threads`` (default: every core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or available_cores())
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_graph(sess, graph, items: list) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, embeddings) of prepared examples, in batches of ``BATCH``."""
    probs, embs = [], []
    for start in range(0, len(items), BATCH):
        p, e = sess.run(["probabilities", "embedding"], graph.batch(items[start : start + BATCH]))
        probs.append(p)
        embs.append(e)
    return np.concatenate(probs), np.concatenate(embs)


def latency_ms(sess, graph, items: list, *, budget_s: float = 0.5) -> dict[str, float]:
    """Median milliseconds per example at batch 1 and batch 32 (examples repeated to fill it)."""
    out = {}
    for size in (1, BATCH):
        chosen = [items[i % len(items)] for i in range(size)]
        feed = graph.batch(chosen)
        sess.run(None, feed)  # warm-up: first-run allocations are not latency
        times: list[float] = []
        start = time.perf_counter()
        # at least two runs; more while within the budget (a slow graph is timed briefly)
        while len(times) < 2 or (time.perf_counter() - start < budget_s and len(times) < 50):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append(time.perf_counter() - t0)
        out[f"batch_{size}"] = round(1000 * statistics.median(times) / size, 3)
    return out


def quantize_int8(source: Path, dest: Path) -> str:
    """Dynamic int8 quantisation of ``source`` into ``dest``; returns the method's name.

    Dynamic: weights int8 per channel, activations quantised at run time from their own range.
    Static quantisation would need calibration examples, and the only ones at hand are the
    held-out set the int8 graph is judged on (calibrating on it would flatter the very accuracy
    the gate measures); a bundle keeps no training data.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    staged = dest.with_name(dest.stem + ".pre.onnx")
    # the quantiser logs advice and per-tensor notes on the root logger: not the user's concern
    logging.disable(logging.WARNING)
    try:
        # shape inference and graph optimisation first, as onnxruntime recommends: constant
        # folding leaves fewer, larger ops to quantise
        try:
            quant_pre_process(str(source), str(staged))
        except Exception:  # noqa: BLE001 - e.g. symbolic shapes a transformer's graph defeats
            staged = source
        quantize_dynamic(str(staged), str(dest), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
        if staged != source:
            staged.unlink(missing_ok=True)
    return (
        "onnxruntime.quantization.quantize_dynamic after quant_pre_process: int8 weights per "
        "output channel, uint8 activations quantised at run time from their own range"
    )
