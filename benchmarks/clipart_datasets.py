"""Clip art: drawings in five categories of Debian's ``openclipart-png`` (public domain).

``/usr/share/openclipart/png/<category>/**.png`` (``make bench`` installs the package): a class
per category, every drawing under it (subfolders included), composited onto white and shrunk
to at most 256 px. K per class train (``default_rng(seed)``), then at most ``MAX_TEST`` of the
others test. The categories are the issue's suggestion with ``food`` for ``electronics``, which
holds 43 drawings (too few for 50 a class and a test set); ``buildings`` (70) is the smallest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root
from benchmarks.photo_datasets import _on_white

OPENCLIPART = Path("/usr/share/openclipart/png")
CATEGORIES = ("transportation", "buildings", "office", "recreation", "food")
MAX_TEST = 100  # per class: recreation alone holds 614 drawings
# a few drawings are rendered at up to 623 megapixels, which PIL refuses as a decompression bomb
# (and would take seconds each to shrink): those over this size are left out
MAX_PIXELS = 40_000_000


def clipart_files(root: Path = OPENCLIPART) -> dict[str, list[Path]]:
    """Category -> its drawings of at most MAX_PIXELS, sorted (a missing package is a clear
    error)."""
    if not root.is_dir():
        raise DatasetUnavailableError(
            f"{root} not found: install Debian's openclipart-png (apt-get install openclipart-png)"
        )
    return {c: [p for p in sorted((root / c).rglob("*.png")) if _small(p)] for c in CATEGORIES}


def _small(path: Path) -> bool:
    """Whether the drawing has at most MAX_PIXELS (read from its header only)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return im.width * im.height <= MAX_PIXELS
        except Image.DecompressionBombError:  # over twice PIL's limit: refused on opening
            return False


def write_clipart(k: int, seed: int, root: Path | None = None) -> tuple[Path, Path]:
    """(train folder, test folder): ``k`` drawings per category train, up to MAX_TEST test."""
    files = clipart_files()
    dest = (root or datasets_root()) / f"openclipart5-k{k}-s{seed}"

    def build(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        for label, paths in files.items():
            if len(paths) <= k:
                raise DatasetUnavailableError(f"openclipart {label} has only {len(paths)}")
            order = rng.permutation(len(paths))  # test: a random MAX_TEST of the rest
            for part, idx in (("train", order[:k]), ("test", order[k : k + MAX_TEST])):
                for i in idx:
                    # a drawing's name may repeat in subfolders: its index keeps it apart
                    _on_white(paths[i], tmp / part / label / f"{i:04d}-{paths[i].stem}.png")

    _publish(dest, build)
    return dest / "train", dest / "test"
