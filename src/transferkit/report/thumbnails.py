"""Small inline previews for the report: any image file -> a base64 JPEG ``data:`` URI.

The report is written at the very end of a run, so nothing here may raise: a missing, corrupt,
truncated, enormous or non-image file (text, audio) gets a neutral placeholder instead.
"""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path

__all__ = ["PLACEHOLDER_URI", "MAX_SIDE", "thumbnail_data_uri", "try_thumbnail_data_uri"]

MAX_SIDE = 96
_JPEG_QUALITY = 80

_PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96">'
    '<rect width="96" height="96" rx="8" fill="#eef0f3"/>'
    '<path d="M28 64l14-18 10 12 7-8 9 14z" fill="#c3c8d0"/>'
    '<circle cx="60" cy="36" r="6" fill="#c3c8d0"/>'
    '<text x="48" y="86" font-family="sans-serif" font-size="10" fill="#8a919c" '
    'text-anchor="middle">no preview</text></svg>'
)
#: Shown in place of any file that cannot be decoded as an image.
PLACEHOLDER_URI = "data:image/svg+xml;base64," + base64.b64encode(
    _PLACEHOLDER_SVG.encode("ascii")
).decode("ascii")


def try_thumbnail_data_uri(path: str | Path, max_side: int = MAX_SIDE) -> str | None:
    """Return a ``data:image/jpeg;base64,...`` URI for ``path`` or ``None`` if it is unreadable."""
    try:
        from PIL import Image, ImageOps

        max_side = max(1, int(max_side))
        with warnings.catch_warnings():
            # Big-but-legal images only warn; a real decompression bomb raises (caught below).
            warnings.simplefilter("ignore")
            with Image.open(Path(path)) as im:
                # JPEG can decode at 1/2, 1/4, 1/8 scale directly: cheap on big photos.
                im.draft("RGB", (max_side * 2, max_side * 2))
                im.load()
                im = ImageOps.exif_transpose(im)
                im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
                if max(im.size) < max_side // 2:
                    # tiny images (28x28 digits, icons) are blown up with hard pixel edges, so a
                    # person can see what the model saw instead of a speck
                    factor = max_side // max(im.size)
                    size = (im.width * factor, im.height * factor)
                    im = im.resize(size, Image.Resampling.NEAREST)
                im = _to_rgb(im)
                buf = io.BytesIO()
                im.save(buf, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:  # a preview must never break the report
        return None


def thumbnail_data_uri(path: str | Path, max_side: int = MAX_SIDE) -> str:
    """Like :func:`try_thumbnail_data_uri`, but unreadable files give :data:`PLACEHOLDER_URI`."""
    return try_thumbnail_data_uri(path, max_side) or PLACEHOLDER_URI


def _to_rgb(im):
    """Flatten any mode (palette, alpha, 16-bit, CMYK, ...) onto white RGB for JPEG."""
    from PIL import Image

    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # High-bit-depth greyscale: rescale to 8 bit instead of clipping to white.
        if im.mode.startswith("I;16"):
            im = im.convert("I")
        lo, hi = im.getextrema()
        scale = 255.0 / (hi - lo) if hi > lo else 1.0
        return im.point(lambda v: (v - lo) * scale).convert("L").convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    return im.convert("RGB")
