"""The report's parts of a domain-adaptation run: what the adaptation changed in the domain gap,
and, when labelled target examples were given, whether it helped on them.

Both read metrics.json defensively (a missing or malformed entry gives no section): the
``domain_gap`` block that every frozen-embedding adaptation records (the proxy A-distance of
source vs target before and after the method), and ``target_test`` (source-only and adapted
accuracy on ``--target-test``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def domain_gap_html(m: Mapping[str, Any]) -> str:
    """Inner HTML of the "Domain gap" section ("" when the run recorded none)."""
    gap = m.get("domain_gap")
    if not isinstance(gap, Mapping) or _num(gap.get("before")) is None:
        return ""
    before, after = _num(gap.get("before")), _num(gap.get("after"))
    rows = [("source vs target, before adaptation", before)]
    if after is not None:
        rows.append((f"after {m.get('strategy') or 'the method'}", after))
    bars = "".join(
        f'<div class="cmp"><span class="cmp-name">{_e(name)}</span>'
        f'<span class="bar time"><i style="width:{50 * value:.1f}%"></i></span>'
        f'<span class="num">{value:.2f}</span></div>'
        for name, value in rows
    )
    if after is None:
        change = f"The change could not be measured: {_e(gap.get('why_no_after', ''))}"
    elif after < before - 0.05:
        change = f"The adaptation brought the domains closer ({before:.2f} → {after:.2f})."
    elif after > before + 0.05:
        change = f"The domains are further apart after the adaptation ({before:.2f} → {after:.2f})."
    else:
        change = f"The adaptation left the gap about as it was ({before:.2f} → {after:.2f})."
    legend = (
        "Proxy A-distance (0: a linear classifier cannot tell source embeddings from target "
        "ones; 2: it always can), of the rows the head is fitted on (moved or weighted by the "
        "method) against the target inputs. "
    )
    return f'<p class="legend">{_e(legend)}{change}</p><div class="cmp-list">{bars}</div>'


def target_test_html(m: Mapping[str, Any]) -> str:
    """Inner HTML of the "On labelled target examples" section ("" without ``target_test``)."""
    t = m.get("target_test")
    if not isinstance(t, Mapping):
        return ""
    rows = []
    for role, name in (("source_only", "source-only"), ("adapted", t.get("strategy", "adapted"))):
        part = t.get(role)
        acc = _num(part.get("accuracy")) if isinstance(part, Mapping) else None
        if acc is None:
            return ""
        f1 = _num(part.get("macro_f1"))
        rows.append(
            f'<div class="cmp"><span class="cmp-name">{_e(name)}</span>'
            f'<span class="bar good"><i style="width:{100 * acc:.1f}%"></i></span>'
            f'<span class="num">{100 * acc:.1f}%</span>'
            f'<span class="muted"> macro-F1 {"—" if f1 is None else f"{f1:.3f}"}</span></div>'
        )
    gain = _num(t.get("gain_points"))
    verdict = (
        ""
        if gain is None
        else f"Adaptation {'gained' if gain >= 0 else 'lost'} {abs(gain):.1f} points on them."
    )
    intro = (
        f"{_e(t.get('n', '?'))} labelled target examples ({_e(t.get('data', ''))}), scored by "
        f"the model trained without adaptation (source-only, fitted in the same run) and by "
        f"the adapted one. {_e(verdict)}"
    )
    note = f'<p class="legend">{_e(t["note"])}</p>' if t.get("note") else ""
    return f'<p class="legend">{intro}</p><div class="cmp-list">{"".join(rows)}</div>{note}'
