"""``transferkit rank``: score candidate backbones for a dataset from their frozen embeddings.

Each candidate of the data's modality encodes the dataset once (through the embedding cache, so
a later ``train`` with the winner re-encodes nothing) and gets LogME, H-score and a k-NN
leave-one-out accuracy, plus LEEP and NCE when it keeps its pretrained source classifier (see
``transferability.py``). Candidates are ranked by LogME; the winner
is explained in one sentence. Backbones whose weights are not available offline are listed as
skipped with the reason, never silently dropped; so are those whose weights are for
non-commercial use only, unless the user accepted that licence (``--accept-licence``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError
from transferkit.events import NULL_EVENTS, Events


def candidate_names(spec: str | None, modality: str) -> list[str]:
    """``a,b,c`` as given, or every offline-available backbone of ``modality``
    (``all-offline``, the default)."""
    from transferkit.backbones import get_spec, list_backbones
    from transferkit.modalities import get_modality

    if spec and spec != "all-offline":
        names = [n.strip() for n in spec.split(",") if n.strip()]
        if not names:
            raise BadInputError("--backbones needs at least one name, or all-offline")
        return names
    reads = get_modality(modality).accepts
    names = [
        r["name"] for r in list_backbones() if r["offline_available"] and reads(get_spec(r["name"]))
    ]
    if not names:
        raise BadInputError(
            f"no {modality} backbone has its weights on this machine; run `make models` or "
            "name candidates with --backbones"
        )
    return names


def rank_backbones(
    dataset,
    names: list[str],
    *,
    batch_size: int = 64,
    events: Events = NULL_EVENTS,
    cache: bool = True,
    runtime: str = "auto",
    extract: Callable[..., Any] | None = None,
    accept_licence: bool = False,
) -> dict[str, Any]:
    """Score every backbone in ``names`` on ``dataset``; rows sorted best first.

    ``extract(backbone, dataset, **options)`` embeds the dataset (default: in this process,
    through the embedding cache; ``transferkit rank --engine ray`` passes a Ray pool's).
    A backbone for non-commercial use only is skipped with the reason unless
    ``accept_licence``."""
    from transferkit.backbones import resolve_backbone
    from transferkit.backbones.licence import unaccepted
    from transferkit.backbones.source_classifier import source_classifier, source_probabilities
    from transferkit.modalities import extract_embeddings, get_modality
    from transferkit.transferability import SCORES, SOURCE_SCORES

    dataset.check_trainable()
    modality = get_modality(dataset.modality)
    y = dataset.targets
    rows, skipped = [], []
    for name in names:
        started = time.perf_counter()
        try:
            backbone = resolve_backbone(name, allow_download=False)
        except Exception as exc:  # unavailable offline, unknown name: say so and go on
            skipped.append({"backbone": name, "reason": str(exc).split("\n")[0][:300]})
            continue
        if not modality.accepts(backbone.spec):
            reason = f"encodes {backbone.spec.modality}, not {dataset.modality}"
            skipped.append({"backbone": name, "reason": reason})
            continue
        if backbone.spec.non_commercial and not accept_licence:
            skipped.append({"backbone": name, "reason": unaccepted(backbone.spec)})
            continue
        result = (extract or extract_embeddings)(
            backbone,
            dataset,
            batch_size=batch_size,
            events=events,
            cache=cache,
            runtime=runtime,
        )
        X, target = result.embeddings[result.ok], y[result.ok]
        encode_seconds = time.perf_counter() - started
        t0 = time.perf_counter()
        scores = {key: float(fn(X, target)) for key, fn in SCORES.items()}
        classifier = source_classifier(backbone)
        source = None if classifier is None else source_probabilities(X, classifier)
        for key, fn in SOURCE_SCORES.items():
            scores[key] = None if source is None else float(fn(source, target))
        rows.append(
            {
                "backbone": name,
                **scores,
                "dim": int(X.shape[1]),
                "seconds_encode": encode_seconds,
                "seconds_score": time.perf_counter() - t0,
                "n_cached": int(result.n_cached),
            }
        )
    order_rows(dataset, rows)
    return {
        "dataset": str(dataset.source),
        "n_examples": len(dataset),
        "n_classes": len([c for c in dataset.class_counts().values() if c]),
        "ranking": rows,
        "skipped": skipped,
        "winner": rows[0]["backbone"] if rows else None,
        "explanation": explain(rows),
    }


def _mark_language_mismatch(dataset, rows: list[dict[str, Any]]) -> None:
    """Flag text encoders whose known languages are all Latin-script, on non-Latin data."""
    if not rows:
        return
    from transferkit.backbones import get_spec
    from transferkit.backbones.scripts import script_mismatch
    from transferkit.modalities import get_modality

    share = get_modality(dataset.modality).non_latin_share(dataset)
    for row in rows:
        mismatch = script_mismatch(get_spec(row["backbone"]), share)
        if mismatch:
            row["language_mismatch"] = mismatch


def order_rows(dataset, rows: list[dict[str, Any]]) -> None:
    """Sort ``rows`` best first and number them, in place.

    LogME orders the candidates; one that cannot read the data's script goes after every one
    that can, whatever its score (on a few dozen texts, LogME cannot see that an English-only
    tokenizer turns Chinese into unknown tokens, and accuracy then sits near chance).
    """
    _mark_language_mismatch(dataset, rows)
    rows.sort(key=lambda r: (bool(r.get("language_mismatch")), -r["logme"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank


def explain(rows: list[dict[str, Any]]) -> str:
    """One sentence on why the winner wins."""
    if not rows:
        return "No candidate could be scored."
    best = rows[0]
    knn_best = max(rows, key=lambda r: r["knn_loo"])
    mismatched = [r for r in rows if r.get("language_mismatch")]
    readable = [r for r in rows if not r.get("language_mismatch")]
    among = (
        "" if not mismatched or best.get("language_mismatch") else " of the encoders that read it"
    )
    text = (
        f"{best['backbone']} has the highest LogME{among} ({best['logme']:.3f}): a linear head "
        f"on its frozen features explains the labels best"
    )
    peers = readable if readable and not best.get("language_mismatch") else rows
    if len(peers) > 1:
        text += f", {best['logme'] - peers[1]['logme']:+.3f} over {peers[1]['backbone']}"
    if mismatched and not best.get("language_mismatch"):
        names = ", ".join(r["backbone"] for r in mismatched)
        text += f" ({names} ranked last: {mismatched[0]['language_mismatch']})"
    if knn_best is best:
        text += f", and its nearest neighbours agree ({best['knn_loo']:.1%} leave-one-out)."
    else:
        text += (
            f"; {knn_best['backbone']} has the best k-NN leave-one-out accuracy "
            f"({knn_best['knn_loo']:.1%} vs {best['knn_loo']:.1%}): the scores disagree, so "
            "train both if the choice matters."
        )
    return text


COLUMNS = (  # (header, key, format): what the table shows, in order
    ("LogME", "logme", "{:.4f}"),
    ("H-score", "h_score", "{:.3f}"),
    ("kNN-LOO", "knn_loo", "{:.3f}"),
    ("LEEP", "leep", "{:.3f}"),
    ("NCE", "nce", "{:.3f}"),
)


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows of strings) of the ranking; "—" where a score does not apply."""
    header = ["rank", "backbone", *(c[0] for c in COLUMNS), "dim", "seconds"]
    rows = []
    for r in report["ranking"]:
        scores = [_fmt(r.get(key), fmt) for _, key, fmt in COLUMNS]
        seconds = f"{r['seconds_encode'] + r['seconds_score']:.1f}"
        rows.append([str(r["rank"]), r["backbone"], *scores, str(r["dim"]), seconds])
    return header, rows


def _fmt(value: Any, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def print_table(report: dict[str, Any], console) -> None:
    """The ranked table, printed by a rich ``console`` (a box table on a terminal, plain text
    when piped), then the backbones skipped and the explanation."""
    from rich.table import Table

    header, rows = table_rows(report)
    table = Table(title=f"Backbones ranked for {report['dataset']}", title_justify="left")
    for name in header:
        # names are never cut ("effici…" would hide which backbone won)
        table.add_column(name, justify="left" if name == "backbone" else "right", no_wrap=True)
    for i, row in enumerate(rows):
        table.add_row(*row, style="bold green" if i == 0 else None)
    console.print(table)
    for s in report["skipped"]:
        console.print(f"skipped {s['backbone']}: {s['reason']}", markup=False)
    console.print(report["explanation"], markup=False)


def format_table(report: dict[str, Any]) -> str:
    """The ranked table as plain aligned text (logs, tests)."""
    header, lines = table_rows(report)
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *lines]]
    for s in report["skipped"]:
        out.append(f"skipped {s['backbone']}: {s['reason']}")
    out.append(report["explanation"])
    return "\n".join(out)


def write_rank_json(report: dict[str, Any], out: str | Path) -> Path:
    from transferkit.atomic import write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rank.json"
    write_json_atomic(path, report)
    return path
