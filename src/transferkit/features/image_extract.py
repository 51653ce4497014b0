"""Image embedding: decode in parallel with the forward pass, through the fastest runtime.

The encoding step of the extraction loop (``extract.py``) for images: batches are decoded by
threads into preallocated planar uint8 buffers a couple of batches ahead, while the runtime
(ONNX Runtime or torch, see ``runtime.py``) encodes the current one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from transferkit.errors import TransferkitError
from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import EmbeddingCache
from transferkit.features.extract import (
    Delivery,
    ExtractionResult,
    content_digests,
    run_extraction,
)
from transferkit.system import available_cores

# batches decoded ahead of the forward pass: enough to hide decoding, small enough that memory
# stays bounded by a few batches whatever the size of the folder
_PREFETCH_BATCHES = 2

# label-preserving views of an input that training may add (never used at evaluation)
VIEWS = ("identity", "hflip")


def extract_image_embeddings(
    backbone,
    dataset,
    *,
    batch_size: int = 64,
    cache: bool | EmbeddingCache = True,
    events: Events = NULL_EVENTS,
    runtime: str = "auto",
    num_threads: int | None = None,
    view: str = "identity",
) -> ExtractionResult:
    """Encode every image of ``dataset`` with the frozen ``backbone``.

    ``view`` selects a label-preserving transformation (``hflip``: mirror image) used to
    augment training data; it is cached apart from the plain view.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}; got {view!r}")
    threads = num_threads or available_cores()
    step = ImageEncoding(backbone, dataset.samples, batch_size, runtime, threads, view)
    return run_extraction(step, backbone, dataset.samples, cache=cache, events=events)


class ImageEncoding:
    """Images through the backbone's runner, decoded a couple of batches ahead."""

    unit = "img"

    def __init__(self, backbone, samples, batch_size: int, runtime: str, threads: int, view: str):
        self.backbone = backbone
        self.sources = [s.raw for s in samples]  # files, or bytes received in memory
        self.batch_size = batch_size
        self.runtime = runtime
        self.threads = threads
        self.view = view

    def digests(self, samples: Sequence) -> list[str | Exception]:
        return content_digests(samples, max(2, self.threads))

    def info(self, seconds: float) -> dict:
        return {}

    def encode(self, todo: list[int], delivery: Delivery) -> str:
        backbone = self.backbone
        module = backbone.materialize()
        # a model from another framework brings its own runner (an ONNX graph, no torch)
        own_runner = getattr(module, "pixel_runner", None)
        if own_runner is not None:
            runner = own_runner(self.threads)
        else:
            # torch / onnxruntime are imported only now: a fully cached run never pays for them
            from transferkit.features.runtime import make_runner

            runner = make_runner(module, runtime=self.runtime, num_threads=self.threads)
        batches = [todo[s : s + self.batch_size] for s in range(0, len(todo), self.batch_size)]
        size = backbone.preprocess.input_size
        # decoding threads: PIL releases the GIL while decoding and resizing. Each task fills a
        # slice of a preallocated batch buffer (no per-image futures, no np.stack copy), and
        # the next batches are decoded while the runtime works on the current one.
        workers = min(4, max(2, self.threads))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque[tuple[list[int], np.ndarray, list[Future]]] = deque()
            spare: list[np.ndarray] = []  # finished batch buffers, reused (no fresh page faults)

            def submit(batch: list[int]) -> None:
                shape = (len(batch), 3, size, size)
                reuse = spare and spare[-1].shape == shape
                buf = spare.pop() if reuse else np.empty(shape, dtype=np.uint8)
                step = max(1, -(-len(batch) // (2 * workers)))
                futures = [
                    pool.submit(self._decode_slice, buf, batch, start, start + step)
                    for start in range(0, len(batch), step)
                ]
                pending.append((batch, buf, futures))

            for b in batches[:_PREFETCH_BATCHES]:
                submit(b)
            next_batch = _PREFETCH_BATCHES
            try:
                while pending:
                    batch, buf, futures = pending.popleft()
                    bad: dict[int, str] = {}
                    for fut in futures:
                        bad.update(fut.result())
                    if next_batch < len(batches):  # keep the decoders busy during the forward
                        submit(batches[next_batch])
                        next_batch += 1
                    for j, reason in bad.items():
                        delivery.failed(batch[j], reason)
                    keep = [j for j in range(len(batch)) if j not in bad]
                    if keep:
                        delivery.done(
                            [batch[j] for j in keep], runner(buf if not bad else buf[keep])
                        )
                    spare.append(buf)
            finally:
                for _, _, futures in pending:
                    for fut in futures:
                        fut.cancel()
        return runner.name

    def _decode_slice(self, buf, batch, start, stop) -> dict[int, str]:
        """Decode ``batch[start:stop]`` into the planar (B, 3, H, W) ``buf``; return
        {row: reason} for unreadable files."""
        from transferkit.data.images import failure_reason

        bad: dict[int, str] = {}
        for j in range(start, min(stop, len(batch))):
            source = self.sources[batch[j]]
            try:
                pixels = _prepare_image(source, self.backbone.preprocess, self.view)
                if pixels.ndim == 2:  # grey: three contiguous plane copies
                    for channel in range(3):
                        buf[j, channel] = pixels
                else:
                    buf[j] = pixels.transpose(2, 0, 1)
            except TransferkitError as exc:
                bad[j] = failure_reason(exc, source)
            except OSError as exc:
                bad[j] = f"cannot read file ({exc})"
        return bad


def _prepare_image(source, preprocess, view: str = "identity") -> np.ndarray:
    """Decode one image (a file, or its bytes), take the requested view, resize and crop:
    uint8 (H, W, 3), or (H, W) for a grey image (the caller copies it into the planar RGB
    batch buffer).

    Normalisation happens in the runner (inside the exported graph), not here.
    """
    from PIL import ImageOps

    from transferkit.backbones.preprocess import crop_pixels
    from transferkit.data.images import open_image

    img = open_image(source, target_size=preprocess.resize_size, keep_grey=True)
    if view == "hflip":
        img = ImageOps.mirror(img)
    return crop_pixels(img, preprocess, expand_grey=False)
