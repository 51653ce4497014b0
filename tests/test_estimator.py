"""The Python API as the README shows it: load, split, fit, score, predict, save, load."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights

from transferkit import TransferClassifier, load_dataset
from transferkit.errors import BadInputError, NotFittedError


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    require_offline_weights("mobilenet_v2")
    root = make_shapes_folder(tmp_path_factory.mktemp("api") / "shapes", per_class=10)
    train, val, test = load_dataset(root).split(test_size=0.2, val_size=0.1, seed=0)
    clf = TransferClassifier(backbone="mobilenet_v2", head="logistic", progress=False)
    return clf.fit(train.merge(val)), test


def test_readme_flow(fitted, tmp_path):
    clf, test = fitted
    assert clf.labels_ == ["circle", "square", "triangle"]
    assert clf.score(test) >= 0.8
    metrics = clf.evaluate(test)
    assert metrics["n_test"] == len(test) and metrics["backbone"] == "mobilenet_v2"
    proba = clf.predict_proba(test)
    assert proba.shape == (len(test), 3) and np.allclose(proba.sum(axis=1), 1)
    files = [str(p) for p in test.paths[:3]]
    labels = clf.predict(files)
    assert labels == [clf.labels_[i] for i in proba[:3].argmax(axis=1)]
    clf.save(tmp_path / "model")
    again = TransferClassifier.load(tmp_path / "model", progress=False)
    np.testing.assert_allclose(again.predict_proba(test), proba, atol=1e-6)
    assert again.predict(files) == labels


def test_predict_before_fit_says_what_to_do():
    with pytest.raises(NotFittedError, match="call fit"):
        TransferClassifier().predict(["x.png"])


def test_bad_parameters_are_refused_with_the_fix(fitted):
    clf, test = fitted
    with pytest.raises(BadInputError, match="batch_size"):
        TransferClassifier(batch_size=0).fit(test)
    with pytest.raises(BadInputError, match="Did you mean 'logistic'"):
        TransferClassifier(head="logistik").fit(test)
