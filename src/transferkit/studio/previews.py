"""What the page shows for an example: a thumbnail, a waveform or the start of a text, made
by the preview of its project's modality (``PREVIEWS``, keyed by the modality's name)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transferkit.errors import BadInputError
from transferkit.studio.blobs import BlobStore

THUMB_PX = 128
PEAKS = 100
_PEAK_RATE = 8000  # plenty to draw 100 bars
TEXT_CHARS = 300


def thumbnail(blobs: BlobStore, example: dict, path: Path) -> tuple[bytes, str]:
    """A PNG at most 128 px on its longer side, made once and kept beside the blobs."""
    cached = blobs.thumb_path(example["sha256"])
    if cached.is_file():
        return cached.read_bytes(), "image/png"
    from transferkit.data.images import open_image

    image = open_image(path, target_size=THUMB_PX)
    image.thumbnail((THUMB_PX, THUMB_PX))
    out = io.BytesIO()
    image.save(out, format="PNG")
    blobs.write(cached, out.getvalue())
    return out.getvalue(), "image/png"


def waveform(blobs: BlobStore, example: dict, path: Path) -> tuple[dict, str]:
    """{"peaks": 100 loudness bars 0..1, "seconds": the clip's length}."""
    from transferkit.data.audio import decode_audio

    samples = np.abs(decode_audio(path, _PEAK_RATE))
    chunks = np.array_split(samples, min(PEAKS, len(samples)))
    peaks = np.array([c.max() for c in chunks], dtype=np.float64)
    top = peaks.max() or 1.0
    peaks = np.pad(peaks / top, (0, PEAKS - len(peaks)))
    return {"peaks": [round(float(p), 4) for p in peaks], "seconds": len(samples) / _PEAK_RATE}, (
        "application/json"
    )


def snippet(blobs: BlobStore, example: dict, path: Path) -> tuple[dict, str]:
    """{"text": the first 300 characters}."""
    text = path.read_bytes().decode("utf-8")
    return {"text": text[:TEXT_CHARS]}, "application/json"


PREVIEWS: dict[str, Callable[[BlobStore, dict, Path], tuple[bytes | dict, str]]] = {
    "image": thumbnail,
    "audio": waveform,
    "text": snippet,
}


def preview(modality: str, blobs: BlobStore, example: dict, path: Path) -> tuple[bytes | dict, str]:
    """The preview of ``example`` (stored at ``path``): PNG bytes, or a JSON-able dict."""
    try:
        make = PREVIEWS[modality]
    except KeyError:
        raise BadInputError(f"the studio draws no preview for {modality} examples") from None
    return make(blobs, example, path)
