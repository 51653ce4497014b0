"""The Dataset: labelled samples, their label set, splits, and readers that validate what they load.

A Dataset knows files and labels, never models. Loading a folder probes every file once (a cheap,
threaded decode: ``FileKind.probe``), so every stage after it sees the same, readable files and
the unreadable ones are named in one warning (``report_unreadable``) and kept in ``skipped``.
"""

from __future__ import annotations

import math
import os
import stat
import unicodedata
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from transferkit.data.images import IMAGE_SUFFIXES, is_image_path, probe_image
from transferkit.errors import BadInputError

_MAX_LISTED = 20  # files named in one message before "and N more"
_SUPPORTED = " ".join(sorted(IMAGE_SUFFIXES))


@dataclass(frozen=True)
class FileKind:
    """What a class-folder dataset holds: images, or (``data/audio.py``) audio clips."""

    modality: str
    noun: str  # "image", "audio file"
    accept: Callable[[str | os.PathLike[str]], bool]
    supported: str  # the suffixes, for messages
    example: str  # "cats/001.jpg"
    convert_hint: str  # what to do with files of other types
    probe: Callable[[Path | bytes], str | None]  # why a file (or its bytes) cannot be decoded


IMAGES = FileKind(
    "image",
    "image",
    is_image_path,
    _SUPPORTED,
    "cats/001.jpg",
    "convert them to JPEG or PNG",
    probe_image,
)


class DatasetWarning(UserWarning):
    """Something in the data was ignored; the message names it."""


class UnreadableFilesWarning(DatasetWarning):
    """Files were skipped because they could not be read; the message lists them."""


@dataclass(frozen=True)
class Sample:
    """One example: a file and its label (``None`` when unlabelled, e.g. for ``predict``).

    A text sample carries its ``text``; its ``path`` then says where it came from (the
    ``.txt`` file, or ``reviews.csv:12`` for row 12 of a table), for messages and splits.
    A sample received in memory (an upload) carries the file's bytes as ``content``; its
    ``path`` is then the name it came with.
    """

    path: Path
    label: str | None
    text: str | None = None
    content: bytes | None = field(default=None, repr=False)

    @property
    def raw(self) -> Path | bytes:
        """What a decoder reads: the bytes in memory, else the file."""
        return self.path if self.content is None else self.content


