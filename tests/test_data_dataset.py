"""Tests for transferkit.data.dataset: loading folders, labels, splits, and every bad layout."""

from __future__ import annotations

import random
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import write_unreadable_images
from PIL import Image

from transferkit.data import (
    Dataset,
    DatasetWarning,
    Sample,
    UnreadableFilesWarning,
    check_split_classes,
    find_split_folders,
    load_image_folder,
    load_inputs,
    report_unreadable,
)
from transferkit.errors import BadInputError
from transferkit.modalities import load_dataset


def _image(path: Path, colour: tuple[int, int, int] = (10, 20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), colour).save(path)
    return path


def _folder(root: Path, counts: dict[str, int]) -> Path:
    """root/<label>/<i>.png with counts[label] tiny images each."""
    for label, n in counts.items():
        for i in range(n):
            _image(root / label / f"{i:03d}.png")
    return root


def _dataset(counts: dict[str, int]) -> Dataset:
    """An in-memory dataset; files need not exist because nothing here decodes them."""
    samples = [Sample(Path(f"/d/{k}/{i:03d}.png"), k) for k, n in counts.items() for i in range(n)]
    return Dataset(tuple(samples), tuple(sorted(counts)), source="/d")


# --- loading a folder ---------------------------------------------------------------------------


def test_load_image_folder_reads_labels_and_samples(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos", {"dogs": 3, "cats": 2})
    data = load_image_folder(root)
    assert data.labels == ("cats", "dogs")
    assert len(data) == 5
    assert data.modality == "image"
    assert data.source == str(root)
    assert data.class_counts() == {"cats": 2, "dogs": 3}
    assert data.targets.tolist() == [0, 0, 1, 1, 1]
    assert data.targets.dtype == np.int64
    assert data.paths[0] == root / "cats" / "000.png"
    assert list(data.paths) == sorted(data.paths, key=lambda p: (p.parent.name, p.name))
    assert data.skipped == ()


def test_nested_sub_folders_belong_to_their_class(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"cats": 1, "dogs": 1})
    _image(root / "cats" / "indoor" / "sofa" / "x.jpg")
    data = load_image_folder(root)
    assert data.class_counts() == {"cats": 2, "dogs": 1}


def test_hidden_and_non_image_files_are_ignored(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"cats": 2, "dogs": 2})
    _image(root / "cats" / ".hidden.png")
    _image(root / "cats" / "._appledouble.jpg")
    _image(root / "cats" / ".thumbnails" / "t.png")
    _image(root / ".git" / "objects" / "x.png")  # hidden class folder
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / "dogs" / "Thumbs.db").write_bytes(b"\x00\x01")
    data = load_image_folder(root)
    assert data.labels == ("cats", "dogs")
    assert data.class_counts() == {"cats": 2, "dogs": 2}


def test_upper_case_suffixes_count(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _image(root / "a" / "X.JPG")
    _image(root / "b" / "Y.Png")
    assert len(load_image_folder(root)) == 2


def test_chinese_class_names(tmp_path: Path) -> None:
    root = _folder(tmp_path / "数据", {"猫": 2, "狗": 3})
    data = load_image_folder(root)
    assert set(data.labels) == {"猫", "狗"}
    assert data.class_counts()["狗"] == 3
    train, _, test = data.split(test_size=0.34, val_size=0.0)
    assert set(test.class_counts().values()) == {1}


def test_labels_are_unicode_normalised(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "café")  # what macOS writes
    root = _folder(tmp_path / "d", {decomposed: 1, "tea": 1})
    assert "café" in load_image_folder(root).labels


def test_undecodable_files_are_found_at_load_and_named_once(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 3, "b": 3})
    bad = write_unreadable_images(root / "a")
    with pytest.warns(UnreadableFilesWarning) as record:
        data = load_image_folder(root)
    assert len(record) == 1  # one warning names all four
    assert all(name in str(record[0].message) for name in bad)
    assert len(data) == 6 and data.class_counts() == {"a": 3, "b": 3}
    reasons = {path.name: reason for path, reason in data.skipped}
    assert sorted(reasons) == sorted(bad)
    assert "truncated" in reasons["truncated.png"] and "0 bytes" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "megapixel" in reasons["bomb.png"]
    with pytest.raises(BadInputError, match="strict") as info:
        load_image_folder(root, strict=True)
    assert all(name in str(info.value) for name in bad)


