"""The bundle's own held-out examples, which the exported graph is checked on.

A run folder records its test set only when it was a folder of its own (``train --test DIR``,
or DATA's ``test/`` split folder): ``metrics.json``'s ``split``. A test split drawn at random
from DATA is recorded by its size and seed, not by its files, so it cannot be found again;
then ``--data DIR`` (labelled held-out examples) is required.
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
    recorded = _recorded_test_folder(model)
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


def _recorded_test_folder(model: Path) -> str | None:
    metrics = model.parent / "metrics.json"
    try:
        split = json.loads(metrics.read_text(encoding="utf-8")).get("split", {})
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(split, dict):
        return None
    folders = split.get("folders") if isinstance(split.get("folders"), dict) else {}
    found = split.get("test") or folders.get("test")
    return found if isinstance(found, str) and found else None
