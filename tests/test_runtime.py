"""The torch-free runtime of exported models: the folder's checks, image inputs read as the bundle
reads them, unreadable inputs, and the CLI's `predict EXPORTED` with the training stack blocked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import draw_shape, make_shapes_folder, write_unreadable_images
from runtime_helpers import (
    IMAGE_INPUTS,
    IMAGE_LABELS,
    TinyImageNet,
    cli_code,
    image_folder,
    run_blocked,
    seal,
)

from transferkit.errors import BadInputError, BundleError
from transferkit.runtime import is_exported, load_exported, read_exported
from transferkit.system import cpu_forward_chunk


@pytest.fixture
def exported(tmp_path) -> Path:
    return image_folder(tmp_path / "model-onnx", tmp_path)


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    """Real files of the kinds the decoder treats differently: a JPEG big enough to decode at
    reduced scale, a PNG, a grey PNG, a transparent PNG, a tall image."""
    folder = tmp_path / "photos"
    folder.mkdir()
    big = draw_shape("circle", 1, size=320)
    big.save(folder / "big.jpg", quality=90)
    draw_shape("square", 2, size=64).save(folder / "square.png")
    draw_shape("triangle", 3, size=50).convert("L").save(folder / "grey.png")
    rgba = draw_shape("circle", 4, size=48).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "alpha.png")
    draw_shape("square", 5, size=90).resize((30, 90)).save(folder / "tall.png")
    return sorted(folder.iterdir())


def _torch_path(paths) -> np.ndarray:
    """The bundle's way: extraction's decode + crop (features.image_extract), then the module."""
    from transferkit.backbones.preprocess import ImagePreprocess
    from transferkit.features.image_extract import _prepare_image

    cfg = ImagePreprocess(
        input_size=IMAGE_INPUTS["input_size"],
        resize_size=IMAGE_INPUTS["resize_size"],
        interpolation=IMAGE_INPUTS["interpolation"],
    )
    planes = []
    for path in paths:
        pixels = _prepare_image(path, cfg)
        planes.append(
            np.repeat(pixels[None], 3, 0) if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        )
    with torch.no_grad():
        proba, _ = TinyImageNet(len(IMAGE_LABELS)).eval()(torch.from_numpy(np.stack(planes)))
    return proba.numpy()


def test_runtime_gives_the_torch_paths_probabilities_on_real_files(exported, photos):
    model = load_exported(exported)
    assert model.labels == IMAGE_LABELS and model.modality == "image"
    # the verified bytes were used to build the session, not kept beside it
    assert model.folder.contents == {} and model.inputs.folder.contents == {}
    proba, ok, problems = model.predict_proba(photos, batch_size=2)
    assert ok.all() and problems == []
    np.testing.assert_allclose(proba, _torch_path(photos), atol=1e-6)
    # an upload (name, bytes) is read as its file is
    uploads = [(p.name, p.read_bytes()) for p in photos]
    np.testing.assert_array_equal(model.predict_proba(uploads)[0], proba)
    assert model.predict(photos) == [IMAGE_LABELS[i] for i in proba.argmax(axis=1)]
    embeddings, ok, _ = model.embed(photos)
    assert embeddings.shape == (len(photos), 4) and ok.all()


def test_images_run_a_few_per_onnx_call_on_cpu_with_the_same_answers(exported, photos):
    model = load_exported(exported, threads=1)
    whole = model.predict_proba(photos, batch_size=1)[0]  # one image per call, as a reference
    calls = []
    run = model.session.run
    model.session = _Recording(run, calls)
    proba, ok, _ = model.predict_proba(photos * 2, batch_size=len(photos) * 2)
    assert ok.all() and max(calls) == cpu_forward_chunk(1) < len(photos) * 2
    assert sum(calls) == len(photos) * 2
    np.testing.assert_allclose(proba, np.concatenate([whole, whole]), atol=1e-6)


class _Recording:
    """A session stand-in that counts each call's rows and runs the real one."""

    def __init__(self, run, calls: list) -> None:
        self.run_real, self.calls = run, calls

    def run(self, outputs, feed):
        self.calls.append(len(next(iter(feed.values()))))
        return self.run_real(outputs, feed)


def test_unreadable_inputs_get_a_nan_row_and_their_reason(exported, photos, tmp_path):
    bad_folder = tmp_path / "bad"
    bad_folder.mkdir()
    bad = [bad_folder / name for name in write_unreadable_images(bad_folder, bomb=False)]
    inputs = [photos[0], *bad, photos[1], ("text.png", b"this is not a PNG")]
    proba, ok, problems = load_exported(exported).predict_proba(inputs, batch_size=3)
    assert ok.tolist() == [True] + [False] * len(bad) + [True, False]
    assert np.isnan(proba[~ok]).all() and not np.isnan(proba[ok]).any()
    named = dict(problems)
    assert set(named) == {str(p) for p in bad} | {"text.png"}
    assert "not an image file" in named["text.png"]


def test_an_exported_folder_is_told_from_a_bundle(exported, tmp_path):
    assert is_exported(exported)
    assert not is_exported(tmp_path)


def _reseal(folder: Path, **changes) -> None:
    path = folder / "export.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps(seal({**document, **changes})))