@dataclass(frozen=True, repr=False)
class Dataset:
    """Samples, the label set they are indexed against, and where they came from.

    ``labels`` is sorted when read from a folder; ``with_labels`` keeps the order it is given,
    so ``targets`` can index a trained model's classes.
    """

    samples: tuple[Sample, ...]
    labels: tuple[str, ...] = ()
    source: str = "<in memory>"
    modality: str = "image"
    skipped: tuple[tuple[Path, str], ...] = field(default=(), compare=False)
    noun: str = field(default="example", compare=False)  # one sample, in messages: "image"

    def __post_init__(self) -> None:
        # Frozen, yet callers may pass lists; store tuples so a Dataset is truly immutable.
        object.__setattr__(self, "samples", tuple(self.samples))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "skipped", tuple(self.skipped))
        if len(set(self.labels)) != len(self.labels):
            repeated = sorted({x for x in self.labels if self.labels.count(x) > 1})
            raise BadInputError(
                f"{self.source}: the label set repeats {repeated}; labels must be unique"
            )
        unknown = {s.label for s in self.samples if s.label is not None} - set(self.labels)
        if unknown:
            raise BadInputError(
                f"{self.source}: samples carry labels missing from the label set: "
                f"{sorted(unknown)}; the label set is {list(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"Dataset(source={self.source!r}, modality={self.modality!r}, "
            f"n={len(self)}, labels={list(self.labels)!r})"
        )

    @property
    def paths(self) -> tuple[Path, ...]:
        """The sample files, in sample order."""
        return tuple(s.path for s in self.samples)

    @property
    def texts(self) -> tuple[str, ...]:
        """The sample texts, in sample order (text datasets only)."""
        if any(s.text is None for s in self.samples):
            raise BadInputError(f"{self.source} holds {self.modality}s, not texts")
        return tuple(s.text or "" for s in self.samples)

    @property
    def targets(self) -> np.ndarray:
        """Each sample's index into ``labels`` (int64); -1 for unlabelled samples."""
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index.get(s.label, -1) for s in self.samples], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        """Number of samples per label, in ``labels`` order (0 for labels with no samples)."""
        counts = dict.fromkeys(self.labels, 0)
        for s in self.samples:
            if s.label is not None:
                counts[s.label] += 1
        return counts

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """The samples at ``indices`` (ints or a boolean mask), with the same label set.

        ``skipped`` stays with the loaded dataset only, so reports do not count it once per split.
        """
        picked = np.asarray(indices)
        if picked.dtype == bool:
            picked = np.flatnonzero(picked)
        return replace(self, samples=tuple(self.samples[int(i)] for i in picked), skipped=())

    def merge(self, other: Dataset) -> Dataset:
        """This dataset's samples followed by ``other``'s (both must share the label set)."""
        if other.labels != self.labels:
            raise BadInputError(
                f"cannot merge datasets with different label sets: {list(self.labels)} vs "
                f"{list(other.labels)}"
            )
        return replace(self, samples=self.samples + other.samples, skipped=())

    def split(
        self, *, test_size: float = 0.2, val_size: float = 0.1, seed: int = 0
    ) -> tuple[Dataset, Dataset, Dataset]:
        """Seeded, stratified (train, val, test) split; the same files give the same split.

        Every class keeps at least one train example and, when ``test_size > 0``, gets at least
        one test example; then, when ``val_size > 0``, one validation example if any is left.
        """
        _check_fraction("test_size", test_size)
        _check_fraction("val_size", val_size)
        if test_size + val_size >= 1:
            raise BadInputError(
                f"test_size + val_size must be below 1 to leave data to train on; "
                f"got {test_size} + {val_size} instead"
            )
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise BadInputError(f"The 'seed' parameter must be an int >= 0; got {seed!r} instead.")
        by_class = self._indices_by_class()
        parts: tuple[list[int], list[int], list[int]] = ([], [], [])
        for label, members in by_class.items():
            n = len(members)
            if test_size > 0 and n < 2:
                raise self._too_small_to_split(label, members)
            n_test, n_val = _split_sizes(n, test_size, val_size)
            # One generator per class, keyed by its name: a class's split depends only on its own
            # files and the seed, not on which other classes exist or their order.
            rng = np.random.default_rng([int(seed), zlib.crc32(label.encode("utf-8"))])
            shuffled = [members[j] for j in rng.permutation(n)]
            parts[2].extend(shuffled[:n_test])
            parts[1].extend(shuffled[n_test : n_test + n_val])
            parts[0].extend(shuffled[n_test + n_val :])
        order = {i: rank for rank, i in enumerate(self._canonical_order())}
        train, val, test = (self.subset(sorted(p, key=order.__getitem__)) for p in parts)
        return train, val, test

    def identity_digest(self) -> str:
        """sha256 of which examples these are (absolute path or table row, and label), in order:
        tells whether a dataset read again later is the same one, e.g. a run's test split."""
        import hashlib

        h = hashlib.sha256()
        for sample in self.samples:
            h.update(f"{Path(sample.path).resolve()}\t{sample.label}\n".encode())
        return h.hexdigest()

    def with_labels(self, labels: Sequence[str]) -> Dataset:
        """The same samples indexed against another label set, e.g. a trained model's classes."""
        labels = tuple(labels)
        counts = {k: v for k, v in self.class_counts().items() if v}
        unknown = [k for k in counts if k not in set(labels)]
        if unknown:
            found = ", ".join(f"'{k}' ({counts[k]})" for k in unknown)
            raise BadInputError(
                f"{self.source} has labels the model does not know: {found}; the model knows "
                f"{list(labels)}. Evaluate on data whose classes the model was trained on, or "
                "retrain including these classes."
            )
        return replace(self, labels=labels)

    def check_trainable(self) -> None:
        """Raise ``BadInputError`` unless this data can train a classifier (2+ labelled classes)."""
        if not self.samples:
            raise BadInputError(
                f"{self.source} has no samples; a classifier needs labelled examples of at least "
                "two classes, e.g. one folder of images per class."
            )
        unlabelled = sum(s.label is None for s in self.samples)
        if unlabelled:
            raise BadInputError(
                f"{self.source}: {unlabelled} of {len(self)} samples have no label; training "
                "needs a label for every sample (put each image in its class's folder)."
            )
        present = [k for k, v in self.class_counts().items() if v]
        if len(present) < 2:
            raise BadInputError(
                f"a classifier needs at least two classes; found only '{present[0]}' in "
                f"{self.source}. Add a folder of examples for each other class next to it."
            )

    def fingerprint(self) -> str:
        """sha256 of the samples (file name, size, label) in canonical order.

        Identifies "the same training data" for ``--resume`` without reading every file; paths
        count relative to their common folder, so a moved dataset folder still matches.
        """
        import hashlib

        paths = [self.samples[i].path for i in self._canonical_order()]
        root = os.path.commonpath([str(p.parent) for p in paths]) if paths else ""
        h = hashlib.sha256()
        for i, path in zip(self._canonical_order(), paths):
            try:
                size = path.stat().st_size
            except OSError:
                size = -1
            rel = os.path.relpath(path, root) if root else str(path)
            sample = self.samples[i]
            if sample.text is not None:  # a row of a table: its content is what identifies it
                size = hashlib.sha256(sample.text.encode("utf-8")).hexdigest()
            elif sample.content is not None:  # bytes in memory, no file to look at
                size = hashlib.sha256(sample.content).hexdigest()
            h.update(f"{Path(rel).as_posix()}|{size}|{self.samples[i].label}\n".encode())
        return h.hexdigest()

    def _indices_by_class(self) -> dict[str, list[int]]:
        """Sample indices per present label, in canonical (path) order; rejects unlabelled data."""
        by_class: dict[str, list[int]] = {}
        for i in self._canonical_order():
            label = self.samples[i].label
            if label is None:
                raise BadInputError(
                    f"{self.source} has unlabelled samples; only labelled data can be split"
                )
            by_class.setdefault(label, []).append(i)
        return by_class

    def _canonical_order(self) -> list[int]:
        """Sample indices sorted by (label, path), so nothing depends on file-system order."""
        rank = {label: i for i, label in enumerate(self.labels)}
        return sorted(
            range(len(self)),
            key=lambda i: (
                rank.get(self.samples[i].label, -1),
                self.samples[i].path.as_posix(),
                i,
            ),
        )

    def _too_small_to_split(self, label: str, members: list[int]) -> BadInputError:
        """The error for a class with too few examples to hold one out for testing."""
        parents = [str(self.samples[i].path.parent) for i in members]
        where = os.path.commonpath(parents) if parents else self.source
        noun = self.noun
        n = len(members)
        return BadInputError(
            f"class '{label}' ({where}) has only {n} {noun}{'' if n == 1 else 's'}; holding out a "
            f"test set needs at least 2 per class (1 to train on, 1 to test on). Fix: add "
            f"{noun}s, remove the folder, or pass --test with a separate test set."
        )