def test_a_class_whose_files_all_fail_to_decode_is_dropped(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "c").mkdir()
    (root / "c" / "0.jpg").write_text("not a photo")
    with pytest.warns(DatasetWarning) as record:
        data = load_image_folder(root)
    assert data.labels == ("a", "b")
    assert any("folder(s) with no images: c." in str(w.message) for w in record)


def test_load_is_deterministic_whatever_the_creation_order(tmp_path: Path) -> None:
    names = [f"{i}.png" for i in range(12)]
    roots = []
    for attempt in range(2):
        random.Random(attempt).shuffle(names)
        root = tmp_path / f"r{attempt}"
        for name in names:
            _image(root / "a" / name)
            _image(root / "b" / name)
        roots.append(root)
    first, second = (load_image_folder(r) for r in roots)
    assert [p.relative_to(roots[0]) for p in first.paths] == [
        p.relative_to(roots[1]) for p in second.paths
    ]


# --- symbolic links ----------------------------------------------------------------------------


def test_a_link_to_the_parent_does_not_pull_every_class_in(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos", {"circle": 2, "square": 2, "triangle": 2})
    (root / "square" / "up").symlink_to("..")  # ln -s .. photos/square/up
    with pytest.warns(DatasetWarning, match="symbolic link") as record:
        data = load_image_folder(root)
    assert data.class_counts() == {"circle": 2, "square": 2, "triangle": 2}
    (message,) = [str(w.message) for w in record]
    assert "square/up" in message and "back up" in message


def test_links_that_leave_the_dataset_or_revisit_it_are_not_followed(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos", {"circle": 2, "square": 2})
    outside = _folder(tmp_path / "elsewhere", {"more": 3}) / "more"
    (root / "circle" / "outside").symlink_to(outside, target_is_directory=True)
    (root / "circle" / "squares").symlink_to(root / "square", target_is_directory=True)
    (root / "square" / "twin.png").symlink_to(root / "circle" / "000.png")  # a file of circle
    with pytest.warns(DatasetWarning) as record:
        data = load_image_folder(root)
    assert data.class_counts() == {"circle": 2, "square": 2}
    (message,) = [str(w.message) for w in record]
    assert "did not follow 3 symbolic links" in message
    assert "circle/outside" in message and "outside the dataset folder" in message
    assert "circle/squares" in message and "square/twin.png" in message


def test_links_inside_the_dataset_to_what_is_not_read_otherwise_are_followed(
    tmp_path: Path,
) -> None:
    root = _folder(tmp_path / "photos", {"circle": 2, "square": 2})
    store = _folder(root / ".store", {"extra": 2}) / "extra"  # hidden: not read on its own
    (root / "circle" / "extra").symlink_to(store, target_is_directory=True)
    (root / "square" / "single.png").symlink_to(_image(root / ".store" / "single.png"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_image_folder(root)
    assert data.class_counts() == {"circle": 4, "square": 3}
    assert root / "circle" / "extra" / "001.png" in data.paths  # named by where it was found


def test_a_dataset_made_of_links_to_files_and_class_folders_elsewhere_loads(
    tmp_path: Path,
) -> None:
    pool = _folder(tmp_path / "pool", {"cats": 2, "dogs": 3})
    root = tmp_path / "subset"
    (root / "cats").mkdir(parents=True)
    for name in ("000.png", "001.png"):  # a class folder of links to files: followed
        (root / "cats" / name).symlink_to(pool / "cats" / name)
    (root / "dogs").symlink_to(pool / "dogs", target_is_directory=True)  # a linked class
    (root / "kittens").symlink_to(root / "cats", target_is_directory=True)  # the same class
    with pytest.warns(DatasetWarning, match="kittens") as record:
        data = load_image_folder(root)
    assert len(record) == 1 and data.class_counts() == {"cats": 2, "dogs": 3}


def test_a_link_loop_inside_a_class_folder_ends(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos", {"circle": 2, "square": 2})
    (root / "circle" / "sub").mkdir()
    _image(root / "circle" / "sub" / "x.png")
    (root / "circle" / "sub" / "again").symlink_to("..")
    with pytest.warns(DatasetWarning, match="circle/sub/again"):
        data = load_image_folder(root)
    assert data.class_counts() == {"circle": 3, "square": 2}


# --- bad layouts --------------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file or folder") as info:
        load_image_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    assert "sub-folder per class" in str(info.value)


def test_path_is_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("x")
    with pytest.raises(BadInputError, match="is a file, not a dataset folder"):
        load_image_folder(path)


def test_path_is_a_single_image(tmp_path: Path) -> None:
    path = _image(tmp_path / "one.jpg")
    with pytest.raises(BadInputError, match="single image") as info:
        load_image_folder(path)
    assert "transferkit predict" in str(info.value)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="is empty") as info:
        load_image_folder(tmp_path / "empty")
    assert "sub-folder per class" in str(info.value)


def test_images_directly_in_root(tmp_path: Path) -> None:
    for i in range(3):
        _image(tmp_path / "flat" / f"{i}.jpg")
    with pytest.raises(BadInputError, match="directly") as info:
        load_image_folder(tmp_path / "flat")
    assert "class" in str(info.value) and "0.jpg" in str(info.value)


def test_loose_images_next_to_class_folders_are_ignored_with_a_warning(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 1, "b": 1})
    _image(root / "stray.png")
    with pytest.warns(DatasetWarning, match="stray.png"):
        data = load_image_folder(root)
    assert len(data) == 2


def test_folders_without_images_are_ignored_with_a_warning(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 1, "b": 1})
    (root / "empty_class").mkdir()
    (root / "heic_only").mkdir()
    (root / "heic_only" / "IMG_1.heic").write_bytes(b"x")
    with pytest.warns(DatasetWarning, match="empty_class, heic_only"):
        data = load_image_folder(root)
    assert data.labels == ("a", "b")


def test_no_class_folder_has_images(tmp_path: Path) -> None:
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "IMG_1.heic").write_bytes(b"x")
    with pytest.raises(BadInputError, match="found no images") as info:
        load_image_folder(tmp_path / "d")
    assert "IMG_1.heic" in str(info.value) and ".jpg" in str(info.value)


# --- zero-byte files ----------------------------------------------------------------------------


def test_zero_byte_files_are_skipped_with_one_warning(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "a" / "empty1.jpg").touch()
    (root / "b" / "empty2.png").touch()
    with pytest.warns(UnreadableFilesWarning) as record:
        data = load_image_folder(root)
    assert len(record) == 1
    message = str(record[0].message)
    assert "empty1.jpg" in message and "empty2.png" in message and "0 bytes" in message
    assert len(data) == 4
    assert [p.name for p, _ in data.skipped] == ["empty1.jpg", "empty2.png"]


def test_zero_byte_files_are_fatal_when_strict(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "a" / "empty1.jpg").touch()
    with pytest.raises(BadInputError, match="empty1.jpg"):
        load_image_folder(root, strict=True)


def test_a_class_of_only_empty_files_is_dropped(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "c").mkdir()
    (root / "c" / "0.jpg").touch()
    with pytest.warns(DatasetWarning) as record:
        data = load_image_folder(root)
    assert data.labels == ("a", "b")
    kinds = sorted(type(w.message).__name__ for w in record)
    assert kinds == ["DatasetWarning", "UnreadableFilesWarning"]
    assert "folder(s) with no images: c." in str(record[1].message)


def test_report_unreadable_lists_twenty_then_counts(tmp_path: Path) -> None:
    problems = [(tmp_path / f"{i:02d}.jpg", "truncated") for i in range(25)]
    with pytest.warns(UnreadableFilesWarning, match="and 5 more") as record:
        report_unreadable(problems, strict=False, context="extracting features")
    message = str(record[0].message)
    assert message.startswith("extracting features: skipped 25 unreadable files")
    assert "19.jpg" in message and "20.jpg" not in message


def test_report_unreadable_raises_when_strict(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="x.jpg: truncated"):
        report_unreadable([(tmp_path / "x.jpg", "truncated")], strict=True, context="ctx")


def test_report_unreadable_is_silent_without_problems() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report_unreadable([], strict=True, context="ctx")


# --- the Dataset object -------------------------------------------------------------------------


def test_dataset_rejects_labels_outside_the_label_set() -> None:
    with pytest.raises(BadInputError, match="missing from the label set"):
        Dataset((Sample(Path("a.png"), "cat"),), ("dog",))


def test_dataset_rejects_repeated_labels() -> None:
    with pytest.raises(BadInputError, match="repeats"):
        Dataset((), ("a", "a"))


def test_dataset_is_immutable_and_short_to_print() -> None:
    data = _dataset({"a": 300, "b": 300})
    with pytest.raises(AttributeError):
        data.labels = ("x",)  # type: ignore[misc]
    assert len(repr(data)) < 200


def test_subset_keeps_the_label_set() -> None:
    data = _dataset({"a": 3, "b": 3})
    part = data.subset([0, 5])
    assert part.labels == ("a", "b")
    assert part.targets.tolist() == [0, 1]
    mask = data.targets == 1
    assert data.subset(mask).class_counts() == {"a": 0, "b": 3}


def test_with_labels_remaps_targets() -> None:
    data = _dataset({"b": 1, "c": 1})
    remapped = data.with_labels(["c", "a", "b"])
    assert remapped.targets.tolist() == [2, 0]
    assert remapped.class_counts() == {"c": 1, "a": 0, "b": 1}


def test_with_labels_names_unknown_labels() -> None:
    data = _dataset({"b": 2, "zebra": 1})
    with pytest.raises(BadInputError, match="'zebra' \\(1\\)"):
        data.with_labels(["a", "b"])


def test_unlabelled_targets_are_minus_one() -> None:
    data = Dataset((Sample(Path("x.png"), None),), ("a",))
    assert data.targets.tolist() == [-1]


def test_check_trainable_accepts_two_classes() -> None:
    _dataset({"a": 1, "b": 1}).check_trainable()


def test_check_trainable_one_class(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos", {"cats": 3})
    with pytest.raises(BadInputError, match="at least two classes; found only 'cats'") as info:
        load_image_folder(root).check_trainable()
    assert str(root) in str(info.value)


def test_check_trainable_no_samples() -> None:
    with pytest.raises(BadInputError, match="no samples"):
        Dataset((), ("a", "b"), source="x").check_trainable()


def test_check_trainable_unlabelled() -> None:
    with pytest.raises(BadInputError, match="no label"):
        Dataset((Sample(Path("x.png"), None),), ()).check_trainable()


# --- splits -------------------------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_complete() -> None:
    data = _dataset({"a": 50, "b": 30, "c": 20})
    train, val, test = data.split(test_size=0.2, val_size=0.1, seed=0)
    assert test.class_counts() == {"a": 10, "b": 6, "c": 4}
    assert val.class_counts() == {"a": 5, "b": 3, "c": 2}
    assert train.class_counts() == {"a": 35, "b": 21, "c": 14}
    parts = [set(p.paths) for p in (train, val, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(data.paths)
    assert all(p.labels == data.labels for p in (train, val, test))


def test_split_is_seeded() -> None:
    data = _dataset({"a": 40, "b": 40})
    first = [p.paths for p in data.split(seed=3)]
    again = [p.paths for p in data.split(seed=3)]
    other = [p.paths for p in data.split(seed=4)]
    assert first == again
    assert set(first[2]) != set(other[2])


def test_split_ignores_sample_order() -> None:
    data = _dataset({"a": 30, "b": 17})
    shuffled = list(data.samples)
    random.Random(0).shuffle(shuffled)
    scrambled = Dataset(tuple(shuffled), data.labels, source=data.source)
    assert [p.paths for p in data.split(seed=1)] == [p.paths for p in scrambled.split(seed=1)]


def test_a_class_split_does_not_depend_on_other_classes() -> None:
    alone = _dataset({"a": 30, "b": 5}).split(seed=2)[2]
    with_more = _dataset({"a": 30, "b": 5, "c": 9}).split(seed=2)[2]
    a_test = {p for p in alone.paths if p.parent.name == "a"}
    assert a_test == {p for p in with_more.paths if p.parent.name == "a"}


@pytest.mark.parametrize(
    "n, expected",
    [(2, (1, 0, 1)), (3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1)), (30, (21, 3, 6))],
)
def test_small_classes_keep_train_then_test_then_validation(
    n: int, expected: tuple[int, int, int]
) -> None:
    train, val, test = _dataset({"a": n, "b": 20}).split(test_size=0.2, val_size=0.1)
    assert (
        train.class_counts()["a"],
        val.class_counts()["a"],
        test.class_counts()["a"],
    ) == expected


def test_split_never_empties_train() -> None:
    train, val, test = _dataset({"a": 3, "b": 3}).split(test_size=0.5, val_size=0.45)
    assert train.class_counts() == {"a": 1, "b": 1}
    assert test.class_counts() == {"a": 2, "b": 2}  # half-up rounding: 1.5 -> 2
    assert len(val) == 0


def test_split_without_test_share() -> None:
    train, val, test = _dataset({"a": 1, "b": 10}).split(test_size=0.0, val_size=0.2)
    assert len(test) == 0
    assert train.class_counts()["a"] == 1 and val.class_counts() == {"a": 0, "b": 2}


def test_split_class_with_one_image_names_class_folder_and_fix(tmp_path: Path) -> None:
    root = _folder(tmp_path / "photos", {"cats": 5, "dogs": 1})
    with pytest.raises(BadInputError) as info:
        load_image_folder(root).split()
    message = str(info.value)
    assert "'dogs'" in message and str(root / "dogs") in message
    assert "only 1 image;" in message
    assert "add images, remove the folder, or pass --test" in message


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"test_size": 1.0}, "test_size"),
        ({"test_size": -0.1}, "test_size"),
        ({"val_size": 1.5}, "val_size"),
        ({"test_size": 0.6, "val_size": 0.4}, "below 1"),
        ({"seed": -1}, "seed"),
    ],
)
def test_split_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        _dataset({"a": 10, "b": 10}).split(**kwargs)


