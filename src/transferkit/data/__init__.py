"""Data: reading image folders into a Dataset, labels, splits (split folders too), and decoding
image files. Which reader a path needs (images, texts or audio) is for ``transferkit.modalities``
(``load_dataset``)."""

from __future__ import annotations

from transferkit.data.dataset import (
    Dataset,
    DatasetWarning,
    Sample,
    UnreadableFilesWarning,
    check_split_classes,
    evaluation_folder,
    find_split_folders,
    load_image_folder,
    load_inputs,
    report_unreadable,
)
from transferkit.data.images import IMAGE_SUFFIXES, is_image_path, open_image
from transferkit.data.writer import write_image_folder

__all__ = [
    "IMAGE_SUFFIXES",
    "Dataset",
    "DatasetWarning",
    "Sample",
    "UnreadableFilesWarning",
    "check_split_classes",
    "evaluation_folder",
    "find_split_folders",
    "is_image_path",
    "load_image_folder",
    "load_inputs",
    "open_image",
    "report_unreadable",
    "write_image_folder",
]
