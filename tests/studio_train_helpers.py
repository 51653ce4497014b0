"""Shared by the studio's training, jobs, live and export tests: projects filled with real
examples (MNIST digits, 20 Newsgroups posts, espeak-ng speech, as the browser tests use) through
the HTTP API, and a training waited for through the job it starts."""

from __future__ import annotations

import time
from pathlib import Path

from studio_browser_helpers import newsgroup_posts, spoken_words, write_digits
from studio_helpers import files

FINISHED = ("done", "failed", "cancelled")


def digit_examples(root: Path, digits=(0, 1, 7), per_class: int = 11) -> dict[str, list[Path]]:
    """{"digit-D": [PNG paths]}: real MNIST digits; the last of each class is kept out of the
    project (for predictions on a held-out file)."""
    return write_digits(root, digits=digits, per_class=per_class)


def word_examples(root: Path, words=("yes", "stop", "left"), per_class: int = 6):
    """{word: [WAV paths]}: each word said by espeak-ng in ``per_class`` voices."""
    return spoken_words(root, words=words, per_class=per_class)


def post_examples(per_class: int = 8) -> dict[str, list[str]]:
    """{group: [posts]}: 20 Newsgroups posts of three groups, cut to 600 characters."""
    return {g: posts[:per_class] for g, posts in newsgroup_posts(per_class).items()}


def make_project(c, name: str, modality: str, examples: dict[str, list]) -> dict:
    """A project with a class per key; paths are uploaded as files, strings pasted as texts.
    Returns the project as GET /api/projects/{pid} answers."""
    project = c.post("/api/projects", json={"name": name, "modality": modality})
    assert project.status_code == 201, project.text
    pid = project.json()["id"]
    for cls, items in examples.items():
        made = c.post(f"/api/projects/{pid}/classes", json={"name": cls})
        assert made.status_code == 201, made.text
        add_examples(c, made.json()["id"], items)
    return c.get(f"/api/projects/{pid}").json()


def add_examples(c, cid: str, items: list) -> dict | None:
    if not items:
        return None
    if isinstance(items[0], str):
        answer = c.post(f"/api/classes/{cid}/examples", json={"texts": items, "source": "paste"})
    else:
        answer = c.post(
            f"/api/classes/{cid}/examples", files=files(*[(p.name, p.read_bytes()) for p in items])
        )
    assert answer.status_code == 200, answer.text
    assert not answer.json()["refused"], answer.json()["refused"]
    return answer.json()


def wait_job(c, jid: str, timeout: float = 120) -> dict:
    """Poll GET /api/jobs/{jid} until the job is over; its final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{jid}").json()
        if job["state"] in FINISHED:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {jid} still {job['state']} after {timeout} s: {job['log']}")


def train(c, pid: str, timeout: float = 120, **settings) -> tuple[dict, dict]:
    """POST train, wait for the job; (the job, GET /api/runs/{rid})."""
    started = c.post(f"/api/projects/{pid}/train", json=settings)
    assert started.status_code == 202, started.text
    job = wait_job(c, started.json()["job_id"], timeout)
    assert job["state"] == "done", job
    return job, c.get(f"/api/runs/{started.json()['run_id']}").json()