def test_split_rejects_unlabelled_data() -> None:
    with pytest.raises(BadInputError, match="unlabelled"):
        Dataset((Sample(Path("x.png"), None),) * 3, ()).split()


def test_subsets_do_not_repeat_skipped_files(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "a" / "z.png").touch()
    with pytest.warns(UnreadableFilesWarning):
        data = load_image_folder(root)
    assert len(data.skipped) == 1
    assert all(part.skipped == () for part in data.split())


# --- split folders (train/, val/, test/) -------------------------------------------------------


def test_split_folders_are_recognised_whatever_their_case(tmp_path: Path) -> None:
    for split in ("Train", "VALID", "testing"):
        _folder(tmp_path / "d" / split, {"cats": 1, "dogs": 1})
    root = tmp_path / "d"
    assert find_split_folders(root) == {
        "train": root / "Train",
        "val": root / "VALID",
        "test": root / "testing",
    }
    assert find_split_folders(root / "Train") == {}  # class folders, not splits


def test_folders_named_like_splits_that_hold_images_are_classes(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"train": 2, "test": 2})  # photos of trains and of tests
    assert find_split_folders(root) == {}
    _folder(tmp_path / "e" / "train", {"cats": 1})
    _folder(tmp_path / "e", {"dogs": 1})  # a class folder beside train/: not a split layout
    assert find_split_folders(tmp_path / "e") == {}


