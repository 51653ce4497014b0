"""Fixtures the fine-tuning engine's tests share: tiny image-net weights and a shapes split.

conftest.py loads this module as a plugin; a test module's own fixture of the same name wins.
"""

from __future__ import annotations

import pytest
from tiny_backbone import write_tiny_weights

from transferkit.modalities import load_dataset


@pytest.fixture
def tiny_weights(tmp_path):
    return write_tiny_weights(tmp_path / "tiny.safetensors")


@pytest.fixture
def shape_data(tmp_path):
    """(train, val) of 3 shape classes x 8 images, a quarter held out for validation."""
    from conftest import make_shapes_folder

    ds = load_dataset(make_shapes_folder(tmp_path / "shapes", per_class=8))
    train, val, _ = ds.split(test_size=0.0, val_size=0.25, seed=0)
    return train, val
