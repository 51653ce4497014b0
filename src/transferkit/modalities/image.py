"""Images: class folders of photos, decoded by PIL, encoded by CNNs and vision transformers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transferkit.data.dataset import (
    IMAGES,
    Dataset,
    as_upload,
    list_inputs,
    load_image_folder,
    load_inputs,
)
from transferkit.data.images import is_image_path, probe_image
from transferkit.features.image_extract import VIEWS
from transferkit.modalities.base import Modality, refuse_options


class ImageModality(Modality):
    name = IMAGES.modality
    noun = IMAGES.noun
    default_backbone_name = "mobilenet_v2"
    trainable_example = "mobilenet_v2"
    views = VIEWS  # and the mirror image: the same class for almost every photo
    default_augment = "light"
    small_cpu_passes = True

    def detect(self, path: Path, **options: Any) -> bool:
        """Images are what a folder holds when no other modality claims it."""
        return path.is_dir()

    def claims(self, item) -> bool:
        upload = as_upload(item)
        return is_image_path(upload[0] if upload else item)

    def load_labelled(
        self, path: str | os.PathLike[str], *, strict: bool = False, **options: Any
    ) -> Dataset:
        refuse_options(Path(path), options, self.table_options, self.noun)
        return load_image_folder(path, strict=strict)

    def load_inputs(self, items, **options: Any) -> Dataset:
        return load_inputs(items, IMAGES)

    def list_inputs(self, items):
        return list_inputs(items, IMAGES)

    def probe(self, source: Path | bytes) -> str | None:
        return probe_image(source)

    def export_inputs(self, backbone) -> dict[str, Any]:
        # the runners take the cropped pixels and normalise inside the graph (features/runtime)
        p = backbone.preprocess
        return {
            "kind": self.name,
            "dtype": "uint8",
            "layout": "NCHW",
            "shape": [None, 3, p.input_size, p.input_size],
            "resize_size": p.resize_size,
            "interpolation": p.interpolation,
            "mean": list(p.mean),
            "std": list(p.std),
        }

    def _extract(self, backbone, dataset: Dataset, options: dict[str, Any]):
        from transferkit.features.image_extract import extract_image_embeddings

        return extract_image_embeddings(backbone, dataset, **options)

    def training_batches(self, dataset: Dataset, module, *, batch_size: int, augment: str):
        from transferkit.finetune.image_batches import ImageBatches

        return ImageBatches(
            dataset.paths,
            dataset.targets,
            module.preprocess,
            augment=augment,
            batch_size=batch_size,
        )
