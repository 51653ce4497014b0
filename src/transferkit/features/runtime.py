"""Inference runtimes for frozen backbones: the fastest correct way to run the forward pass.

On a CPU, ONNX Runtime runs MobileNet-class networks about 1.7x faster than torch with
channels_last, and 6x faster than the plain eager code most tutorials show. We export the frozen
backbone once (cached on disk, keyed like the embedding cache), check that its outputs match
torch, and fall back to torch channels_last + inference_mode if anything about that fails.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from transferkit.paths import cache_dir

log = logging.getLogger("transferkit")

RUNTIMES = ("auto", "onnx", "torch")
_MATCH_ATOL = 1e-3  # embeddings are O(1); export differences are ~1e-6


class Runner(Protocol):
    """Maps a float32 batch (B, 3, H, W) to pooled embeddings (B, D) as numpy."""

    name: str

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


def default_threads() -> int:
    """Threads for the forward pass: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class TorchRunner:
    """Eager torch in inference mode with channels_last (the fast memory layout for CPU convs)."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, num_threads: int):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.num_threads = num_threads

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch.set_num_threads(self.num_threads)
        x = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(x).float().numpy()


class OnnxRunner:
    """ONNX Runtime session over an exported copy of the backbone."""

    name = "onnx"

    def __init__(self, onnx_path: Path, num_threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]


def _export_onnx(model: torch.nn.Module, size: int, dest: Path) -> None:
    """Export with a dynamic batch axis; write to a temp name and rename (no half files)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        example = torch.zeros(2, 3, size, size)
        with warnings.catch_warnings():
            # the TorchScript exporter is deprecated but needs no extra dependency (onnxscript)
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(),
                (example,),
                tmp,
                input_names=["pixels"],
                output_names=["embedding"],
                dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _onnx_path(backbone) -> Path:
    key = hashlib.sha256(
        "|".join(
            [
                backbone.name,
                backbone.weights_sha256,
                backbone.preprocess.fingerprint(),
                torch.__version__,
            ]
        ).encode()
    ).hexdigest()[:24]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in backbone.name)
    return cache_dir() / "onnx" / f"{safe}-{key}.onnx"


def _try_onnx(backbone, num_threads: int) -> OnnxRunner | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("onnxruntime not installed: using torch for the forward pass")
        return None
    size = backbone.preprocess.input_size
    if backbone.weights_sha256:
        path = _onnx_path(backbone)
        temporary = False
    else:  # random weights have no stable identity: export to a throwaway file
        path = Path(tempfile.mkdtemp(prefix="transferkit-onnx-")) / "model.onnx"
        temporary = True
    try:
        if not path.exists():
            _export_onnx(backbone, size, path)
        runner = OnnxRunner(path, num_threads)
        probe = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            expected = backbone.eval()(probe).float().numpy()
        got = runner(probe.numpy())
        err = float(np.abs(got - expected).max())
        if not np.isfinite(err) or err > _MATCH_ATOL:
            log.warning(
                "ONNX export of %s differs from torch by %.2g: using torch", backbone.name, err
            )
            path.unlink(missing_ok=True)
            return None
        return runner
    except Exception as exc:  # any exporter/runtime gap → the torch path is still correct
        log.info("ONNX Runtime unavailable for %s (%s): using torch", backbone.name, exc)
        path.unlink(missing_ok=True)
        return None
    finally:
        if temporary:
            # the session has loaded the graph; the file is no longer needed
            path.unlink(missing_ok=True)


def make_runner(backbone, runtime: str = "auto", num_threads: int | None = None) -> Runner:
    """Pick the forward-pass runtime: ``auto`` tries ONNX Runtime, then torch channels_last."""
    if runtime not in RUNTIMES:
        from transferkit.errors import BadInputError

        raise BadInputError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    threads = num_threads or default_threads()
    if runtime in ("auto", "onnx"):
        runner = _try_onnx(backbone, threads)
        if runner is not None:
            return runner
        if runtime == "onnx":
            from transferkit.errors import TransferkitError

            raise TransferkitError(f"could not run {backbone.name} with ONNX Runtime (see log)")
    return TorchRunner(backbone, threads)
