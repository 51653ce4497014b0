"""Audio datasets: a folder of class sub-folders of clips, or a CSV of path,label; and decoding.

Any sample rate, bit depth and channel count is read (libsndfile via ``soundfile``: WAV, FLAC,
OGG/Vorbis, MP3, AIFF), mixed down to mono and resampled with soxr's high-quality filter to the
rate the backbone wants. A clip that cannot be used — zero-length, corrupt, not audio at all, or
silent — is reported with the reason (all of them in one warning when the data is loaded, fatal
with ``--strict``), never silently dropped. Like images, every clip is decoded once at load time
(``probe_audio``, in threads) so that every later stage sees the same, usable clips.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

import numpy as np

from transferkit.data.columns import LABEL_COLUMNS, find_column, missing_column
from transferkit.data.dataset import (
    Dataset,
    FileKind,
    Sample,
    _list_top,
    load_class_folders,
    probe_files,
    report_unreadable,
)
from transferkit.errors import BadInputError

AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif"}
)
# peak below -80 dBFS: nothing a microphone or a synthesiser would call a sound
SILENCE_PEAK = 1e-4
PATH_COLUMNS = ("path", "file", "filename", "audio", "clip")


def is_audio_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has an audio suffix we read and is not hidden."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_SUFFIXES


class UnreadableAudio(Exception):
    """A clip that cannot be used; the message is the reason (without the path)."""


# ------------------------------------------------------------------------------- detection


def is_audio_folder(path: Path, sample: int = 200) -> bool:
    """A folder whose class sub-folders hold audio files (more of them than images).

    Looks at no more than ``sample`` files in all, breadth-first: deciding the reader must not
    cost a second full listing of a big image folder (the loader lists it once, afterwards).
    """
    from transferkit.data.images import is_image_path

    if not path.is_dir():
        return False
    audio = images = 0
    pending = list(_list_top(path, is_audio_path)[0][:50])
    while pending and audio + images < sample:
        folder = pending.pop(0)
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        pending.append(Path(entry.path))
                    elif is_audio_path(entry.name):
                        audio += 1
                    elif is_image_path(entry.name):
                        images += 1
                    if audio + images >= sample:
                        break
        except OSError:  # the loader reports unreadable folders; here just look elsewhere
            continue
    return audio > images


def is_audio_table(path: Path, column: str | None = None) -> bool:
    """A CSV/TSV with a path column (``column``, or one of the usual names) whose first filled
    value is an audio file name."""
    if not path.is_file() or path.suffix.lower() not in (".csv", ".tsv"):
        return False
    try:
        header, rows = _read_table(path, limit=20)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    try:
        name = find_column(header, column, PATH_COLUMNS, flag="--path-col", source=str(path))
    except BadInputError:  # no such column: then not an audio table, but perhaps a text one
        return False
    if name is None:
        return False
    column = header.index(name)
    values = [r[column] for r in rows if column < len(r) and r[column].strip()]
    return bool(values) and is_audio_path(values[0].strip())


# ----------------------------------------------------------------------------------- loading


def load_audio_folder(root: str | os.PathLike[str], *, strict: bool = False) -> Dataset:
    """Read ``root/<class>/**/<clip>`` into an audio Dataset; sub-folder names are the labels."""
    return load_class_folders(root, AUDIO, strict=strict)


def load_audio_table(
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    path_col: str | None = None,
    label_col: str | None = None,
    text_col: str | None = None,
) -> Dataset:
    """Read a CSV/TSV of ``path,label`` rows; relative paths are relative to the table's folder.

    ``path_col`` (``--path-col``) and ``label_col`` (``--label-col``) name the columns when they
    are not called path/file/... and label/class/...; ``text_col`` is the old name of
    ``path_col`` for audio tables (it still works, with a ``FutureWarning``).

    Missing, empty and undecodable files are reported (one warning, fatal with ``strict``), not
    fatal alone.
    """
    path = Path(path)
    if text_col is not None and path_col is None:
        warnings.warn(
            f"{path}: --text-col (text_col=) names the text column of text tables; for a table "
            "of audio clips name the column of file paths with --path-col (path_col=). "
            "--text-col will stop working for audio tables in a later version.",
            FutureWarning,
            stacklevel=2,
        )
        path_col = text_col
    header, rows = _read_table(path)
    p_col = _column(path, header, path_col, PATH_COLUMNS, "path")
    l_col = _column(path, header, label_col, LABEL_COLUMNS, "label")
    samples, problems = [], []
    for line, row in enumerate(rows, start=2):
        clip = row[p_col].strip() if p_col < len(row) else ""
        label = row[l_col].strip() if l_col < len(row) else ""
        if not clip or not label:
            problems.append((Path(f"{path}:{line}"), "row without a path or a label"))
            continue
        file = Path(clip) if Path(clip).is_absolute() else path.parent / clip
        if not file.is_file():
            problems.append((file, f"no such file (row {line} of {path.name})"))
        elif file.stat().st_size == 0:
            problems.append((file, "empty file (0 bytes)"))
        else:
            samples.append(Sample(file, label))
    undecodable = probe_files([s.path for s in samples], probe_audio)
    bad = {file for file, _ in undecodable}
    samples = [s for s in samples if s.path not in bad]
    problems += undecodable
    report_unreadable(problems, strict=strict, context=f"loading {path}")
    if not samples:
        raise BadInputError(
            f"{path}: no usable rows (every row had a missing, empty or undecodable file)."
        )
    labels = tuple(sorted({s.label for s in samples}))
    return Dataset(
        tuple(samples),
        labels,
        source=str(path),
        modality=AUDIO.modality,
        skipped=problems,
        noun=AUDIO.noun,
    )


def _read_table(path: Path, limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as fp:
        reader = csv.reader(fp, delimiter=delimiter)
        header = [h.strip() for h in next(reader, [])]
        rows = []
        for row in reader:
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return header, rows


def _column(path: Path, header: list[str], given: str | None, usual, what: str) -> int:
    """The index of the ``what`` column (``--<what>-col``), found as every table reader does."""
    flag = f"--{what}-col"
    name = find_column(header, given, usual, flag=flag, source=str(path))
    if name is None:
        raise missing_column(what, usual, header, flag=flag, source=str(path))
    return header.index(name)


# ---------------------------------------------------------------------------------- decoding


def decode_audio(path: str | os.PathLike[str] | bytes, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of ``path`` (a file, or its bytes in memory) at ``sample_rate``;
    ``UnreadableAudio`` with the reason.

    Channels are averaged (a mix-down, as every encoder here was trained on mono), and the rate
    converted with soxr's high-quality resampler.
    """
    mono, rate = _read_mono(path)
    if rate != sample_rate:
        import soxr

        resampled = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
        # a clip of a sample or two can resample to nothing: keep one sample (encoders pad)
        mono = resampled if len(resampled) else mono[:1]
    return np.ascontiguousarray(mono, dtype=np.float32)


