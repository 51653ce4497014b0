"""report.html: self-contained, escaped, robust to odd metrics and unreadable images, atomic."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image

from transferkit.report import PLACEHOLDER_URI, thumbnail_data_uri, write_report
from transferkit.report.html import MAX_MISTAKES, render_report
from transferkit.report.thumbnails import try_thumbnail_data_uri

EVIL = '<b>&"x"'


def make_metrics(labels, *, correct=8, wrong=2, zero=()):
    n = len(labels)
    cm = [[0] * n for _ in range(n)]
    for i, lb in enumerate(labels):
        if lb in zero:
            continue
        cm[i][i] = correct
        cm[i][(i + 1) % n] += wrong
    per_class = {}
    for i, lb in enumerate(labels):
        support = sum(cm[i])
        predicted = sum(row[i] for row in cm)
        p = cm[i][i] / predicted if predicted else 0.0
        r = cm[i][i] / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[lb] = {"precision": p, "recall": r, "f1": f1, "support": support}
    total = sum(map(sum, cm))
    return {
        "accuracy": sum(cm[i][i] for i in range(n)) / total,
        "macro_f1": sum(v["f1"] for v in per_class.values()) / n,
        "per_class": per_class,
        "confusion_matrix": cm,
        "labels": list(labels),
        "n_train": 400,
        "n_test": total,
        "backbone": "resnet18",
        "strategy": "features",
        "seconds": {"extract": 3.2, "train": 0.4, "predict": 0.05},
    }


@pytest.fixture
def images(tmp_path):
    paths = []
    for k, (size, mode) in enumerate([((640, 480), "RGB"), ((50, 300), "RGBA"), ((96, 96), "L")]):
        p = tmp_path / f"img{k}.png"
        Image.new(mode, size, 128).save(p)
        paths.append(p)
    return paths


def src_and_href(html: str) -> list[str]:
    return re.findall(r'\b(?:src|href)\s*=\s*["\']([^"\']*)', html, flags=re.I)


def test_report_written_with_headline_numbers(tmp_path):
    m = make_metrics(["cat", "dog"])
    out = write_report(tmp_path / "report.html", m)
    assert out == tmp_path / "report.html" and out.is_file()
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert f"{m['accuracy'] * 100:.1f}%" in html  # 80.0%
    assert f"{m['macro_f1']:.3f}" in html
    for word in ("resnet18", "features", "Confusion matrix", "Per-class", "Timings", "transferkit"):
        assert word in html
    assert "Skipped files" not in html and "Compared with baseline" not in html


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_report_file_follows_the_umask(tmp_path, umask, mode):
    """A service account in the user's group must read what a plain write would let it."""
    old = os.umask(umask)
    try:
        out = write_report(tmp_path / "report.html", make_metrics(["cat", "dog"]))
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == mode


def test_the_style_sheet_ships_with_the_package(tmp_path):
    html = write_report(tmp_path / "r.html", make_metrics(["cat", "dog"])).read_text("utf-8")
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert ":root {" in style and "--card" in style


def test_labels_are_escaped_everywhere(tmp_path, images):
    labels = ["cat", EVIL, "猫咪", 'it\'s "quoted"']
    m = make_metrics(labels)
    m["backbone"] = "<script>alert(1)</script>"
    m["skipped_files"] = [["data/<img src=x onerror=alert(1)>.png", "bad <reason>"]]
    m["extra <key>"] = "<i>value</i>"
    mistakes = [
        {"path": str(images[0]), "true": EVIL, "predicted": "猫咪", "confidence": 0.9},
        {"path": 'x"><script>.jpg', "true": "cat", "predicted": EVIL, "confidence": 0.5},
    ]
    html = write_report(tmp_path / "r.html", m, mistakes=mistakes, title=EVIL).read_text("utf-8")
    assert "<b>" not in html
    assert "<script" not in html
    assert "<img src=x" not in html and "<i>" not in html and "<key>" not in html
    assert "&lt;b&gt;&amp;&quot;x&quot;" in html
    assert "猫咪" in html
    # each escaped label shows in the matrix header, row header and per-class table at least
    assert html.count("&lt;b&gt;&amp;&quot;x&quot;") >= 4
    # all attribute values stay well-formed: no raw quote from user text ends an attribute early
    assert "it&#x27;s &quot;quoted&quot;" in html
    assert "<script>alert(1)</script>" not in html


