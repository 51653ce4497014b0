"""Modalities: the only place that knows images from texts from audio clips.

Each modality (``image.py``, ``text.py``, ``audio.py``) is a ``Modality`` registered here once;
code elsewhere asks ``get_modality(dataset.modality)`` for what differs (how to load, probe,
extract, batch, preview...) instead of comparing names. A new modality is one module and one
``register_modality`` line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.data.dataset import Dataset
from transferkit.modalities.audio import AudioModality
from transferkit.modalities.base import Baseline, Modality
from transferkit.modalities.image import ImageModality
from transferkit.modalities.text import TextModality, text_inputs

# in detection order: a folder of clips is audio before it is anything else, a table is text
# unless its rows name audio files, and images are what a folder holds otherwise
MODALITIES: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    """Add ``modality`` to the registry (after those registered before it, for detection)."""
    if modality.name in MODALITIES:
        raise ValueError(f"a modality named {modality.name!r} is registered already")
    MODALITIES[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    """The registered modality called ``name``."""
    try:
        return MODALITIES[name]
    except KeyError:
        raise ValueError(
            f"no modality named {name!r}; the modalities are {list(MODALITIES)}"
        ) from None


def modality_of(path_or_items, **options: Any) -> Modality:
    """The modality of a labelled dataset at a path, or of inputs to predict (by the first).

    ``options``: the table columns given (``path_col``...), which may tell a table's modality.
    A path no modality claims is given to the last one registered (images), whose loader then
    says what is wrong with it.
    """
    *claimants, fallback = MODALITIES.values()
    if isinstance(path_or_items, (str, os.PathLike)):
        path = Path(path_or_items)
        return next((m for m in claimants if m.detect(path, **options)), fallback)
    first = next(iter(path_or_items), None)
    if first is None:
        return fallback
    return next((m for m in claimants if m.claims(first)), fallback)


def load_dataset(path: str | os.PathLike[str], *, strict: bool = False, **options: Any) -> Dataset:
    """Load labelled data, choosing the modality (and so the reader) from what ``path`` is.

    ``options`` go to the reader, for tables: ``text_col`` / ``label_col`` for texts,
    ``path_col`` / ``label_col`` for audio clips; None means "found by its usual name".
    """
    given = {k: v for k, v in options.items() if v is not None}
    return modality_of(path, **given).load_labelled(path, strict=strict, **given)


def extract_embeddings(backbone, dataset: Dataset, **options: Any):
    """Embeddings of every sample of ``dataset`` by the frozen ``backbone``, cached and
    batched as its modality does it (``Modality.extract``): an ``ExtractionResult``."""
    return get_modality(dataset.modality).extract(backbone, dataset, **options)


register_modality(AudioModality())
register_modality(TextModality())
register_modality(ImageModality())

__all__ = [
    "MODALITIES",
    "Baseline",
    "Modality",
    "extract_embeddings",
    "get_modality",
    "load_dataset",
    "modality_of",
    "register_modality",
    "text_inputs",
]
