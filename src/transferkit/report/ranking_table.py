"""The report's ranking table: every candidate backbone's transferability scores, the chosen one
highlighted, with the one-sentence explanation (``--backbone auto``, or a ``rank.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

_SCORES = (  # (column, key, format, what it means on hover)
    ("LogME", "logme", "{:.3f}", "Bayesian evidence of a linear model on the embeddings"),
    ("H-score", "h_score", "{:.2f}", "between-class share of the feature covariance"),
    ("k-NN LOO", "knn_loo", "{:.1%}", "leave-one-out accuracy of a 5-NN vote"),
    ("LEEP", "leep", "{:.3f}", "log-likelihood via the source (ImageNet) classifier"),
    ("NCE", "nce", "{:.3f}", "-H(target | source class)"),
)

CSS = """
table.ranking td.num{font-variant-numeric:tabular-nums}
table.ranking tr.chosen{background:#e9f7ef}
table.ranking tr.chosen th .tag{background:#1e8449;color:#fff}
"""


def ranking_html(ranking: Mapping[str, Any], chosen: str | None) -> str:
    """Inner HTML of the section ("" when there is nothing ranked)."""
    rows = [r for r in ranking.get("ranking") or [] if isinstance(r, Mapping)]
    if not rows:
        return ""
    present = [c for c in _SCORES if any(r.get(c[1]) is not None for r in rows)]
    head = "".join(
        f'<th scope="col" class="num" title="{escape(hint)}">{escape(name)}</th>'
        for name, _, _, hint in present
    )
    body = []
    for r in rows:
        name = str(r.get("backbone", "?"))
        is_chosen = name == chosen
        cells = "".join(
            f'<td class="num">{escape(_fmt(r.get(key), fmt))}</td>' for _, key, fmt, _ in present
        )
        seconds = _fmt(_sum(r.get("seconds_encode"), r.get("seconds_score")), "{:.1f} s")
        tag = ' <span class="tag">chosen</span>' if is_chosen else ""
        rank = escape(str(r.get("rank", "")))
        body.append(
            f'<tr class="{"chosen" if is_chosen else ""}"><td class="num">{rank}</td>'
            f'<th scope="row">{escape(name)}{tag}</th>{cells}'
            f'<td class="num">{escape(seconds)}</td></tr>'
        )
    skipped = [s for s in ranking.get("skipped") or [] if isinstance(s, Mapping)]
    note = ""
    if skipped:
        items = "".join(
            f"<li>{escape(str(s.get('backbone')))}: {escape(str(s.get('reason')))}</li>"
            for s in skipped
        )
        note = f'<p class="legend">Not scored:</p><ul class="legend">{items}</ul>'
    explanation = escape(str(ranking.get("explanation") or ""))
    return f"""<p class="legend">{explanation} Scores are computed on frozen embeddings of the \
training data, before any training; higher is better for every column.</p>
<div class="scroll"><table class="pc ranking">
<thead><tr><th scope="col" class="num">rank</th><th scope="col">backbone</th>{head}\
<th scope="col" class="num">time</th></tr></thead>
<tbody>{"".join(body)}</tbody></table></div>{note}"""


def _fmt(value: Any, fmt: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return fmt.format(value)


def _sum(*values: Any) -> float | None:
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(nums) if nums else None
