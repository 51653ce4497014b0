"""Training curves as inline SVG: values per epoch, one panel per chart, stage boundaries marked."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 460, 230
PAD_L, PAD_R, PAD_T, PAD_B = 46, 14, 16, 34
SERIES = {  # key -> (legend, colour, dashed)
    "train_loss": ("train", "#2563eb", False),
    "val_loss": ("validation", "#ea580c", False),
    "train_accuracy": ("train", "#2563eb", False),
    "val_accuracy": ("validation", "#ea580c", False),
}


def _series(key: str) -> tuple[str, str, bool]:
    """(legend, colour, dashed) of a history key; keys not listed draw in the first colour."""
    return SERIES.get(key, (key.replace("_", " "), "#2563eb", False))


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _stage_changes(history: Sequence[Mapping[str, Any]]) -> list[tuple[float, str]]:
    """x positions (between epochs) where the training stage changes, with the new stage."""
    marks = []
    for prev, cur in zip(history, history[1:]):
        if prev.get("stage") != cur.get("stage"):
            x = (float(prev["epoch"]) + float(cur["epoch"])) / 2
            stage = str(cur.get("stage", ""))
            label = stage.replace("unfreeze:", "") + " groups" if "unfreeze" in stage else stage
            marks.append((x, label))
    return marks


def _panel(
    history: Sequence[Mapping[str, Any]],
    keys: tuple[str, ...],
    title: str,
    *,
    best_epoch: int | None,
    fixed_range: tuple[float, float] | None,
) -> str:
    xs = [float(r["epoch"]) for r in history]
    values = [_finite(r.get(k)) for r in history for k in keys]
    values = [v for v in values if v is not None]
    if not xs or not values:
        return ""
    lo, hi = fixed_range or (min(values), max(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    pw, ph = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return PAD_T + (1 - (y - lo) / (hi - lo)) * ph

    parts = [
        f'<svg class="curve" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)} per epoch">',
        f'<text x="{PAD_L}" y="11" class="ct">{escape(title)}</text>',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" class="cframe"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = lo + frac * (hi - lo)
        parts.append(
            f'<text x="{PAD_L - 6}" y="{py(y) + 4:.1f}" class="cy">{y:.2f}</text>'
            f'<line x1="{PAD_L}" x2="{PAD_L + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'class="cgrid"/>'
        )
    step = max(1, round((x1 - x0) / 8))
    for x in range(int(x0), int(x1) + 1, step):
        parts.append(f'<text x="{px(x):.1f}" y="{HEIGHT - 18}" class="cx">{x}</text>')
    parts.append(f'<text x="{PAD_L + pw / 2:.1f}" y="{HEIGHT - 3}" class="cx">epoch</text>')
    for x, label in _stage_changes(history):
        parts.append(
            f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{PAD_T}" y2="{PAD_T + ph}" '
            f'class="cstage"><title>{escape(label)}</title></line>'
        )
    if best_epoch is not None and x0 <= best_epoch <= x1:
        parts.append(
            f'<line x1="{px(best_epoch):.1f}" x2="{px(best_epoch):.1f}" y1="{PAD_T}" '
            f'y2="{PAD_T + ph}" class="cbest"><title>best epoch (weights kept)</title></line>'
        )
    for key in keys:
        legend, colour, _ = _series(key)
        pts = [
            (px(x), py(v)) for x, r in zip(xs, history) if (v := _finite(r.get(key))) is not None
        ]
        if not pts:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            + "".join(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.6" fill="{colour}"/>' for x, y in pts
            )
        )
    parts.append("</svg>")
    return "".join(parts)


def history_svg(
    history: Sequence[Mapping[str, Any]],
    charts: Sequence[Any],
    *,
    best_epoch: int | None = None,
    note: str = "",
) -> str:
    """One panel per chart (``title``, ``keys``, ``fixed_range``) of the ``history`` rows that
    have an ``epoch``, under a legend of their series and ``note``; empty when no row has."""
    rows = [r for r in history or () if isinstance(r, Mapping) and "epoch" in r]
    if not rows:
        return ""
    panels = [
        _panel(rows, tuple(c.keys), c.title, best_epoch=best_epoch, fixed_range=c.fixed_range)
        for c in charts
    ]
    if not any(panels):
        return ""
    series = dict.fromkeys(_series(k)[:2] for c in charts for k in c.keys)
    legend = " · ".join(
        [f'<span style="color:{colour}">━ {escape(name)}</span>' for name, colour in series]
        + ([escape(note)] if note else [])
    )
    single = " single" if len(panels) == 1 else ""
    return f'<p class="legend">{legend}</p><div class="curves{single}">{"".join(panels)}</div>'


CURVES_CSS = """
.curves { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 12px; }
.curves.single { max-width: 560px; }
svg.curve { width: 100%; height: auto; font-size: 11px; }
svg.curve .ct { font-weight: 600; fill: var(--ink); }
svg.curve .cy { text-anchor: end; fill: var(--muted); }
svg.curve .cx { text-anchor: middle; fill: var(--muted); }
svg.curve .cframe { fill: none; stroke: var(--line); }
svg.curve .cgrid { stroke: var(--line); stroke-dasharray: 2 3; }
svg.curve .cstage { stroke: #94a3b8; stroke-dasharray: 3 3; stroke-width: 1.5; }
svg.curve .cbest { stroke: var(--good); stroke-width: 2; opacity: .7; }
"""


def learning_curve_svg(curve: Mapping[str, Any]) -> str:
    """Accuracy against examples per class (log-spaced x), with a ±std band per point."""
    points = [p for p in curve.get("points") or [] if isinstance(p, Mapping)]
    points = [p for p in points if _finite(p.get("accuracy")) is not None and p.get("per_class")]
    if len(points) < 2:
        return ""
    import math

    xs = [math.log(float(p["per_class"])) for p in points]
    x0, x1 = min(xs), max(xs)
    if x1 - x0 < 1e-9:
        x1 = x0 + 1
    pw, ph = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return PAD_T + (1 - y) * ph

    parts = [
        f'<svg class="curve" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="test accuracy against examples per class">',
        f'<text x="{PAD_L}" y="11" class="ct">test accuracy</text>',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" class="cframe"/>',
    ]
    for y in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{PAD_L - 6}" y="{py(y) + 4:.1f}" class="cy">{y:.2f}</text>'
            f'<line x1="{PAD_L}" x2="{PAD_L + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'class="cgrid"/>'
        )
    last_label = f"{points[-1]['per_class']}" + (" (all)" if points[-1].get("all") else "")
    for i, (x, p) in enumerate(zip(xs, points)):
        label = f"{p['per_class']}" + (" (all)" if p.get("all") else "")
        # the last label ends at the frame's edge instead of spilling out of the picture
        anchor = ' style="text-anchor:end"' if x == xs[-1] else ""
        # a label that would overprint the last one ("10" next to "12 (all)") is left out;
        # its point keeps its tooltip
        crowded = i < len(xs) - 1 and px(xs[-1]) - px(x) < 7 * len(last_label) + 4
        if not crowded:
            parts.append(
                f'<text x="{px(x):.1f}" y="{HEIGHT - 18}" class="cx"{anchor}>{escape(label)}</text>'
            )
        std = _finite(p.get("std")) or 0.0
        acc = float(p["accuracy"])
        if std > 0:
            parts.append(
                f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{py(min(1.0, acc + std)):.1f}" '
                f'y2="{py(max(0.0, acc - std)):.1f}" stroke="#93c5fd" stroke-width="6"/>'
            )
    parts.append(
        f'<text x="{PAD_L + pw / 2:.1f}" y="{HEIGHT - 3}" class="cx">examples per class</text>'
    )
    pts = [(px(x), py(float(p["accuracy"]))) for x, p in zip(xs, points)]
    parts.append(
        '<polyline points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        + '" fill="none" stroke="#2563eb" stroke-width="2"/>'
        + "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2563eb"><title>'
            f"{p['per_class']} per class: {float(p['accuracy']):.1%}</title></circle>"
            for (x, y), p in zip(pts, points)
        )
    )
    parts.append("</svg>")
    # one panel: as wide as one of the two training-curve panels, not the whole page
    return f'<div class="curves single">{"".join(parts)}</div>'
