"""``report.html``: one self-contained page (inline CSS, ``data:`` images, no JS, no network).

Every piece of user text (labels, paths, reasons, backbone names, extra metric keys) goes through
:func:`_e` (``html.escape`` with quotes) before it reaches the page, and a Content-Security-Policy
``<meta>`` forbids scripts and remote loads as a second line of defence.

The page is built from small functions, one per section, each returning an HTML string (or ``""``
when it has nothing to show); :func:`render_report` joins them and :func:`write_report` writes the
result atomically. Metrics are read defensively: a missing key, ``None``, ``NaN`` or a ragged matrix
shows as "—" or drops its section rather than losing the user's run at the last step.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from transferkit.atomic import write_bytes_atomic
from transferkit.report.adaptation import domain_gap_html, target_test_html
from transferkit.report.audio_clips import MAX_PLAYERS, try_audio_data_uri
from transferkit.report.curves import CURVES_CSS, history_svg, learning_curve_svg
from transferkit.report.embedding_map import CSS as MAP_CSS
from transferkit.report.embedding_map import embedding_map_html
from transferkit.report.ranking_table import CSS as RANKING_CSS
from transferkit.report.ranking_table import ranking_html
from transferkit.report.thumbnails import PLACEHOLDER_URI, try_thumbnail_data_uri

__all__ = ["MAX_MISTAKES", "render_report", "write_report"]

#: How many mistakes the gallery shows (the caller sorts them worst first).
MAX_MISTAKES = 24

_DASH = "—"

# metrics.json keys that have their own place on the page; anything else goes to "Details".
_KNOWN_KEYS = frozenset(
    {
        "accuracy",
        "macro_f1",
        "accuracy_ci95",
        "macro_f1_ci95",
        "per_class",
        "confusion_matrix",
        "labels",
        "n_train",
        "n_test",
        "backbone",
        "strategy",
        "head",
        "weights_source",
        "licence",
        "languages",
        "strategy_reason",
        "backbone_reason",
        "ranking",
        "cv",
        "learning_curve",
        "seconds",
        "skipped_files",
        "baseline",
        "embedding_map",
        "audio",
        "domain_gap",
        "target_test",
    }
)


# --------------------------------------------------------------------------------------- public


def write_report(
    path: str | Path,
    metrics: Mapping[str, Any],
    *,
    mistakes: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
    sections: Sequence[Any] | None = None,
) -> Path:
    """Render ``metrics`` (the metrics.json dict), ``mistakes`` and the strategy's
    ``sections`` (see :func:`render_report`) to ``path``, atomically.

    Written with :func:`transferkit.atomic.write_bytes_atomic`, so a reader never sees half a
    report and an old report is replaced whole.
    Returns ``path`` as a :class:`~pathlib.Path`.
    """
    text = render_report(metrics, mistakes=mistakes, title=title, sections=sections)
    return write_bytes_atomic(path, text.encode("utf-8"))


def render_report(
    metrics: Mapping[str, Any],
    *,
    mistakes: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
    sections: Sequence[Any] | None = None,
) -> str:
    """Return the whole report page as a string (see :func:`write_report`).

    ``sections``: the strategy's own parts of the page (``ReportSection``: charts of a history,
    a table of facts); None asks the strategy named in ``metrics`` for its section.
    """
    metrics = dict(metrics or {})
    if sections is None:
        sections = _strategy_sections(metrics)
    labels = _labels(metrics)
    matrix = _matrix(metrics.get("confusion_matrix"), len(labels))
    if title is None:
        parts = [str(metrics[k]) for k in ("backbone", "strategy") if metrics.get(k)]
        title = "transferkit report" + (f" — {' · '.join(parts)}" if parts else "")
    mistakes = list(mistakes or ())

    parts = [
        _section_ranking(metrics),
        _section_baseline(metrics),
        _section("target-test", "On labelled target examples", target_test_html(metrics))
        if target_test_html(metrics)
        else "",
        *(_strategy_section(s) for s in sections),
        _section("domain-gap", "Domain gap", domain_gap_html(metrics))
        if domain_gap_html(metrics)
        else "",
        _section_learning_curve(metrics),
        _section_confusion(labels, matrix),
        _section_per_class(metrics, labels, matrix),
        _section_embedding_map(metrics),
        _section_mistakes(mistakes),
        _section_timings(metrics),
        _section_skipped(metrics.get("skipped_files")),
        _section_details(metrics, shown={k for s in sections for k in s.shows}),
    ]
    nav = _nav(parts, sections)
    body = "\n".join(s for s in parts if s)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
media-src data:; style-src 'unsafe-inline'">
<meta name="generator" content="transferkit {_e(_version())}">
<title>{_e(title)}</title>
<style>{_page_css()}{CURVES_CSS}{RANKING_CSS}{MAP_CSS}</style>
</head>
<body>
<main>
{_header(metrics, labels, title)}
{nav}
{body}
<footer>Generated by transferkit {_e(_version())} on {_e(_now())}.</footer>
</main>
</body>
</html>
"""


