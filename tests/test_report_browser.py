"""report.html in a real headless Chromium (Debian ``chromium``, driven by Playwright): it renders
with no console errors, every image decodes, every section the nav links to is on screen, and a
screenshot shows a page (not a blank or broken one).

The reports come from real ``transferkit train`` runs: images with ``--backbone auto`` (ranking
table, learning curve, embedding map, mistakes with thumbnails, cross-validation) and text
(mistakes as text).
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import draw_shape, make_shapes_folder, need, require_offline_weights
from PIL import Image

from transferkit.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    need("Debian chromium", chromium is not None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the playwright Python package", False)
    with sync_playwright() as p:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


def _inspect(browser, report: Path, shot: Path) -> dict:
    """Load the page; return console errors, broken images, missing sections, the screenshot."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(report.as_uri(), wait_until="load")
    # thumbnails are loading="lazy": make them load, then ask each whether it decoded
    page.evaluate("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
    page.evaluate("Promise.all([...document.images].map(i => i.decode().catch(() => null)))")
    broken = page.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length"
    )
    anchors = page.evaluate(
        "[...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href').slice(1))"
    )
    hidden = [
        a
        for a in anchors
        if not page.evaluate(
            f"(() => {{ const s = document.getElementById({a!r}); "
            "return !!s && s.getBoundingClientRect().height > 40; })()"
        )
    ]
    # a table or chart drawn outside its own card (a stray position:absolute) overprints others
    misplaced = page.evaluate(
        """(() => {
        const bad = [];
        for (const card of document.querySelectorAll('main > section.card, main > header')) {
          const c = card.getBoundingClientRect();
          for (const el of card.querySelectorAll('table, svg, img')) {
            const r = el.getBoundingClientRect();
            if (r.height > 0 && (r.top < c.top - 1 || r.bottom > c.bottom + 1))
              bad.push((card.id || 'header') + ' ' + el.tagName);
          }
        }
        return bad;
      })()"""
    )
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    return {
        "errors": errors,
        "broken": broken,
        "anchors": anchors,
        "hidden": hidden,
        "misplaced": misplaced,
    }


def _assert_not_blank(shot: Path) -> None:
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
    pixels = np.asarray(image, dtype=np.float64)
    assert image.height > 1500, "the page is too short: sections are missing"
    assert pixels.std() > 15, "the screenshot is (nearly) one colour: a blank page"
    assert len(np.unique(pixels)) > 64, "too few shades for a page of charts and text"


def test_image_report_renders_cleanly_in_chromium(browser, tmp_path):
    for name in ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        require_offline_weights(name)
    data = make_shapes_folder(tmp_path / "shapes", per_class=12)
    for i in range(3):  # circles filed as squares: mistakes, so the gallery has thumbnails
        draw_shape("circle", 900 + i).save(data / "square" / f"odd{i}.png")
    out = tmp_path / "run"
    args = ["train", str(data), "--backbone", "auto", "--cv", "3", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    found = _inspect(browser, out / "report.html", tmp_path / "image.png")
    assert found["errors"] == [] and found["broken"] == 0
    for section in ("ranking", "learning-curve", "confusion", "embedding-map", "mistakes"):
        assert section in found["anchors"]
    assert found["hidden"] == [] and found["misplaced"] == []
    _assert_not_blank(tmp_path / "image.png")


def test_text_report_renders_cleanly_in_chromium(browser, tmp_path, monkeypatch):
    require_offline_weights("glove_6b_50d")
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    words = {"good": ["great", "lovely", "superb", "fine"], "bad": ["awful", "dull", "poor"]}
    rows = [
        (f"a {w} film, {v} acting and a <b>{w}</b> plot", label)
        for label, ws in words.items()
        for w in ws
        for v in ("truly", "really", "quite", "so", "very")
    ]
    table = tmp_path / "reviews.csv"
    with open(table, "w", newline="", encoding="utf-8") as fp:
        csv.writer(fp).writerows([("text", "label"), *rows])
    out = tmp_path / "run"
    args = ["train", str(table), "--backbone", "glove_6b_50d", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    found = _inspect(browser, out / "report.html", tmp_path / "text.png")
    assert found["errors"] == [] and found["broken"] == 0 and found["hidden"] == []
    assert found["misplaced"] == [] and "embedding-map" in found["anchors"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<b>" not in page.split("<main>")[1]  # text from the data is escaped, not markup
    _assert_not_blank(tmp_path / "text.png")
