"""One batch ahead: a background thread prepares the next batch while the current one trains.

Decoding a photo or a clip costs milliseconds, a training step hundreds; one worker is enough
and keeps the order of every random draw fixed (the worker makes the batches strictly in turn),
so a seeded run and a resumed run see the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Chunk = TypeVar("Chunk")
Batch = TypeVar("Batch")


def prefetched(chunks: Sequence[Chunk], make: Callable[[Chunk], Batch]) -> Iterator[Batch]:
    """``make(chunk)`` for each chunk in order, the next one computed while this one is used."""
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tk-batches") as pool:
        pending = pool.submit(make, chunks[0])
        for chunk in chunks[1:]:
            ready = pending.result()
            pending = pool.submit(make, chunk)
            yield ready
        yield pending.result()
