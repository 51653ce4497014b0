"""Uploads are judged by their bytes, never their names: each accepted format is recognised,
everything else is refused with a message naming the file, and the size and count limits hold
for one file and for a whole request."""

from __future__ import annotations

import pytest
from studio_helpers import audio_bytes, client, files, image_bytes

from transferkit.studio.app import create_app
from transferkit.studio.uploads import UploadLimits, refusal, sniff

LIMITS = UploadLimits()


@pytest.mark.parametrize(
    "make, media_type",
    [
        (lambda: image_bytes(fmt="PNG"), "image/png"),
        (lambda: image_bytes(fmt="JPEG"), "image/jpeg"),
        (lambda: image_bytes(fmt="GIF"), "image/gif"),
        (lambda: image_bytes(fmt="WEBP"), "image/webp"),
        (lambda: image_bytes(fmt="BMP"), "image/bmp"),
        (lambda: audio_bytes(fmt="WAV"), "audio/wav"),
        (lambda: audio_bytes(fmt="FLAC"), "audio/flac"),
        (lambda: audio_bytes(fmt="OGG"), "audio/ogg"),
        (lambda: audio_bytes(fmt="MP3"), "audio/mpeg"),
        (lambda: "naïve café".encode(), "text/plain"),
    ],
)
def test_every_accepted_format_is_recognised_and_readable(make, media_type):
    data = make()
    assert sniff(data).media_type == media_type
    modality = media_type.split("/")[0]  # the studio's modalities are the types' families
    found = refusal(modality, "x", data, LIMITS)
    assert not isinstance(found, str), found
    assert found.media_type == media_type


@pytest.mark.parametrize(
    "modality, name, data, message",
    [
        ("image", "cat.png", b"hello world", "cat.png is not an image: it starts with 'hello wor'"),
        ("image", "song.png", audio_bytes(), "song.png is not an image: it is a WAV audio file"),
        ("image", "cut.png", image_bytes()[:60], "cut.png cannot be used as an image"),
        ("image", "none.png", b"", "none.png is empty"),
        ("audio", "pic.wav", image_bytes(), "pic.wav is not an audio clip: it is a PNG image"),
        ("audio", "hush.wav", audio_bytes(seconds=0.1)[:44], "hush.wav cannot be used"),
        ("text", "bin.txt", b"abc\x00def", "bin.txt is not a text"),
        ("text", "latin.txt", "café".encode("latin-1"), "latin.txt is not a text"),
        ("text", "blank.txt", b"  \n\t ", "blank.txt cannot be used as a text"),
        ("text", "big.txt", b"a" * (64 * 1024 + 1), "big.txt is 64.0 KiB; the limit for one text"),
    ],
)
def test_refusals_name_the_file_and_the_reason(modality, name, data, message):
    found = refusal(modality, name, data, LIMITS)
    assert isinstance(found, str) and found.startswith(message), found


def test_a_text_that_looks_like_a_magic_number_is_a_text():
    # "BM" starts a BMP image, "ID3" an MP3: in a text project they are just words
    for text in ("BMW make cars", "ID3 tags name songs", "GIF89a is a format"):
        assert refusal("text", "t", text.encode(), LIMITS).media_type == "text/plain"


def test_the_file_size_limit_is_the_servers():
    small = UploadLimits(max_file_bytes=1000)
    data = image_bytes(size=64)
    assert len(data) > 1000
    assert refusal("image", "big.png", data, small).endswith(
        "the limit for one image is 1000 bytes"
    )
    assert not isinstance(refusal("image", "big.png", data, LIMITS), str)


@pytest.fixture
def studio(tmp_path):
    app = create_app(tmp_path / "ws", limits=UploadLimits(max_files=5, max_body_bytes=200_000))
    with client(app) as c:
        pid = c.post("/api/projects", json={"name": "p", "modality": "image"}).json()["id"]
        cid = c.post(f"/api/projects/{pid}/classes", json={"name": "a"}).json()["id"]
        yield c, cid, app


def test_a_request_keeps_the_good_files_and_names_the_bad(studio):
    c, cid, app = studio
    good = image_bytes(3)
    r = c.post(
        f"/api/classes/{cid}/examples",
        files=files(("ok.png", good), ("cat.png", b"hello world"), ("x.jpg", good)),
    )
    assert r.status_code == 200
    body = r.json()
    assert [e["name"] for e in body["added"]] == ["ok.png", "x.jpg"]
    # the type is the one the bytes have, whatever the name says
    assert [e["media_type"] for e in body["added"]] == ["image/png", "image/png"]
    assert body["refused"] == [
        {
            "name": "cat.png",
            "reason": "cat.png is not an image: it starts with 'hello wor' "
            "(accepted: PNG, JPG, GIF, WEBP, BMP)",
        }
    ]


def test_a_request_with_nothing_usable_is_422(studio):
    c, cid, app = studio
    r = c.post(f"/api/classes/{cid}/examples", files=files(("a.png", b"GIF89a broken")))
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "no_usable_examples" and "a.png cannot be used" in error["message"]
    assert [x["name"] for x in error["refused"]] == ["a.png"]
    assert c.get(f"/api/classes/{cid}/examples").json() == []


def test_file_names_are_for_display_only(studio):
    c, cid, app = studio
    r = c.post(
        f"/api/classes/{cid}/examples", files=files(("../../../etc/evil.png", image_bytes()))
    )
    example = r.json()["added"][0]
    assert example["name"] == "evil.png"
    path = app.state.workspace.blob_path(example)
    assert path.name == f"{example['sha256']}.png"
    assert path.is_relative_to(app.state.workspace.root / "blobs")


def test_limits_on_files_and_body(studio):
    c, cid, app = studio
    six = files(*[(f"{i}.png", image_bytes(i, size=8)) for i in range(6)])
    r = c.post(f"/api/classes/{cid}/examples", files=six)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_files"
    r = c.post(f"/api/classes/{cid}/examples", files=files(("huge.png", image_bytes(size=300))))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert "transferkit studio --max-upload-mb" in r.json()["error"]["message"]
    assert c.get(f"/api/classes/{cid}/examples").json() == []


def test_sources_fit_the_modality(studio):
    c, cid, app = studio
    r = c.post(
        f"/api/classes/{cid}/examples",
        files=files(("a.png", image_bytes())),
        data={"source": "microphone"},
    )
    assert r.status_code == 422 and "upload, webcam" in r.json()["error"]["message"]
    r = c.post(
        f"/api/classes/{cid}/examples",
        files=files(("a.png", image_bytes())),
        data={"source": "webcam"},
    )
    assert r.json()["added"][0]["source"] == "webcam"


def test_stray_fields_and_wrong_content_types(studio):
    c, cid, app = studio
    r = c.post(
        f"/api/classes/{cid}/examples", files=[("photo", ("a.png", image_bytes(), "image/png"))]
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "unexpected_field"
    r = c.post(
        f"/api/classes/{cid}/examples", content=image_bytes(), headers={"content-type": "image/png"}
    )
    assert r.status_code == 415
    r = c.post(f"/api/classes/{cid}/examples", json={"texts": []})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_examples"