# folder names that mean a split, not a class, when they are all a dataset's top-level folders
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def find_split_folders(path: str | os.PathLike[str]) -> dict[str, Path]:
    """``{"train": folder, "val": ..., "test": ...}`` when ``path`` is split into folders.

    That is when every visible folder in ``path`` is named as a split (train/training,
    val/valid/validation/dev, test/testing; any case) and holds class folders; ``{}`` otherwise
    (``path`` is then a dataset itself, perhaps of classes called "train" and "test").
    """
    path = Path(path)
    if not path.is_dir():
        return {}
    folders, loose = _list_top(path)
    if not folders or loose or any(f.name.lower() not in SPLIT_NAMES for f in folders):
        return {}
    if not all(_list_top(f)[0] for f in folders):  # a split holds class folders, not files
        return {}
    splits: dict[str, Path] = {}
    for folder in folders:
        role = SPLIT_NAMES[folder.name.lower()]
        if role in splits:
            raise BadInputError(
                f"{path} has two {role} folders, '{splits[role].name}' and '{folder.name}'; "
                "keep one (merge them, or move one out)."
            )
        splits[role] = folder
    if "train" not in splits:
        names = ", ".join(sorted(f.name for f in folders))
        raise BadInputError(
            f"{path} holds split folders ({names}) but no train/ folder to train on; pass the "
            f"folder to train on itself (e.g. {folders[0]}), or add {path}/train/<class>/..."
        )
    return splits


