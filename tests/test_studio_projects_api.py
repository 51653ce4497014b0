"""The project routes over HTTP: projects, classes and examples of each modality made,
listed, renamed, moved and deleted, their contents and previews, in serve's error shape."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from studio_helpers import audio_bytes, client, files, image_bytes

from transferkit.studio.app import create_app


@pytest.fixture
def c(tmp_path):
    with client(create_app(tmp_path / "ws")) as c:
        yield c


def _project(c, modality, *classes):
    pid = c.post("/api/projects", json={"name": f"{modality} p", "modality": modality}).json()["id"]
    cids = [c.post(f"/api/projects/{pid}/classes", json={"name": n}).json()["id"] for n in classes]
    return pid, cids


def test_health_and_modalities(c):
    assert c.get("/api/health").json()["ok"] is True
    kinds = {m["name"]: m for m in c.get("/api/modalities").json()}
    assert set(kinds) == {"image", "audio", "text"}
    assert kinds["image"]["capture"] == "webcam" and "image/png" in kinds["image"]["accept"]
    assert kinds["audio"]["capture"] == "microphone" and "audio/wav" in kinds["audio"]["accept"]
    assert kinds["text"]["capture"] is None and kinds["text"]["inline_inputs"] is True
    assert kinds["text"]["max_file_bytes"] == 64 * 1024
    assert kinds["image"]["max_file_bytes"] == 16 * 2**20


def test_projects_and_classes_lifecycle(c):
    r = c.post("/api/projects", json={"name": "Birds", "modality": "image"})
    assert r.status_code == 201
    pid = r.json()["id"]
    r = c.post(f"/api/projects/{pid}/classes", json={"name": "robin"})
    assert r.status_code == 201 and r.json()["name"] == "robin"
    robin = r.json()["id"]
    wren = c.post(f"/api/projects/{pid}/classes", json={"name": "wren"}).json()["id"]
    r = c.post(f"/api/projects/{pid}/classes", json={"name": "Robin"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert c.patch(f"/api/classes/{wren}", json={"name": "jay"}).json()["name"] == "jay"
    assert c.patch(f"/api/projects/{pid}", json={"name": "Garden"}).json()["name"] == "Garden"
    c.post(f"/api/classes/{robin}/examples", files=files(("r.png", image_bytes(1))))

    project = c.get(f"/api/projects/{pid}").json()
    assert project["name"] == "Garden" and project["modality"] == "image"
    assert project["classes"] == [
        {"id": robin, "name": "robin", "count": 1},
        {"id": wren, "name": "jay", "count": 0},
    ]
    assert project["runs"] == []
    listed = c.get("/api/projects").json()
    assert [(p["id"], p["classes"], p["examples"]) for p in listed] == [(pid, 2, 1)]

    assert c.delete(f"/api/classes/{wren}").status_code == 204
    assert c.delete(f"/api/projects/{pid}").status_code == 204
    r = c.get(f"/api/projects/{pid}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert c.get("/api/projects").json() == []


@pytest.mark.parametrize(
    "body, status",
    [
        ({"name": "p"}, 422),  # no modality
        ({"name": "p", "modality": "video"}, 422),
        ({"name": "", "modality": "text"}, 422),
        ({"name": "p", "modality": "text", "extra": 1}, 422),
        ({"name": 5, "modality": "text"}, 422),
    ],
)
def test_bad_project_bodies_are_422_in_one_shape(c, body, status):
    r = c.post("/api/projects", json=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["status"] == status and error["code"] and error["message"]


def test_image_examples_content_preview_move_delete(c):
    pid, (a, b) = _project(c, "image", "a", "b")
    wide = io.BytesIO()
    Image.new("RGB", (400, 100), (10, 200, 30)).save(wide, "JPEG")
    r = c.post(
        f"/api/classes/{a}/examples",
        files=files(("wide.jpg", wide.getvalue()), ("n.png", image_bytes(2))),
        data={"source": "upload"},
    )
    assert r.status_code == 200
    wide_ex, noise_ex = r.json()["added"]
    assert set(wide_ex) >= {"id", "class_id", "name", "sha256", "media_type", "size", "source"}

    content = c.get(f"/api/examples/{wide_ex['id']}/content")
    assert content.content == wide.getvalue() and content.headers["content-type"] == "image/jpeg"
    thumb = c.get(f"/api/examples/{wide_ex['id']}/preview")
    assert thumb.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(thumb.content))
    assert image.size == (128, 32)  # at most 128 px, the aspect kept
    again = c.get(f"/api/examples/{wide_ex['id']}/preview")  # from the cache now
    assert again.content == thumb.content

    r = c.patch(f"/api/examples/{noise_ex['id']}", json={"class_id": b})
    assert r.status_code == 200 and r.json()["class_id"] == b
    assert [e["id"] for e in c.get(f"/api/classes/{b}/examples").json()] == [noise_ex["id"]]
    assert c.delete(f"/api/examples/{noise_ex['id']}").status_code == 204
    assert c.get(f"/api/examples/{noise_ex['id']}/content").status_code == 404
    assert c.get(f"/api/classes/{b}/examples").json() == []


def test_audio_examples_have_a_waveform(c):
    pid, (tone,) = _project(c, "audio", "tone")
    clip = audio_bytes(440, seconds=1.5)
    r = c.post(
        f"/api/classes/{tone}/examples", files=files(("t.wav", clip)), data={"source": "microphone"}
    )
    example = r.json()["added"][0]
    assert example["media_type"] == "audio/wav" and example["source"] == "microphone"
    wave = c.get(f"/api/examples/{example['id']}/preview").json()
    assert len(wave["peaks"]) == 100 and max(wave["peaks"]) == 1.0
    assert min(wave["peaks"]) > 0.5  # a steady tone: every bar is loud
    assert wave["seconds"] == pytest.approx(1.5, abs=0.01)
    assert c.get(f"/api/examples/{example['id']}/content").content == clip


def test_pasted_texts_and_text_files(c):
    pid, (pos, neg) = _project(c, "text", "positive", "negative")
    long = "a wonderful film " * 40
    r = c.post(
        f"/api/classes/{pos}/examples",
        json={"texts": ["loved it", long, "  ", "and/or great"], "source": "paste"},
    )
    assert r.status_code == 200
    added, refused = r.json()["added"], r.json()["refused"]
    assert [e["name"] for e in added] == ["loved it", long.strip()[:39] + "…", "and or great"]
    assert [x["name"] for x in refused] == ["text 3"]
    preview = c.get(f"/api/examples/{added[1]['id']}/preview").json()
    assert preview == {"text": long[:300]}
    r = c.post(
        f"/api/classes/{neg}/examples", files=files(("review.txt", "dull, très long".encode()))
    )
    example = r.json()["added"][0]
    assert example["source"] == "upload"
    assert c.get(f"/api/examples/{example['id']}/content").text == "dull, très long"
    r = c.post(f"/api/classes/{neg}/examples", json={"texts": "not a list"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_json"


def test_runs_appear_in_the_project(c):
    pid, _ = _project(c, "text", "a", "b")
    ws = c.app.state.workspace
    older = ws.add_run(pid, {"backbone": "auto"})
    ws.finish_run(older["id"], "done")
    newer = ws.add_run(pid, {"backbone": "all_minilm_l6_v2"})
    runs = c.get(f"/api/projects/{pid}").json()["runs"]
    assert [(r["id"], r["state"]) for r in runs] == [
        (newer["id"], "running"),
        (older["id"], "done"),
    ]
    r = c.delete(f"/api/projects/{pid}")
    assert r.status_code == 409 and "training" in r.json()["error"]["message"]


def test_unknown_routes_and_methods_answer_json(c):
    r = c.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = c.put("/api/projects")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