# ------------------------------------------------------------------------------------- sections


def _header(m: Mapping[str, Any], labels: list[str], title: str) -> str:
    acc = _num(m.get("accuracy"))
    f1 = _num(m.get("macro_f1"))
    n_classes = len(labels)

    notes = []
    acc_ci = _interval(m.get("accuracy_ci95"))
    if acc_ci:
        notes.append(f"95% CI {acc_ci}")
    if n_classes >= 2:
        notes.append(f"chance {_pct(1 / n_classes)}")
    supports = [_num(v.get("support")) for v in _per_class(m).values()]
    supports = [s for s in supports if s is not None]
    if supports and sum(supports) > 0:
        notes.append(f"always-majority {_pct(max(supports) / sum(supports))}")
    acc_note = f'<div class="note">{_e(" · ".join(notes))}</div>' if notes else ""

    facts = [
        ("train examples", _count(m.get("n_train"))),
        ("test examples", _count(m.get("n_test"))),
        ("classes", str(n_classes) if n_classes else _DASH),
        ("backbone", _text(m.get("backbone"))),
        ("strategy", _text(m.get("strategy"))),
    ]
    if m.get("head") is not None:
        facts.append(("head", _text(m.get("head"))))
    if m.get("weights_source") is not None:
        facts.append(("weights", _text(m.get("weights_source"))))
    licence = m.get("licence")
    if isinstance(licence, Mapping) and licence.get("name"):
        # weights for non-commercial use only: a model built on them is too
        restriction = " — non-commercial use only" if licence.get("non_commercial") else ""
        facts.append(("licence", f"{licence['name']}{restriction}"))
    cv = m.get("cv")
    if isinstance(cv, Mapping) and cv.get("mean_accuracy") is not None:
        # the honest number on tiny data: K-fold mean ± std, and a 95 % interval
        low, high = (cv.get("ci95_accuracy") or [None, None])[:2]
        facts.append(
            (
                f"{cv.get('folds')}-fold CV accuracy",
                f"{_pct(cv['mean_accuracy'])} ± {_pct(cv.get('std_accuracy'))} "
                f"(95% CI {_pct(low)}–{_pct(high)})",
            )
        )
    if m.get("backbone_reason"):  # --backbone auto: the ranking's one-sentence explanation
        facts.append(("why this backbone", _text(m.get("backbone_reason"))))
    if m.get("strategy_reason"):  # --strategy auto says why it chose what it chose
        facts.append(("why this strategy", _text(m.get("strategy_reason"))))
    audio = m.get("audio")
    if isinstance(audio, Mapping) and _num(audio.get("window_seconds")):
        # long clips are split into the encoder's windows: say so, the user should know
        n_win = int(_num(audio.get("clips_windowed")) or 0)
        window = _num(audio.get("window_seconds"))
        pooling = "mean" if audio.get("pooling") == "mean" else "mean + std"  # older runs: std too
        facts.append(
            (
                "audio windows",
                f"{n_win} training clip{'s' if n_win != 1 else ''} longer than the {window:g} s "
                f"window were split into windows, embeddings pooled ({pooling})",
            )
        )
    if m.get("languages"):
        # a text encoder understands these languages: train in one, predict in another
        facts.append(("languages", ", ".join(str(x) for x in m["languages"])))
    f1_ci = _interval(m.get("macro_f1_ci95"), _f3)
    f1_note = "mean F1 over classes" + (f" · 95% CI {f1_ci} (bootstrap)" if f1_ci else "")
    f1_note = f'<div class="note">{_e(f1_note)}</div>'
    facts_html = "".join(
        f'<div class="fact"><dt>{_e(k)}</dt><dd title="{_e(v)}">{_e(v)}</dd></div>'
        for k, v in facts
    )
    return f"""<header class="card hero">
<h1>{_e(title)}</h1>
<div class="hero-row">
<div class="kpis">
{_kpi("Accuracy", acc, _pct(acc), acc_note)}
{_kpi("Macro F1", f1, _f3(f1), f1_note)}
</div>
<dl class="facts">{facts_html}</dl>
</div>
</header>"""


