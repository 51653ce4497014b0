"""Facts about the machine that sizing decisions depend on."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container limits on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# images per ONNX Runtime call of a CNN on CPU, per thread: a batch of 64 spills a mobile
# network's activations out of the cores' caches. img/s by images per call, measured on 2 cores
# (AMD EPYC), ONNX Runtime 1.32:
#   1 thread,  1 / 2 / 4 / 64: MobileNetV2 300 / 290 / 255 / 112, EfficientNet-B0 160 / 160 /
#   150 / 74, ResNet-18 62 / 64 / 67 / 56;
#   2 threads, 2 / 4 / 64:     MobileNetV2 535 / 515 / 325, EfficientNet-B0 265 / 265 / 138,
#   ResNet-18 122 / 128 / 126.
# Two images a thread is within 5 % of the best of each; plain convolutions neither gain nor
# lose much. Decoding and caching keep the caller's batch: only the forward call is cut.
CPU_IMAGES_PER_THREAD = 2


def cpu_forward_chunk(threads: int) -> int:
    """Images per forward call of a CNN on ``threads`` CPU threads."""
    return CPU_IMAGES_PER_THREAD * max(1, threads)
