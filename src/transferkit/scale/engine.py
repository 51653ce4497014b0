"""Where a job's batches run: an actor pool on Ray (local or a cluster), or this process.

Both are context managers whose ``run`` takes the job's input rows and yields output tables as
batches finish (in any order).

Ray: the rows become a Ray Data dataset of one block per task (a few batches), which the
actor pool balances; ``map_batches`` runs the ``Worker`` class in a fixed-size
``ActorPoolStrategy``. A worker
that dies (killed, out of memory, its node lost) is restarted by Ray (``max_restarts``) and
the batches it held are run again (``max_task_retries``): the driver receives each batch's
rows once. Without ``--address`` a local Ray is started with this machine's cores, no
dashboard and no usage reporting, and shut down at the end; with one, the job joins that
cluster (``ray start --head`` on the head node, ``ray start --address`` on the others).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from transferkit.errors import BadInputError
from transferkit.scale.models import ModelRef
from transferkit.scale.worker import Worker
from transferkit.system import available_cores, cpu_forward_chunk

ENGINES = ("local", "ray")
# how often Ray restarts a dead worker and reruns its batches: a worker killed now and then is
# retried, an input that kills every worker that reads it ends the job with Ray's error
MAX_RESTARTS = 4
MAX_TASK_RETRIES = 4
# batches per Ray task: within a task the extractor decodes the next batch while the model runs
# on this one (one batch per task leaves the cores idle in turn); a killed worker costs a few
# batches of rework
BATCHES_PER_TASK = 4
# the job's last tasks are one batch each, so that the workers finish together: with tasks of
# four batches the last one ran alone for ~1.4 s of a 10,000-image job on 2 cores (the other
# worker idle); TAIL_BATCHES_PER_WORKER single-batch tasks per worker end the job
TAIL_BATCHES_PER_WORKER = 2


@dataclass(frozen=True)
class Placement:
    """How many workers, each with how many CPUs and GPUs; ``address`` of a Ray cluster."""

    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus: float = 0.0
    address: str | None = None


class LocalEngine:
    """The batches in this process, one after another, with every core."""

    where = "in this process"

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def run(self, kind: str, ref: ModelRef, rows: pa.Table, *, batch_size: int):
        worker = Worker(kind, ref, batch_size, available_cores())
        # a call of BATCHES_PER_TASK batches, as a Ray task: the extractor decodes the next
        # batch while the model runs on this one only within a call (one batch a call made
        # `predict --engine local` 25 % slower than plain `predict`: 43.5 s vs 34.8 s for
        # 10,000 images on 2 cores)
        size = batch_size * BATCHES_PER_TASK
        for start in range(0, rows.num_rows, size):
            yield worker(rows.slice(start, size))


class RayEngine:
    """The batches on an actor pool of a Ray cluster, as they finish.

    Entering joins (or starts) the cluster and checks the pool fits in it, so a wrong address
    or an impossible placement is refused before any input is read; leaving disconnects, and
    stops a Ray this engine started.
    """

    where = "on Ray"

    def __init__(self, placement: Placement) -> None:
        self.placement = placement
        self.started = False
        self.workers = 0

    def __enter__(self) -> RayEngine:
        self.node = None
        if self.placement.address is None and not _joined():
            self.node = start_local_ray()
        self.started = connect(self.placement.address if self.node is None else self.node.address)
        try:
            self.workers = _pool_size(self.placement)
            if self.placement.gpus:
                _check_gpu_runtime(self.placement.gpus)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            workers: list[int] = []
            node = self.node or _started_node()
            if self.placement.address is None:
                workers = _local_ray_workers(node)
                _stop_autoscaler_monitor(node)
            ray.shutdown()
            if self.node is not None:  # ours, not ray.init's: ray.shutdown leaves it running
                self.node.destroy_external_storage()
                self.node.kill_all_processes(check_alive=False, allow_graceful=True)
                self.node = None
            _wait_gone(workers, _CONNECT_SECONDS)  # they stop once their raylet has
            self.started = False

    def run(
        self, kind: str, ref: ModelRef, rows: pa.Table, *, batch_size: int
    ) -> Iterator[pa.Table]:
        import ray.data

        # nor are Ray Data's notices the job's output (its logger is set up on import)
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # transferkit.progress shows the job's own
        context.print_on_execution_start = False
        placement = self.placement
        blocks = task_blocks(rows, batch_size, self.workers)
        threads = max(1, int(placement.cpus_per_worker))
        forward = forward_batch(batch_size, ref.modality, threads, placement.gpus)
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for these actor options yet and warns that the
            # **ray_remote_args they travel in will go; its defaults retry forever, which an
            # input that crashes every worker reading it would turn into a job that never ends
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            results = _dataset(blocks).map_batches(
                Worker,
                fn_constructor_args=(kind, ref, forward, threads, placement.gpus > 0),
                batch_size=None,  # a block is a task: their sizes are task_blocks' choice
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=self.workers),
                num_cpus=placement.cpus_per_worker,
                num_gpus=placement.gpus or None,
                max_restarts=MAX_RESTARTS,
                max_task_retries=MAX_TASK_RETRIES,
            )
        yield from results.iter_batches(batch_size=None, batch_format="pyarrow")


def _dataset(blocks: list[pa.Table]):
    """A Ray dataset of exactly ``blocks``, its blocks' metadata read here: ``from_arrow`` reads
    it in one Ray task per block, which waits for worker processes to start (0.7 s of a job's
    start on 2 cores) and keeps the pool's workers waiting. Where Ray has no ``from_blocks``,
    ``from_arrow`` (which also keeps one block per table)."""
    import ray.data

    from_blocks = getattr(ray.data, "from_blocks", None)
    return from_blocks(blocks) if from_blocks is not None else ray.data.from_arrow(blocks)


def forward_batch(batch_size: int, modality: str, threads: int, gpus: float) -> int:
    """How many inputs a worker runs through the model at once: ``batch_size``, but at most
    ``cpu_forward_chunk(threads)`` on a CPU worker for a modality of CNNs (images: their
    activations stay in cache; tasks keep ``batch_size`` rows). A GPU wants the whole batch;
    texts and clips keep it too."""
    from transferkit.modalities import get_modality

    if gpus or not get_modality(modality).small_cpu_passes:
        return batch_size
    return min(batch_size, cpu_forward_chunk(threads))


def task_blocks(rows: pa.Table, batch_size: int, workers: int) -> list[pa.Table]:
    """``rows`` cut into the Ray tasks' blocks: BATCHES_PER_TASK batches each, then one batch
    each for the last TAIL_BATCHES_PER_WORKER × ``workers`` batches."""
    size = batch_size * BATCHES_PER_TASK
    tail_rows = TAIL_BATCHES_PER_WORKER * max(1, workers) * batch_size
    bulk = max(0, rows.num_rows - tail_rows) // size * size  # whole tasks
    starts = [*range(0, bulk, size), *range(bulk, rows.num_rows, batch_size)]
    ends = [*starts[1:], rows.num_rows]
    return [rows.slice(start, end - start) for start, end in zip(starts, ends)]


def open_engine(name: str, placement: Placement) -> LocalEngine | RayEngine:
    """The engine called ``name`` (one of ``ENGINES``), to use as a context manager."""
    return RayEngine(placement) if name == "ray" else LocalEngine()


def _joined() -> bool:
    import ray

    return ray.is_initialized()


def start_local_ray():
    """Start a Ray head on this machine with its cores, without the processes a job on one
    machine does not use, and return its node (None: not started here, ``connect`` will).

    ``ray.init(address="local")`` also starts the autoscaler monitor (nothing to autoscale on one
    machine) and the log monitor (the job does not forward workers' logs): on 2 cores their
    start-up, each a Python process importing Ray, slowed Ray's start; and at shutdown Ray
    waits a second for the monitor. Ray's node API (``ray._private``) takes both switches;
    where it is not there, or differs, ``ray.init`` starts Ray as usual. A reaper process
    stops the node if this process dies, as for ``ray.init``.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        from ray._private.node import Node
        from ray._private.parameter import RayParams

        params = RayParams(
            num_cpus=available_cores(),
            include_dashboard=False,
            no_monitor=True,
            include_log_monitor=False,
            # Ray starts a worker per core for tasks when the driver connects; a job runs no
            # tasks (its pool's actors get workers of their own), and on 2 cores their start
            # (each a Python process importing Ray) slowed the pool's
            _system_config=_NO_TASK_WORKERS,
        )
        return Node(params, head=True, shutdown_at_exit=False, spawn_reaper=True,
                    ray_init_cluster=True)  # fmt: skip
    except (ImportError, TypeError, AttributeError):
        return None


_NO_TASK_WORKERS = {"prestart_worker_first_driver": False}


def connect(address: str | None) -> bool:
    """Join the Ray cluster at ``address``, or start a local one (or use the one this process
    already joined, e.g. in a notebook); True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    # no usage statistics sent anywhere, no dashboard: a job needs neither
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's notices (its token, its start-up) are not the job's output; its errors still reach
    # the job as exceptions
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address is None:
        ray.init(address="local", num_cpus=available_cores(), include_dashboard=False,
                 _system_config=_NO_TASK_WORKERS, **quiet)  # fmt: skip
        return True
    _check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise BadInputError(
            f"cannot join the Ray cluster at {address} ({str(exc).splitlines()[0]}). A cluster "
            "started with `ray start --head` checks a token: set RAY_AUTH_MODE=token here and "
            "give this machine the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN), or "
            "leave --address out to run on a Ray started on this machine."
        ) from None
    return True


def _started_node():
    """The node of the local Ray that ``ray.init`` started in this process (None: none)."""
    try:
        from ray._private import worker as ray_worker

        return ray_worker._global_node
    except (ImportError, AttributeError):
        return None


def _stop_autoscaler_monitor(node) -> None:
    """Kill the autoscaler monitor of the local Ray this process started, before
    ``ray.shutdown``: Ray stops it after the GCS, so the monitor's SIGTERM handler tries to
    report to a GCS that is gone and Ray waits a full second before it SIGKILLs it anyway. A
    single machine has nothing to autoscale; the rest of Ray is stopped by ``ray.shutdown`` as
    before. Private Ray state: where it is not there, ``ray.shutdown`` does it all."""
    try:
        from ray._private import ray_constants

        infos = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, []) if node else []
    except (ImportError, AttributeError):
        return
    for info in infos:
        process = info.process
        if process.poll() is None:
            process.kill()
            try:
                process.wait(timeout=_CONNECT_SECONDS)
            except subprocess.TimeoutExpired:
                pass  # ray.shutdown kills it again


def _local_ray_workers(node) -> list[int]:
    """The pids of the worker processes of the local Ray ``node`` (Linux)."""
    try:
        from ray._private import ray_constants

        raylets = node.all_processes.get(ray_constants.PROCESS_TYPE_RAYLET, []) if node else []
        pids = []
        for info in raylets:
            pid = info.process.pid
            pids += map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
        return pids
    except (ImportError, AttributeError, OSError, ValueError):
        return []


def _wait_gone(pids: list[int], seconds: float) -> None:
    """Wait (at most ``seconds``) until the processes ``pids`` have exited (zombies count)."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            except (OSError, IndexError):
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.02)