def _interval(pair: Any, fmt=None) -> str:
    """ "a–b" for a [low, high] pair of finite numbers, "" otherwise."""
    fmt = fmt or _pct
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return ""
    low, high = (_num(x) for x in pair)
    return "" if low is None or high is None else f"{fmt(low)}–{fmt(high)}"


def _kpi(name: str, value: float | None, shown: str, note: str) -> str:
    p = 0.0 if value is None else min(max(value, 0.0), 1.0) * 100
    return f"""<div class="kpi">
<div class="ring {_grade(value)}" style="--p:{p:.1f}"><span>{_e(shown)}</span></div>
<div><div class="kpi-name">{_e(name)}</div>{note}</div>
</div>"""


def _strategy_sections(m: Mapping[str, Any]) -> list[Any]:
    """The section of the strategy ``m`` names, if it has one (a page of any run renders)."""
    from transferkit.strategies import STRATEGIES

    cls = STRATEGIES.get(str(m.get("strategy")))
    if cls is None:
        return []
    try:
        section = cls().report_section(m)
    except Exception:  # noqa: BLE001 - malformed metrics lose the section, never the page
        return []
    return [section] if section is not None else []


def _strategy_section(section: Any) -> str:
    """A strategy's section: its charts of a history, then its facts."""
    svg = history_svg(
        section.history, section.charts, best_epoch=section.best_epoch, note=section.note
    )
    facts = _kv_table(section.facts) if section.facts else ""
    if not svg and not facts:
        return ""
    return _section(section.anchor, section.title, svg + facts)


def _section_ranking(m: Mapping[str, Any]) -> str:
    ranking = m.get("ranking")
    if not isinstance(ranking, Mapping):
        return ""
    inner = ranking_html(ranking, chosen=m.get("backbone"))
    return _section("ranking", "Backbones ranked before training", inner) if inner else ""


def _section_embedding_map(m: Mapping[str, Any]) -> str:
    data = m.get("embedding_map")
    inner = embedding_map_html(data) if isinstance(data, Mapping) else ""
    return _section("embedding-map", "Embedding map", inner) if inner else ""


def _section_learning_curve(m: Mapping[str, Any]) -> str:
    curve = m.get("learning_curve")
    if not isinstance(curve, Mapping):
        return ""
    svg = learning_curve_svg(curve)
    if not svg:
        return ""
    advice = f'<p class="legend">{_e(_text(curve.get("advice"), ""))}</p>'
    return _section("learning-curve", "Learning curve", advice + svg)


_BASELINE_KEYS = ("strategy", "epochs", "accuracy", "macro_f1", "delta_points")


def _section_baseline(m: Mapping[str, Any]) -> str:
    base = m.get("baseline")
    if not isinstance(base, Mapping) or not base:
        return ""
    if base.get("verdict"):  # the from-scratch verdict written by --baseline
        cls = {"transfer_helped": "good", "negative_transfer": "bad"}.get(base["verdict"], "meh")
        advice = "".join(f"<li>{_e(a)}</li>" for a in base.get("advice") or [])
        ours, theirs = _num(m.get("accuracy")), _num(base.get("accuracy"))
        bars = ""
        if ours is not None and theirs is not None:
            reference = "from scratch" if base.get("strategy") != "mfcc_stats" else "MFCC stats"
            bars = _compare_bars(
                [("pretrained + " + _text(m.get("strategy")), ours), (reference, theirs)]
            )
        inner = (
            f'<p class="verdict {cls}">{_e(base.get("message", ""))}</p>{bars}'
            + (f"<p>What to try:</p><ul>{advice}</ul>" if advice else "")
            + _kv_table({k: base[k] for k in _BASELINE_KEYS if k in base})
        )
        kind = "no-transfer" if base.get("strategy") == "mfcc_stats" else "from-scratch"
        return _section("baseline", f"Did transfer help? ({kind} baseline)", inner)
    verdict = ""
    ours, theirs = _num(m.get("accuracy")), _num(base.get("accuracy"))
    if ours is not None and theirs is not None:
        delta = (ours - theirs) * 100
        name = _text(base.get("strategy") or base.get("name") or "baseline")
        if delta > 0.05:
            cls, msg = "good", f"Transfer beats {name} by {delta:+.1f} accuracy points."
        elif delta < -0.05:
            cls, msg = (
                "bad",
                f"{name} is better by {-delta:.1f} accuracy points: the pretrained features may "
                "not suit this data (negative transfer).",
            )
        else:
            cls, msg = "meh", f"Transfer and {name} are level on accuracy."
        bars = _compare_bars([("this model", ours), (name, theirs)])
        verdict = f'<p class="verdict {cls}">{_e(msg)}</p>{bars}'
    return _section("baseline", "Compared with baseline", verdict + _kv_table(base))


