"""The gap command's run: read both domains, embed them, measure, write gap.json + gap.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transferkit.domain_gap.analysis import Stages, measure_gap
from transferkit.errors import BadInputError


def run_gap(
    source: str | Path,
    target: str | Path,
    *,
    out: str | Path = "gap",
    backbone: str | None = None,
    weights: str | Path | None = None,
    seed: int = 0,
    batch_size: int = 64,
    cache: bool = True,
    progress: bool = True,
    strict: bool = False,
    runtime: str = "auto",
    columns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure the gap between labelled ``source`` and unlabelled ``target`` data (a labelled
    target's labels are not used) and write OUT/gap.json and OUT/gap.html; return a summary."""
    from transferkit.atomic import write_bytes_atomic, write_json_atomic
    from transferkit.backbones import resolve_backbone
    from transferkit.domain_gap.page import gap_html
    from transferkit.estimator import load_unlabelled
    from transferkit.modalities import extract_embeddings, get_modality, load_dataset
    from transferkit.progress import as_events

    stage = Stages(total=5)
    given = {k: v for k, v in (columns or {}).items() if v is not None}
    source_ds = load_dataset(source, strict=strict, **given)
    source_ds.check_trainable()
    try:
        target_ds = load_unlabelled(Path(target), modality=source_ds.modality, strict=strict)
    except BadInputError as exc:
        raise BadInputError(f"TARGET {target}: {exc}") from None
    stage(f"read {len(source_ds)} source and {len(target_ds)} target {source_ds.noun}s")
    modality = get_modality(source_ds.modality)
    name = backbone or modality.default_backbone(source_ds)
    model = resolve_backbone(name, weights=weights)
    modality.check_backbone(model, source_ds)
    options = {"batch_size": batch_size, "cache": cache, "runtime": runtime}
    events = as_events(progress)
    found = extract_embeddings(model, source_ds, events=events, **options)
    stage(f"embedded the source with {name}")
    seen = extract_embeddings(model, target_ds, events=events, **options)
    stage(f"embedded the target with {name}")
    readable_s = source_ds.subset(found.ok.nonzero()[0])
    readable_t = target_ds.subset(seen.ok.nonzero()[0])
    if len(readable_t) < 2 or len(readable_s) < 2:
        raise BadInputError(
            f"the gap needs at least 2 readable inputs on each side; {len(readable_s)} source "
            f"and {len(readable_t)} target inputs could be read"
        )
    gap = measure_gap(
        readable_s, readable_t, found.embeddings[found.ok], seen.embeddings[seen.ok], seed=seed
    )
    gap["backbone"] = name
    gap["skipped_files"] = [
        [str(p), r]
        for p, r in [*source_ds.skipped, *target_ds.skipped, *found.problems, *seen.problems]
    ]
    stage(f"measured: proxy A-distance {gap['a_distance']:.2f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "gap.json", gap)
    write_bytes_atomic(out / "gap.html", gap_html(gap).encode("utf-8"))
    stage(f"wrote {out / 'gap.json'} and {out / 'gap.html'}")
    return {
        "out": str(out),
        "a_distance": round(gap["a_distance"], 4),
        "n_source": gap["n_source"],
        "n_target": gap["n_target"],
        "backbone": name,
        "report": str(out / "gap.html"),
    }
