"""Jobs: the studio's long work (a training run, an ONNX export), done one at a time by one
worker thread, and followed by the page through the job's state and its stream of events.

A job's work gets an ``Events`` sink whose subscriber records what the library tells it
(progress counters, stages, epochs, metrics, warnings: ``transferkit.events``) into the job: its
current stage and counter, the last log lines, and the event list its stream replays. Cancel is
cooperative: the subscriber raises ``JobCancelled`` at the next event once it is asked for, so
work that emits no event for a while finishes that part first.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transferkit.errors import BadInputError
from transferkit.events import Event, Events
from transferkit.progress import progress_line
from transferkit.studio.workspace import Conflict, NotFound, new_id

log = logging.getLogger("transferkit")

ACTIVE = ("queued", "running")
LOG_LINES = 50
MAX_EVENTS = 2000  # kept for a stream that connects late; older ones are dropped first
SHUTDOWN_WAIT_S = 20.0

Work = Callable[["Job", Events], dict[str, Any] | None]


class JobCancelled(BaseException):
    """Raised in a job's work at its next event once it is cancelled. A BaseException, so that
    library code that catches Exception to carry on without a picture does not swallow it."""


class Busy(Conflict):
    """The project has a job queued or running already."""


@dataclass
class Job:
    """One piece of work and what is known about it so far."""

    id: str
    kind: str
    project_id: str
    run_id: str | None
    work: Work = field(repr=False)
    on_end: Callable[[Job], None] | None = field(default=None, repr=False)
    state: str = "queued"
    stage: str = "queued"
    progress: dict[str, Any] | None = None
    log: deque = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    error: str | None = None
    result: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_requested: bool = False
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    first_seq: int = 0  # the sequence number of events[0]

    def describe(self) -> dict[str, Any]:
        """The job as GET /api/jobs/{jid} answers it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "project_id": self.project_id,
            "run_id": self.run_id,
            "state": self.state,
            "stage": self.stage,
            "progress": dict(self.progress) if self.progress else None,
            "log": list(self.log),
            "error": self.error,
            "result": self.result,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }

    @property
    def over(self) -> bool:
        return self.state not in ACTIVE


