"""gap.html: the domain gap on one self-contained page (inline CSS and previews, no scripts)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from importlib import resources
from typing import Any

from transferkit.report.audio_clips import try_audio_data_uri
from transferkit.report.embedding_map import CSS as MAP_CSS
from transferkit.report.embedding_map import PAD, SIZE, colour
from transferkit.report.thumbnails import PLACEHOLDER_URI, try_thumbnail_data_uri

_CSS = """
.gap-examples{display:flex;flex-wrap:wrap;gap:10px}
.gap-examples figure{margin:0;width:120px;font-size:12px}
.gap-examples img{width:96px;height:96px;object-fit:contain;border-radius:6px}
.gap-examples .snippet{max-height:96px;overflow:hidden}
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _preview(item: Mapping[str, Any]) -> str:
    """An example's widget, as the report's mistakes gallery draws it."""
    widget = item.get("preview") if isinstance(item.get("preview"), Mapping) else {}
    kind = widget.get("widget", "thumbnail")
    if kind == "snippet":
        text = str(widget.get("text") or "")
        return f'<div class="snippet">{_e(text[:280])}</div>'
    if kind == "player":
        uri = try_audio_data_uri(item["path"])
        return f'<audio controls preload="none" src="{_e(uri)}"></audio>' if uri else ""
    uri = try_thumbnail_data_uri(item["path"]) or PLACEHOLDER_URI
    return f'<img src="{_e(uri)}" alt="{_e(item["path"])}">'


def _gallery(items) -> str:
    cards = "".join(
        f"<figure>{_preview(i)}<figcaption>{_e(i['label'])} · P(target) "
        f"{i['p_target']:.2f}</figcaption></figure>"
        for i in items
    )
    return f'<div class="gap-examples">{cards}</div>'


def _map_svg(gap: Mapping[str, Any]) -> str:
    labels = gap["labels"]
    scale = SIZE - 2 * PAD
    dots = []
    for (x, y), c in zip(gap["map"]["points"], gap["map"]["classes"]):
        cx, cy = PAD + x * scale, PAD + (1 - y) * scale
        if c < 0:  # a target input: no class known
            dots.append(
                f'<path d="M{cx - 3:.1f} {cy - 3:.1f}l6 6m0 -6l-6 6" stroke="#222" '
                f'stroke-width="1.2"><title>target</title></path>'
            )
        else:
            dots.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.2" fill="{colour(c, len(labels))}" '
                f'fill-opacity="0.75"><title>{_e(labels[c])}</title></circle>'
            )
    legend = "".join(
        f'<li><i style="background:{colour(i, len(labels))}"></i>{_e(label)}</li>'
        for i, label in enumerate(labels)
    )
    legend += '<li><i style="background:#222"></i>target (×)</li>'
    return (
        f'<div class="emap"><svg viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="source and '
        f'target embeddings">{"".join(dots)}</svg><ul>{legend}</ul></div>'
    )


def _per_class(gap: Mapping[str, Any]) -> str:
    rows = []
    for label, c in gap["per_class"].items():
        mix = "—" if c["mix"] is None else f"{c['mix']:.2f}"
        rows.append(
            f"<tr><td>{_e(label)}</td><td class='num'>{c['n_source']}</td>"
            f"<td class='num'>{mix}</td><td class='num'>{c['target_nearest']}</td></tr>"
        )
    return (
        "<table class='kv'><thead><tr><th>class</th><th>source examples</th><th>mix with the "
        "target</th><th>target inputs nearest it</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def gap_html(gap: Mapping[str, Any]) -> str:
    """The whole page."""
    css = resources.files("transferkit.report").joinpath("report.css").read_text("utf-8")
    a = gap["a_distance"]
    verdict = (
        "close: a linear classifier barely tells them apart"
        if a < 0.5
        else "far apart: a linear classifier tells them apart almost always"
        if a > 1.5
        else "partly apart"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; \
media-src data:; style-src 'unsafe-inline'">
<title>transferkit — domain gap</title><style>{css}{MAP_CSS}{_CSS}</style></head>
<body><main>
<h1>Domain gap: {_e(gap["source"])} → {_e(gap["target"])}</h1>
<section class="card" id="distance"><h2>Proxy A-distance: {a:.2f}</h2>
<p class="legend">{gap["n_source"]} source and {gap["n_target"]} target inputs, embedded by \
{_e(gap.get("backbone", ""))}. 2·(1 − 2ε), ε = {gap["domain_error"]:.3f} the cross-validated \
error of a linear classifier of the domains: 0 when it cannot tell them apart, 2 when it \
always can. The domains are {_e(verdict)}.</p></section>
<section class="card" id="map"><h2>Source classes and target inputs on the embedding map</h2>
<p class="legend">First two principal components of both domains' embeddings: source examples \
coloured by class, target inputs as ×.</p>{_map_svg(gap)}
<p class="legend">Mix: the share of a class's nearest neighbours that are target inputs, over \
the target's share of all points (1: the class sits among the target; 0: no target input is \
near it).</p>{_per_class(gap)}</section>
<section class="card" id="most"><h2>Source examples most like the target</h2>
{_gallery(gap["most_like_target"])}</section>
<section class="card" id="least"><h2>Source examples least like the target</h2>
{_gallery(gap["least_like_target"])}</section>
</main></body></html>
"""
