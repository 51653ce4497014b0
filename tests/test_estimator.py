"""The Python API as the README shows it: load, split, fit, score, predict, save, load."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from conftest import make_shapes_folder, require_offline_weights, write_unreadable_images

import transferkit.bundle as bundle_mod
from transferkit import TransferClassifier, load_dataset
from transferkit.errors import BadInputError, BundleError, NotFittedError


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


def test_predict_gives_one_row_per_input_in_order_unreadable_ones_too(fitted, tmp_path):
    clf, test = fitted
    bad = write_unreadable_images(tmp_path / "bad", bomb=False)
    files = [test.paths[0], *(tmp_path / "bad" / name for name in bad), test.paths[1]]
    with pytest.warns(UserWarning, match="3 unreadable files"):
        labels = clf.predict(files)
    assert labels[1:4] == [None, None, None] and None not in (labels[0], labels[4])
    assert labels[0] == clf.predict([test.paths[0]])[0]
    with pytest.warns(UserWarning):
        embeddings = clf.transform(files)
    assert embeddings.shape[0] == 5 and np.isnan(embeddings[1:4]).all()


def test_predict_before_fit_says_what_to_do():
    with pytest.raises(NotFittedError, match="call fit"):
        TransferClassifier().predict(["x.png"])


def test_bad_parameters_are_refused_with_the_fix(fitted):
    clf, test = fitted
    with pytest.raises(BadInputError, match="batch_size"):
        TransferClassifier(batch_size=0).fit(test)
    with pytest.raises(BadInputError, match="Did you mean 'logistic'"):
        TransferClassifier(head="logistik").fit(test)


def _edit_manifest(model, edit) -> None:
    """Edit a saved manifest as a tool that re-hashes it would (reaching the checks behind)."""
    path = model / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    if "manifest_sha256" in manifest:
        manifest["manifest_sha256"] = bundle_mod.manifest_digest(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def _shorten_labels(manifest: dict) -> None:
    manifest["labels"] = manifest["labels"][:2]


def _shorten_labels_and_n_classes(manifest: dict) -> None:
    _shorten_labels(manifest)
    manifest["head"]["n_classes"] = 2


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_shorten_labels, "2 labels but its head has 3 outputs"),
        (_shorten_labels_and_n_classes, "'logistic' head scores 3 classes but its n_classes is 2"),
    ],
)
def test_labels_that_disagree_with_the_head_are_refused_at_load(fitted, tmp_path, edit, fragment):
    """Issue 16 item 4: this was an internal 'shape mismatch' ValueError at predict time."""
    clf, _ = fitted
    model = clf.save(tmp_path / "model")
    _edit_manifest(model, edit)
    with pytest.raises(BundleError, match=fragment) as info:
        TransferClassifier.load(model, progress=False)
    assert str(model) in str(info.value) and "re-train" in str(info.value)


# -- the sklearn estimator contract: parameters, set_params, clone --------------------------------
SKLEARN_CHECKS = (
    "check_get_params_invariance",
    "check_set_params",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
)


def test_get_params_are_the_init_parameters_as_given():
    clf = TransferClassifier(backbone="resnet18", head="svm", head_params={"C": 2.0}, seed=3)
    params = clf.get_params()
    assert sorted(params) == sorted(inspect.signature(TransferClassifier).parameters)
    assert params["backbone"] == "resnet18" and params["head_params"] == {"C": 2.0}
    assert params["strategy"] == "auto" and params["seed"] == 3
    assert clf.get_params(deep=False) == params


def test_set_params_sets_known_parameters_and_names_the_valid_ones():
    clf = TransferClassifier()
    assert clf.set_params(head="knn", batch_size=16) is clf
    assert (clf.head, clf.batch_size) == ("knn", 16)
    with pytest.raises(ValueError, match="Invalid parameter 'colour' for estimator") as info:
        clf.set_params(colour="red")
    assert "Valid parameters are: ['backbone', 'batch_size'," in str(info.value)
    assert clf.head == "knn"


def test_repr_shows_the_parameters_that_differ_from_their_defaults():
    assert repr(TransferClassifier()) == "TransferClassifier()"
    clf = TransferClassifier(backbone="resnet18", seed=1)
    assert repr(clf) == "TransferClassifier(backbone='resnet18', seed=1)"


def test_sklearn_clone_gives_an_unfitted_copy_with_equal_parameters(fitted):
    from sklearn.base import clone

    clf, test = fitted
    copy = clone(clf)
    assert type(copy) is TransferClassifier and copy is not clf
    assert copy.get_params() == clf.get_params()
    assert not any(name.endswith("_") for name in vars(copy))
    with pytest.raises(NotFittedError):
        copy.predict(test)


@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_estimator_checks(check):
    """The checks of sklearn.utils.estimator_checks about parameters (those that fit arrays do
    not apply: this estimator reads files)."""
    from sklearn.utils import estimator_checks

    getattr(estimator_checks, check)("TransferClassifier", TransferClassifier(backbone="resnet18"))
