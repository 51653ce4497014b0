"""Modalities: the contract every registered modality keeps (detect, load labelled data and
inputs from files and from bytes in memory, probe, default backbone, preview, export inputs), on
tiny real files of each kind; and the registry that routes every modality question."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import draw_shape, require_offline_weights

from transferkit.backbones import get_spec
from transferkit.data import Dataset, Sample
from transferkit.errors import BadInputError
from transferkit.modalities import (
    MODALITIES,
    extract_embeddings,
    get_modality,
    load_dataset,
    modality_of,
)

sf = pytest.importorskip("soundfile")

TEXTS = {
    "fresh": ["a wonderful, moving film", "the best thing I saw this year", "a joy throughout"],
    "rotten": ["dull and far too long", "a mess from start to finish", "tedious and flat"],
}


def _image_data(root: Path) -> Path:
    for label, kind in (("circle", "circle"), ("square", "square")):
        (root / label).mkdir(parents=True)
        for i in range(3):
            draw_shape(kind, 10 * i + len(label)).save(root / label / f"{i}.png")
    return root


def _text_data(root: Path) -> Path:
    root.mkdir(parents=True)
    path = root / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(("text", "label"))
        writer.writerows((t, label) for label, texts in TEXTS.items() for t in texts)
    return path


def _audio_data(root: Path) -> Path:
    rate = 16000
    t = np.arange(rate // 2) / rate
    for label, freq in (("high", 1760.0), ("low", 220.0)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            wave = 0.4 * np.sin(2 * np.pi * (freq + 40 * i) * t)
            sf.write(root / label / f"{i}.wav", wave, rate, subtype="PCM_16")
    return root


MAKERS = {"image": _image_data, "text": _text_data, "audio": _audio_data}


@pytest.fixture(params=sorted(MODALITIES))
def modality(request):
    return get_modality(request.param)


@pytest.fixture
def data(modality, tmp_path) -> Path:
    """Two classes of three real examples: the modality's labelled data."""
    return MAKERS[modality.name](tmp_path / "data")


