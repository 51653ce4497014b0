"""A labelled source domain (``--source``): checked against the training data before any work.

The training data are the task's own (target-domain) labelled examples; the source is labelled
data of another domain for the same classes. A class only one side has cannot be learnt from
the other, so both must name the same classes; the source is then indexed against the training
data's label order, so class indices mean the same on both sides.
"""

from __future__ import annotations

from transferkit.data import Dataset
from transferkit.errors import BadInputError
from transferkit.modalities import get_modality


def source_like_training(train: Dataset, source: Dataset) -> Dataset:
    """``source`` indexed against ``train``'s labels; refused when it holds another kind of
    input, or classes other than ``train``'s (naming the classes each side lacks)."""
    have, theirs = get_modality(train.modality), get_modality(source.modality)
    if theirs is not have:
        raise BadInputError(
            f"--source {source.source} holds {theirs.noun}s but the training data "
            f"{train.source} holds {have.noun}s; a source domain is labelled data of the same "
            f"kind from elsewhere (e.g. {have.noun}s from another collection). Pass "
            f"{have.noun}s as --source."
        )
    mine = {label for label, n in train.class_counts().items() if n}
    other = {label for label, n in source.class_counts().items() if n}
    if mine != other:
        found = []
        if only_train := sorted(mine - other):
            found.append(f"only the training data have {_listed(only_train)}")
        if only_source := sorted(other - mine):
            found.append(f"only the source has {_listed(only_source)}")
        raise BadInputError(
            f"--source {source.source} and the training data {train.source} must hold the same "
            f"classes: {'; '.join(found)}. Add the missing class folders (or rows), or leave "
            "the extra classes out of the source."
        )
    return source.with_labels(train.labels)


def _listed(labels: list[str]) -> str:
    return ", ".join(f"'{label}'" for label in labels)