def _edit(folder: Path, **changes) -> None:
    """Change export.json without re-sealing it (an edit, or corruption)."""
    path = folder / "export.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda f: _edit(f, labels=["dog", "cat", "bird"]), "export.json was changed"),
        (
            lambda f: _reseal(f, format="transferkit-bundle"),
            "does not describe a transferkit-export",
        ),
        (lambda f: _reseal(f, format_version=2), "newer transferkit"),
        (lambda f: _reseal(f, labels=["cat", "dog"]), "lists 2 labels but the graph gives 3"),
        (lambda f: _reseal(f, labels=["cat", "cat", "dog"]), "appears 2 times"),
        (lambda f: (f / "model.onnx").unlink(), "model.onnx is missing"),
        (
            lambda f: (f / "model.onnx").write_bytes((f / "model.onnx").read_bytes()[:-1] + b"!"),
            "model.onnx has sha256",
        ),
        (lambda f: (f / "export.json").write_text("{not json"), "export.json is not valid JSON"),
        (lambda f: (f / "export.json").unlink(), "there is no export.json"),
        (
            lambda f: _reseal(f, files={"../model.onnx": "0" * 64, "model.onnx": "0" * 64}),
            "not a plain file name",
        ),
        (
            lambda f: _reseal(f, inputs={**IMAGE_INPUTS, "interpolation": "lanczos"}),
            "'inputs.interpolation' must be one of",
        ),
        (lambda f: _reseal(f, modality="video"), "exported for 'video' inputs"),
    ],
)
def test_a_damaged_folder_is_refused_naming_the_file_and_the_fix(exported, damage, expected):
    damage(exported)
    with pytest.raises(BundleError) as err:
        load_exported(exported)
    message = str(err.value)
    assert expected in message
    assert str(exported) in message
    assert "export the model again" in message or "upgrade transferkit" in message


def test_a_graph_narrower_than_its_labels_is_refused(tmp_path):
    """export.json agrees with itself (4 labels, width 4) but the graph gives 3 columns."""
    labels = [*IMAGE_LABELS, "fish"]
    folder = image_folder(
        tmp_path / "m",
        tmp_path,
        labels=labels,
        outputs={"probabilities": [None, 4], "embedding": [None, 4]},
    )
    with pytest.raises(BundleError, match="gives probabilities of width 3, but export.json says 4"):
        load_exported(folder)


def test_files_not_listed_are_never_read(exported, photos):
    # a link to nothing: reading it would fail, so loading proves it was not read
    os.symlink("/nonexistent/file", exported / "extra.onnx")
    with pytest.warns(UserWarning, match="ignoring extra.onnx: not part of the exported model"):
        folder = read_exported(exported)
    assert folder.contents.keys() == {"model.onnx"}
    with pytest.warns(UserWarning, match="ignoring extra.onnx"):
        load_exported(exported).predict(exported.parent / "photos" / "square.png")


def test_inputs_of_the_wrong_kind_are_refused(exported):
    model = load_exported(exported)
    with pytest.raises(BadInputError, match="nothing to predict"):
        model.predict_proba([])
    with pytest.raises(BadInputError, match="input 0 is a int"):
        model.predict_proba([3])


def test_the_runtime_imports_no_training_stack(exported, photos):
    """In a Python where importing torch, sklearn, transformers... fails, as in a
    `pip install transferkit[runtime]` environment."""
    code = (
        "import json\n"
        "from transferkit.runtime import load_exported\n"
        f"proba, ok, problems = load_exported({str(exported)!r}).predict_proba("
        f"{[str(p) for p in photos]!r})\n"
        "print(json.dumps(proba.tolist()))\n"
    )
    done = run_blocked(code)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(
        np.array(json.loads(done.stdout), np.float32),
        load_exported(exported).predict_proba(photos)[0],
    )


def test_cli_predicts_from_an_exported_folder_without_torch(exported, photos):
    code = (
        "import sys\n"
        "from transferkit.cli import main\n"
        f"code = main(['predict', {str(exported)!r}, {str(photos[0].parent)!r}, '--top', '2'])\n"
        "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None]\n"
        "sys.exit(code)\n"
    )
    done = run_blocked(code)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    proba = load_exported(exported).predict_proba(photos)[0]
    assert [line["input"] for line in lines] == [str(p) for p in photos]
    for line, row in zip(lines, proba):
        best = int(row.argmax())
        assert line["label"] == IMAGE_LABELS[best]
        assert line["confidence"] == round(float(row[best]), 6)
        assert len(line["scores"]) == 2 and line["scores"][IMAGE_LABELS[best]] == line["confidence"]


def test_cli_names_unreadable_inputs_and_fails_with_strict(exported, photos, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    args = ["predict", str(exported), str(photos[0]), str(broken)]
    done = run_blocked(cli_code(args))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["input"] for line in lines] == [str(photos[0]), str(broken)]
    assert lines[1]["label"] is None and "not an image file" in lines[1]["error"]
    assert run_blocked(cli_code([*args, "--strict"])).returncode == 2


@pytest.mark.parametrize(
    "argv",
    [["train", "data", "--out", "run"], ["predict", "a-bundle", "x.png"], ["models"]],
)
def test_commands_that_need_torch_say_which_extra_to_install(tmp_path, argv):
    make_shapes_folder(tmp_path / "data", per_class=2)
    (tmp_path / "a-bundle").mkdir()
    draw_shape("circle", 0).save(tmp_path / "x.png")
    done = run_blocked(cli_code(argv), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "pip install 'transferkit[train]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_predicting_an_export_without_onnxruntime_says_to_install_the_runtime(exported, photos):
    code = "import sys\nsys.modules['onnxruntime'] = None\n" + cli_code(
        ["predict", str(exported), str(photos[0])]
    )
    done = run_blocked(code)
    assert done.returncode == 2, done.stderr
    assert "needs onnxruntime" in done.stderr
    assert "pip install 'transferkit[runtime]'" in done.stderr
