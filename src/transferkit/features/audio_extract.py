"""Audio embedding: decode and resample in threads while the encoder runs, cache by content.

Each clip is decoded (soundfile), mixed to mono and resampled (soxr) in worker threads — both
release the GIL — a few clips ahead of the encoder, so memory stays bounded by a handful of
clips even for hour-long files. The encoder splits a clip longer than its window into windows
and the clip's embedding is their mean and standard deviation; how many clips were split, and
how many seconds of audio went through per wall-clock second, are returned for the report.
This is the encoding step of the extraction loop (``extract.py``) for audio.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import EmbeddingCache
from transferkit.features.extract import (
    Delivery,
    ExtractionResult,
    content_digests,
    run_extraction,
)
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
    step = AudioEncoding(backbone, dataset.samples, num_threads)
    return run_extraction(step, backbone, dataset.samples, cache=cache, events=events)


class AudioEncoding:
    """Clips decoded a few ahead, short ones embedded together."""

    view = "audio"
    unit = "clip"

    def __init__(self, backbone, samples: Sequence, num_threads: int | None):
        self.backbone = backbone
        self.sources = [s.raw for s in samples]  # files, or bytes received in memory
        self.num_threads = num_threads
        self.rate = backbone.preprocess.sample_rate
        self.seconds_audio = 0.0
        self.windowed = 0

    def digests(self, samples: Sequence) -> list[str | Exception]:
        return content_digests(samples, min(4, available_cores()))

    def info(self, seconds: float) -> dict:
        info = {
            "seconds_audio": self.seconds_audio,
            "clips_windowed": int(self.windowed),
            "window_seconds": self.backbone.preprocess.window_seconds,
            "sample_rate": self.rate,
            "pooling": self.backbone.preprocess.pooling,
        }
        if self.seconds_audio:
            info["audio_seconds_per_second"] = self.seconds_audio / max(seconds, 1e-9)
        return info

    def encode(self, todo: list[int], delivery: Delivery) -> str:
        from transferkit.data.audio import UnreadableAudio, decode_audio

        module = self.backbone.materialize()
        previous = _torch_threads(self.num_threads or available_cores())

        def decode(i: int):
            try:
                return decode_audio(self.sources[i], self.rate)
            except UnreadableAudio as exc:
                return exc

        batch: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            results = module.embed_many([w for _, w in batch])
            for (_, wave), (_, n_windows) in zip(batch, results):
                self.seconds_audio += len(wave) / self.rate
                self.windowed += n_windows > 1
            delivery.done([i for i, _ in batch], np.stack([vector for vector, _ in results]))
            batch.clear()

        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                pending: deque = deque()
                queue = iter(todo)
                for i in queue:
                    pending.append((i, pool.submit(decode, i)))
                    if len(pending) >= _AHEAD:
                        break
                while pending:
                    i, future = pending.popleft()
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(decode, nxt)))
                    wave = future.result()
                    if isinstance(wave, Exception):
                        delivery.failed(i, str(wave))
                    else:
                        batch.append((i, wave))
                    # short clips share the encoder's batches; a long one goes alone
                    if batch and (
                        len(batch) >= _CLIPS_PER_BATCH
                        or sum(len(w) for _, w in batch) >= _SECONDS_PER_BATCH * self.rate
                    ):
                        flush()
                if batch:
                    flush()
        finally:
            _torch_threads(previous)
        return "audio"


def _torch_threads(threads: int | None) -> int | None:
    """Set torch's intra-op threads if torch is already loaded; return the previous value."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or threads is None:
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    return previous
