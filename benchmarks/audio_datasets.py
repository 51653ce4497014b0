"""Audio datasets for the benchmarks: Sonic Pi's sample library and words spoken by espeak-ng.

Both are built from Debian packages, as class folders under the benchmark datasets root
(``~/.cache/transferkit/datasets``, or ``TRANSFERKIT_DATASETS_DIR``), written atomically (temp
dir, then rename) and re-used when present. Nothing is written inside the repository.

- ``sonic-pi/``: the 165 FLAC one-shots of ``sonic-pi-samples`` (``/usr/share/sonic-pi/samples``,
  CC0, from freesound), copied into 14 class folders named by the file-name prefix (the text
  before the first underscore: ``ambi``, ``bass``, ``bd``, ``drum``, ... ``vinyl``).
- ``espeak-words/``: :data:`WORDS` spoken by ``espeak-ng`` with each of :data:`VOICES` at each of
  :data:`SPEEDS` words per minute, as ``<word>/<voice>__s<speed>.wav`` (22.05 kHz mono 16-bit);
  the voice (a speaker, for leave-voices-out splits) is the part of the name before ``__``.

When the packages are missing they are installed with ``apt-get install -y`` if running as root;
otherwise :class:`~benchmarks.datasets.DatasetUnavailableError` says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from benchmarks.datasets import DatasetUnavailableError, _publish, datasets_root

SONIC_PI_PACKAGE = "sonic-pi-samples"
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
SONIC_PI_N_FILES = 165
ESPEAK_PACKAGE = "espeak-ng"

#: The ten command words of Google Speech Commands.
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: Eight English voices: eight espeak-ng accents, each with its own voice variant (timbre,
#: pitch, male/female), so that every "speaker" differs from the others in accent and voice.
VOICES = (
    "en-gb+m3",
    "en-us+f3",
    "en-gb-scotland+m1",
    "en-gb-x-rp+f2",
    "en-029+m7",
    "en-us-nyc+f4",
    "en-gb-x-gbclan+m5",
    "en-gb-x-gbcwmd+f1",
)
#: Speaking rates, words per minute (espeak-ng ``-s``; its default is 175).
SPEEDS = (120, 160, 200)
AUDIO_SUFFIXES = (".wav", ".flac")


# ----------------------------------------------------------------------------- apt packages


def _apt_install(package: str, what: str) -> None:
    """``apt-get install -y package`` (after ``apt-get update`` if needed), as root only."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DatasetUnavailableError(
            f"{what} is missing: install the Debian package `{package}` "
            f"(`sudo apt-get install -y {package}`) and re-run the benchmark."
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", package]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # maybe apt does not know the package yet
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise DatasetUnavailableError(
            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}"
        )


# ----------------------------------------------------------------------------- Sonic Pi


def _sonic_pi_sources() -> list[Path]:
    return sorted(SONIC_PI_DIR.glob("*.flac")) if SONIC_PI_DIR.is_dir() else []


def sonic_pi_class(path: str | os.PathLike[str]) -> str:
    """The class of a Sonic Pi sample: its file-name prefix before the first underscore."""
    return Path(path).name.split("_", 1)[0]


def fetch_sonic_pi() -> Path:
    """The class-folder copy of Sonic Pi's samples (``<root>/sonic-pi/<class>/<file>.flac``)."""
    root = datasets_root() / "sonic-pi"
    if root.is_dir():
        return root
    if len(_sonic_pi_sources()) < SONIC_PI_N_FILES:
        _apt_install(SONIC_PI_PACKAGE, f"Sonic Pi's samples ({SONIC_PI_DIR})")
    sources = _sonic_pi_sources()
    if len(sources) != SONIC_PI_N_FILES:
        raise DatasetUnavailableError(
            f"{SONIC_PI_DIR} holds {len(sources)} FLAC files, expected {SONIC_PI_N_FILES} "
            f"(package `{SONIC_PI_PACKAGE}` 3.2.x)"
        )

    def build(tmp: Path) -> None:
        for src in sources:
            dest = tmp / sonic_pi_class(src) / src.name
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dest)

    return _publish(root, build)


# ----------------------------------------------------------------------------- espeak-ng words


def voice_slug(voice: str) -> str:
    """File-name form of an espeak-ng voice (``en-gb+m3`` -> ``en-gb_m3``)."""
    return voice.replace("+", "_")


def espeak_group(path: str | os.PathLike[str]) -> str:
    """The voice (speaker) of an espeak-words file: the part of its name before ``__``."""
    return Path(path).name.split("__", 1)[0]


def _espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        _apt_install(ESPEAK_PACKAGE, "the speech synthesiser espeak-ng")
        exe = shutil.which("espeak-ng")
    if exe is None:
        raise DatasetUnavailableError("espeak-ng is still not on PATH after installing it")
    return exe


def fetch_espeak_words() -> Path:
    """``<root>/espeak-words/<word>/<voice>__s<speed>.wav`` for every word, voice and speed."""
    root = datasets_root() / "espeak-words"
    if root.is_dir():
        return root
    exe = _espeak_binary()

    def build(tmp: Path) -> None:
        for word in WORDS:
            (tmp / word).mkdir()
            for voice in VOICES:
                for speed in SPEEDS:
                    out = tmp / word / f"{voice_slug(voice)}__s{speed}.wav"
                    cmd = [exe, "-v", voice, "-s", str(speed), "-w", str(out), word]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
                        raise DatasetUnavailableError(
                            f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-400:]}"
                        )

    return _publish(root, build)


# ----------------------------------------------------------------------------- listing, decoding


def list_clips(folder: Path) -> tuple[list[Path], np.ndarray]:
    """(files, class names) of a class folder written above, sorted by class then file name."""
    files, labels = [], []
    for class_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.suffix.lower() in AUDIO_SUFFIXES and not f.name.startswith("."):
                files.append(f)
                labels.append(class_dir.name)
    return files, np.asarray(labels)


def read_mono(path: Path) -> tuple[np.ndarray, int]:
    """float32 mono waveform at the file's own rate (soundfile; channels averaged)."""
    import soundfile as sf

    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return wave.mean(axis=1), int(rate)
