"""Training events: what a run is doing, told to whoever listens.

Code below ``training`` never prints or draws progress bars: the extractors, the strategies and
the fine-tuning engine emit events into an ``Events`` sink, and the subscribers chosen at the
top (``progress.py``: terminal bars, log lines, a recorder; later the server and the studio)
decide what is shown. ``NULL_EVENTS`` has no subscriber: nothing is shown, nothing is kept.

Kinds: ``stage`` (a named part of a run starts or ends), ``epoch`` (one row of a training
history), ``step`` (one optimizer step), ``metric`` (a named measurement), ``warning`` and
``progress`` (a counter towards a total, what a bar draws).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset({"stage", "epoch", "step", "metric", "warning", "progress"})


@dataclass(frozen=True)
class Event:
    """One thing that happened: its ``kind``, the ``name`` of what it is about, and ``data``."""

    kind: str
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"event kind must be one of {', '.join(sorted(KINDS))}; got {self.kind!r}"
            )


Subscriber = Callable[[Event], None]


class Events:
    """A sink for events: every subscriber gets each event, in the order they were emitted."""

    def __init__(self, subscribers: Iterable[Subscriber] = ()) -> None:
        self.subscribers = tuple(subscribers)

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber(event)

    def progress(self, total: int, desc: str, unit: str = "it", *, initial: int = 0) -> Progress:
        """A counter from ``initial`` towards ``total`` (a bar, in a terminal); close it when
        done, or use it as a context manager."""
        return Progress(self, total=total, desc=desc, unit=unit, initial=initial)


NULL_EVENTS = Events()


class Progress:
    """An open counter: ``progress`` events with ``state`` "open", "update", then "close".

    Every event carries the handle's ``id`` (bars are told apart by it), ``n`` done of
    ``total``, the ``unit`` and the latest ``postfix`` values (e.g. the running loss); the
    "close" event adds the ``seconds`` since it opened.
    """

    def __init__(self, events: Events, *, total: int, desc: str, unit: str, initial: int) -> None:
        self.events = events
        self.desc = desc
        self.total = int(total)
        self.unit = unit
        self.n = int(initial)
        self.postfix: dict[str, Any] = {}
        self.closed = False
        self._started = time.perf_counter()
        self._emit("open", initial=self.n)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Count ``n`` more done (0: only show new ``postfix`` values)."""
        self.n += n
        self.postfix.update(postfix)
        self._emit("update", advance=n)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._emit("close", seconds=time.perf_counter() - self._started)

    def _emit(self, state: str, **extra: Any) -> None:
        if not self.events.subscribers:  # a silent run pays nothing per step
            return
        data = {
            "id": id(self),
            "state": state,
            "n": self.n,
            "total": self.total,
            "unit": self.unit,
            "postfix": dict(self.postfix),
            **extra,
        }
        self.events.emit(Event("progress", self.desc, data))

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
