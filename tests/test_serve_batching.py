"""Micro-batching: several batches of one model in flight, the first one alone."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from transferkit.serve.batching import MicroBatcher
from transferkit.serve.metrics import ServerMetrics
from transferkit.serve.models import BatchResult


class _SlowModel:
    """Stands in for a served model: each batch takes ``seconds``; records how many batches
    ran at once, at most, and during the first batch."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0
        self.most_during_first = 0

    def predict(self, inputs: list) -> BatchResult:
        with self.lock:
            self.running += 1
            self.calls += 1
            first = self.calls == 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            if first:
                self.most_during_first = self.most
            self.running -= 1
        n = len(inputs)
        return BatchResult(np.ones((n, 2)) / 2, [None] * n, [{"input": str(x)} for x in inputs])


async def _serve(model: _SlowModel, in_flight: int, requests: int) -> list[BatchResult]:
    executor = ThreadPoolExecutor(max_workers=in_flight)
    batcher = MicroBatcher(
        model, executor, ServerMetrics(), batch_size=1, wait_s=0.0, in_flight=in_flight
    )
    loop = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.submit([i]) for i in range(requests)))
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        executor.shutdown(wait=True)


@pytest.mark.parametrize("in_flight", [1, 2, 3])
def test_at_most_in_flight_batches_run_at_once_and_the_first_runs_alone(in_flight):
    model = _SlowModel(seconds=0.05)
    results = asyncio.run(_serve(model, in_flight, requests=8))
    assert [r.named[0]["input"] for r in results] == [str(i) for i in range(8)]
    assert model.most == in_flight  # batches of one input each: they overlap up to the bound
    assert model.most_during_first == 1  # the first builds the model's lazy state alone