def test_split_folders_without_a_training_folder_or_with_two_are_refused(tmp_path: Path) -> None:
    for split in ("val", "test"):
        _folder(tmp_path / "d" / split, {"cats": 1})
    with pytest.raises(BadInputError, match="no train/ folder") as info:
        find_split_folders(tmp_path / "d")
    assert "test, val" in str(info.value)
    for split in ("train", "training"):
        _folder(tmp_path / "e" / split, {"cats": 1})
    with pytest.raises(BadInputError, match="'train' and 'training'"):
        find_split_folders(tmp_path / "e")


def test_splits_must_hold_the_same_classes(tmp_path: Path) -> None:
    train = _dataset({"cats": 2, "dogs": 2, "owls": 2})
    val = _dataset({"cats": 1, "dogs": 1})
    test = _dataset({"cats": 1, "dogs": 1, "owls": 1, "bats": 1})
    check_split_classes({"train": train, "val": train})
    with pytest.raises(BadInputError) as info:
        check_split_classes({"train": train, "val": val, "test": test})
    message = str(info.value)
    assert "val has no 'owls'" in message and "test has 'bats', which train has not" in message


# --- load_dataset and load_inputs ---------------------------------------------------------------


def test_load_dataset_reads_an_image_folder(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    assert load_dataset(root) == load_image_folder(root)
    assert load_dataset(str(root)).modality == "image"


def test_load_dataset_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        load_dataset(tmp_path / "nope")


def test_load_dataset_on_a_file(tmp_path: Path) -> None:
    # a table is text data (tests/test_data_text.py); any other single file is not a dataset
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(BadInputError, match="not a dataset folder"):
        load_dataset(tmp_path / "data.xlsx")
    (tmp_path / "data.csv").write_text("text,label\n")
    with pytest.raises(BadInputError, match="no labelled, non-empty texts"):
        load_dataset(tmp_path / "data.csv")


def test_load_dataset_strict(tmp_path: Path) -> None:
    root = _folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "a" / "empty.jpg").touch()
    with pytest.raises(BadInputError, match="empty.jpg"):
        load_dataset(root, strict=True)