def check_split_classes(splits: dict[str, Dataset]) -> None:
    """Refuse splits (``{"train": ..., "val": ..., "test": ...}``) that hold different classes."""
    train = splits["train"]
    have = {label for label, n in train.class_counts().items() if n}
    found = []
    for role, part in splits.items():
        classes = {label for label, n in part.class_counts().items() if n}
        if missing := sorted(have - classes):
            found.append(f"{role} has no {_quoted(missing)}")
        if extra := sorted(classes - have):
            found.append(f"{role} has {_quoted(extra)}, which train has not")
    if found:
        raise BadInputError(
            f"the split folders of {Path(train.source).parent} hold different classes: "
            f"{'; '.join(found)}. Every split needs a folder for each class (the same names)."
        )


def evaluation_folder(path: str | os.PathLike[str]) -> Path:
    """``path``, or its test split when ``path`` holds split folders (none: refused)."""
    splits = find_split_folders(path)
    if not splits:
        return Path(path)
    if "test" not in splits:
        names = ", ".join(sorted(f.name for f in splits.values()))
        raise BadInputError(
            f"{path} holds split folders ({names}) and no test folder to evaluate on; pass the "
            f"split to evaluate on, e.g. {splits.get('val', splits['train'])}."
        )
    return splits["test"]


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def load_image_folder(root: str | os.PathLike[str], *, strict: bool = False) -> Dataset:
    """Read ``root/<class>/**/<image>`` into a Dataset; sub-folder names are the labels.

    Files that are empty or do not decode are skipped with one ``UnreadableFilesWarning`` (and
    listed in ``skipped``), or rejected with ``strict=True``.
    """
    return load_class_folders(root, IMAGES, strict=strict)


def load_class_folders(
    root: str | os.PathLike[str], kind: FileKind, *, strict: bool = False
) -> Dataset:
    """Read ``root/<class>/**/<file of this kind>`` into a Dataset of ``kind.modality``."""
    root = Path(root)
    _require_folder(root)
    class_dirs, loose_images = _list_top(root, kind.accept)
    images_by_label: dict[str, list[Path]] = {}
    empty_dirs: list[tuple[Path, list[Path]]] = []
    problems: list[tuple[Path, str]] = []
    walk = _Walk(root, kind.accept)
    scans = walk.scan(class_dirs)
    _warn_skipped_links(root, walk.skipped_links)
    not_followed = {link for link, _ in walk.skipped_links}
    undecodable = probe_files([path for scan in scans for path in scan.images], kind.probe)
    bad = {path for path, _ in undecodable}
    for folder, scan in zip(class_dirs, scans):
        problems += scan.problems
        scan.images = [path for path in scan.images if path not in bad]
        if scan.images:
            # NFC: macOS writes names decomposed, Linux/Windows composed; the same folder name
            # must give the same label everywhere or a model's labels would not match.
            label = unicodedata.normalize("NFC", folder.name)
            images_by_label.setdefault(label, []).extend(scan.images)
        elif folder not in not_followed:  # a class link not followed was named already
            empty_dirs.append((folder, scan.others))
    problems = sorted(problems + undecodable, key=lambda p: p[0].as_posix())
    report_unreadable(problems, strict=strict, context=f"loading {root}")
    if not images_by_label:
        raise _no_images_error(root, class_dirs, loose_images, empty_dirs, problems, kind)
    if empty_dirs:
        _warn_empty_dirs(root, empty_dirs, kind)
    if loose_images:
        warnings.warn(
            f"{root}: ignored {len(loose_images)} {kind.noun}(s) lying directly in it, outside "
            f"any class folder (e.g. {loose_images[0].name}); move them into their class's "
            "folder.",
            DatasetWarning,
            stacklevel=3,
        )
    labels = tuple(sorted(images_by_label))
    samples = tuple(
        Sample(path, label)
        for label in labels
        for path in sorted(images_by_label[label], key=Path.as_posix)
    )
    return Dataset(
        samples,
        labels,
        source=str(root),
        modality=kind.modality,
        skipped=tuple(problems),
        noun=kind.noun,
    )