def _compare_bars(rows: list[tuple[str, float]]) -> str:
    out = []
    for name, v in rows:
        out.append(
            f'<div class="cmp"><span class="cmp-name" title="{_e(name)}">{_e(name)}</span>'
            f'{_bar(v, _grade(v))}<span class="num">{_e(_pct(v))}</span></div>'
        )
    return '<div class="cmp-list">' + "".join(out) + "</div>"


def _section_confusion(labels: list[str], matrix: list[list[float]] | None) -> str:
    if not labels or matrix is None:
        return _section(
            "confusion", "Confusion matrix", '<p class="muted">No confusion matrix in metrics.</p>'
        )
    n = len(labels)
    size = "s" if n > 25 else "m" if n > 12 else "l" if n > 4 else "xl"
    rotate = n > 6 or max(len(lb) for lb in labels) > 10
    head_cls = "vlabel" if rotate else "hlabel"
    head = "".join(
        f'<th scope="col" title="{_e(lb)}"><div class="{head_cls}">{_e(lb)}</div></th>'
        for lb in labels
    )
    rows = []
    for i, (lb, row) in enumerate(zip(labels, matrix, strict=True)):
        total = sum(row)
        cells = []
        for j, count in enumerate(row):
            frac = count / total if total > 0 else 0.0
            hue = "diag" if i == j else "off"
            alpha = 0.0 if count <= 0 else 0.12 + 0.88 * frac
            ink = " ink" if alpha > 0.55 else ""
            zero = " zero" if count <= 0 else ""
            tip = f"true: {lb}\npredicted: {labels[j]}\n" + (
                f"{_int(count)} of {_int(total)} ({_pct(frac)} of row)"
                if total > 0
                else "no test samples of this class"
            )
            cells.append(
                f'<td class="{hue}{ink}{zero}" style="--a:{alpha:.3f}" title="{_e(tip)}">'
                f"{_int(count)}</td>"
            )
        rows.append(
            f'<tr><th scope="row" title="{_e(lb)}"><div class="rlabel">{_e(lb)}</div></th>'
            f'{"".join(cells)}<td class="rowsum">{_int(total)}</td></tr>'
        )
    table = f"""<div class="scroll"><table class="cm cm-{size}">
<thead><tr><th class="corner"><span>true ↓</span> <span>predicted →</span></th>{head}\
<th class="rowsum" title="test samples per true class"><div class="{head_cls}">n</div></th></tr>\
</thead>
<tbody>
{"".join(rows)}
</tbody></table></div>"""
    legend = (
        '<p class="legend"><span class="swatch diag"></span> correct '
        '<span class="swatch off"></span> confused with — shade = share of the true class '
        "(row); hover a cell for the percentage.</p>"
    )
    return _section(
        "confusion", "Confusion matrix", legend + table + _top_confusions(labels, matrix)
    )


def _top_confusions(labels: list[str], matrix: list[list[float]], k: int = 5) -> str:
    pairs = []
    for i, row in enumerate(matrix):
        total = sum(row)
        for j, count in enumerate(row):
            if i != j and count > 0:
                pairs.append((count, count / total if total else 0.0, labels[i], labels[j]))
    if not pairs:
        return '<p class="muted">No confusions between classes.</p>'
    pairs.sort(key=lambda p: (-p[0], -p[1]))
    items = "".join(
        f'<li><span class="lbl" title="{_e(t)}">{_e(t)}</span> <span class="arrow">→</span> '
        f'<span class="lbl pred" title="{_e(p)}">{_e(p)}</span> '
        f'<span class="muted">{_int(c)}× ({_e(_pct(f))} of {_e(t)})</span></li>'
        for c, f, t, p in pairs[:k]
    )
    return f'<h3>Most frequent confusions</h3><ol class="top">{items}</ol>'


