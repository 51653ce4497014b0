"""The studio's job runner: jobs run one at a time in order, a project has one job at a time,
the library's events become the job's stage, counter, log and event stream, cancel stops a
real training at its next event (queued ones at once), and a studio killed mid-training marks
that run failed when it starts again."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from conftest import require_offline_weights
from studio_browser_helpers import Studio
from studio_helpers import client
from studio_train_helpers import digit_examples, make_project, train, wait_job

from transferkit.errors import BadInputError
from transferkit.events import Event
from transferkit.studio.app import create_app
from transferkit.studio.jobs import Busy, JobRunner, emit_stage
from transferkit.studio.runs import INTERRUPTED
from transferkit.studio.workspace import Workspace


def _wait(runner: JobRunner, job, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not job.over and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.over, job
    return job


def test_jobs_run_one_at_a_time_in_order_and_a_project_has_one_job():
    runner = JobRunner()
    running, order, ended = [], [], []
    gate = threading.Event()

    def work(name):
        def run(job, events):
            running.append(name)
            assert len(running) == 1, running  # never two at once
            gate.wait(5)
            with events.progress(3, f"counting {name}") as bar:
                for _ in range(3):
                    bar.update(1)
            order.append(name)
            running.remove(name)
            return {"name": name}

        return run

    try:
        first = runner.submit("train", work("a"), project_id="p1", on_end=ended.append)
        second = runner.submit("train", work("b"), project_id="p2", on_end=ended.append)
        with pytest.raises(Busy, match="busy with a train job"):
            runner.submit("export", work("c"), project_id="p1")
        assert second.state == "queued"
        gate.set()
        _wait(runner, second)
        assert order == ["a", "b"]
        assert [j.state for j in (first, second)] == ["done", "done"]
        assert second.result == {"name": "b"}
        assert ended == [first, second]  # once each
        assert "counting a: 3/3 it" in first.log[-1]
        # over: the project takes a new job
        third = runner.submit("export", work("c"), project_id="p1")
        _wait(runner, third)
    finally:
        gate.set()
        runner.shutdown()


def test_the_stream_replays_every_event_and_ends_with_the_state():
    runner = JobRunner()

    def run(job, events):
        emit_stage(events, "snapshot")
        with events.progress(2, "Encoding (x)", unit="img") as bar:
            bar.update(2, loss=0.5)
        events.emit(Event("warning", "split", {"message": "a class has few examples"}))
        raise BadInputError("the class 'a' has 1 example")

    try:
        job = _wait(runner, runner.submit("train", run, project_id="p"))
        items, nxt, over = runner.wait_events(job.id, 0, 0.1)
        kinds = [(item["kind"], item["name"]) for _, item in items]
        assert kinds[0] == ("stage", "starting") and kinds[1] == ("stage", "snapshot")
        assert ("progress", "Encoding (x)") in kinds and ("warning", "split") in kinds
        assert items[-1][1] == {
            "kind": "end",
            "name": "failed",
            "data": {"error": "the class 'a' has 1 example"},
        }
        assert over and nxt == len(items) and [n for n, _ in items] == list(range(nxt))
        later, _, _ = runner.wait_events(job.id, 3, 0.1)  # Last-Event-ID 2 resumes at 3
        assert [n for n, _ in later] == list(range(3, nxt))
        assert job.error == "the class 'a' has 1 example" and job.state == "failed"
        assert "warning: a class has few examples" in job.log
        json.dumps(job.describe())  # what the route answers is JSON as it is
    finally:
        runner.shutdown()


def test_cancel_is_not_swallowed_by_code_that_catches_exception():
    runner = JobRunner()
    started = threading.Event()

    def run(job, events):
        started.set()
        while True:  # library code that carries on after any Exception
            try:
                events.emit(Event("metric", "tick", {"value": 1.0}))
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.01)

    try:
        job = runner.submit("train", run, project_id="p")
        queued = runner.submit("train", run, project_id="q")
        assert started.wait(5)
        assert runner.cancel(queued.id).state == "cancelled"  # queued: at once
        runner.cancel(job.id)
        assert _wait(runner, job).state == "cancelled" and job.error == "cancelled"
    finally:
        runner.shutdown()


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digit_examples(tmp_path_factory.mktemp("digits"), per_class=8)


def test_cancel_stops_a_real_training_and_a_queued_one_never_starts(tmp_path, digits):
    """backbone auto ranks every offline image backbone: long enough to cancel midway."""
    require_offline_weights()
    app = create_app(tmp_path / "ws")
    with client(app) as c:
        long = make_project(c, "long", "image", digits)
        other = make_project(c, "other", "image", digits)
        a = c.post(f"/api/projects/{long['id']}/train", json={"backbone": "auto"}).json()
        again = c.post(f"/api/projects/{long['id']}/train", json={})
        assert again.status_code == 409 and again.json()["error"]["code"] == "busy"
        b = c.post(f"/api/projects/{other['id']}/train", json={}).json()
        assert c.get(f"/api/jobs/{b['job_id']}").json()["state"] == "queued"
        deadline = time.monotonic() + 60
        while c.get(f"/api/jobs/{a['job_id']}").json()["progress"] is None:
            assert time.monotonic() < deadline, "no progress from the training"
            time.sleep(0.05)
        training = c.get(f"/api/runs/{a['run_id']}").json()  # a reloaded page follows the job
        assert training["state"] == "running" and training["job_id"] == a["job_id"]
        assert c.post(f"/api/jobs/{b['job_id']}/cancel").status_code == 202
        assert c.post(f"/api/jobs/{a['job_id']}/cancel").status_code == 202
        job = wait_job(c, a["job_id"], timeout=60)
        assert job["state"] == "cancelled"
        assert wait_job(c, b["job_id"])["state"] == "cancelled"
        for started in (a, b):
            run = c.get(f"/api/runs/{started['run_id']}").json()
            assert run["state"] == "cancelled" and run["metrics"] is None and run["job_id"] is None
            assert not (tmp_path / "ws" / "runs" / started["run_id"] / "model").exists()
        # the project is free again
        _, run = train(c, other["id"])
        assert run["state"] == "done"


def test_a_training_killed_with_the_studio_is_marked_failed_at_restart(tmp_path, digits):
    require_offline_weights()
    ws = tmp_path / "ws"
    studio = Studio(ws)
    try:
        page = httpx.get(studio.url, timeout=60).text
        csrf = re.search(r'name="studio-csrf" content="([^"]+)"', page)[1]
        # a busy 2-core machine (other tests, other work) may take seconds to answer
        c = httpx.Client(
            base_url=studio.url.rstrip("/"), headers={"X-Studio-CSRF": csrf}, timeout=60
        )
        project = make_project(c, "killed", "image", digits)
        started = c.post(f"/api/projects/{project['id']}/train", json={"backbone": "auto"})
        events = []
        with c.stream("GET", f"/api/jobs/{started.json()['job_id']}/events") as stream:
            for line in stream.iter_lines():  # live, as the page hears them
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1]["kind"] == "progress":
                        break
        assert [e["name"] for e in events[:3]] == ["starting", "snapshot", "training"]
        studio.proc.kill()  # SIGKILL: no shutdown handler runs
        studio.proc.wait(10)
    finally:
        studio.stop()
    rid = started.json()["run_id"]
    left = Workspace(ws)
    assert left.run(rid)["state"] == "running"  # what the kill left
    left.close()
    app = create_app(ws)
    with client(app) as c:
        run = c.get(f"/api/runs/{rid}").json()
        assert run["state"] == "failed" and run["error"] == INTERRUPTED
        _, again = train(c, project["id"])  # and it trains again
        assert again["state"] == "done"