class JobRunner:
    """Runs submitted jobs in order on one worker thread (one training at a time is all two
    cores can give); a project has at most one job queued or running."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="studio-jobs", daemon=True)
        self._thread.start()

    def submit(
        self,
        kind: str,
        work: Work,
        *,
        project_id: str,
        run_id: str | None = None,
        on_end: Callable[[Job], None] | None = None,
        before: Callable[[], str | None] | None = None,
    ) -> Job:
        """Queue ``work``; ``on_end(job)`` is called once when it is over, however it ended.

        ``before`` runs under the runner's lock once the project is known not to be busy (it
        may create the run the job trains and return its id), so that two quick clicks make
        one run, not two. Raises ``Busy`` when the project has a job queued or running.
        """
        with self._cond:
            if self._closed:
                raise Conflict("the studio is stopping; start it again to run this")
            busy = self.active(project_id)
            if busy is not None:
                raise Busy(
                    f"this project is busy with a {busy.kind} job ({busy.state}); wait for it "
                    "to finish or cancel it"
                )
            if before is not None:
                run_id = before() or run_id
            job = Job(new_id(), kind, project_id, run_id, work, on_end)
            self._jobs[job.id] = job
            self._queue.append(job)
            self._cond.notify_all()
        return job

    def get(self, jid: str) -> Job:
        with self._cond:
            job = self._jobs.get(jid)
        if job is None:
            raise NotFound(
                f"no job with id {jid!r}; jobs are kept while the studio runs (after a restart "
                "look at the project's runs)"
            )
        return job

    def active(self, project_id: str) -> Job | None:
        """The project's job that is queued or running, if any."""
        with self._cond:
            for job in self._jobs.values():
                if job.project_id == project_id and not job.over:
                    return job
        return None

    def cancel(self, jid: str) -> Job:
        """Ask a job to stop: a queued one never starts, a running one stops at its next
        event. Cancelling a job that is over changes nothing."""
        job = self.get(jid)
        with self._cond:
            if job.over:
                return job
            job.cancel_requested = True
            if job.state == "queued":
                self._queue.remove(job)
                self._end(job, "cancelled", None)
        if job.over:
            self._call_on_end(job)
        return job

    def wait_events(
        self, jid: str, seq: int, timeout: float
    ) -> tuple[list[tuple[int, dict]], int, bool]:
        """(events from sequence number ``seq`` on, the next ``seq``, whether the job is over
        and every event was given); waits up to ``timeout`` s for one when there is none."""
        job = self.get(jid)
        with self._cond:
            self._cond.wait_for(lambda: job.over or job.first_seq + len(job.events) > seq, timeout)
            start = max(seq, job.first_seq)  # a late reader skips what was dropped
            items = [
                (n, job.events[n - job.first_seq])
                for n in range(start, job.first_seq + len(job.events))
            ]
            nxt = job.first_seq + len(job.events)
            return items, nxt, job.over

    def shutdown(self) -> None:
        """Cancel every job and wait (a while) for the running one to stop."""
        with self._cond:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            for job in self._jobs.values():
                job.cancel_requested = True
            for job in queued:
                self._end(job, "cancelled", "the studio stopped before it started")
            self._cond.notify_all()
        for job in queued:
            self._call_on_end(job)
        self._thread.join(SHUTDOWN_WAIT_S)

    # -- the worker ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return  # closed and nothing left
                job = self._queue.popleft()
                job.state, job.stage, job.started = "running", "starting", time.time()
                self._record(job, {"kind": "stage", "name": "starting", "data": {}})
            self._run(job)

    def _run(self, job: Job) -> None:
        events = Events([lambda event: self._hear(job, event)])
        state, error, result = "done", None, None
        try:
            result = job.work(job, events)
        except JobCancelled:
            state = "cancelled"
            error = "the studio stopped" if self._closed else "cancelled"
        except BadInputError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - the job fails, the studio carries on
            log.exception("studio job %s (%s) failed", job.id, job.kind)
            state, error = "failed", f"{type(exc).__name__}: {exc}"
        with self._cond:
            job.result = result
            self._end(job, state, error)
        self._call_on_end(job)

    def _end(self, job: Job, state: str, error: str | None) -> None:
        """Under the lock: the job's final state, and the stream's last event."""
        job.state, job.error, job.finished = state, error, time.time()
        job.stage = state
        if error:
            job.log.append(f"{state}: {error}")
        self._record(job, {"kind": "end", "name": state, "data": {"error": error}})

    def _call_on_end(self, job: Job) -> None:
        if job.on_end is None:
            return
        try:
            job.on_end(job)
        except Exception:  # noqa: BLE001 - e.g. the workspace closed at shutdown
            log.exception("studio job %s: recording its end failed", job.id)

    def _hear(self, job: Job, event: Event) -> None:
        """The job's subscriber to its work's events."""
        if job.cancel_requested:
            raise JobCancelled
        data = _plain(dict(event.data))
        with self._cond:
            if event.kind == "progress":
                state = data.get("state")
                if state == "close":
                    job.log.append(progress_line(event))
                    job.progress = None
                else:
                    job.progress = {
                        "desc": event.name,
                        "n": data.get("n"),
                        "total": data.get("total"),
                        "unit": data.get("unit"),
                    }
            elif event.kind == "stage":
                if data.get("state", "start") == "start":
                    job.stage = event.name
                job.log.append(_stage_line(event.name, data))
            elif event.kind == "warning":
                job.log.append(f"warning: {data.get('message', event.name)}")
            elif event.kind == "epoch":
                # the numbers only: the counter that closed just before said how long it took
                rest = {k: v for k, v in data.items() if k not in ("epoch", "stage", "seconds")}
                job.log.append(_values_line(f"epoch {data.get('epoch')} ({event.name})", "", rest))
            elif event.kind == "metric":
                job.log.append(_values_line("metric", event.name, data))
            self._record(job, {"kind": event.kind, "name": event.name, "data": data})

    def _record(self, job: Job, item: dict[str, Any]) -> None:
        """Under the lock: one more event for the job's stream."""
        job.events.append(item)
        if len(job.events) > MAX_EVENTS:
            drop = len(job.events) - MAX_EVENTS
            del job.events[:drop]
            job.first_seq += drop
        self._cond.notify_all()


def emit_stage(events: Events, name: str, **data: Any) -> None:
    """Tell a job's subscribers that the stage ``name`` starts (the studio's own steps)."""
    events.emit(Event("stage", name, {"state": "start", **data}))


def _stage_line(name: str, data: dict[str, Any]) -> str:
    state = data.get("state", "start")
    extra = {k: v for k, v in data.items() if k != "state"}
    return _values_line(f"{name}: {state}", "", extra) if extra else f"{name}: {state}"


def _values_line(head: str, name: str, data: dict[str, Any]) -> str:
    values = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in data.items()
        if isinstance(v, (int, float, str))  # None: not measured this time, nothing to say
    )
    title = f"{head} {name}".strip()
    return f"{title}: {values}" if values else title


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it (numpy numbers, tuples, paths; NaN as None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)
