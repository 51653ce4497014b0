"""``--target-test``: a few labelled target examples, to see whether adaptation helped.

The run fits source-only (the same backbone and head on the training data as they are) beside
the adapted model and scores both on these examples: the one honest check of adaptation there
is, where the validator that chose it (strategies/adapt/validator.py) only estimates. Target
examples of classes the training data lacks are reported apart: adaptation cannot invent
classes, so no model here could get them right.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError

log = logging.getLogger("transferkit")


def load_target(path: str | Path, train, *, strict: bool, columns: dict) -> tuple[Any, Any]:
    """(the target's inputs as an unlabelled Dataset, its labelled examples or None).

    A target that is labelled data sharing a class with ``train`` (class folders, a table with
    a label column) is used as it is meant: its inputs as the unlabelled target, its labels
    only to compare source-only with adapted afterwards — said in one log line.
    """
    from transferkit.estimator import load_unlabelled
    from transferkit.modalities import load_dataset

    labelled = None
    try:
        found = load_dataset(path, strict=False, **_present(columns))
        if set(found.labels) & set(train.labels) and len(found):
            labelled = found
    except BadInputError:  # unlabelled inputs: the usual target
        pass
    try:
        target = load_unlabelled(Path(path), modality=train.modality, strict=strict)
    except BadInputError as exc:
        raise BadInputError(f"--target {path}: {exc}") from None
    if labelled is not None:
        log.info(
            "--target %s is labelled (%d examples of %s): its labels are ignored for training "
            "and used as --target-test, to compare source-only with adapted",
            path,
            len(labelled),
            ", ".join(labelled.labels),
        )
    return target, labelled


def load_target_test(path: str | Path, train, *, strict: bool, columns: dict):
    """The labelled target examples of ``--target-test PATH``, of the training data's kind."""
    from transferkit.modalities import get_modality, load_dataset

    test = load_dataset(path, strict=strict, **_present(columns))
    have, theirs = get_modality(train.modality), get_modality(test.modality)
    if theirs is not have:
        raise BadInputError(
            f"--target-test {path} holds {theirs.noun}s but the training data {train.source} "
            f"holds {have.noun}s; pass labelled target examples of the same kind"
        )
    return test


def _present(columns: dict) -> dict:
    return {k: v for k, v in columns.items() if v is not None}


def known_part(test, labels) -> tuple[Any, dict[str, int]]:
    """(the examples of classes in ``labels``, the count of every other class's examples)."""
    known = [i for i, s in enumerate(test.samples) if s.label in set(labels)]
    counts = test.class_counts()
    unknown = {label: counts[label] for label in test.labels if label not in set(labels)}
    if not known:
        raise BadInputError(
            f"--target-test {test.source}: none of its classes ({', '.join(test.labels)}) is "
            f"among the training data's ({', '.join(labels)}); adaptation cannot invent "
            "classes, so there is nothing to compare on. Name the target's folders as the "
            "training classes."
        )
    part = test.subset(known)
    return part.with_labels(labels), unknown


def compare(adapted, source_only, test) -> dict[str, Any]:
    """``metrics["target_test"]``: both models' accuracy on the labelled target examples."""
    part, unknown = known_part(test, adapted.labels_)
    scores = {}
    for role, clf in (("source_only", source_only), ("adapted", adapted)):
        m = clf.evaluate(part)
        scores[role] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    gain = scores["adapted"]["accuracy"] - scores["source_only"]["accuracy"]
    out: dict[str, Any] = {
        "data": str(test.source),
        "n": len(part),
        "strategy": adapted.strategy_.name,
        **scores,
        "gain_points": 100.0 * gain,
    }
    if unknown:
        n = sum(unknown.values())
        out["unknown_classes"] = unknown
        out["note"] = (
            f"{n} target example(s) of {', '.join(unknown)} left out of the comparison: the "
            "training data has no such class, and adaptation cannot invent classes"
        )
        log.warning("--target-test: %s", out["note"])
    return out


def source_only_strategy(capabilities) -> str:
    """The strategy that is "no adaptation" for an adaptation strategy of these capabilities:
    the frozen backbone and a head, or fine-tuning when the method trains the backbone."""
    return "finetune" if capabilities.trains_backbone else "features"