def _section_per_class(
    m: Mapping[str, Any], labels: list[str], matrix: list[list[float]] | None
) -> str:
    per_class = _per_class(m)
    names = list(labels) + [k for k in per_class if k not in set(labels)]
    if not names:
        return ""
    rows = []
    for idx, name in enumerate(names):
        stats = per_class.get(name, {})
        support = _num(stats.get("support"))
        if support is None and matrix is not None and idx < len(matrix):
            support = float(sum(matrix[idx]))
        rows.append(
            (
                name,
                _num(stats.get("precision")),
                _num(stats.get("recall")),
                _num(stats.get("f1")),
                support,
            )
        )

    def order(r):
        has_support = r[4] is None or r[4] > 0
        return (not has_support, -1.0 if r[3] is None else r[3], names.index(r[0]))

    rows.sort(key=order)
    body = []
    for name, p, r, f1, support in rows:
        empty = support is not None and support <= 0
        cells = "".join(
            f'<td class="metric">{_bar(v, _grade(v) if key == "f1" else "plain")}'
            f'<span class="num">{_e(_f3(v))}</span></td>'
            for key, v in (("precision", p), ("recall", r), ("f1", f1))
        )
        note = ' <span class="tag">no test samples</span>' if empty else ""
        body.append(
            f'<tr class="{"empty" if empty else ""}"><th scope="row" title="{_e(name)}">'
            f'<div class="clabel">{_e(name)}</div>{note}</th>{cells}'
            f'<td class="num">{_e(_count(support))}</td></tr>'
        )
    table = f"""<div class="scroll"><table class="pc">
<thead><tr><th scope="col">class</th><th scope="col">precision</th><th scope="col">recall</th>\
<th scope="col">F1 ↑</th><th scope="col" class="num">support</th></tr></thead>
<tbody>{"".join(body)}</tbody></table></div>"""
    intro = '<p class="legend">Weakest classes first (sorted by F1, ascending).</p>'
    return _section("per-class", "Per-class results", intro + table)


def _snippet(text: Any) -> str:
    """A text example, cut to what a card shows."""
    if not isinstance(text, str) or not text.strip():
        return '<div class="snippet">(no preview)</div>'
    snippet = text.strip()
    snippet = snippet[:280] + ("…" if len(snippet) > 280 else "")
    return f'<div class="snippet">{_e(snippet)}</div>'


def _section_mistakes(mistakes: list[Mapping[str, Any]]) -> str:
    """The most confident mistakes as cards, each with its example's preview widget
    (``Modality.preview``: a text snippet, an audio player, or a thumbnail, the default)."""
    if not mistakes:
        return _section(
            "mistakes",
            "Mistakes",
            '<p class="empty-state">No misclassified test examples to show.</p>',
        )
    shown = mistakes[:MAX_MISTAKES]
    cards = []
    players = 0
    for rank, item in enumerate(shown, 1):
        if not isinstance(item, Mapping):
            item = {"path": str(item)}
        path = _text(item.get("path"), "")
        true, pred = _text(item.get("true")), _text(item.get("predicted"))
        conf = _num(item.get("confidence"))
        widget = item.get("preview") if isinstance(item.get("preview"), Mapping) else {}
        kind = widget.get("widget", "thumbnail")
        if kind == "snippet":
            preview = _snippet(widget.get("text"))
        elif kind == "player":
            uri = try_audio_data_uri(path) if path and players < MAX_PLAYERS else None
            players += uri is not None
            preview = (
                f'<audio controls preload="none" src="{_e(uri)}" '
                f'aria-label="{_e("play " + _basename(path))}"></audio>'
                if uri
                else _snippet(None)
            )
        else:
            uri = try_thumbnail_data_uri(path) if path else None
            alt = "thumbnail of " + _basename(path) if uri else "no preview available"
            preview = (
                f'<img src="{_e(uri or PLACEHOLDER_URI)}" alt="{_e(alt)}" '
                f'class="{"" if uri else "placeholder"}" loading="lazy">'
            )
        name = _basename(path)
        file_line = f'<div class="file" title="{_e(path)}">{_e(name)}</div>' if name else ""
        cards.append(
            f"""<figure class="mistake">
<div class="thumb">{preview}<span class="rank">#{rank}</span></div>
<figcaption>
<div class="row"><span class="k">true</span>\
<span class="v" title="{_e(true)}">{_e(true)}</span></div>
<div class="row"><span class="k">pred</span>\
<span class="v pred" title="{_e(pred)}">{_e(pred)}</span></div>
<div class="row conf"><span class="k">conf</span>{_bar(conf, "warn")}<span class="num">\
{_e(_pct(conf, 0))}</span></div>
{file_line}
</figcaption></figure>"""
        )
    more = (
        f"The {len(shown)} worst of {len(mistakes)} mistakes, worst first."
        if len(mistakes) > len(shown)
        else f"{len(shown)} mistake{'s' if len(shown) != 1 else ''}, worst first."
    )
    intro = f'<p class="legend">{_e(more)} Hover a name for the full label or path.</p>'
    return _section(
        "mistakes", "Mistakes", intro + '<div class="gallery">' + "".join(cards) + "</div>"
    )


