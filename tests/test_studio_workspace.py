"""The studio's workspace: what it stores survives a reopen byte for byte, names are checked,
blobs are content-addressed and swept when nothing refers to them, runs are recorded."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest
from studio_helpers import audio_bytes, image_bytes

from transferkit.errors import BadInputError
from transferkit.studio.workspace import Conflict, NotFound, Workspace


@pytest.fixture
def ws(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


def _blob_files(ws: Workspace) -> set[str]:
    return {p.name for p in ws.blobs.root.glob("??/*")}


def test_examples_survive_a_reopen_with_their_bytes(tmp_path):
    ws = Workspace(tmp_path / "ws")
    project = ws.create_project("  Pets  ", "image")
    assert project["name"] == "Pets" and project["modality"] == "image"
    cat, dog = ws.add_class(project["id"], "cat"), ws.add_class(project["id"], "dog")
    sent = {"a.png": image_bytes(1), "b.jpg": image_bytes(2, fmt="JPEG")}
    result = ws.add_examples(cat["id"], list(sent.items()), "upload")
    assert result["refused"] == []
    ws.add_examples(dog["id"], [("c.png", image_bytes(3))], "webcam")
    ws.close()

    again = Workspace(tmp_path / "ws")
    try:
        assert [c["name"] for c in again.project(project["id"])["classes"]] == ["cat", "dog"]
        stored = again.examples(cat["id"])
        assert [e["name"] for e in stored] == ["a.png", "b.jpg"]
        assert [e["media_type"] for e in stored] == ["image/png", "image/jpeg"]
        for example in stored:
            data = again.blob_path(example).read_bytes()
            assert data == sent[example["name"]]
            assert example["sha256"] == hashlib.sha256(data).hexdigest()
            assert example["size"] == len(data) and example["source"] == "upload"
        listed = again.projects()
        assert [(p["name"], p["classes"], p["examples"]) for p in listed] == [("Pets", 2, 3)]
    finally:
        again.close()


def test_the_same_bytes_are_one_blob(ws):
    pid = ws.create_project("p", "image")["id"]
    a, b = ws.add_class(pid, "a")["id"], ws.add_class(pid, "b")["id"]
    data = image_bytes(7)
    first = ws.add_examples(a, [("x.png", data)], "upload")["added"][0]
    second = ws.add_examples(b, [("y.png", data)], "upload")["added"][0]
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert _blob_files(ws) == {f"{first['sha256']}.png"}
    assert ws.blob_path(first).parent.name == first["sha256"][:2]


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "empty"),
        ("../up", "cannot be a folder name"),
        ("a/b", "cannot be a folder name"),
        (".hidden", "cannot be a folder name"),
        ("tab\there", None),  # white space is folded to one space
        ("bell\x07", "control characters"),
        ("x" * 101, "keep it to 100"),
    ],
)
def test_class_names_must_make_folders(ws, name, message):
    pid = ws.create_project("p", "image")["id"]
    if message is None:
        assert ws.add_class(pid, name)["name"] == "tab here"
        return
    with pytest.raises(BadInputError, match=message):
        ws.add_class(pid, name)


def test_class_names_are_unique_ignoring_case(ws):
    pid = ws.create_project("p", "text")["id"]
    ws.add_class(pid, "Spam")
    ham = ws.add_class(pid, "ham")["id"]
    with pytest.raises(Conflict, match="'Spam'"):
        ws.add_class(pid, "spam")
    with pytest.raises(Conflict):
        ws.rename_class(ham, "SPAM")
    assert ws.rename_class(ham, "Ham")["name"] == "Ham"  # its own name, another case


def test_unknown_ids_and_modalities(ws):
    with pytest.raises(NotFound):
        ws.project("nope")
    with pytest.raises(NotFound):
        ws.add_class("nope", "a")
    with pytest.raises(NotFound):
        ws.add_examples("nope", [("a.png", image_bytes())], "upload")
    with pytest.raises(BadInputError, match="image, audio, text"):
        ws.create_project("p", "video")


def test_move_stays_within_a_project_and_delete_cascades(ws):
    p1, p2 = ws.create_project("one", "image")["id"], ws.create_project("two", "image")["id"]
    a, b = ws.add_class(p1, "a")["id"], ws.add_class(p1, "b")["id"]
    elsewhere = ws.add_class(p2, "a")["id"]
    example = ws.add_examples(a, [("x.png", image_bytes())], "upload")["added"][0]
    assert ws.move_example(example["id"], b)["class_id"] == b
    assert [c["count"] for c in ws.project(p1)["classes"]] == [0, 1]
    with pytest.raises(BadInputError, match="another project"):
        ws.move_example(example["id"], elsewhere)
    ws.delete_class(b)
    with pytest.raises(NotFound):
        ws.example(example["id"])
    ws.delete_project(p1)
    assert [p["id"] for p in ws.projects()] == [p2]


def test_unreferenced_blobs_and_partial_writes_are_swept_at_start(tmp_path):
    ws = Workspace(tmp_path / "ws")
    pid = ws.create_project("p", "audio")["id"]
    cid = ws.add_class(pid, "tone")["id"]
    keep, drop = audio_bytes(440), audio_bytes(880)
    kept = ws.add_examples(cid, [("keep.wav", keep)], "microphone")["added"][0]
    gone = ws.add_examples(cid, [("drop.wav", drop)], "upload")["added"][0]
    ws.delete_example(gone["id"])
    (ws.blobs.tmp / "blob-123.part").write_bytes(b"half a file")  # what a kill leaves
    assert len(_blob_files(ws)) == 2
    ws.close()

    again = Workspace(tmp_path / "ws")
    try:
        assert _blob_files(again) == {f"{kept['sha256']}.wav"}
        assert list(again.blobs.tmp.iterdir()) == []
        assert again.blob_path(again.example(kept["id"])).read_bytes() == keep
    finally:
        again.close()


def test_one_studio_per_workspace(ws):
    with pytest.raises(BadInputError, match="another transferkit studio"):
        Workspace(ws.root)


def test_a_newer_schema_is_refused(tmp_path):
    Workspace(tmp_path / "ws").close()
    with sqlite3.connect(tmp_path / "ws" / "studio.sqlite3") as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(BadInputError, match="newer transferkit"):
        Workspace(tmp_path / "ws")


def test_blob_paths_come_from_hex_digests_only(ws):
    for sha, ext in [("../../etc/passwd", ".png"), ("a" * 64, "/../../x"), ("A" * 64, ".png")]:
        with pytest.raises(ValueError, match="not a blob name"):
            ws.blob_path({"sha256": sha, "ext": ext})


def test_runs_are_recorded_and_their_folders_go_with_the_project(ws):
    pid = ws.create_project("p", "text")["id"]
    first = ws.add_run(pid, {"backbone": "auto", "seed": 0})
    second = ws.add_run(pid, {"backbone": "auto", "seed": 1})
    assert first["state"] == "running" and first["settings"] == {"backbone": "auto", "seed": 0}
    assert [r["id"] for r in ws.running_runs()] == [first["id"], second["id"]]
    with pytest.raises(Conflict, match="training"):
        ws.delete_project(pid)
    done = ws.finish_run(first["id"], "done")
    assert done["state"] == "done" and done["finished"] >= done["created"]
    ws.finish_run(second["id"], "failed", "out of memory")
    assert [r["id"] for r in ws.runs(pid)] == [second["id"], first["id"]]  # newest first
    assert ws.run(second["id"])["error"] == "out of memory"
    with pytest.raises(BadInputError, match="done"):
        ws.finish_run(first["id"], "exploded")
    run_dir, export_dir = ws.run_dir(first["id"]), ws.export_dir(first["id"])
    assert run_dir == ws.root / "runs" / first["id"]
    (run_dir / "model").mkdir(parents=True)
    export_dir.mkdir(parents=True)
    ws.delete_project(pid)
    assert not run_dir.exists() and not export_dir.exists()
    with pytest.raises(NotFound):
        ws.run_dir(first["id"])


def test_project_examples_in_class_order(ws):
    pid = ws.create_project("p", "text")["id"]
    b, a = ws.add_class(pid, "b")["id"], ws.add_class(pid, "a")["id"]
    ws.add_examples(a, [("t1", b"first a"), ("t2", b"second a")], "paste")
    ws.add_examples(b, [("t3", "un été".encode())], "paste")
    rows = ws.project_examples(pid)
    assert [(label, e["name"]) for label, e, _ in rows] == [("b", "t3"), ("a", "t1"), ("a", "t2")]
    assert rows[0][2].read_bytes() == "un été".encode()


def test_concurrent_uploads_all_land(ws):
    pid = ws.create_project("p", "image")["id"]
    cid = ws.add_class(pid, "a")["id"]
    errors = []

    def upload(seed):
        try:
            items = [(f"{seed}-{i}.png", image_bytes(seed * 10 + i, size=16)) for i in range(5)]
            ws.add_examples(cid, items, "upload")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(ws.examples(cid)) == 20 and len(_blob_files(ws)) == 20
