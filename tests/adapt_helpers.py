"""What the tests of the frozen-embedding adaptation strategies share: domain shifts on small
real or synthetic data, the accuracy a head reaches on the target after a method's ``prepare``,
and a tiny image world for the end-to-end runs through the CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from conftest import make_shapes_folder
from threadpoolctl import threadpool_limits
from tiny_backbone import NAME, write_tiny_weights

from transferkit.cli import main
from transferkit.heads.linear import LogisticHead
from transferkit.strategies import make_strategy
from transferkit.strategies.adapt.base import DomainEmbeddings
from transferkit.strategies.features import TrainingEmbeddings


def domain_embeddings(Xs, ys, Xt, *, groups=None, rows=None, weight=None, labels=()):
    """DomainEmbeddings of source rows ``Xs`` (classes ``ys``) and target rows ``Xt``."""
    rows = np.arange(len(ys)) if rows is None else rows
    n_train = len(np.unique(rows))
    source = TrainingEmbeddings(
        np.asarray(Xs, np.float32), np.asarray(ys), groups, rows, n_train, {}
    )
    return DomainEmbeddings(
        source=source,
        target=np.asarray(Xt, np.float32),
        source_weight=weight,
        labels=tuple(labels),
    )


def target_accuracy(method: str | None, emb: DomainEmbeddings, yt, seed: int = 0, **params):
    """Accuracy on the target rows of the default head fitted on what ``method`` prepares
    (None: on the source rows as they are — no adaptation)."""
    head = LogisticHead()
    with threadpool_limits(1):
        if method is None:
            head.fit(emb.source.X, emb.source.y, seed=seed, groups=emb.source.groups)
        else:
            prepared = make_strategy(method, **params).prepare(emb, seed)
            head.fit(prepared.X, prepared.y, prepared.weight, seed=seed, groups=prepared.groups)
        return float((head.predict(emb.target) == np.asarray(yt)).mean())


def digits_shift(seed: int, gain: float, offset: float, n_source: int = 900):
    """scikit-learn's 8x8 digits (real scans) split in two; the target half seen by another
    'camera' (``gain`` · pixels + ``offset``): (source X, y, target X, y)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    s, t = order[:n_source], order[n_source:]
    return X[s], y[s], gain * X[t] + offset, y[t]


def covariate_shift(seed: int, n_source: int = 400, n_target: int = 300, dim: int = 20):
    """Sample selection bias that a linear head cannot ignore: two classes drawn in two styles
    (A, B, apart in dimensions 0 and 1); in A dimension 2 tells the classes apart, in B
    dimension 3 does and dimension 2 points the other way. The source is 85% A, the target all
    B, so the source's best linear head is A's, wrong on the target, unless the few B rows of
    the source are weighted up. (source X, y, target X, y)."""
    rng = np.random.default_rng(seed)

    def draw(n: int, share_b: float):
        b = rng.random(n) < share_b
        y = rng.integers(0, 2, n)
        sign = 2 * y - 1
        X = rng.normal(0, 1, (n, dim))
        X[:, 0] += np.where(b, 0, 3)
        X[:, 1] += np.where(b, 3, 0)
        X[:, 2] += np.where(b, -1.0, 2.0) * sign
        X[:, 3] += np.where(b, 2.0, 0.0) * sign
        return X + 6, y  # positive, as pooled CNN embeddings are

    Xs, ys = draw(n_source, 0.15)
    Xt, yt = draw(n_target, 1.0)
    return Xs, ys, Xt, yt


def image_world(root: Path) -> dict:
    """Two classes of small photos to train on, three more of another draw as the target."""
    classes = ("circle", "square")
    return {
        "data": make_shapes_folder(root / "train", per_class=6, classes=classes),
        "test": make_shapes_folder(root / "test", per_class=3, seed=5, classes=classes),
        "target": make_shapes_folder(root / "target", per_class=4, seed=9),
        "weights": write_tiny_weights(root / "tiny.safetensors"),
        "root": root,
    }


def run_cli(argv, capsys, monkeypatch) -> tuple[int, str]:
    """``transferkit ARGV``: its exit code and what it wrote to stderr."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(argv[argv.index("--out") + 1]) + "-cache")
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def train_argv(world: dict, out: Path, *extra) -> list:
    return [
        "train", world["data"], "--test", world["test"], "--out", out, "--backbone", NAME,
        "--weights", world["weights"], "--no-progress", "--runtime", "torch",
        "--target", world["target"], "--augment", "none", *extra,
    ]  # fmt: skip
