"""What an example may be: its type told by its bytes (never by its name or the client's
Content-Type), its size, and whether its modality can read it; each refusal names the file.

The studio's per-modality facts (which capture device, which file formats, how large a file)
live in ``MEDIA``, keyed by the modality's name, so no code compares modality names.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from transferkit.errors import BadInputError
from transferkit.modalities import MODALITIES, get_modality

MiB = 2**20


@dataclass(frozen=True)
class Format:
    """One file format, recognised by its first bytes."""

    media_type: str
    ext: str
    description: str  # "a PNG image", in refusals
    matches: Callable[[bytes], bool]


def _starts(*magics: bytes) -> Callable[[bytes], bool]:
    return lambda data: any(data.startswith(m) for m in magics)


def _riff(kind: bytes) -> Callable[[bytes], bool]:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == kind


def _mp3(data: bytes) -> bool:
    # an ID3 tag, or an MPEG audio frame sync (11 set bits) with layer III
    return data.startswith(b"ID3") or (
        len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0 and (data[1] & 0x06) == 0x02
    )


def _utf8_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


TEXT = Format("text/plain", ".txt", "a text file", _utf8_text)
# binary formats first: UTF-8 text is what is left when no magic number matches
FORMATS: tuple[Format, ...] = (
    Format("image/png", ".png", "a PNG image", _starts(b"\x89PNG\r\n\x1a\n")),
    Format("image/jpeg", ".jpg", "a JPEG image", _starts(b"\xff\xd8\xff")),
    Format("image/gif", ".gif", "a GIF image", _starts(b"GIF87a", b"GIF89a")),
    Format("image/webp", ".webp", "a WebP image", _riff(b"WEBP")),
    Format("image/bmp", ".bmp", "a BMP image", _starts(b"BM")),
    Format("audio/wav", ".wav", "a WAV audio file", _riff(b"WAVE")),
    Format("audio/flac", ".flac", "a FLAC audio file", _starts(b"fLaC")),
    Format("audio/ogg", ".ogg", "an Ogg audio file", _starts(b"OggS")),
    Format("audio/mpeg", ".mp3", "an MP3 audio file", _mp3),
    TEXT,
)
_BY_TYPE = {f.media_type: f for f in FORMATS}


@dataclass(frozen=True)
class StudioMedia:
    """What the studio offers for one modality's examples."""

    capture: str | None  # the browser device the page records from: "webcam" | "microphone"
    formats: tuple[str, ...]  # media types accepted, in FORMATS
    sources: tuple[str, ...]  # how its examples may arrive
    max_file_bytes: int | None = None  # None: the server's --max-upload-mb


MEDIA: dict[str, StudioMedia] = {
    "image": StudioMedia(
        "webcam",
        ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"),
        ("upload", "webcam"),
    ),
    "audio": StudioMedia(
        "microphone",
        ("audio/wav", "audio/flac", "audio/ogg", "audio/mpeg"),
        ("upload", "microphone"),
    ),
    "text": StudioMedia(None, ("text/plain",), ("upload", "paste"), max_file_bytes=64 * 1024),
}


@dataclass(frozen=True)
class UploadLimits:
    """How much one request and one file may hold.

    ``max_file_bytes``: one image or audio file (a text's limit is MEDIA's); ``max_body_bytes``:
    a whole request; ``max_files``: examples in one request; ``timeout_s``: for a body to arrive.
    """

    max_file_bytes: int = 16 * MiB
    max_body_bytes: int = 64 * MiB
    max_files: int = 200
    timeout_s: float = 300.0

    def __post_init__(self):
        for name in ("max_file_bytes", "max_body_bytes", "max_files"):
            if getattr(self, name) < 1:
                raise BadInputError(f"{name} must be at least 1; got {getattr(self, name)}")

    def file_limit(self, modality: str) -> int:
        """The largest file of ``modality`` accepted."""
        return studio_media(modality).max_file_bytes or self.max_file_bytes


def studio_media(modality: str) -> StudioMedia:
    """The studio's facts for ``modality``, or a BadInputError listing the modalities it has."""
    if modality not in MEDIA or modality not in MODALITIES:
        known = ", ".join(m for m in MEDIA if m in MODALITIES)
        raise BadInputError(f"the studio has no {modality!r} projects; pick one of: {known}")
    return MEDIA[modality]


def describe_modalities(limits: UploadLimits) -> list[dict]:
    """GET /api/modalities: what the page needs to offer each modality."""
    out = []
    for name, media in MEDIA.items():
        if name not in MODALITIES:
            continue
        modality = get_modality(name)
        out.append(
            {
                "name": name,
                "noun": modality.noun,
                "inline_inputs": modality.inline_inputs,
                "capture": media.capture,
                "accept": list(media.formats),
                "max_file_bytes": limits.file_limit(name),
            }
        )
    return out


def sniff(data: bytes, prefer: tuple[str, ...] = ()) -> Format | None:
    """The format ``data`` is in, judged by its bytes alone, or None.

    The media types in ``prefer`` are tried first: a text that begins "BM" is a text in a
    text project, though it would otherwise be taken for the start of a BMP image.
    """
    ordered = [f for f in FORMATS if f.media_type in prefer]
    ordered += [f for f in FORMATS if f.media_type not in prefer]
    return next((f for f in ordered if f.matches(data)), None)


def check_source(modality: str, source: str) -> str:
    """``source`` if examples of ``modality`` may come from it, else a BadInputError."""
    allowed = studio_media(modality).sources
    if source not in allowed:
        raise BadInputError(
            f"source must be one of {', '.join(allowed)} for {modality} examples; got {source!r}"
        )
    return source


def display_name(name: str, fallback: str) -> str:
    """A file name fit to show: its last path part, no control characters, at most 200 chars.

    Display only: no path is ever made from it.
    """
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:200] or fallback


def refusal(modality: str, name: str, data: bytes, limits: UploadLimits) -> str | Format:
    """The format of one upload for a ``modality`` project, or why it is refused (naming it)."""
    noun = get_modality(modality).noun
    media = studio_media(modality)
    limit = limits.file_limit(modality)
    if not data:
        return f"{name} is empty (0 bytes)"
    if len(data) > limit:
        return f"{name} is {_size(len(data))}; the limit for one {noun} is {_size(limit)}"
    found = sniff(data, media.formats)
    if found is None or found.media_type not in media.formats:
        # a text is what any unknown bytes that decode happen to be: show them instead
        known = found is not None and found is not TEXT
        what = f"it is {found.description}" if known else f"it starts with {_head(data)!r}"
        accepted = ", ".join(_BY_TYPE[t].ext.lstrip(".").upper() for t in media.formats)
        return f"{name} is not {_article(noun)}: {what} (accepted: {accepted})"
    problem = get_modality(modality).probe(data)
    if problem is None and found.media_type == "text/plain" and not data.decode().strip():
        problem = "it holds only white space"
    if problem is not None:
        return f"{name} cannot be used as {_article(noun)}: {problem}"
    return found


def _head(data: bytes) -> str:
    return data[:9].decode("latin-1")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _size(n: int) -> str:
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"
