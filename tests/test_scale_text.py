"""A big job over a table of texts, in this process (``--engine local``): the text column is
read as the single-process predict reads it, rows are named by their line in the table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("transformers")
pytest.importorskip("ray")

from transferkit.cli import main  # noqa: E402

POSITIVE = ["I loved this film, it was wonderful", "a brilliant and moving story",
            "great acting and a beautiful score", "funny, warm and delightful",
            "superb performances all round", "a masterpiece, truly inspiring"]  # fmt: skip
NEGATIVE = ["I hated this film, it was terrible", "a boring and pointless story",
            "awful acting and a grating score", "dull, cold and tiresome",
            "dreadful performances all round", "a disaster, truly depressing"]  # fmt: skip


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    from conftest import require_offline_weights

    require_offline_weights("all_minilm_l6_v2")
    root = tmp_path_factory.mktemp("scale-text")
    train = root / "reviews.csv"
    with open(train, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["review", "sentiment"])
        writer.writerows([(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE])
    code = main(["-q", "train", str(train), "--out", str(root / "run"), "--strategy", "features",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    return root, root / "run" / "model"


def test_a_table_of_texts_is_predicted_row_by_row_as_in_process(text_model, capsys):
    root, model = text_model
    table = root / "new.csv"
    texts = [f"{'a wonderful, moving' if i % 2 else 'a dull, dreadful'} film, number {i}"
             for i in range(40)]  # fmt: skip
    with open(table, "w", newline="", encoding="utf-8") as fp:
        writer = csv.writer(fp)
        writer.writerow(["id", "comment"])
        writer.writerows(enumerate(texts))
    out = root / "predictions.parquet"
    code = main(["-q", "predict", str(model), str(table), "--text-col", "comment",
                 "--output", str(out), "--batch-size", "16"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["engine"] == "local" and summary["rows"] == 40 and summary["errors"] == 0
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["input"] for r in rows) == sorted(f"{table}:{i + 2}" for i in range(40))

    from transferkit.estimator import TransferClassifier

    clf = TransferClassifier.load(model, progress=False, cache=False)
    expected = clf.predict_proba(texts)
    for row in rows:
        p = expected[int(row["input"].rsplit(":", 1)[1]) - 2]
        np.testing.assert_allclose(list(row["probabilities"].values()), p, atol=1e-5)
        assert row["label"] == clf.labels_[int(np.argmax(p))]
    by_line = {int(r["input"].rsplit(":", 1)[1]): r["label"] for r in rows}
    assert by_line[3] == "positive" and by_line[2] == "negative"  # "wonderful" / "dreadful"


def test_on_a_terminal_each_stage_draws_a_bar(text_model):
    """stderr a terminal: tqdm bars (redrawn in place), not log lines."""
    import fcntl
    import pty
    import struct
    import termios

    root, model = text_model
    table = root / "bar.csv"
    table.write_text("comment\n" + "".join(f"a wonderful film {i}\n" for i in range(20)))
    terminal, child_side = pty.openpty()
    fcntl.ioctl(child_side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    command = [sys.executable, "-m", "transferkit.cli", "predict", str(model), str(table),
               "--text-col", "comment", "--output", str(root / "bar.jsonl")]  # fmt: skip
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=child_side)  # fmt: skip
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
    child.communicate(timeout=120)
    assert child.returncode == 0, shown.decode()
    text = shown.decode()
    assert "\r" in text and "Predicting in this process: 100%" in text
    assert "Writing bar.jsonl: 100%" in text


def test_ray_options_without_ray_are_refused(text_model, tmp_path, capsys):
    _, model = text_model
    code = main(["predict", str(model), str(tmp_path), "--output", str(tmp_path / "x.jsonl"),
                 "--engine", "local", "--address", "10.0.0.1:6379"])  # fmt: skip
    assert code == 2 and "are for --engine ray" in capsys.readouterr().err
