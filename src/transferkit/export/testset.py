"""The bundle's own held-out examples, which the exported graph is checked on.

A run folder records in ``metrics.json``'s ``split.test_examples`` how to read its test
examples again: the folder or table they came from, the seeded draw that picked them from it
(when the test split was drawn from DATA), and a digest of which examples they were. Export
reads them again and refuses when the digest differs (the data changed since training): then,
as for runs recorded before this (only ``split.test``, a folder), ``--data DIR`` is asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError


def held_out_data(model: Path, data: str | Path | None, **columns: Any):
    """(labelled Dataset, where it came from): ``data`` if given, else the run's test folder."""
    from transferkit.modalities import load_dataset

    if data is not None:
        return load_dataset(data, **columns), str(data)
    split = _recorded_split(model)
    record = split.get("test_examples")
    if isinstance(record, dict):
        return _read_again(model, record)
    recorded = _recorded_test_folder(split)
    if recorded is None:
        raise BadInputError(
            f"{model}: export checks the graph against the bundle on the bundle's own test "
            "examples, but its run split them off DATA at random (metrics.json records the "
            "split's size and seed, not its files) or left no metrics.json beside the bundle. "
            "Pass labelled held-out examples with --data DIR (e.g. the folder given to "
            "`train --test`), never the training data."
        )
    path = Path(recorded)
    if not path.exists():
        raise BadInputError(
            f"{model}: its run was tested on {recorded}, which is not there from {Path.cwd()} "
            "(a relative path is relative to where `train` ran); pass it with --data DIR."
        )
    return load_dataset(path, **columns), str(path)


def _recorded_split(model: Path) -> dict:
    try:
        split = json.loads((model.parent / "metrics.json").read_text(encoding="utf-8"))["split"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return split if isinstance(split, dict) else {}


def _recorded_test_folder(split: dict) -> str | None:
    folders = split.get("folders") if isinstance(split.get("folders"), dict) else {}
    found = split.get("test") or folders.get("test")
    return found if isinstance(found, str) and found else None


def _read_again(model: Path, record: dict):
    """The run's test examples read again from where they came, checked by their digest."""
    from transferkit.modalities import load_dataset

    source, drawn, columns = record.get("data"), record.get("drawn"), record.get("columns")
    well_formed = (
        isinstance(source, str)
        and (drawn is None or _is_draw(drawn))
        and isinstance(columns, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())
    )
    if not well_formed:
        raise BadInputError(
            f"{model.parent / 'metrics.json'}: its split.test_examples is not what train "
            "writes, so the bundle's held-out examples cannot be found; pass them with --data DIR."
        )
    if not Path(source).exists():
        raise BadInputError(
            f"{model}: its run was tested on examples from {source}, which is not there any "
            "more; pass labelled held-out examples with --data DIR."
        )
    test = load_dataset(source, **columns)
    if drawn is not None:
        test = test.split(**drawn)[2]
    if test.identity_digest() != record.get("sha256"):
        raise BadInputError(
            f"{model}: {source} changed since the run drew its test examples from it (files "
            "added, removed or relabelled), so they cannot be told apart from training data; "
            "pass labelled held-out examples with --data DIR."
        )
    said = f"{source} (the run's test split: seed {drawn['seed']})" if drawn else source
    return test, said


def _is_draw(drawn) -> bool:
    numbers = ("test_size", "val_size", "seed")
    return (
        isinstance(drawn, dict)
        and set(drawn) == set(numbers)
        and all(
            isinstance(drawn[k], (int, float)) and not isinstance(drawn[k], bool) for k in numbers
        )
        and isinstance(drawn["seed"], int)
    )