def _section_timings(m: Mapping[str, Any]) -> str:
    seconds = m.get("seconds")
    if not isinstance(seconds, Mapping) or not seconds:
        return ""
    # the run's own wall-clock total, when recorded, is the total (not a row to add up again)
    items = [(str(k), _num(v)) for k, v in seconds.items() if k != "total"]
    known = [v for _, v in items if v is not None]
    top = max(known, default=0.0)
    total = _num(seconds.get("total")) or sum(known)
    rows = []
    for name, v in items:
        frac = (v / top) if (v is not None and top > 0) else 0.0
        extra = ""
        n_test = _num(m.get("n_test"))
        if name == "predict" and v is not None and n_test:
            extra = f' <span class="muted">({_e(_duration(v / n_test))} per test example)</span>'
        audio = m.get("audio") if isinstance(m.get("audio"), Mapping) else {}
        speed = _num(audio.get("audio_seconds_per_second"))
        if name == "extract" and speed:
            extra = f' <span class="muted">({speed:.0f}× real time)</span>'
        rows.append(
            f'<div class="cmp"><span class="cmp-name">{_e(name)}</span>{_bar(frac, "time")}'
            f'<span class="num">{_e(_duration(v))}</span>{extra}</div>'
        )
    rows.append(
        f'<div class="cmp total"><span class="cmp-name">total</span><span></span>'
        f'<span class="num">{_e(_duration(total))}</span></div>'
    )
    return _section("timings", "Timings", '<div class="cmp-list">' + "".join(rows) + "</div>")


def _section_skipped(skipped: Any) -> str:
    if not skipped or isinstance(skipped, (str, bytes)):
        return ""
    rows = []
    for item in skipped:
        if isinstance(item, Mapping):
            p, why = item.get("path"), item.get("reason")
        elif isinstance(item, (list, tuple)) and item:
            p, why = item[0], (item[1] if len(item) > 1 else "")
        else:
            p, why = item, ""
        rows.append(
            f"<tr><td class='path'>{_e(_text(p, ''))}</td><td>{_e(_text(why, ''))}</td></tr>"
        )
    n = len(rows)
    table = (
        '<div class="scroll"><table class="kv skipped"><thead><tr><th>file</th><th>reason</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    intro = (
        f'<p class="legend">{n} file{"s" if n != 1 else ""} could not be used and '
        f"{'were' if n != 1 else 'was'} left out of training and evaluation.</p>"
    )
    if n > 10:
        table = f"<details><summary>Show all {n} files</summary>{table}</details>"
    return _section("skipped", f"Skipped files ({n})", intro + table)


def _section_details(m: Mapping[str, Any], shown: set[str] = frozenset()) -> str:
    """Metrics without a place of their own; those a strategy's section shows are left out."""
    extra = {k: v for k, v in m.items() if k not in _KNOWN_KEYS and k not in shown}
    if not extra:
        return ""
    return _section("details", "Details", _kv_table(extra))


# -------------------------------------------------------------------------------------- helpers


def _section(anchor: str, heading: str, inner: str) -> str:
    return f'<section class="card" id="{_e(anchor)}"><h2>{_e(heading)}</h2>\n{inner}\n</section>'


