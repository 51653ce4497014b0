"""Big jobs on a real local Ray (one session for the module): predict and embed into Parquet /
JSON lines, a worker killed mid-run, an interrupted run resumed, bad outputs refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import (
    draw_shape,
    make_shapes_folder,
    require_offline_weights,
    write_unreadable_images,
)

from transferkit.cli import main
from transferkit.errors import BadInputError
from transferkit.events import Events
from transferkit.scale import JobSettings, Placement, run_job
from transferkit.scale.output import read_metadata

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

POOL = 240  # tiny real PNGs: enough batches for a kill to land mid-run
UNREADABLE = ["truncated.png", "empty.jpg", "notes.jpg"]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module (start-up is the slow part); jobs join it."""
    require_offline_weights("mobilenet_v2")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # one GPU declared: this machine has none, so a GPU worker's onnxruntime offers no CUDA
    # address="local": a new Ray, never one a stale /tmp/ray/ray_current_cluster points at
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False,
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale-model")
    train = make_shapes_folder(root / "train", per_class=5)
    code = main(["-q", "train", str(train), "--out", str(root / "run"), "--no-progress",
                 "--test-size", "0.34", "--no-learning-curve"])  # fmt: skip
    assert code == 0
    return root / "run" / "model"


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """POOL small shape images and three files that are not images, in one folder."""
    folder = tmp_path_factory.mktemp("scale-pool") / "pool"
    folder.mkdir()
    kinds = ("circle", "square", "triangle")
    for i in range(POOL):
        draw_shape(kinds[i % 3], 7000 + i, size=32).save(folder / f"{i:04d}.png")
    write_unreadable_images(folder, bomb=False)
    return folder


def _inputs(pool: Path) -> list[str]:
    return sorted(str(p) for p in pool.iterdir())


@pytest.fixture(scope="module")
def expected(bundle, pool):
    """The bundle's labels and its probabilities for each readable pool image, in-process."""
    from transferkit.estimator import TransferClassifier

    clf = TransferClassifier.load(bundle, progress=False, cache=False)
    files = [p for p in map(Path, _inputs(pool)) if p.name not in UNREADABLE]
    return clf.labels_, dict(zip(map(str, files), clf.predict_proba(files)))


def test_predict_on_ray_writes_every_input_once_as_in_process(
    cluster, bundle, pool, expected, tmp_path, capsys
):
    out = tmp_path / "predictions.jsonl"
    code = main(["predict", str(bundle), str(pool), "--engine", "ray", "--output", str(out),
                 "--batch-size", "16"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["input"] for r in rows) == _inputs(pool)  # each input exactly once
    labels, probabilities = expected
    for row in rows:
        if Path(row["input"]).name in UNREADABLE:
            assert row["label"] is None and row["probabilities"] is None and row["error"]
            continue
        p = probabilities[row["input"]]
        assert row["error"] is None
        assert list(row["probabilities"]) == labels
        np.testing.assert_allclose(list(row["probabilities"].values()), p, atol=1e-5)
        assert row["label"] == labels[int(np.argmax(p))]
        assert row["confidence"] == pytest.approx(float(p.max()), abs=1e-5)
    assert {r["error"] for r in rows if Path(r["input"]).name == "notes.jpg"} != {None}
    summary = json.loads(captured.out)
    assert (
        summary["rows"] == POOL + 3 and summary["errors"] == 3 and summary["computed"] == POOL + 3
    )
    # one line per stage in a log (stderr is not a terminal here), no bar frames
    lines = captured.err.splitlines()
    assert f"Listing inputs: {POOL + 3}/{POOL + 3} image" in captured.err
    assert any(line.startswith(f"Predicting on Ray: {POOL + 3}/{POOL + 3} image") for line in lines)
    assert "Writing predictions.jsonl" in captured.err and "\r" not in captured.err
    assert not list(tmp_path.glob(".predictions.jsonl*"))  # the parts are gone


def test_the_workers_run_the_bundles_checked_onnx_export_made_once(
    cluster, bundle, pool, expected, tmp_path
):
    """A bundle on Ray: the driver exports it once (cached by its manifest digest, parity
    checked on its held-out examples) and the workers run that graph without torch: the
    bundle's labels, its probabilities within 1e-4, the bundle's identity in the output."""
    from transferkit.scale.models import export_problem, resolve_model

    settings = JobSettings(engine="ray", batch_size=16)
    first = run_job("predict", str(bundle), [str(pool)], tmp_path / "a.parquet", settings=settings)
    folder = Path(first["export"])
    ref = resolve_model(str(bundle))
    assert folder.parent.name == "exports" and export_problem(folder, ref) is None
    made = (folder / "export.json").stat().st_mtime_ns
    second = run_job("predict", str(bundle), [str(pool)], tmp_path / "b.parquet", settings=settings)
    assert second["export"] == first["export"]
    assert (folder / "export.json").stat().st_mtime_ns == made  # reused, not made again
    labels, probabilities = expected
    for row in pq.read_table(tmp_path / "b.parquet").to_pylist():
        if Path(row["input"]).name in UNREADABLE:
            assert row["label"] is None and row["error"]
            continue
        p = probabilities[row["input"]]
        np.testing.assert_allclose(list(row["probabilities"].values()), p, atol=1e-4)
        assert row["label"] == labels[int(np.argmax(p))]
    assert read_metadata(tmp_path / "b.parquet")["model"] == ref.identity


def test_a_bundle_that_cannot_be_exported_runs_with_torch_on_ray(
    cluster, bundle, pool, expected, tmp_path, monkeypatch
):
    """The bundle copied without its run folder has no held-out examples to check an export
    on: the workers load the bundle itself, with the same results."""
    import shutil

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))  # no export cached
    alone = tmp_path / "model"
    shutil.copytree(bundle, alone)
    out = tmp_path / "torch.parquet"
    summary = run_job("predict", str(alone), [str(pool)], out,
                      settings=JobSettings(engine="ray", batch_size=16))  # fmt: skip
    assert summary["export"] is None and not (tmp_path / "cache" / "exports").exists()
    labels, probabilities = expected
    for row in pq.read_table(out).to_pylist():
        if Path(row["input"]).name not in UNREADABLE:
            p = probabilities[row["input"]]
            np.testing.assert_allclose(list(row["probabilities"].values()), p, atol=1e-5)


