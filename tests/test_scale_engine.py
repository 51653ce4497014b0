"""How a Ray job's rows are cut into tasks (no Ray needed: the cut is plain arithmetic)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from transferkit.scale.engine import (
    BATCHES_PER_TASK,
    TAIL_BATCHES_PER_WORKER,
    forward_batch,
    task_blocks,
)
from transferkit.system import cpu_forward_chunk


@pytest.mark.parametrize(
    ("rows", "batch", "workers"), [(10000, 64, 2), (100, 64, 2), (0, 64, 2), (1000, 16, 8)]
)
def test_blocks_cover_every_row_once_in_order(rows, batch, workers):
    table = pa.table({"input": [str(i) for i in range(rows)]})
    blocks = task_blocks(table, batch, workers)
    assert [r for b in blocks for r in b.column("input").to_pylist()] == [
        str(i) for i in range(rows)
    ]
    assert all(0 < b.num_rows <= batch * BATCHES_PER_TASK for b in blocks)


def test_the_last_tasks_are_single_batches_so_the_workers_finish_together():
    blocks = [b.num_rows for b in task_blocks(pa.table({"x": range(10000)}), 64, 2)]
    tail = TAIL_BATCHES_PER_WORKER * 2
    assert all(n <= 64 for n in blocks[-tail:])  # the end: a batch each, at most
    assert set(blocks[: -tail - 1]) == {64 * BATCHES_PER_TASK}  # the bulk: whole tasks


def test_cpu_workers_run_images_in_small_forward_batches_and_gpu_workers_the_jobs():
    assert forward_batch(64, "image", threads=1, gpus=0) == cpu_forward_chunk(1) < 64
    assert forward_batch(64, "image", threads=4, gpus=0) == cpu_forward_chunk(4)  # per thread
    assert forward_batch(1, "image", threads=1, gpus=0) == 1  # a smaller batch asked for is kept
    assert forward_batch(64, "image", threads=1, gpus=0.5) == 64  # a GPU wants big batches
    assert forward_batch(64, "text", threads=1, gpus=0) == 64  # measured on CNNs: texts keep theirs


def test_the_cpu_forward_chunk_grows_with_the_threads():
    assert cpu_forward_chunk(1) < cpu_forward_chunk(2) < cpu_forward_chunk(16) <= 64