def _nav(parts: list[str], sections: Sequence[Any] = ()) -> str:
    names = {
        "ranking": "Ranking",
        "baseline": "Baseline",
        "target-test": "Target examples",
        **{s.anchor: s.title for s in sections},
        "domain-gap": "Domain gap",
        "learning-curve": "Learning curve",
        "confusion": "Confusion matrix",
        "per-class": "Per class",
        "embedding-map": "Embedding map",
        "mistakes": "Mistakes",
        "timings": "Timings",
        "skipped": "Skipped files",
        "details": "Details",
    }
    links = [
        f'<a href="#{_e(a)}">{_e(t)}</a>'
        for a, t in names.items()
        if any(f'id="{_e(a)}"' in s for s in parts)
    ]
    return '<nav class="toc">' + "".join(links) + "</nav>" if links else ""


def _kv_table(d: Mapping[str, Any]) -> str:
    rows = "".join(
        f'<tr><th scope="row">{_e(str(k))}</th><td>{_e(_value(v))}</td></tr>' for k, v in d.items()
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _bar(value: float | None, cls: str) -> str:
    w = 0.0 if value is None else min(max(value, 0.0), 1.0) * 100
    return f'<span class="bar {cls}"><i style="width:{w:.1f}%"></i></span>'


def _grade(v: float | None) -> str:
    if v is None:
        return "plain"
    return "good" if v >= 0.8 else "meh" if v >= 0.5 else "bad"


def _e(s: Any) -> str:
    return escape(str(s), quote=True)


def _num(x: Any) -> float | None:
    """A finite float, or ``None`` for anything missing, non-numeric, NaN or infinite."""
    if x is None or isinstance(x, (bool, str, bytes)):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pct(x: Any, digits: int = 1) -> str:
    v = _num(x)
    return _DASH if v is None else f"{v * 100:.{digits}f}%"


def _f3(x: Any) -> str:
    v = _num(x)
    return _DASH if v is None else f"{v:.3f}"


def _int(x: float) -> str:
    return str(int(round(x))) if float(x).is_integer() else f"{x:.2f}"


def _count(x: Any) -> str:
    v = _num(x)
    if v is None:
        return _DASH
    return f"{int(v):,}" if v.is_integer() else f"{v:,.2f}"


def _text(x: Any, default: str = _DASH) -> str:
    return default if x is None or x == "" else str(x)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return _DASH if not math.isfinite(v) else f"{v:.4g}"
    if isinstance(v, (str, int)):
        return str(v)
    try:
        s = json.dumps(v, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        s = str(v)
    return s if len(s) <= 600 else s[:600] + "…"


def _duration(x: Any) -> str:
    v = _num(x)
    if v is None:
        return _DASH
    if v < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if v < 1:
        return f"{v * 1e3:.0f} ms" if v < 0.1 else f"{v:.2f} s"
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{int(v // 60)} min {int(v % 60):02d} s"
    return f"{int(v // 3600)} h {int(v % 3600 // 60):02d} min"


def _basename(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if path else ""


def _labels(m: Mapping[str, Any]) -> list[str]:
    labels = m.get("labels")
    if hasattr(labels, "tolist"):
        labels = labels.tolist()
    if isinstance(labels, (list, tuple)) and labels:
        return [str(lb) for lb in labels]
    return [str(k) for k in _per_class(m)]


def _per_class(m: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    pc = m.get("per_class")
    if not isinstance(pc, Mapping):
        return {}
    return {str(k): (v if isinstance(v, Mapping) else {}) for k, v in pc.items()}


def _matrix(cm: Any, n: int) -> list[list[float]] | None:
    """The confusion matrix as ``n`` rows of ``n`` non-negative floats, or ``None`` if unusable."""
    if hasattr(cm, "tolist"):
        cm = cm.tolist()
    if not isinstance(cm, (list, tuple)) or n == 0 or len(cm) != n:
        return None
    out = []
    for row in cm:
        if hasattr(row, "tolist"):
            row = row.tolist()
        if not isinstance(row, (list, tuple)) or len(row) != n:
            return None
        out.append([max(_num(c) or 0.0, 0.0) for c in row])
    return out


def _version() -> str:
    try:
        from transferkit import __version__

        return str(__version__)
    except Exception:
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


@functools.cache
def _page_css() -> str:
    """The page's own style sheet, shipped beside this module (report.css)."""
    return resources.files("transferkit.report").joinpath("report.css").read_text("utf-8")
