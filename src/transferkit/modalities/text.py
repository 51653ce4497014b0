"""Texts: tables (CSV, TSV, JSONL, Parquet) or .txt files per class, encoded by sentence
encoders; inputs to predict may be the texts themselves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from transferkit.data.dataset import Dataset, Sample, as_upload
from transferkit.data.text import (
    TEXT_FILE_SUFFIXES,
    TXT_SUFFIX,
    decode_bytes,
    is_text_data,
    load_text_dataset,
    non_latin_share,
    read_text_file,
    read_text_input,
    report_overlap,
)
from transferkit.errors import BadInputError
from transferkit.modalities.base import Modality, refuse_options

# a text given as itself (not in a file) is named "text:<its index among the inputs>"
_LITERAL = "text:"


class TextModality(Modality):
    name = "text"
    noun = "text"
    default_backbone_name = "all_minilm_l6_v2"
    trainable_example = "all_minilm_l6_v2"
    inline_inputs = True
    table_options = ("text_col", "label_col")

    def detect(self, path: Path, **options: Any) -> bool:
        return path.exists() and is_text_data(path)

    def claims(self, item) -> bool:
        upload = as_upload(item)
        if upload is None and isinstance(item, str) and not _names_path(item):
            return True  # a text itself
        suffix = Path(upload[0] if upload else item).suffix.lower()
        return suffix in (*TEXT_FILE_SUFFIXES, TXT_SUFFIX)

    def load_labelled(
        self, path: str | os.PathLike[str], *, strict: bool = False, **options: Any
    ) -> Dataset:
        refuse_options(Path(path), options, self.table_options, self.noun)
        return load_text_dataset(path, strict=strict, **options)

    def load_inputs(
        self, items, *, text_col: str | None = None, literal: bool = False, **options: Any
    ) -> Dataset:
        return text_inputs(items, text_col=text_col, literal=literal)

    def probe(self, source: Path | bytes) -> str | None:
        try:
            if isinstance(source, bytes):
                decode_bytes(source, "<bytes in memory>")
            else:
                read_text_file(Path(source))
        except BadInputError as exc:
            return str(exc)
        return None

    def readable(self, dataset: Dataset):
        # texts were decoded when they were read: every one is usable
        return np.ones(len(dataset), dtype=bool), []

    def default_backbone(self, dataset: Dataset) -> str:
        """All-MiniLM, or for text in other scripts than Latin (Chinese, Russian, Arabic…) the
        multilingual encoder, since the default sentence encoder knows English only."""
        from transferkit.backbones.scripts import is_non_latin

        if is_non_latin(self.non_latin_share(dataset)):
            return "use_multilingual"
        return self.default_backbone_name

    def export_inputs(self, backbone) -> dict[str, Any]:
        p = backbone.preprocess
        return {
            "kind": self.name,
            "dtype": "int64",
            "inputs": ["input_ids", "attention_mask"],
            "max_length": p.max_length,
            "lowercase": p.lowercase,
            "tokenizer_sha256": p.tokenizer_sha256,
        }

    def _extract(self, backbone, dataset: Dataset, options: dict[str, Any]):
        from transferkit.features.text_extract import extract_text_embeddings

        keep = ("batch_size", "cache", "events", "num_threads")  # one view; no ONNX runtime
        return extract_text_embeddings(backbone, dataset, **{k: options[k] for k in keep})

    def training_batches(self, dataset: Dataset, module, *, batch_size: int, augment: str):
        from transferkit.finetune.text_batches import TextBatches

        return TextBatches(dataset.texts, dataset.targets, module, batch_size=batch_size)

    def auto_strategy(self, dataset: Dataset, spec) -> tuple[str, str]:
        from transferkit.backbones.scripts import script_mismatch

        mismatch = script_mismatch(spec, self.non_latin_share(dataset))
        if mismatch:
            # contrastive would keep the frozen features here too (strategies/contrastive.py)
            return (
                "features",
                f"{spec.name} {mismatch}: training it on pairs of such texts measured no "
                "better than a head on its frozen embeddings; a head on them (an encoder that "
                "reads this script, e.g. --backbone use_multilingual, does better still)",
            )
        counts = [c for c in dataset.class_counts().values() if c]
        return (
            "contrastive",
            f"text with a trainable encoder ({spec.name}) and {min(counts)}-{max(counts)} "
            "examples per class: contrastive fine-tuning of the encoder, then a head",
        )

    def report_overlap(self, train: Dataset, test: Dataset) -> int:
        return report_overlap(train, test)

    def non_latin_share(self, dataset: Dataset) -> float:
        return non_latin_share(dataset.texts)

    def preview(self, sample: Sample) -> dict[str, Any]:
        return {"widget": "snippet", "text": sample.text or ""}

    def describe_input(self, sample: Sample) -> dict[str, Any]:
        """A text given as itself is named by itself; a row of a file by where it is, with its
        text."""
        if sample.path.as_posix().startswith(_LITERAL):
            return {"input": sample.text}
        return {"input": str(sample.path), "text": sample.text}


def text_inputs(items, *, text_col: str | None = None, literal: bool = False) -> Dataset:
    """Unlabelled texts to predict, in the order given.

    Each item is a ``Path`` (a table's text column, or a ``.txt`` file's lines), a
    ``(name, bytes)`` pair (such a file received in memory), or a string: the text itself,
    unless it names an existing text file (``predict(["great film", "more.csv"])``).
    ``literal``: a string is always the text itself, never a file's name (a server's clients
    must not be able to make it read its own files).
    """
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    samples: list[Sample] = []
    for i, item in enumerate(items):
        upload = as_upload(item)
        if upload is not None:
            records = read_text_input(Path(upload[0]), text_col=text_col, content=upload[1])
        elif isinstance(item, Path) or (
            isinstance(item, str) and not literal and _names_file(item)
        ):
            records = read_text_input(Path(item), text_col=text_col)
        elif isinstance(item, str):
            if not item.strip():
                raise BadInputError(f"input {i} is an empty text; give the text to classify")
            samples.append(Sample(Path(f"{_LITERAL}{i}"), None, item))
            continue
        else:
            raise BadInputError(
                f"input {i} is a {type(item).__name__}; give texts, file paths or "
                "(name, bytes) pairs"
            )
        samples += [Sample(Path(r.where), None, r.text) for r in records]
    if not samples:
        raise BadInputError("no texts to predict")
    return Dataset(tuple(samples), (), source="inputs", modality=TextModality.name)


def _names_file(text: str) -> bool:
    """Whether a string given as an input is the path of an existing text file."""
    suffix = Path(text[:4096]).suffix.lower()
    return (
        suffix in (*TEXT_FILE_SUFFIXES, TXT_SUFFIX) and _names_path(text) and Path(text).is_file()
    )


def _names_path(text: str) -> bool:
    """Whether a string is the path of an existing file or folder (a long text is not)."""
    return len(text) < 4096 and os.path.exists(text)