def _check_reachable(address: str) -> None:
    """Refuse a HOST:PORT where nothing listens, in seconds (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", a ray:// client address...: Ray's own checks
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_SECONDS).close()
    except OSError as exc:
        raise BadInputError(
            f"--address {address}: nothing answers there ({exc.strerror or exc}); start the "
            "cluster with `ray start --head` and pass the address it prints, or leave "
            "--address out to run on a Ray started on this machine."
        ) from None


_CONNECT_SECONDS = 5.0


def _check_gpu_runtime(gpus: float) -> None:
    """Refuse GPU workers whose ONNX Runtime has no CUDA, asked of a task on a GPU slot (an
    actor failing to start would only reach the job as Ray's text, after retries)."""
    import ray

    probe = ray.remote(num_cpus=0, num_gpus=gpus)(_onnx_providers)
    offered, node = ray.get(probe.remote())
    if "CUDAExecutionProvider" not in offered:
        raise BadInputError(
            f"--gpus-per-worker: onnxruntime on the GPU node {node} offers {offered}, no CUDA, "
            "so the workers would run on its CPU; install onnxruntime-gpu (and CUDA) on the "
            "cluster's GPU nodes."
        )


def _onnx_providers() -> tuple[list[str], str]:
    import platform

    import onnxruntime

    return onnxruntime.get_available_providers(), platform.node()


def _pool_size(placement: Placement) -> int:
    """The workers asked for, or as many as the cluster's CPUs (and GPUs) hold; refused when
    not even one fits (Ray would wait for them forever)."""
    import ray

    total = ray.cluster_resources()
    fits = {"CPU": total.get("CPU", 0) / placement.cpus_per_worker}
    if placement.gpus:
        fits["GPU"] = total.get("GPU", 0) / placement.gpus
    what, fit = min(fits.items(), key=lambda item: item[1])
    if fit < 1:
        wants = placement.gpus if what == "GPU" else placement.cpus_per_worker
        raise BadInputError(
            f"the Ray cluster has {total.get(what, 0):g} {what}s: not enough for one worker of "
            f"{wants:g}; lower --{what.lower()}s-per-worker or add nodes that have them."
        )
    return placement.workers or int(fit)