def load_inputs(items, kind: FileKind = IMAGES) -> Dataset:
    """Unlabelled Dataset of images (or ``kind``) to predict: each item a file, a folder, or a
    ``(name, bytes)`` pair (a file received in memory, e.g. an upload; never written to disk).

    Explicit files keep the order given; a folder contributes its files sorted by path. Files
    that are empty or do not decode are left out with one warning and listed in ``skipped``;
    ``list_inputs`` gives every input in order, to put them back in place.
    """
    entries = _input_entries(items, kind)
    source = _inputs_source(items)
    reasons = [reason for _, reason in entries]
    todo = [i for i, reason in enumerate(reasons) if reason is None]
    for i, reason in zip(todo, probe_reasons([entries[i][0].raw for i in todo], kind.probe)):
        reasons[i] = reason
    found = [sample for (sample, _), reason in zip(entries, reasons) if reason is None]
    problems = [(s.path, reason) for (s, _), reason in zip(entries, reasons) if reason is not None]
    report_unreadable(problems, strict=False, context=f"reading {source}")
    if not found:
        raise BadInputError(
            f"{source}: no readable {kind.noun}s to predict (every one is empty or cannot be "
            "decoded)."
        )
    return Dataset(
        tuple(found), (), source=source, modality=kind.modality, skipped=problems, noun=kind.noun
    )


def list_inputs(items, kind: FileKind = IMAGES) -> list[Sample]:
    """Every input ``load_inputs`` reads from ``items``, readable or not, in its order."""
    return [sample for sample, _ in _input_entries(items, kind)]


