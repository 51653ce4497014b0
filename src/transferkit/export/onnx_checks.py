"""Running an exported graph: sessions, predictions over examples, latency, int8 quantisation."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

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


def quantize_int8(
    source: Path,
    dest: Path,
    *,
    calibration: list[dict[str, np.ndarray]] | None = None,
    float_nodes: Callable[[list], list[str]] = lambda nodes: [],
) -> str:
    """int8 quantisation of ``source`` into ``dest``; returns how it was done.

    With ``calibration`` feeds: static, QDQ (int8 weights per channel, uint8 activations whose
    ranges are the calibration examples' min/max), the method for convolutional graphs, which
    onnxruntime then runs as int8 convolutions. Without: dynamic (activations quantised at run
    time from their own range), the method for transformers' matrix products, which needs no
    calibration. The nodes ``float_nodes(graph nodes)`` names stay float.
    """
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process

    staged = dest.with_name(dest.stem + ".pre.onnx")
    # the quantiser logs advice and per-tensor notes on the root logger: not the user's concern
    logging.disable(logging.WARNING)
    try:
        if calibration:
            # shape inference and graph optimisation first, as onnxruntime recommends for static
            # quantisation (constant folding leaves fewer, larger ops to quantise). Not for the
            # dynamic path: its symbolic shape inference fails on transformer graphs, leaving a
            # stray external-data file in the working folder
            quant_pre_process(str(source), str(staged))
        else:
            staged = source
        nodes = list(onnx.load(str(staged), load_external_data=False).graph.node)
        options = {
            "weight_type": QuantType.QInt8,
            "per_channel": True,
            "nodes_to_exclude": float_nodes(nodes),
        }
        if calibration:
            from onnxruntime.quantization import QuantFormat, quantize_static

            quantize_static(
                str(staged),
                str(dest),
                _Feeds(calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                **options,
            )
            method = (
                "onnxruntime.quantization.quantize_static (QDQ): int8 weights per output "
                f"channel, uint8 activations calibrated (min/max) on {_count(calibration)} "
                "held-out examples that the accuracy gate then leaves out"
            )
        else:
            from onnxruntime.quantization import quantize_dynamic

            quantize_dynamic(str(staged), str(dest), **options)
            method = (
                "onnxruntime.quantization.quantize_dynamic: int8 weights per output channel, "
                "uint8 activations quantised at run time from their own range"
            )
        method += f"; {len(options['nodes_to_exclude'])} graph nodes kept in float"
    finally:
        logging.disable(logging.NOTSET)
        if staged != source:
            staged.unlink(missing_ok=True)
    return method


def _count(feeds: list[dict[str, np.ndarray]]) -> int:
    return sum(len(next(iter(feed.values()))) for feed in feeds)


class _Feeds(CalibrationDataReader):
    """onnxruntime's calibration reader over prepared feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)
