"""Batched embedding extraction: decode in parallel with the forward pass, cache by content."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferkit.errors import TransferkitError
from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import EmbeddingCache, file_digest, open_store, release_store
from transferkit.system import available_cores

# batches decoded ahead of the forward pass: enough to hide decoding, small enough that memory
# stays bounded by a few batches whatever the size of the folder
_PREFETCH_BATCHES = 2


@dataclass
class ExtractionResult:
    """Embeddings of a dataset, row-aligned with its samples."""

    embeddings: np.ndarray  # (N, D) float32; rows of unreadable samples are zero
    ok: np.ndarray  # (N,) bool: False where the file could not be read
    problems: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    runtime: str = "cache"
    n_cached: int = 0
    # modality-specific facts for the report (audio: seconds of audio, clips split in windows)
    info: dict = field(default_factory=dict)


# label-preserving views of an input that training may add (never used at evaluation)
VIEWS = ("identity", "hflip")


def _prepare_image(path: Path, preprocess, view: str = "identity") -> np.ndarray:
    """Decode one image file, take the requested view, resize and crop: uint8 (H, W, 3), or
    (H, W) for a grey image (the caller copies it into the planar RGB batch buffer).

    Normalisation happens in the runner (inside the exported graph), not here.
    """
    from PIL import ImageOps

    from transferkit.backbones.preprocess import crop_pixels
    from transferkit.data.images import open_image

    img = open_image(path, target_size=preprocess.resize_size, keep_grey=True)
    if view == "hflip":
        img = ImageOps.mirror(img)
    return crop_pixels(img, preprocess, expand_grey=False)


def _decode_slice(buf, batch, start, stop, paths, preprocess, view) -> dict[int, str]:
    """Decode ``batch[start:stop]`` into the planar (B, 3, H, W) ``buf``; return {row: reason}
    for unreadable files."""
    bad: dict[int, str] = {}
    for j in range(start, min(stop, len(batch))):
        path = paths[batch[j]]
        try:
            pixels = _prepare_image(path, preprocess, view)
            if pixels.ndim == 2:  # grey: three contiguous plane copies
                for channel in range(3):
                    buf[j, channel] = pixels
            else:
                buf[j] = pixels.transpose(2, 0, 1)
        except TransferkitError as exc:
            bad[j] = _problem_text(exc, path)
        except OSError as exc:
            bad[j] = f"cannot read file ({exc})"
    return bad


def _digest(path: Path) -> str | Exception:
    try:
        return file_digest(path)
    except OSError as exc:
        return exc


def fill_from_cache(store, paths, embeddings, ok, failed, problems, threads: int):
    """Hash every file (in threads) and copy the embeddings the cache already has into place.

    Sets ``ok`` for cache hits and ``failed`` (with a ``problems`` entry) for files that cannot
    be read; returns each file's digest (None where unread or caching is off).
    """
    digests: list[str | None] = [None] * len(paths)
    if store is None or not len(paths):
        return digests
    with ThreadPoolExecutor(max_workers=max(2, threads)) as pool:
        for i, d in enumerate(pool.map(_digest, paths)):
            if isinstance(d, Exception):
                problems.append((paths[i], f"cannot read file ({d.__class__.__name__}: {d})"))
                failed[i] = True
            else:
                digests[i] = d
    hits = store.get_many([d for d in digests if d])
    for i, d in enumerate(digests):
        if d in hits:
            embeddings[i] = hits[d]
            ok[i] = True
    return digests


def _problem_text(exc: BaseException, path: Path) -> str:
    """The reason alone: decoding errors read "<path>: <reason>" and the path is listed apart."""
    text, prefix = str(exc), f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def extract_embeddings(
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
    """Encode every sample of ``dataset`` with the frozen ``backbone``.

    Unreadable files do not stop the run: they are reported in ``problems`` and flagged in
    ``ok``; the caller decides whether that is fatal (``--strict``). ``view`` selects a
    label-preserving transformation (``hflip``: mirror image) used to augment training data.
    ``events`` gets a progress counter over the samples still to encode.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}; got {view!r}")
    if getattr(dataset, "modality", "image") == "text":
        if view != "identity":
            raise ValueError(f"the {view!r} view is for images; texts have only 'identity'")
        from transferkit.features.text_extract import extract_text_embeddings

        return extract_text_embeddings(
            backbone,
            dataset,
            batch_size=batch_size,
            cache=cache,
            events=events,
            num_threads=num_threads,
        )
    if getattr(dataset, "modality", "image") == "audio":
        if view != "identity":
            raise ValueError(f"the {view!r} view is for images; audio has only 'identity'")
        from transferkit.features.audio_extract import extract_audio_embeddings

        return extract_audio_embeddings(
            backbone, dataset, cache=cache, events=events, num_threads=num_threads
        )
    start = time.perf_counter()
    paths: Sequence[Path] = [Path(p) for p in dataset.paths]
    n, dim = len(paths), int(backbone.num_features)
    embeddings = np.zeros((n, dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    problems: list[tuple[Path, str]] = []
    failed = np.zeros(n, dtype=bool)
    threads = num_threads or available_cores()

    store = open_store(backbone, cache, view, dim)

    digests = fill_from_cache(store, paths, embeddings, ok, failed, problems, threads)
    n_cached = int(ok.sum())

    todo = [i for i in range(n) if not ok[i] and not failed[i]]
    runtime_name = "cache"
    if todo:
        # torch / onnxruntime are imported only now: a fully cached run never pays for them
        from transferkit.features.runtime import make_runner

        runner = make_runner(backbone.materialize(), runtime=runtime, num_threads=threads)
        runtime_name = runner.name
        bar = events.progress(n, f"Encoding ({backbone.name})", "img", initial=n_cached)
        batches = [todo[s : s + batch_size] for s in range(0, len(todo), batch_size)]
        size = backbone.preprocess.input_size
        # decoding threads: PIL releases the GIL while decoding and resizing. Each task fills a
        # slice of a preallocated batch buffer (no per-image futures, no np.stack copy), and
        # the next batches are decoded while the runtime works on the current one.
        workers = min(4, max(2, threads))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: deque[tuple[list[int], np.ndarray, list[Future]]] = deque()

            spare: list[np.ndarray] = []  # finished batch buffers, reused (no fresh page faults)

            def submit(batch: list[int]) -> None:
                shape = (len(batch), 3, size, size)
                reuse = spare and spare[-1].shape == shape
                buf = spare.pop() if reuse else np.empty(shape, dtype=np.uint8)
                step = max(1, -(-len(batch) // (2 * workers)))
                futures = [
                    pool.submit(
                        _decode_slice,
                        buf,
                        batch,
                        start,
                        start + step,
                        paths,
                        backbone.preprocess,
                        view,
                    )
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
                        problems.append((paths[batch[j]], reason))
                        failed[batch[j]] = True
                    keep = [j for j in range(len(batch)) if j not in bad]
                    good = [batch[j] for j in keep]
                    if good:
                        out = runner(buf if not bad else buf[keep])
                        embeddings[good] = out
                        ok[good] = True
                        if store is not None:
                            store.put_many((digests[i], out[j]) for j, i in enumerate(good))
                    spare.append(buf)
                    bar.update(len(batch))
            finally:
                for _, _, futures in pending:
                    for fut in futures:
                        fut.cancel()
                bar.close()

    release_store(store, cache)
    return ExtractionResult(
        embeddings=embeddings,
        ok=ok,
        problems=problems,
        seconds=time.perf_counter() - start,
        runtime=runtime_name,
        n_cached=n_cached,
    )