def as_upload(item) -> tuple[str, bytes] | None:
    """``(name, bytes)`` when ``item`` is a file received in memory, else None."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], (bytes, bytearray)):
        return str(item[0]), bytes(item[1])
    return None


def _inputs_source(items) -> str:
    if isinstance(items, (str, os.PathLike)):
        return str(items)
    if len(items) != 1:
        return f"{len(items)} inputs"
    upload = as_upload(items[0])
    return upload[0] if upload else str(items[0])


def _input_entries(items, kind: FileKind) -> list[tuple[Sample, str | None]]:
    """(input, why it cannot be read or None) for every file of ``items``, in input order;
    nothing decoded yet."""
    if isinstance(items, (str, os.PathLike)):
        items = [items]
    if not items:
        raise BadInputError(
            f"no inputs given; pass {kind.noun}s or folders of {kind.noun}s to predict"
        )
    entries: list[tuple[Sample, str | None]] = []
    for item in items:
        upload = as_upload(item)
        if upload is not None:  # the decoder tells what the bytes are; the name is for messages
            name, content = upload
            empty = "empty file (0 bytes)" if not content else None
            entries.append((Sample(Path(name), None, content=content), empty))
            continue
        path = Path(item)
        if path.is_dir():
            scan = _scan(path, kind.accept)
            if not scan.images and not scan.problems:
                raise BadInputError(
                    f"{path}: no {kind.noun}s in this folder (looked for {kind.supported}, in "
                    f"sub-folders too); pass {kind.noun}s or a folder that holds some."
                )
            found = [(p, None) for p in scan.images] + list(scan.problems)
            found.sort(key=lambda entry: entry[0].as_posix())
            entries += [(Sample(p, None), reason) for p, reason in found]
        elif path.is_file():
            if not kind.accept(path.name):
                raise BadInputError(
                    f"{path}: not a supported {kind.modality} file (supported: "
                    f"{kind.supported}); convert it or leave it out."
                )
            empty = path.stat().st_size == 0
            entries.append((Sample(path, None), "empty file (0 bytes)" if empty else None))
        else:
            raise BadInputError(f"{path}: no such file or folder; check the path.")
    return entries


def probe_files(
    paths: Sequence[Path], probe: Callable[[Path], str | None]
) -> list[tuple[Path, str]]:
    """(file, reason) for each of ``paths`` that ``probe`` cannot decode, in ``paths`` order."""
    reasons = probe_reasons(paths, probe)
    return [(path, reason) for path, reason in zip(paths, reasons) if reason is not None]


def probe_reasons(sources: Sequence, probe: Callable) -> list[str | None]:
    """``probe`` of every file (or bytes) of ``sources``: why it cannot be decoded, or None.

    Threads, not processes: the decoders (PIL, libsndfile) release the GIL while they work.
    """
    from concurrent.futures import ThreadPoolExecutor

    from transferkit.system import available_cores

    if not sources:
        return []
    with ThreadPoolExecutor(max_workers=min(8, max(2, available_cores()))) as pool:
        return list(pool.map(probe, sources))


def report_unreadable(problems: list[tuple[Path, str]], *, strict: bool, context: str) -> None:
    """Warn once about unreadable files (``UnreadableFilesWarning``), or raise when ``strict``.

    Args:
        problems: (file, reason) pairs; the reason should not repeat the path.
        context: what was being done, e.g. ``"loading photos"``; starts the message.
    """
    if not problems:
        return
    n = len(problems)
    listed = "\n".join(f"  {path}: {reason}" for path, reason in problems[:_MAX_LISTED])
    if n > _MAX_LISTED:
        listed += f"\n  ... and {n - _MAX_LISTED} more"
    files = f"{n} unreadable file{'' if n == 1 else 's'}"
    if strict:
        raise BadInputError(
            f"{context}: {files} (strict mode):\n{listed}\nFix or delete them, or turn strict "
            "mode off to skip them with a warning."
        )
    warnings.warn(
        f"{context}: skipped {files}:\n{listed}\nFix or delete them to use them.",
        UnreadableFilesWarning,
        stacklevel=2,
    )


@dataclass
class _Scan:
    """What one recursive walk of a folder found."""

    images: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)  # visible files without an image suffix
    problems: list[tuple[Path, str]] = field(default_factory=list)  # empty files, unlistable dirs


def _scan(folder: Path, accept: Callable[[str], bool] = is_image_path) -> _Scan:
    """Walk ``folder`` recursively as a ``_Walk`` does, warning about the links not followed."""
    walk = _Walk(folder, accept)
    (scan,) = walk.scan([folder])
    _warn_skipped_links(folder, walk.skipped_links)
    return scan


class _Walk:
    """Recursive listing of folders (hidden entries pruned; nothing decoded) that follows a
    symbolic link only to what it would not list otherwise.

    A link to a folder is followed when it leads inside ``root`` to a folder not listed already
    (so ``ln -s .. photos/square/up`` cannot pull every class into ``square``); a link to a
    file unless that file is taken already (one image with two labels). Links are followed
    after every plain folder is listed and in path order, so the result does not depend on the
    order the file system lists entries in.
    """

    def __init__(self, root: Path, accept: Callable[[str], bool]) -> None:
        self.root = os.path.realpath(root)
        self.accept = accept
        self.dirs: set[str] = set()  # real paths of the folders listed
        self.files: set[str] = set()  # real paths of the files taken
        self.skipped_links: list[tuple[Path, str]] = []

    def scan(self, folders: Sequence[Path]) -> list[_Scan]:
        """One ``_Scan`` per folder; ``folders`` are the top level (class folders) of ``root``."""
        scans = [_Scan() for _ in folders]
        links: list[tuple[int, Path, bool]] = []  # (folder index, link, whether top level)
        for i, folder in enumerate(folders):
            # a class folder may be a link (to a folder elsewhere); the root itself always counts
            if folder.is_symlink() and os.path.realpath(folder) != self.root:
                links.append((i, folder, True))
            else:
                self._list(folder, scans[i], i, links)
        while links:  # following a link to a folder may find more links
            batch, links = sorted(links, key=lambda link: link[1].as_posix()), []
            for i, link, top in batch:
                self._follow(link, scans[i], i, links, top)
        for scan in scans:
            scan.images.sort(key=Path.as_posix)
            scan.problems.sort(key=lambda p: p[0].as_posix())
        return scans

    def _list(self, folder: Path, scan: _Scan, index: int, links: list) -> None:
        """Walk ``folder`` without following links: they are queued in ``links``."""
        pending = [folder]
        while pending:
            current = pending.pop()
            real = os.path.realpath(current)
            if real in self.dirs:  # a bind mount or a folder reached twice
                continue
            self.dirs.add(real)
            try:
                with os.scandir(current) as it:
                    entries = list(it)
            except OSError as err:
                scan.problems.append((current, f"cannot list folder ({err.strerror or err})"))
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                try:
                    if entry.is_symlink():
                        links.append((index, path, False))
                    elif entry.is_dir(follow_symlinks=False):
                        pending.append(path)
                    else:
                        real_file = os.path.join(real, entry.name)
                        self._take(path, real_file, entry.stat(follow_symlinks=False), scan)
                except OSError as err:
                    scan.problems.append((path, f"cannot read ({err.strerror or err})"))

    def _follow(self, link: Path, scan: _Scan, index: int, links: list, top: bool) -> None:
        """List what ``link`` leads to, unless that leaves ``root`` or reads something twice."""
        target = os.path.realpath(link)
        try:
            info = os.stat(link)
        except OSError as err:  # a broken link
            if self.accept(link.name):
                scan.problems.append((link, f"cannot read ({err.strerror or err})"))
            else:
                scan.others.append(link)
            return
        if stat.S_ISDIR(info.st_mode):
            reason = self._why_not_folder(target, top)
            if reason:
                self.skipped_links.append((link, f"-> {target}: {reason}"))
            else:
                self._list(link, scan, index, links)
        elif self.accept(link.name) and target in self.files:
            self.skipped_links.append((link, f"-> {target}: a file the dataset holds already"))
        else:
            self._take(link, target, info, scan)

    def _why_not_folder(self, target: str, top: bool) -> str | None:
        """Why a link to the folder ``target`` is not followed, or None to follow it."""
        if _within(self.root, target):
            return "leads back up to the dataset folder (following it would read every class again)"
        if not top and not _within(target, self.root):
            return "leads outside the dataset folder"
        if any(_within(target, d) or _within(d, target) for d in self.dirs):
            return "leads to a folder the dataset holds already"
        return None

    def _take(self, path: Path, real: str, info: os.stat_result, scan: _Scan) -> None:
        """File ``path`` (really ``real``): an image, an empty one, or a file of another type."""
        if not self.accept(path.name):
            scan.others.append(path)
        elif info.st_size == 0:
            scan.problems.append((path, "empty file (0 bytes)"))
        else:
            scan.images.append(path)
            self.files.add(real)


def _within(inner: str, outer: str) -> bool:
    """Whether real path ``inner`` is ``outer`` or lies inside it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _warn_skipped_links(root: Path, skipped: list[tuple[Path, str]]) -> None:
    """One warning naming the symbolic links a walk did not follow, and why."""
    if not skipped:
        return
    n = len(skipped)
    listed = "\n".join(f"  {link} {reason}" for link, reason in skipped[:_MAX_LISTED])
    if n > _MAX_LISTED:
        listed += f"\n  ... and {n - _MAX_LISTED} more"
    warnings.warn(
        f"{root}: did not follow {n} symbolic link{'' if n == 1 else 's'}, so that no file is "
        f"read twice or from outside the dataset:\n{listed}\nIf their files belong in the "
        "dataset, copy them in instead of linking.",
        DatasetWarning,
        stacklevel=4,
    )