def _files(path: Path) -> list[Path]:
    """Input files of the labelled data at ``path`` (a folder's files, or the table itself)."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def test_every_modality_has_data_to_test_it_on():
    assert sorted(MAKERS) == sorted(MODALITIES)


def test_detect_and_load_labelled(modality, data):
    # the first in the registry's order (audio, text, images) to claim it
    assert modality.detect(data) and modality_of(data) is modality
    ds = modality.load_labelled(data)
    assert ds == load_dataset(data)
    assert ds.modality == modality.name and len(ds) == 6 and len(ds.labels) == 2
    assert ds.class_counts() == dict.fromkeys(ds.labels, 3)


def test_load_inputs_from_files_and_from_bytes(modality, data):
    files = _files(data)
    from_files = modality.load_inputs(files)
    uploads = [(f.name, f.read_bytes()) for f in files]
    from_bytes = modality.load_inputs(uploads)
    assert from_bytes.modality == from_files.modality == modality.name
    assert len(from_bytes) == len(from_files) and not from_bytes.skipped
    assert [s.path.name.split(":")[0] for s in from_bytes.samples] == [
        s.path.name.split(":")[0] for s in from_files.samples
    ]
    # the same content: the texts read, or the bytes a decoder reads instead of the file
    for a, b in zip(from_files.samples, from_bytes.samples):
        if a.text is not None:
            assert b.text == a.text
        else:
            assert b.raw == b.content == a.path.read_bytes()


def test_probe_tells_a_good_file_from_garbage(modality, data):
    good = _files(data)[0]
    assert modality.probe(good) is None
    assert modality.probe(good.read_bytes()) is None
    assert isinstance(modality.probe(b"\x00\x01\x02 not a file of any kind \xff\xfe"), str)


def test_readable_leaves_out_what_does_not_decode(modality, data):
    ds = modality.load_labelled(data)
    ok, problems = modality.readable(ds)
    assert ok.all() and problems == []


def test_default_backbone_is_a_registered_encoder_of_the_modality(modality, data):
    ds = modality.load_labelled(data)
    spec = get_spec(modality.default_backbone(ds))
    assert modality.accepts(spec) and spec.trainable
    assert [m.name for m in MODALITIES.values() if m.accepts(spec)] == [modality.name]


def test_preview_describes_the_reports_widget(modality, data):
    sample = modality.load_labelled(data).samples[0]
    preview = modality.preview(sample)
    assert preview["widget"] in ("thumbnail", "snippet", "player")
    shown = preview.get("text") if preview["widget"] == "snippet" else preview.get("path")
    assert shown and (shown == sample.text or Path(shown) == sample.path)


def test_export_inputs_say_what_an_exported_model_takes(modality):
    from transferkit.backbones import resolve_backbone

    name = modality.default_backbone_name
    require_offline_weights(name)
    backbone = resolve_backbone(name, allow_download=False)
    spec = modality.export_inputs(backbone)
    assert spec["kind"] == modality.name and spec["dtype"] in ("uint8", "int64", "float32")
    # every value is plain JSON, for a manifest or a server's schema
    import json

    assert json.loads(json.dumps(spec)) == spec


def test_a_backbone_of_another_modality_is_refused_naming_one_that_fits(modality, data):
    from transferkit.backbones import resolve_backbone

    ds = modality.load_labelled(data)
    other = next(m for m in MODALITIES.values() if m is not modality)
    require_offline_weights(other.default_backbone_name)
    backbone = resolve_backbone(other.default_backbone_name, allow_download=False)
    with pytest.raises(BadInputError, match=f"--backbone {modality.default_backbone(ds)}"):
        modality.check_backbone(backbone, ds)


def test_predicting_from_bytes_gives_the_probabilities_of_the_files(modality, data):
    from transferkit import TransferClassifier

    require_offline_weights(modality.default_backbone_name)
    train = load_dataset(data)
    clf = TransferClassifier(strategy="features", head="logistic", progress=False).fit(train)
    files = _files(data)
    uploads = [(f.name, f.read_bytes()) for f in files]
    from_files = clf.predict_proba(files)
    from_bytes = clf.predict_proba(uploads)
    assert from_bytes.shape == from_files.shape == (6, 2)
    np.testing.assert_allclose(from_bytes, from_files, rtol=0, atol=1e-6)
    # bytes are keyed in the embedding cache by their sha256: the files' entries serve them
    again = extract_embeddings(clf.backbone_, modality.load_inputs(uploads))
    assert again.n_cached == len(again.ok) == 6


def test_an_unreadable_upload_is_left_out_and_keeps_its_place(tmp_path):
    from transferkit import TransferClassifier

    require_offline_weights("mobilenet_v2")
    data = _image_data(tmp_path / "data")
    clf = TransferClassifier(strategy="features", head="logistic", progress=False)
    clf.fit(load_dataset(data))
    good = (data / "circle" / "0.png").read_bytes()
    uploads = [("a.png", good), ("broken.png", good[: len(good) // 2]), ("c.png", good)]
    with pytest.warns(UserWarning, match="broken.png"):
        proba, ok, problems, ds = clf.predict_details(uploads)
    assert ok.tolist() == [True, False, True] and np.isnan(proba[1]).all()
    assert [p.name for p, _ in problems] == ["broken.png"]
    assert [s.path.name for s in ds.samples] == ["a.png", "broken.png", "c.png"]


def test_a_text_input_is_a_text_a_text_file_or_a_files_bytes(tmp_path):
    text = get_modality("text")
    (tmp_path / "more.txt").write_text("first\n\nsecond\n", encoding="utf-8")
    table = _text_data(tmp_path / "t")
    ds = text.load_inputs(
        ["great film", str(tmp_path / "more.txt"), ("up.csv", table.read_bytes()), "dull"]
    )
    assert ds.texts == ("great film", "first", "second", *TEXTS["fresh"], *TEXTS["rotten"], "dull")
    assert text.describe_input(ds.samples[0]) == {"input": "great film"}
    assert text.describe_input(ds.samples[3]) == {"input": "up.csv:2", "text": TEXTS["fresh"][0]}
    with pytest.raises(BadInputError, match="input 1 is an empty text"):
        text.load_inputs(["fine", "  "])


def test_table_options_a_table_does_not_take_are_refused(tmp_path):
    table = _text_data(tmp_path / "t")
    with pytest.raises(BadInputError, match="--path-col does not apply"):
        load_dataset(table, path_col="text")
    folder = _image_data(tmp_path / "i")
    with pytest.raises(BadInputError, match="--text-col only apply to tables"):
        load_dataset(folder, text_col="text")


def test_inputs_are_told_apart_by_name():
    assert modality_of([Path("a.wav")]).name == "audio"
    assert modality_of([("clip.flac", b"...")]).name == "audio"
    assert modality_of(["a film I loved"]).name == "text"
    assert modality_of([Path("photo.jpg")]).name == "image"


def test_default_augment_is_light_for_images_only():
    from transferkit.finetune.augment import AUGMENTS

    assert get_modality("image").default_augment == "light" in AUGMENTS
    assert get_modality("text").default_augment == get_modality("audio").default_augment == "none"


def test_a_sample_in_memory_is_fingerprinted_by_its_content():
    one = Dataset((Sample(Path("a.png"), "x", content=b"one"),), ("x",))
    two = Dataset((Sample(Path("a.png"), "x", content=b"two"),), ("x",))
    assert one.fingerprint() != two.fingerprint()
    assert "content" not in repr(one.samples[0])  # the bytes stay out of messages


def test_the_registry_refuses_an_unknown_or_repeated_modality():
    from transferkit.modalities import register_modality

    with pytest.raises(ValueError, match="no modality named 'video'"):
        get_modality("video")
    with pytest.raises(ValueError, match="registered already"):
        register_modality(get_modality("text"))


def test_no_code_outside_modalities_compares_a_modality_name():
    import re

    root = Path(__file__).resolve().parents[1] / "src" / "transferkit"
    pattern = re.compile(r'modality ==|modality !=|== "text"|== "audio"|== "image"')
    found = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if "modalities" not in path.parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("name", ["image", "audio"])
def test_bytes_decode_as_the_file_does(tmp_path, name):
    from transferkit.data.audio import decode_audio
    from transferkit.data.images import open_image

    file = _files(MAKERS[name](tmp_path / "d"))[0]
    content = file.read_bytes()
    if name == "image":
        np.testing.assert_array_equal(np.asarray(open_image(file)), np.asarray(open_image(content)))
    else:
        np.testing.assert_array_equal(decode_audio(file, 8000), decode_audio(content, 8000))
