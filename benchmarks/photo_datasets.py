"""Small real-photo tasks for the small-data fine-tuning benchmark (and its test).

- ``tuxpaint``: real object photos cut out on transparent backgrounds, from Debian's
  ``tuxpaint-stamps-default`` (``/usr/share/tuxpaint/stamps``, GPL-2; ``make system`` installs
  it), composited onto white: 7 classes of 16-35 photos each (``TUXPAINT_CLASSES``). The
  pre-mirrored copies (``*_mirror.png``) are left out: they would put one photo on both sides
  of the split. K per class train (``default_rng(seed)``), every other photo tests.
- ``faces``: scikit-image's ``lfw_subset()`` (100 faces and 100 non-face crops, 25x25
  grayscale photos): K per class train, every other image tests.

Written under the benchmark datasets root (``datasets.py``), atomically, and re-used; a test
passes its own ``root``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root

TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")
# class -> stamp folders (relative to TUXPAINT_STAMPS); each holds 16+ photos, so 10 train and
# at least 6 test
TUXPAINT_CLASSES = {
    "bird": ("animals/birds",),
    "mammal": ("animals/mammals", "animals/marsupials"),
    "fruit": ("food/fruit",),
    "vegetable": ("food/vegetables",),
    "flower": ("plants/flowers",),
    "christmas": ("seasonal/christmas",),
    "halloween": ("seasonal/halloween",),
}
MAX_SIDE = 256  # stamps are up to ~1000 px; the backbone reads 224


def tuxpaint_files(stamps: Path = TUXPAINT_STAMPS) -> dict[str, list[Path]]:
    """{class: sorted photo files} of ``TUXPAINT_CLASSES``."""
    if not stamps.is_dir():
        raise DatasetUnavailableError(
            f"{stamps} is missing: install Debian's tuxpaint-stamps-default (`make system`)"
        )
    return {
        label: sorted(
            f
            for folder in folders
            for f in (stamps / folder).glob("*.png")
            if not f.stem.endswith("_mirror")
        )
        for label, folders in TUXPAINT_CLASSES.items()
    }


def _on_white(src: Path, dest: Path) -> None:
    from PIL import Image

    with Image.open(src) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    out = white.convert("RGB")
    out.thumbnail((MAX_SIDE, MAX_SIDE))
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.save(dest)


def _split(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return np.sort(order[:k]), np.sort(order[k:])


def write_tuxpaint(
    k: int, seed: int, root: Path | None = None, classes: tuple[str, ...] | None = None
) -> tuple[Path, Path]:
    """(train folder, test folder): ``k`` photos per class train, the rest test.

    ``classes``: a subset of ``TUXPAINT_CLASSES`` (default: all seven)."""
    files = tuxpaint_files()
    if classes is not None:
        files = {label: files[label] for label in classes}
    subset = "" if classes is None else "-" + "-".join(classes)
    dest = (root or datasets_root()) / f"tuxpaint-photos{subset}-k{k}-s{seed}"

    def build(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        for label, paths in files.items():
            if len(paths) <= k:
                raise DatasetUnavailableError(f"tuxpaint class {label} has only {len(paths)}")
            train, test = _split(len(paths), k, rng)
            for part, idx in (("train", train), ("test", test)):
                for i in idx:
                    _on_white(paths[i], tmp / part / label / f"{paths[i].stem}.png")

    _publish(dest, build)
    return dest / "train", dest / "test"


def write_faces(k: int, seed: int, root: Path | None = None) -> tuple[Path, Path]:
    """(train folder, test folder) of scikit-image's faces vs non-faces: ``k`` per class."""
    from PIL import Image
    from skimage.data import lfw_subset

    images = lfw_subset()  # 100 faces, then 100 non-faces, floats in [0, 1]
    labels = np.array(["face"] * 100 + ["not_face"] * 100)
    dest = (root or datasets_root()) / f"skimage-faces-k{k}-s{seed}"

    def build(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        for label in ("face", "not_face"):
            idx = np.flatnonzero(labels == label)
            train, test = _split(len(idx), k, rng)
            for part, chosen in (("train", idx[train]), ("test", idx[test])):
                (tmp / part / label).mkdir(parents=True, exist_ok=True)
                for i in chosen:
                    pixels = np.clip(np.round(images[i] * 255), 0, 255).astype(np.uint8)
                    Image.fromarray(pixels).save(tmp / part / label / f"{i}.png")

    _publish(dest, build)
    return dest / "train", dest / "test"