def _list_top(
    root: Path, accept: Callable[[str], bool] = is_image_path
) -> tuple[list[Path], list[Path]]:
    """Visible class folders and loose image files directly in ``root``, sorted."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as err:
        raise BadInputError(f"{root}: cannot list this folder ({err.strerror or err})") from err
    visible = [e for e in entries if not e.name.startswith(".")]
    folders = [Path(e.path) for e in visible if e.is_dir()]
    loose = [Path(e.path) for e in visible if e.is_file() and accept(e.name)]
    return folders, loose


def _require_folder(path: Path) -> None:
    """Raise the right ``BadInputError`` unless ``path`` is an existing folder."""
    layout = f"one sub-folder per class holding its images, e.g. {path}/cats/001.jpg"
    if path.is_dir():
        return
    if not path.exists():
        raise BadInputError(f"{path}: no such file or folder; expected a folder with {layout}.")
    if is_image_path(path):
        raise BadInputError(
            f"{path} is a single image, not a dataset; training and evaluation read a folder "
            f"with {layout} (to classify images, use `transferkit predict MODEL {path}`)."
        )
    raise BadInputError(
        f"{path} is a file, not a dataset folder; transferkit reads a folder with {layout}."
    )


def _no_images_error(
    root: Path,
    class_dirs: list[Path],
    loose_images: list[Path],
    empty_dirs: list[tuple[Path, list[Path]]],
    problems: list[tuple[Path, str]],
    kind: FileKind = IMAGES,
) -> BadInputError:
    """Explain why a folder yielded no labelled files, and what layout is expected."""
    noun = kind.noun
    layout = f"one sub-folder per class holding its {noun}s, e.g. {root}/{kind.example}"
    if loose_images:
        return BadInputError(
            f"{root} holds {len(loose_images)} {noun}(s) directly (e.g. {loose_images[0].name}) "
            f"but no class folders with {noun}s; the folder names are the labels, so move each "
            f"{noun} into its class's folder: {root}/<class name>/{loose_images[0].name}."
        )
    if not class_dirs:
        return BadInputError(f"{root} is empty (or holds no {noun}s); expected {layout}.")
    names = ", ".join(d.name for d in class_dirs[:10]) + (", ..." if len(class_dirs) > 10 else "")
    others = [p for _, files in empty_dirs for p in files]
    hint = ""
    if others:
        hint = (
            f" It holds {len(others)} file(s) of other types (e.g. {others[0].name}); "
            f"{kind.convert_hint}."
        )
    if problems:
        hint += f" {len(problems)} unreadable or empty file(s) were skipped."
    return BadInputError(
        f"{root}: found no {noun}s in its {len(class_dirs)} sub-folder(s) ({names}); expected "
        f"{layout} (file types: {kind.supported}).{hint}"
    )


def _warn_empty_dirs(
    root: Path, empty_dirs: list[tuple[Path, list[Path]]], kind: FileKind = IMAGES
) -> None:
    """One warning naming the class folders ignored for having no files of the kind."""
    names = ", ".join(d.name for d, _ in empty_dirs[:_MAX_LISTED])
    if len(empty_dirs) > _MAX_LISTED:
        names += f" and {len(empty_dirs) - _MAX_LISTED} more"
    warnings.warn(
        f"{root}: ignored {len(empty_dirs)} folder(s) with no {kind.noun}s: {names}. Add "
        f"{kind.noun}s ({kind.supported}) or remove the folders.",
        DatasetWarning,
        stacklevel=4,
    )


def _check_fraction(name: str, value: float) -> None:
    """Reject a split fraction outside [0, 1)."""
    if not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise BadInputError(
            f"The '{name}' parameter must be a fraction in [0, 1); got {value!r} instead."
        )


def _split_sizes(n: int, test_size: float, val_size: float) -> tuple[int, int]:
    """(n_test, n_val) for a class of ``n``: rounded shares, test >= 1 and val >= 1 when asked
    for, train >= 1 kept (train first, then test, then val)."""

    def share(fraction: float) -> int:
        return math.floor(n * fraction + 0.5)  # half-up, unlike round()'s banker's rounding

    n_test = min(max(1, share(test_size)), n - 1) if test_size > 0 else 0
    # a class with no validation example would be judged blind by early stopping
    n_val = max(0, min(max(1, share(val_size)) if val_size > 0 else 0, n - n_test - 1))
    return n_test, n_val