def test_self_contained_no_remote_references(tmp_path, images):
    m = make_metrics([f"c{i}" for i in range(5)])
    mistakes = [
        {"path": str(p), "true": "c0", "predicted": "c1", "confidence": 0.7} for p in images
    ]
    html = write_report(tmp_path / "r.html", m, mistakes=mistakes).read_text("utf-8")
    refs = src_and_href(html)
    assert refs, "expected images and in-page links"
    for ref in refs:
        assert not ref.lower().startswith(("http://", "https://", "//")), ref
        assert ref.startswith(("data:", "#")), ref
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html


def test_thumbnails_are_small_jpeg_data_uris(tmp_path, images):
    import base64
    import io

    for p in images:
        uri = thumbnail_data_uri(p)
        assert uri.startswith("data:image/jpeg;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert im.format == "JPEG" and max(im.size) <= 96
    m = make_metrics(["a", "b"])
    mistakes = [{"path": str(images[0]), "true": "a", "predicted": "b", "confidence": 0.6}]
    html = render_report(m, mistakes=mistakes)
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) == 1 and imgs[0].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize("kind", ["missing", "garbage", "directory", "truncated", "empty"])
def test_unreadable_image_gets_placeholder(tmp_path, images, kind):
    bad = tmp_path / f"bad_{kind}.jpg"
    if kind == "garbage":
        bad.write_bytes(b"this is not an image at all")
    elif kind == "directory":
        bad.mkdir()
    elif kind == "truncated":
        Image.new("RGB", (300, 300), "red").save(bad, "JPEG")
        bad.write_bytes(bad.read_bytes()[:200])
    elif kind == "empty":
        bad.write_bytes(b"")
    assert try_thumbnail_data_uri(bad) is None
    assert thumbnail_data_uri(bad) == PLACEHOLDER_URI
    mistakes = [
        {"path": str(bad), "true": "a", "predicted": "b", "confidence": 0.99},
        {"path": str(images[0]), "true": "b", "predicted": "a", "confidence": 0.51},
    ]
    html = write_report(tmp_path / "r.html", make_metrics(["a", "b"]), mistakes=mistakes).read_text(
        "utf-8"
    )
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert imgs == [PLACEHOLDER_URI, imgs[1]] and imgs[1].startswith("data:image/jpeg")
    assert "no preview" in html


def test_mistakes_gallery_caps_and_empty_state(tmp_path, images):
    m = make_metrics(["a", "b"])
    many = [
        {"path": str(images[k % 3]), "true": "a", "predicted": "b", "confidence": 1 - k / 100}
        for k in range(40)
    ]
    html = render_report(m, mistakes=many)
    assert html.count('class="mistake"') == MAX_MISTAKES == 24
    assert "24 worst of 40" in html
    assert "100%" in html  # confidence of the first one
    empty = render_report(m, mistakes=[])
    assert 'class="mistake"' not in empty and "No misclassified" in empty


def test_forty_classes_zero_support_and_nan_free(tmp_path):
    labels = [f"class_{i:02d}" for i in range(40)]
    m = make_metrics(labels, zero=("class_07",))
    m["per_class"]["class_07"] = {
        "precision": float("nan"),
        "recall": float("nan"),
        "f1": float("nan"),
        "support": 0,
    }
    m["macro_f1"] = float("nan")
    html = write_report(tmp_path / "r.html", m).read_text("utf-8")
    assert "nan" not in html.lower().replace("nanum", "")  # no NaN text anywhere
    assert "inf" not in re.sub(r"<style>.*?</style>", "", html, flags=re.S).lower()
    assert "cm-s" in html  # compact matrix for many classes
    assert html.count('<td class="diag') == 40
    assert "no test samples" in html
    # per-class table is sorted by F1 ascending; the zero-support class goes last
    rows = re.findall(r'<tr class="[^"]*"><th scope="row" title="([^"]+)"', html)
    assert len(rows) == 40 and rows[-1] == "class_07"


def test_per_class_sorted_by_f1_ascending():
    m = make_metrics(["good", "bad", "mid"])
    for lb, f in (("good", 0.95), ("bad", 0.2), ("mid", 0.6)):
        m["per_class"][lb]["f1"] = f
    html = render_report(m)
    rows = re.findall(r'<tr class="[^"]*"><th scope="row" title="([^"]+)"', html)
    assert rows == ["bad", "mid", "good"]


def test_confusion_tooltips_and_diagonal_hue():
    m = make_metrics(["a", "b"], correct=3, wrong=1)
    html = render_report(m)
    assert "3 of 4 (75.0% of row)" in html and "1 of 4 (25.0% of row)" in html
    assert html.count('<td class="diag') == 2 and html.count('<td class="off') == 2


