"""The report's 2-D map of the test embeddings, one dot per example coloured by its true class.

Well-separated clouds mean the encoder already tells the classes apart; overlapping colours
show which classes it confuses, before any head is involved. The layout is the embeddings'
first two principal components (numpy only: a linear view that needs no scikit-learn import
and costs milliseconds, so a cached rerun stays fast; t-SNE would draw tighter clusters at
seconds per run), on at most ``MAX_POINTS`` examples; misclassified examples are rings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

MAX_POINTS = 600
SIZE = 420  # the square plot, in SVG units
PAD = 10
# ColorBrewer-like qualitative colours; beyond them, evenly spaced hues
_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

CSS = """
.emap{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
.emap svg{width:min(100%,460px);height:auto;background:#fbfcfd;border:1px solid #e3e8ee;
border-radius:8px}
.emap ul{list-style:none;margin:0;padding:0;font-size:13px;columns:2 9em;max-width:100%}
.emap li{display:flex;align-items:center;gap:6px;margin:2px 0;break-inside:avoid}
.emap li i{display:inline-block;width:10px;height:10px;border-radius:50%;flex:none}
"""


def sample_indices(targets: np.ndarray, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """At most ``limit`` indices, the same share from every class (all of them if fewer)."""
    targets = np.asarray(targets)
    if len(targets) <= limit:
        return np.arange(len(targets))
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(targets), size=limit, replace=False)
    return np.sort(keep)


def project_2d(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 2) projection of ``embeddings`` (N, D) on their first two principal axes, scaled
    into [0, 1]² (``seed`` fixes the sign of each axis, so reruns draw the same picture)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n < 3:
        return np.full((n, 2), 0.5)
    x = x - x.mean(axis=0)
    # thin SVD of the centred (N, D) data: the top right-singular vectors are the PCA axes
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    points = x @ (axes * signs[:, None]).T
    if points.shape[1] < 2:
        points = np.column_stack([points, np.zeros(n)])
    low, high = points.min(axis=0), points.max(axis=0)
    return (points - low) / np.where(high - low > 0, high - low, 1.0)


def embedding_map(
    points: np.ndarray, true: Sequence[int], predicted: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """What the report needs (JSON-able): points rounded to 3 decimals, class indices."""
    return {
        "points": np.round(np.asarray(points, dtype=float), 3).tolist(),
        "true": [int(t) for t in true],
        "predicted": [int(p) for p in predicted],
        "labels": list(labels),
    }


def colour(i: int, n: int) -> str:
    if n <= len(_COLOURS):
        return _COLOURS[i]
    return f"hsl({round(360 * i / n)},65%,45%)"


def embedding_map_html(data: Mapping[str, Any]) -> str:
    """Inner HTML of the section: the SVG scatter and its legend ("" if malformed)."""
    try:
        points = [(float(x), float(y)) for x, y in data["points"]]
        true = [int(t) for t in data["true"]]
        predicted = [int(p) for p in data["predicted"]]
        labels = [str(label) for label in data["labels"]]
    except (KeyError, TypeError, ValueError):
        return ""
    n = len(labels)
    if not points or not n or not len(points) == len(true) == len(predicted):
        return ""
    if any(not 0 <= t < n for t in true + predicted):
        return ""
    scale = SIZE - 2 * PAD
    dots = []
    for (x, y), t, p in zip(points, true, predicted):
        cx, cy = PAD + x * scale, PAD + (1 - y) * scale
        tip = escape(labels[t] if t == p else f"{labels[t]} (predicted {labels[p]})")
        fill = colour(t, n)
        style = f'fill="{fill}"' if t == p else f'fill="none" stroke="{fill}" stroke-width="1.6"'
        dots.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{3.2 if t == p else 4}" {style} '
            f'fill-opacity="0.75"><title>{tip}</title></circle>'
        )
    legend = "".join(
        f'<li><i style="background:{colour(i, n)}"></i>{escape(label)}</li>'
        for i, label in enumerate(labels)
    )
    wrong = sum(t != p for t, p in zip(true, predicted))
    return f"""<p class="legend">{len(points)} test examples placed by the first two principal \
components of their embeddings, coloured by true class; rings are the {wrong} the model got \
wrong. Hover a dot for its label.</p>
<div class="emap"><svg viewBox="0 0 {SIZE} {SIZE}" role="img" \
aria-label="2-D map of the test embeddings by class">{"".join(dots)}</svg>
<ul>{legend}</ul></div>"""
