"""The human-readable half of evaluation: a self-contained ``report.html`` for one run.

``write_report(path, metrics, mistakes=..., title=...)`` renders the metrics.json dict (plus the
worst misclassified examples) into one HTML file with inline CSS and inline thumbnails: it opens
offline, can be mailed or attached to a ticket, and loads nothing from the network.
"""

from __future__ import annotations

from transferkit.report.html import MAX_MISTAKES, render_report, write_report
from transferkit.report.thumbnails import PLACEHOLDER_URI, thumbnail_data_uri

__all__ = [
    "MAX_MISTAKES",
    "PLACEHOLDER_URI",
    "render_report",
    "thumbnail_data_uri",
    "write_report",
]
