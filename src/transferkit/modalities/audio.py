"""Audio: class folders of clips or a CSV of path,label rows, decoded by libsndfile, encoded by
audio CNNs (long clips in windows)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.data.audio import (
    AUDIO,
    is_audio_folder,
    is_audio_path,
    is_audio_table,
    load_audio_folder,
    load_audio_table,
    probe_audio,
)
from transferkit.data.dataset import Dataset, as_upload, list_inputs, load_inputs
from transferkit.modalities.base import Baseline, Modality, refuse_options


class AudioModality(Modality):
    name = AUDIO.modality
    noun = AUDIO.noun
    default_backbone_name = "aisfx"
    trainable_example = "aisfx or speaker_ge2e"
    table_options = ("path_col", "label_col", "text_col")  # text_col: path_col's old name
    # no pretrained network to compare with: MFCC statistics, the classic hand-made features
    baseline = Baseline("features", backbone="mfcc_stats")

    def detect(self, path: Path, **options: Any) -> bool:
        # a CSV of path,label rows, or class folders that hold clips (and maybe notes)
        column = options.get("path_col") or options.get("text_col")
        return is_audio_table(path, column) or is_audio_folder(path)

    def claims(self, item) -> bool:
        upload = as_upload(item)
        return is_audio_path(upload[0] if upload else item)

    def load_labelled(
        self, path: str | os.PathLike[str], *, strict: bool = False, **options: Any
    ) -> Dataset:
        path = Path(path)
        if path.is_dir():
            refuse_options(path, options, (), self.noun)
            return load_audio_folder(path, strict=strict)
        refuse_options(path, options, self.table_options, self.noun)
        return load_audio_table(path, strict=strict, **options)

    def load_inputs(self, items, **options: Any) -> Dataset:
        return load_inputs(items, AUDIO)

    def list_inputs(self, items):
        return list_inputs(items, AUDIO)

    def probe(self, source: Path | bytes) -> str | None:
        return probe_audio(source)

    def export_inputs(self, backbone) -> dict[str, Any]:
        p = backbone.preprocess
        return {
            "kind": self.name,
            "dtype": "float32",
            "channels": 1,
            "sample_rate": p.sample_rate,
            "window_seconds": p.window_seconds,
            "pooling": p.pooling,
        }

    def _extract(self, backbone, dataset: Dataset, options: dict[str, Any]):
        from transferkit.features.audio_extract import extract_audio_embeddings

        keep = ("cache", "events", "num_threads")  # whole clips in windows; one view
        return extract_audio_embeddings(backbone, dataset, **{k: options[k] for k in keep})

    def training_batches(self, dataset: Dataset, module, *, batch_size: int, augment: str):
        from transferkit.finetune.audio_batches import AudioBatches

        return AudioBatches(
            dataset.paths, dataset.targets, module, batch_size=batch_size, augment=augment
        )

    def auto_strategy(self, dataset: Dataset, spec) -> tuple[str, str]:
        return (
            "features",
            "audio: a head on the frozen clip embeddings (fine-tuning the encoder is "
            "--strategy finetune; on our benchmarks it lost 7 points on sound effects and "
            "gained 1 on spoken words)",
        )

    def preview(self, sample) -> dict[str, Any]:
        return {"widget": "player", "path": str(sample.path)}