@pytest.mark.parametrize("where", ["missing", "tampered", "another bundle"])
def test_a_worker_without_the_export_on_its_node_runs_the_bundle(bundle, pool, expected,
                                                                  tmp_path, where):  # fmt: skip
    """A cluster's other nodes may not hold the driver's cached export, or hold something
    else at that path: the worker opens the bundle instead of trusting it."""
    import shutil
    from dataclasses import replace

    from transferkit.data.dataset import Sample
    from transferkit.scale.models import OpenModel, resolve_model, with_export

    ref = with_export(resolve_model(str(bundle)))
    copy = tmp_path / "export"
    if where != "missing":
        shutil.copytree(ref.export, copy)
    if where == "tampered":
        with (copy / "model.onnx").open("r+b") as f:
            f.seek(-1, os.SEEK_END)
            f.write(b"\x00")
    if where == "another bundle":
        ref = replace(ref, identity={"bundle_manifest_sha256": "0" * 64})
    model = OpenModel(replace(ref, export=str(copy)), batch_size=8, threads=1)
    assert not model.runs_export  # the bundle, with torch
    files = [p for p in map(Path, _inputs(pool)) if p.name not in UNREADABLE][:8]
    proba, ok, _ = model.predict_proba(tuple(Sample(f, None, None) for f in files))
    labels, probabilities = expected
    np.testing.assert_allclose(proba, [probabilities[str(f)] for f in files], atol=1e-5)


