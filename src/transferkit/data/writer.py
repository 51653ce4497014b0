"""Write arrays or PIL images as a class-folder image dataset (demo data, benchmarks, tests)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from transferkit.errors import BadInputError

_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})


def write_image_folder(
    root: str | os.PathLike[str],
    images_by_label: dict[str, list[np.ndarray | Image.Image]],
) -> Path:
    """Write images as ``root/<label>/<00000>.png``, all or nothing (built aside, then renamed).

    Arrays may be uint8 or bool, or floats in [0, 1]; shaped (H, W), (H, W, 3) or (H, W, 4).
    """
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BadInputError(
            f"{root} already exists and is not empty; delete it or pick another path"
        )
    for label in images_by_label:
        _check_folder_name(label)
    root.parent.mkdir(parents=True, exist_ok=True)
    # A hidden sibling: same file system (so the rename is atomic) and ignored by our loaders.
    staging = root.parent / f".{root.name}.partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        for label, images in images_by_label.items():
            folder = staging / label
            folder.mkdir()
            width = max(5, len(str(len(images))))
            for i, image in enumerate(images):
                _to_pil(image, label, i).save(folder / f"{i:0{width}d}.png")
        if root.exists():
            root.rmdir()  # empty (checked above); Windows cannot rename onto an existing folder
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root


def _check_folder_name(label: object) -> None:
    """Reject labels that cannot round-trip as a visible folder name."""
    bad = (
        not isinstance(label, str)
        or not label.strip()
        or label.startswith(".")
        or any(c in label for c in "/\\\0")
    )
    if bad:
        raise BadInputError(
            f"label {label!r} cannot be a class folder name; use a non-empty name without "
            "slashes that does not start with '.' (those folders are hidden and skipped)."
        )


def _to_pil(image: np.ndarray | Image.Image, label: str, i: int) -> Image.Image:
    """An image or array as something PNG can store, or a BadInputError naming the bad array."""
    if isinstance(image, Image.Image):
        return image if image.mode in _PNG_MODES else image.convert("RGB")
    array = np.asarray(image)
    where = f"image {i} of label '{label}'"
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise BadInputError(
            f"{where} has shape {array.shape}; expected (H, W), (H, W, 3) or (H, W, 4) "
            "(transpose channels-first arrays to channels-last)."
        )
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = _to_uint8(array, where)
    return Image.fromarray(np.ascontiguousarray(array))


def _to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Floats in [0, 1] or integers in [0, 255] as uint8; anything else is ambiguous."""
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if np.issubdtype(array.dtype, np.floating) and 0 <= lo and hi <= 1:
        return np.rint(array * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) and 0 <= lo and hi <= 255:
        return array.astype(np.uint8)
    raise BadInputError(
        f"{where} has dtype {array.dtype} with values {lo:g}..{hi:g}; pass uint8 (0-255) or "
        "floats in [0, 1]."
    )
