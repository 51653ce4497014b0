"""``--source-select N``: the N training examples most like the target are kept (with all
their views), every class keeps two, too small an N is refused; end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from adapt_helpers import image_world, run_cli, train_argv
from tiny_backbone import tiny_registered  # noqa: F401 (module fixture: registers it)

from transferkit.errors import BadInputError
from transferkit.strategies.adapt.selection import select_source, target_likeness
from transferkit.strategies.features import TrainingEmbeddings


def _world(seed: int = 0):
    """Three classes of 10 examples in 16-D, each a mirrored pair of rows: of classes 'a' and
    'b' the first 4 examples sit in the target's cloud and the other 6 half-way to a far
    place, where every example of class 'far' sits."""
    rng = np.random.default_rng(seed)
    centre_near, centre_far = rng.normal(size=16) * 3, rng.normal(size=16) * 3
    X, y = [], []
    for c in range(3):
        for i in range(10):
            if c == 2:
                centre = centre_far
            else:
                centre = centre_near if i < 4 else (centre_near + centre_far) / 2
            X.append(centre + rng.normal(0, 0.3, 16))
            y.append(c)
    X, y = np.abs(np.array(X)), np.array(y)
    mirrored = X + rng.normal(0, 0.01, X.shape)
    source = TrainingEmbeddings(
        X=np.vstack([X, mirrored]).astype(np.float32),
        y=np.r_[y, y],
        groups=np.r_[np.arange(30), np.arange(30)],
        rows=np.r_[np.arange(30), np.arange(30)],
        n_train=30,
        info={},
    )
    target = np.abs(centre_near + rng.normal(0, 0.3, (25, 16))).astype(np.float32)
    return source, target


LABELS = ("a", "b", "far")


def test_the_examples_nearest_the_target_are_kept_with_their_views():
    source, target = _world()
    selected, info = select_source(source, target, 10, LABELS)
    kept = set(selected.rows.tolist())
    assert len(kept) == 10 == selected.n_train == info["kept"] and info["dropped"] == 20
    near = {c * 10 + i for c in range(2) for i in range(4)}  # 8 near examples
    assert near <= kept  # all 8 near ones, and 'far' keeps its 2 best
    _, views = np.unique(selected.rows, return_counts=True)
    assert len(selected.y) == 20 and (views == 2).all()  # both views of each kept example
    assert info["per_class"] == {
        "a": {"kept": 4, "dropped": 6},
        "b": {"kept": 4, "dropped": 6},
        "far": {"kept": 2, "dropped": 8},
    }
    # said so: 'far' would have lost every example to a plain top 10
    assert info["kept_to_keep_the_class"] == {"far": 2}
    assert info["mean_score_kept"] > info["mean_score_dropped"]


def test_the_likeness_is_the_mean_cosine_to_the_nearest_target_rows():
    rng = np.random.default_rng(0)
    source, target = np.abs(rng.normal(size=(7, 5))), np.abs(rng.normal(size=(12, 5)))

    def unit(x):
        z = np.sqrt(x)  # signed square root of positive rows, then unit length
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    cosines = unit(source) @ unit(target).T
    expected = np.sort(cosines, axis=1)[:, -3:].mean(axis=1)
    np.testing.assert_allclose(target_likeness(source, target, k=3), expected, rtol=1e-5)


def test_too_small_a_selection_is_refused_and_a_large_one_keeps_everything():
    source, target = _world()
    with pytest.raises(BadInputError, match=r"--source-select 5 .* 3 classes need at least 2 "
                       r"each, so ask for 6 or more"):  # fmt: skip
        select_source(source, target, 5, LABELS)
    selected, info = select_source(source, target, 100, LABELS)
    assert selected.n_train == 30 and info["dropped"] == 0 and "nothing dropped" in info["note"]


def test_train_with_source_select_records_what_was_kept(tmp_path, capsys, monkeypatch):
    world = image_world(tmp_path)  # 6 circles, 6 squares
    out = tmp_path / "run"
    argv = train_argv(world, out, "--strategy", "coral", "--source-select", "8")
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    chosen = metrics["source_select"]
    assert chosen["kept"] == 8 and chosen["dropped"] == 4
    per_class = chosen["per_class"]
    assert set(per_class) == {"circle", "square"}
    assert all(c["kept"] >= 2 and c["kept"] + c["dropped"] == 6 for c in per_class.values())
    report = (out / "report.html").read_text()
    assert "source examples kept / dropped (--source-select)" in report
    code, err = run_cli(
        train_argv(world, tmp_path / "few", "--strategy", "kmm", "--source-select", "3"),
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--source-select 3 keeps too few training examples" in err
    code, err = run_cli(
        train_argv(world, tmp_path / "none", "--strategy", "coral", "--source-select", "0"),
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--source-select: must be at least 1, got 0" in err