def test_load_inputs_files_and_folders(tmp_path: Path) -> None:
    single = _image(tmp_path / "z.jpg")
    folder = tmp_path / "batch"
    for name in ["b.png", "a.png", "sub/c.webp"]:
        _image(folder / name)
    (folder / "readme.txt").write_text("x")
    data = load_inputs([single, str(folder)])
    assert [p.name for p in data.paths] == ["z.jpg", "a.png", "b.png", "c.webp"]
    assert data.labels == ()
    assert data.targets.tolist() == [-1] * 4


def test_load_inputs_single_path_string(tmp_path: Path) -> None:
    assert len(load_inputs(str(_image(tmp_path / "x.png")))) == 1


def test_load_inputs_missing_path(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file or folder") as info:
        load_inputs([tmp_path / "missing.jpg"])
    assert "missing.jpg" in str(info.value)


def test_load_inputs_non_image_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BadInputError, match="not a supported image file"):
        load_inputs([tmp_path / "notes.txt"])


def test_load_inputs_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no images in this folder"):
        load_inputs([tmp_path / "empty"])


def test_load_inputs_nothing_given() -> None:
    with pytest.raises(BadInputError, match="no inputs"):
        load_inputs([])


def test_load_inputs_skips_undecodable_files_with_one_warning(tmp_path: Path) -> None:
    good = _image(tmp_path / "in" / "good.png")
    bad = write_unreadable_images(tmp_path / "in", bomb=False)
    with pytest.warns(UnreadableFilesWarning) as record:
        data = load_inputs([tmp_path / "in"])
    assert len(record) == 1 and all(name in str(record[0].message) for name in bad)
    assert data.paths == (good,) and sorted(p.name for p, _ in data.skipped) == sorted(bad)


def test_load_inputs_skips_empty_files_with_a_warning(tmp_path: Path) -> None:
    good = _image(tmp_path / "good.png")
    (tmp_path / "empty.png").touch()
    with pytest.warns(UnreadableFilesWarning, match="empty.png"):
        data = load_inputs([good, tmp_path / "empty.png"])
    assert data.paths == (good,)
