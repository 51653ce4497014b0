"""A project's examples as a training folder: ``DATA/<class>/<sha256>.<ext>``.

The same layout for every modality (texts are ``.txt`` files, which ``load_dataset`` reads as a
text dataset), so ``transferkit train DATA`` on the dataset zip trains on exactly what the
studio's run trained on. Files are hard links to the blobs (a copy where the file system
refuses links): a snapshot costs no space, and keeps its files when examples are deleted later.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from transferkit.atomic import atomic_directory
from transferkit.errors import BadInputError

MIN_CLASSES = 2
MIN_PER_CLASS = 2  # a stratified split needs one to train on and one to test


def check_trainable(project: dict[str, Any]) -> None:
    """Refuse a project that cannot be trained, naming the class that needs more examples."""
    classes = project["classes"]
    if len(classes) < MIN_CLASSES:
        raise BadInputError(
            f"the project has {len(classes)} class{'es' if len(classes) != 1 else ''}; training "
            f"needs at least {MIN_CLASSES}: add a class and its examples"
        )
    for cls in classes:
        if cls["count"] < MIN_PER_CLASS:
            raise BadInputError(
                f"the class {cls['name']!r} has {cls['count']} example"
                f"{'s' if cls['count'] != 1 else ''}; every class needs at least "
                f"{MIN_PER_CLASS} (one to learn from, one to test on): add more"
            )


def write_snapshot(workspace, pid: str, dest: Path) -> dict[str, int]:
    """Write project ``pid``'s examples to ``dest`` (replaced whole); the count per class.

    An example whose bytes are in the class already is one file (a duplicate upload teaches
    nothing new, and would sit on both sides of the test split).
    """
    counts: dict[str, int] = {name: 0 for name in _class_names(workspace, pid)}
    with atomic_directory(dest) as tmp:
        for name in counts:
            (tmp / name).mkdir()
        for class_name, example, blob in workspace.project_examples(pid):
            target = tmp / class_name / f"{example['sha256']}{example['ext']}"
            if target.exists():
                continue
            _link_or_copy(blob, target)
            counts[class_name] += 1
    return counts


def _class_names(workspace, pid: str) -> list[str]:
    names = [c["name"] for c in workspace.project(pid)["classes"]]
    for name in names:
        # the workspace refuses such names already; a folder name is checked where it is made
        if Path(name).name != name or name in ("", ".", ".."):
            raise BadInputError(f"the class name {name!r} cannot be a folder name; rename it")
    return names


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(src, dst)