def probe_audio(path: str | os.PathLike[str] | bytes) -> str | None:
    """Why ``decode_audio`` cannot use ``path`` (the reason), or None; run on every clip at load.

    Everything but the resampling, which cannot fail: the same clips are refused.
    """
    try:
        _read_mono(path)
    except UnreadableAudio as exc:
        return str(exc)
    return None


def _read_mono(path: str | os.PathLike[str] | bytes) -> tuple[np.ndarray, int]:
    """(mono float32 samples, their rate), or ``UnreadableAudio`` for a clip nothing can use."""
    import soundfile as sf

    source = io.BytesIO(path) if isinstance(path, bytes) else os.fspath(path)
    try:
        wave, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile names the problem: not audio, truncated, unsupported
        raise UnreadableAudio(f"not a readable audio file ({_short(exc)})") from exc
    if wave.shape[0] == 0:
        raise UnreadableAudio("zero-length clip (no samples)")
    mono = wave.mean(axis=1) if wave.shape[1] > 1 else wave[:, 0]
    if not np.isfinite(mono).all():
        raise UnreadableAudio("corrupt samples (NaN or infinite values)")
    if float(np.abs(mono).max()) < SILENCE_PEAK:
        raise UnreadableAudio("silent clip (peak below -80 dBFS)")
    return mono, int(rate)


def audio_duration(path: str | os.PathLike[str]) -> float:
    """Seconds of audio in ``path`` from its header (0.0 when it cannot be read)."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except Exception:  # noqa: BLE001 - decoding reports the reason; here only a number
        return 0.0
    return float(info.frames) / float(info.samplerate or 1)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


# what a class folder of clips holds, for the folder walker in dataset.py
AUDIO = FileKind(
    "audio",
    "audio clip",
    is_audio_path,
    " ".join(sorted(AUDIO_SUFFIXES)),
    "dog_bark/001.wav",
    "convert them to WAV or FLAC",
    probe_audio,
)
