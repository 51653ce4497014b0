"""One training run end to end: data → split → fit → evaluate → bundle, metrics.json, report.html.

This is what ``transferkit train`` does; it lives here (not in the CLI) so Python users and the
benchmarks get exactly the same run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise BadInputError(f"{name} must be a fraction in [0, 1); got {value}")


def train_run(
    data: str | Path,
    out: str | Path,
    *,
    test: str | Path | None = None,
    backbone: str = "mobilenet_v2",
    strategy: str = "features",
    head: str = "logistic",
    weights: str | Path | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float = 0.1,
    **classifier_params: Any,
) -> dict[str, Any]:
    """Train, evaluate and write RUN/model, RUN/metrics.json, RUN/report.html; return a summary."""
    from transferkit.atomic import write_json_atomic
    from transferkit.data import load_dataset
    from transferkit.estimator import TransferClassifier
    from transferkit.report import write_report

    started = time.perf_counter()
    if Path(out).exists() and not Path(out).is_dir():
        raise BadInputError(f"--out {out} is an existing file; give a directory for the run")
    _check_fraction("test_size", test_size)
    _check_fraction("val_size", val_size)
    if test_size + val_size >= 1.0:
        raise BadInputError(
            f"test_size + val_size must leave data to train on; got {test_size} + {val_size}"
        )
    strict = bool(classifier_params.get("strict", False))
    full = load_dataset(data, strict=strict)
    full.check_trainable()
    if test is not None:
        train_ds, test_ds = full, load_dataset(test, strict=strict)
        split_info = {"test": str(test)}
    else:
        train_part, val_part, test_ds = full.split(
            test_size=test_size, val_size=val_size, seed=seed
        )
        # the features strategy has no use for a separate validation set (its head picks C by
        # cross-validation), so validation examples are trained on rather than wasted
        train_ds = train_part.merge(val_part)
        split_info = {"test_size": test_size, "val_size": val_size, "seed": seed}

    clf = TransferClassifier(
        backbone=backbone,
        strategy=strategy,
        head=head,
        weights=weights,
        seed=seed,
        **classifier_params,
    )
    clf.fit(train_ds)
    metrics, mistakes = clf.evaluate_details(test_ds)
    metrics["split"] = split_info
    # every file left out, wherever it was found: empty files at load, undecodable ones later
    skipped = [*full.skipped, *(test_ds.skipped if test is not None else ()), *clf.skipped_]
    skipped = [[str(p), r] for p, r in skipped] + metrics.get("skipped_files", [])
    if skipped:
        metrics["skipped_files"] = skipped
    metrics["seconds"]["total"] = time.perf_counter() - started

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clf.save(out / "model", metrics=metrics)
    write_json_atomic(out / "metrics.json", metrics)
    write_report(
        out / "report.html",
        metrics,
        mistakes=mistakes[:24],
        title=f"transferkit — {Path(data).name}",
    )
    return {
        "out": str(out),
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4),
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
        "backbone": metrics["backbone"],
        "report": str(out / "report.html"),
    }
