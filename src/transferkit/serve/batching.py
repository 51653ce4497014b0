"""Micro-batching: concurrent requests to one model are predicted together.

Each model has an asyncio queue of jobs (one request's inputs). Its batcher takes the first job,
waits up to ``batch_wait_ms`` for others while the batch holds fewer than ``batch_size`` inputs,
and runs them together in the inference thread, off the event loop (the model then takes
them ``--forward-batch`` at a time, decoding the next while it encodes these). While a batch
runs, new requests queue up, so under load the next batch is full without waiting. One
inference thread serves every model: the forward pass already uses every core, and one thread
keeps the models' lazily built state (runtimes, sessions) free of races.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

from transferkit.errors import BadInputError
from transferkit.serve.metrics import ServerMetrics
from transferkit.serve.models import BatchResult, ServedModel

log = logging.getLogger("transferkit")


@dataclass
class Job:
    """One request's inputs, and the future its answer (a BatchResult) is set on."""

    inputs: list
    future: asyncio.Future = field(repr=False)


class JobRefused(Exception):
    """A job's inputs cannot be predicted: the message, and the unreadable uploads if any."""

    def __init__(self, message: str, unreadable: list[dict[str, str]]):
        super().__init__(message)
        self.unreadable = unreadable


class MicroBatcher:
    """The queue and batching loop of one model."""

    def __init__(
        self,
        model: ServedModel,
        executor: Executor,
        metrics: ServerMetrics,
        *,
        batch_size: int,
        wait_s: float,
        in_flight: int = 1,
    ):
        self.model = model
        self.in_flight = in_flight
        self.executor = executor
        self.metrics = metrics
        self.batch_size = batch_size
        self.wait_s = wait_s
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self._carried: Job | None = None  # the job that did not fit in the last batch
        self._warming = threading.Lock()
        self._warm = False

    async def submit(self, inputs: list) -> BatchResult:
        """Queue ``inputs`` and wait for their result (cancelling drops them from the queue)."""
        job = Job(inputs, asyncio.get_running_loop().create_future())
        self.queue.put_nowait(job)
        return await job.future

    async def run(self) -> None:
        """Form batches and run them, until cancelled: up to ``in_flight`` at once, so the
        next batch's inputs are decoded while this one's are encoded, and requests that
        arrive meanwhile wait to form the batch after."""
        slots = asyncio.Semaphore(self.in_flight)
        running: set[asyncio.Task] = set()
        try:
            while True:
                await slots.acquire()
                try:
                    jobs = await self._next_batch()
                except BaseException:
                    slots.release()
                    raise
                jobs = [job for job in jobs if not job.future.done()]  # timed out while queued
                if not jobs:
                    slots.release()
                    continue
                task = asyncio.create_task(self._run_batch(jobs))
                running.add(task)
                task.add_done_callback(lambda t: (running.discard(t), slots.release()))
        finally:
            for task in running:
                task.cancel()

    async def _run_batch(self, jobs: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        size = sum(len(job.inputs) for job in jobs)
        start = time.perf_counter()
        outcomes = await loop.run_in_executor(self.executor, self._predict, jobs)
        self.metrics.batch_seconds.labels(self.model.name).observe(time.perf_counter() - start)
        self.metrics.batch_size.labels(self.model.name).observe(size)
        for job, outcome in zip(jobs, outcomes):
            if job.future.done():
                continue
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                self.metrics.predictions.labels(self.model.name).inc(len(job.inputs))
                job.future.set_result(outcome)

    async def _next_batch(self) -> list[Job]:
        first = self._carried or await self.queue.get()
        self._carried = None
        jobs, size = [first], len(first.inputs)
        deadline = time.monotonic() + self.wait_s
        while size < self.batch_size:
            left = deadline - time.monotonic()
            try:
                if left <= 0:  # no more waiting, but whatever is queued already comes along
                    job = self.queue.get_nowait()
                else:
                    job = await asyncio.wait_for(self.queue.get(), left)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if size + len(job.inputs) > self.batch_size:
                self._carried = job  # first in the next batch: requests keep their order
                break
            jobs.append(job)
            size += len(job.inputs)
        return jobs

    def _predict(self, jobs: list[Job]) -> list[BatchResult | BaseException]:
        if self._warm:
            return self._predict_now(jobs)
        # the first batch builds the model's lazy state (runtime, session) alone: two batches
        # in flight must not both build it
        with self._warming:
            outcomes = self._predict_now(jobs)
            self._warm = any(isinstance(o, BatchResult) for o in outcomes)
            return outcomes

    def _predict_now(self, jobs: list[Job]) -> list[BatchResult | BaseException]:
        """Every job's result from one pass over their inputs together (in the inference
        thread); when the batch as a whole is refused, each job alone, so one request's bad
        inputs never fail another's."""
        inputs = [item for job in jobs for item in job.inputs]
        try:
            result = self.model.predict(inputs)
        except BadInputError as exc:
            if len(jobs) == 1:
                return [self._refused(jobs[0], exc)]
            return [self._alone(job) for job in jobs]
        except Exception as exc:  # noqa: BLE001 - handed to each request, which answers 500
            log.exception("batch of %d inputs to %s failed", len(inputs), self.model.name)
            return [exc] * len(jobs)
        out: list[BatchResult | BaseException] = []
        start = 0
        for job in jobs:
            stop = start + len(job.inputs)
            out.append(
                BatchResult(
                    result.proba[start:stop], result.reasons[start:stop], result.named[start:stop]
                )
            )
            start = stop
        return out

    def _alone(self, job: Job) -> BatchResult | BaseException:
        try:
            return self.model.predict(job.inputs)
        except BadInputError as exc:
            return self._refused(job, exc)
        except Exception as exc:  # noqa: BLE001
            log.exception("a request to %s failed", self.model.name)
            return exc

    def _refused(self, job: Job, exc: BadInputError) -> JobRefused:
        return JobRefused(str(exc), self.model.unreadable(job.inputs))