def test_optional_sections(tmp_path):
    m = make_metrics(["a", "b"])
    m.update(
        head="logistic",
        weights_source="package transferkit-weights (sha256 ok)",
        skipped_files=[["data/a/x.jpg", "cannot identify image file"]],
        baseline={"strategy": "scratch", "accuracy": 0.5, "macro_f1": 0.45},
        seed=1234,
        split={"test_size": 0.2},
    )
    html = render_report(m)
    assert "logistic" in html and "sha256 ok" in html
    assert "Skipped files (1)" in html and "cannot identify image file" in html
    assert "Compared with baseline" in html and "+30.0 accuracy points" in html
    assert "Details" in html and "1234" in html and "test_size" in html


def test_survives_sparse_or_malformed_metrics():
    for m in (
        {},
        {"accuracy": None, "labels": ["a", "b"], "confusion_matrix": [[1, 2]]},
        {"accuracy": 0.5, "per_class": {"a": {"f1": "x"}}, "seconds": {"extract": None}},
    ):
        html = render_report(m, mistakes=[{"path": None}])
        assert "</html>" in html


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "run" / "report.html"
    target.parent.mkdir()
    target.write_text("old report", encoding="utf-8")
    write_report(target, make_metrics(["a", "b"]))
    assert "old report" not in target.read_text("utf-8")
    assert sorted(os.listdir(target.parent)) == ["report.html"]
    assert target.stat().st_mode & 0o444  # readable, not a 0600 temp-file mode only
    # str paths work, and a new directory is created
    out = write_report(str(tmp_path / "new" / "report.html"), make_metrics(["a", "b"]))
    assert out.is_file() and sorted(os.listdir(out.parent)) == ["report.html"]


def test_failed_write_keeps_old_report_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old report", encoding="utf-8")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, make_metrics(["a", "b"]))
    assert target.read_text("utf-8") == "old report"
    assert os.listdir(tmp_path) == ["report.html"]


def test_embedding_map_draws_every_point_and_rings_the_mistakes():
    from transferkit.report.embedding_map import embedding_map, project_2d

    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 1, (20, 8)), rng.normal(6, 1, (20, 8))])
    points = project_2d(emb)
    assert points.shape == (40, 2) and points.min() == 0.0 and points.max() == 1.0
    # the two classes land on opposite sides of the first axis
    assert abs(points[:20, 0].mean() - points[20:, 0].mean()) > 0.5
    true = [0] * 20 + [1] * 20
    predicted = [0] * 19 + [1] + [1] * 20  # one mistake
    m = {"accuracy": 0.975, "embedding_map": embedding_map(points, true, predicted, ["a", "<b>"])}
    page = render_report(m)
    assert page.count("<circle") == 40 and page.count('fill="none"') == 1
    assert "a (predicted &lt;b&gt;)" in page and 'href="#embedding-map"' in page
    broken = render_report({"embedding_map": {"points": [[0, 0]], "true": [5], "predicted": [0]}})
    assert 'id="embedding-map"' not in broken  # malformed data drops the section


def test_header_shows_the_confidence_intervals_and_the_ranking_table():
    m = {
        "accuracy": 0.8,
        "macro_f1": 0.75,
        "accuracy_ci95": [0.7, 0.88],
        "macro_f1_ci95": [0.65, 0.84],
        "backbone": "b2",
        "backbone_reason": "best of 2 ranked",
        "ranking": {
            "ranking": [
                {"rank": 1, "backbone": "b2", "logme": 1.2, "knn_loo": 0.9, "leep": None},
                {"rank": 2, "backbone": "b1", "logme": 0.4, "knn_loo": 0.5, "leep": None},
            ],
            "skipped": [{"backbone": "b3", "reason": "no weights offline"}],
            "explanation": "b2 wins.",
        },
    }
    page = render_report(m)
    assert "95% CI 70.0%–88.0%" in page and "95% CI 0.650–0.840 (bootstrap)" in page
    assert 'id="ranking"' in page and "b2 wins." in page and "no weights offline" in page
    assert ">LEEP<" not in page  # a score no candidate has gets no column
    assert page.index(">b2 <span") < page.index(">b1<")


def test_timings_total_is_the_recorded_wall_clock_not_a_double_count():
    m = {"seconds": {"extract": 4.0, "train": 1.0, "total": 6.0}}
    page = render_report(m)
    timings = page[page.index('id="timings"') :]
    assert timings.count('cmp-name">total') == 1 and "6.0 s" in timings
    assert "11.0 s" not in timings