def test_an_exported_model_predicts_a_file_list_on_ray(
    cluster, bundle, pool, expected, tmp_path, capsys
):
    """The torch-free exported folder in the actors: the bundle's labels and probabilities."""
    heldout = make_shapes_folder(tmp_path / "heldout", per_class=2, seed=3)
    exported = tmp_path / "model-onnx"
    code = main(["-q", "export", str(bundle), "--format", "onnx", "--data", str(heldout),
                 "--out", str(exported)])  # fmt: skip
    assert code == 0
    names = _inputs(pool)[:60]
    listing = tmp_path / "files.txt"
    listing.write_text("# sixty of the pool\n" + "\n".join(names) + "\n")
    out = tmp_path / "onnx.parquet"
    code = main(["-q", "predict", str(exported), str(listing), "--engine", "ray",
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["input"] for r in rows) == sorted(names)
    labels, probabilities = expected
    for row in rows:
        p = probabilities[row["input"]]
        np.testing.assert_allclose(list(row["probabilities"].values()), p, atol=1e-4)
        assert row["label"] == labels[int(np.argmax(p))]
    assert read_metadata(out)["model"] == {
        "export_sha256": json.loads((exported / "export.json").read_text())["export_sha256"]
    }
    # a GPU worker whose onnxruntime has no CUDA refuses to run on the CPU instead, and says so
    gpu = ["predict", str(exported), str(listing), "--engine", "ray", "--output",
           str(tmp_path / "gpu.parquet"), "--gpus-per-worker"]  # fmt: skip
    capsys.readouterr()
    assert main([*gpu, "1"]) == 2
    err = capsys.readouterr().err
    assert "onnxruntime on the GPU node" in err and "no CUDA" in err and "onnxruntime-gpu" in err
    # more GPUs per worker than the cluster has: refused, where Ray would wait forever
    assert main([*gpu, "2"]) == 2
    assert "has 1 GPUs: not enough for one worker of 2" in capsys.readouterr().err


def test_gpu_workers_are_refused_for_a_bundle_whose_encoder_runs_on_cpu(bundle, pool, tmp_path,
                                                                         capsys):  # fmt: skip
    code = main(["predict", str(bundle), str(pool), "--engine", "ray", "--gpus-per-worker", "1",
                 "--output", str(tmp_path / "gpu.parquet")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "runs on the CPU" in err and "transferkit export" in err


def _map_workers() -> dict[int, str]:
    """pid -> title of the processes running Ray Data's actor pool (ray::MapWorker...)."""
    found = {}
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        title = " ".join(proc.info["cmdline"] or [])
        if title.startswith("ray::MapWorker") and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found[proc.info["pid"]] = title
    return found


def _kill_and_wait(pid: int, timeout: float = 30.0) -> None:
    """SIGKILL is asynchronous: wait until the process is really gone (or a zombie its parent
    has not reaped yet), so a listing taken right after the kill does not still show it."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"ray::MapWorker {pid} still alive {timeout:.0f} s after SIGKILL")


def test_a_worker_killed_mid_run_leaves_every_input_exactly_once(cluster, bundle, pool, tmp_path):
    killed: dict[str, object] = {}
    seen_after: set[int] = set()  # ray::MapWorker processes seen after the kill

    def kill_one_worker(event):
        if event.kind != "progress" or not event.name.startswith("Predicting"):
            return
        if "pid" in killed:
            seen_after.update(_map_workers())
            return
        if event.data["n"] >= 48:  # some batches back, most still to come
            pid = next(iter(_map_workers()))
            _kill_and_wait(pid)
            killed.update(pid=pid, at=event.data["n"], total=event.data["total"])

    out = tmp_path / "predictions.parquet"
    summary = run_job(
        "predict", str(bundle), [str(pool)], out,
        settings=JobSettings(engine="ray", batch_size=8, placement=Placement(workers=2)),
        events=Events([kill_one_worker]),
    )  # fmt: skip
    assert killed and killed["at"] < killed["total"] - 16  # the kill came mid-run
    assert killed["pid"] not in seen_after  # that process stayed dead: Ray reran its batches
    # (with MAX_RESTARTS = 0 this run fails with ActorDiedError instead)
    table = pq.read_table(out)
    names = table.column("input").to_pylist()
    assert len(names) == len(set(names)) == POOL + 3 and sorted(names) == _inputs(pool)
    assert summary["rows"] == POOL + 3 and summary["errors"] == 3
    assert table.column("error").null_count == POOL


def test_an_interrupted_run_is_resumed_keeping_what_it_wrote(cluster, bundle, pool, tmp_path):
    out = tmp_path / "predictions.parquet"
    settings = JobSettings(engine="ray", batch_size=8, part_rows=16)

    def interrupt(event):  # Ctrl-C once a few parts are written
        if event.kind == "progress" and event.name.startswith("Predicting"):
            if event.data["state"] == "update" and event.data["n"] >= 64:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job("predict", str(bundle), [str(pool)], out, settings=settings,
                events=Events([interrupt]))  # fmt: skip
    assert not out.exists()
    parts = sorted((tmp_path / ".predictions.parquet.parts").glob("part-*.parquet"))
    assert parts
    before = {r["input"]: r for p in parts for r in pq.read_table(p).to_pylist()}
    assert 64 <= len(before) < POOL

    # another model must not continue these parts
    with pytest.raises(BadInputError, match="another job"):
        run_job("embed", "mobilenet_v2", [str(pool)], out, settings=settings)

    summary = run_job("predict", str(bundle), [str(pool)], out, settings=settings)
    assert summary["resumed"] == len(before)
    assert summary["computed"] == POOL + 3 - len(before)
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["input"] for r in rows) == _inputs(pool)
    assert all(before[r["input"]] == r for r in rows if r["input"] in before)  # kept as written
    assert not (tmp_path / ".predictions.parquet.parts").exists()

    with pytest.raises(BadInputError, match="exists and is complete"):
        run_job("predict", str(bundle), [str(pool)], out, settings=settings)


def test_embed_joins_a_running_cluster_by_address(cluster, pool, tmp_path):
    """`transferkit embed` in its own process, on the module's cluster by --address, quiet."""
    listing = tmp_path / "files.txt"
    names = _inputs(pool)[:40]
    listing.write_text("\n".join(names) + "\n" + str(tmp_path / "missing.png") + "\n")
    out = tmp_path / "embeddings.parquet"
    command = [sys.executable, "-m", "transferkit.cli", "-q", "embed", "mobilenet_v2",
               str(listing), "--engine", "ray", "--address", cluster, "--output", str(out),
               "--workers", "1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "Listing" not in done.stderr and "Embedding" not in done.stderr  # -q: no progress
    table = pq.read_table(out)
    rows = dict(zip(table.column("input").to_pylist(), table.to_pylist()))
    assert sorted(rows) == sorted([*names, str(tmp_path / "missing.png")])
    good = [r for r in rows.values() if r["error"] is None]
    assert len(good) == len([n for n in names if Path(n).name not in UNREADABLE])
    assert {len(r["embedding"]) for r in good} == {1280}  # mobilenet_v2's pooled features
    assert rows[str(tmp_path / "missing.png")]["embedding"] is None


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("predictions.csv", "a .parquet or .jsonl file"),
        ("a-file/predictions.parquet", "is a file, not a folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    bundle, pool, tmp_path, capsys, output, message
):
    (tmp_path / "a-file").write_text("not a folder")
    started = time.perf_counter()
    code = main(["predict", str(bundle), str(pool), "--engine", "ray",
                 "--output", str(tmp_path / output)])  # fmt: skip
    assert code == 2 and message in capsys.readouterr().err
    assert time.perf_counter() - started < 5  # refused before Ray or the model start


def test_an_address_where_no_cluster_answers_is_refused_in_seconds(pool, tmp_path):
    """Ray itself retries an unreachable address for minutes; the job says so at once."""
    require_offline_weights("mobilenet_v2")  # the backbone is resolved before Ray is joined
    command = [sys.executable, "-m", "transferkit.cli", "embed", "mobilenet_v2", str(pool),
               "--engine", "ray", "--address", "127.0.0.1:1", "--output",
               str(tmp_path / "embeddings.parquet")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "127.0.0.1:1: nothing answers there" in done.stderr
    assert "ray start --head" in done.stderr and "Listing" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # no parts started


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in any folder")
def test_an_output_in_a_read_only_folder_is_refused(bundle, pool, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    code = main(["predict", str(bundle), str(pool), "--engine", "ray",
                 "--output", str(folder / "out.parquet")])  # fmt: skip
    assert code == 2 and "cannot write in" in capsys.readouterr().err


def test_a_table_of_image_paths_is_predicted_on_ray(cluster, bundle, pool, expected, tmp_path):
    """A CSV (paths relative to it) and a Parquet table of image paths: each row's file once."""
    import pyarrow as pa

    names = _inputs(pool)[:40]
    table = pool.parent / "pool.csv"  # relative paths are relative to the table's folder
    rows = [f"{i},pool/{Path(n).name}" for i, n in enumerate(names)]
    table.write_text("id,image\n" + "\n".join(rows) + "\n")
    parquet = tmp_path / "more.parquet"
    pq.write_table(pa.table({"shot": names[:10], "n": list(range(10))}), parquet)
    out = tmp_path / "table.parquet"
    code = main(["-q", "predict", str(bundle), str(table), str(parquet), "--engine", "ray",
                 "--output", str(out)])  # fmt: skip
    assert code == 2  # the Parquet table's column is not one of the usual names
    code = main(["-q", "predict", str(bundle), str(table), "--engine", "ray", "--output",
                 str(out), "--path-col", "image"])  # fmt: skip
    assert code == 0
    got = pq.read_table(out).to_pylist()
    assert sorted(Path(r["input"]).resolve() for r in got) == sorted(
        Path(n).resolve() for n in names
    )
    labels, probabilities = expected
    for row in got:
        p = probabilities[str(Path(row["input"]).resolve())]
        assert row["label"] == labels[int(np.argmax(p))]
