"""Audio embedding: decode and resample in threads while the encoder runs, cache by content.

Each clip is decoded (soundfile), mixed to mono and resampled (soxr) in worker threads — both
release the GIL — a few clips ahead of the encoder, so memory stays bounded by a handful of
clips even for hour-long files. The encoder splits a clip longer than its window into windows
and the clip's embedding is their mean and standard deviation; how many clips were split, and
how many seconds of audio went through per wall-clock second, are returned for the report.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import EmbeddingCache, open_store, release_store
from transferkit.features.extract import ExtractionResult, fill_from_cache
from transferkit.system import available_cores

_AHEAD = 8  # clips decoded ahead of the encoder
_CLIPS_PER_BATCH = 16  # short clips embedded together (one CNN batch instead of sixteen)
_SECONDS_PER_BATCH = 60  # ... unless they add up to this much audio


def extract_audio_embeddings(
    backbone,
    dataset,
    *,
    cache: bool | EmbeddingCache = True,
    events: Events = NULL_EVENTS,
    num_threads: int | None = None,
) -> ExtractionResult:
    """Encode every clip of ``dataset`` with the frozen audio ``backbone``."""
    from transferkit.data.audio import UnreadableAudio, decode_audio

    start = time.perf_counter()
    paths = [Path(p) for p in dataset.paths]
    n, dim = len(paths), int(backbone.num_features)
    embeddings = np.zeros((n, dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    problems: list[tuple[Path, str]] = []
    failed = np.zeros(n, dtype=bool)
    store = open_store(backbone, cache, "audio", dim)
    digests = fill_from_cache(
        store, paths, embeddings, ok, failed, problems, min(4, available_cores())
    )
    n_cached = int(ok.sum())
    todo = [i for i in range(n) if not ok[i] and not failed[i]]
    rate = backbone.preprocess.sample_rate
    seconds_audio, windowed = 0.0, 0
    if todo:
        module = backbone.materialize()
        threads = num_threads or available_cores()
        previous = _torch_threads(threads)

        def decode(i: int):
            try:
                return decode_audio(paths[i], rate)
            except UnreadableAudio as exc:
                return exc

        bar = events.progress(n, f"Encoding ({backbone.name})", "clip", initial=n_cached)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                pending: deque = deque()
                queue = iter(todo)
                for i in queue:
                    pending.append((i, pool.submit(decode, i)))
                    if len(pending) >= _AHEAD:
                        break
                batch: list[tuple[int, np.ndarray]] = []

                def flush() -> None:
                    nonlocal seconds_audio, windowed
                    results = module.embed_many([w for _, w in batch])
                    for (i, wave), (vector, n_windows) in zip(batch, results):
                        embeddings[i] = vector
                        ok[i] = True
                        seconds_audio += len(wave) / rate
                        windowed += n_windows > 1
                    if store is not None:
                        store.put_many(
                            (digests[i], embeddings[i]) for i, _ in batch if digests[i] is not None
                        )
                    bar.update(len(batch))
                    batch.clear()

                while pending:
                    i, future = pending.popleft()
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(decode, nxt)))
                    wave = future.result()
                    if isinstance(wave, Exception):
                        problems.append((paths[i], str(wave)))
                        bar.update(1)
                    else:
                        batch.append((i, wave))
                    # short clips share the encoder's batches; a long one goes alone
                    if batch and (
                        len(batch) >= _CLIPS_PER_BATCH
                        or sum(len(w) for _, w in batch) >= _SECONDS_PER_BATCH * rate
                    ):
                        flush()
                if batch:
                    flush()
        finally:
            bar.close()
            _torch_threads(previous)
    release_store(store, cache)
    seconds = time.perf_counter() - start
    info = {
        "seconds_audio": seconds_audio,
        "clips_windowed": int(windowed),
        "window_seconds": backbone.preprocess.window_seconds,
        "sample_rate": rate,
    }
    if seconds_audio:
        info["audio_seconds_per_second"] = seconds_audio / max(seconds, 1e-9)
    return ExtractionResult(
        embeddings=embeddings,
        ok=ok,
        problems=sorted(problems, key=lambda p: p[0].as_posix()),
        seconds=seconds,
        runtime="cache" if not todo else "audio",
        n_cached=n_cached,
        info=info,
    )


def _torch_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads if torch is already loaded; return the previous value."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or threads is None:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous
