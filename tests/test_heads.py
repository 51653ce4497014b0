"""The contract every head keeps, parametrised over ``transferkit.heads.HEADS``.

In the spirit of sklearn's ``parametrize_with_checks``: a head added to the registry gets this
whole suite for free. The only per-head knowledge here is a list of bad configurations
(``BAD_PARAMS``, which a new head must add an entry to) and, for the linear heads, the sklearn
model the span trick must reproduce (``REFERENCE``).
"""

from __future__ import annotations

import functools
import json
from dataclasses import fields

import numpy as np
import pytest
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from transferkit.errors import BadInputError, NotFittedError
from transferkit.heads import DEFAULT_HEAD, HEADS, Head, head_class, make_head
from transferkit.heads.base import softmax
from transferkit.heads.linear import _LinearHead, cv_splits, power_normalize

NAMES = list(HEADS)
LINEAR = [n for n, cls in HEADS.items() if issubclass(cls, _LinearHead)]


# -- data -------------------------------------------------------------------------------------
def blobs(
    n_classes: int,
    per_class,
    dim: int,
    *,
    seed: int = 0,
    test_per_class: int = 5,
    separation: float = 1.0,
):
    """Gaussian clusters (unit noise around N(0, separation²) centres): separable in 64+
    dimensions at the default separation, overlapping below it.

    ``per_class`` is an int or one count per class. Returns train X, y and test X, y drawn
    from the same centres.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * separation
    counts = [per_class] * n_classes if np.isscalar(per_class) else list(per_class)
    y = np.repeat(np.arange(n_classes), counts)
    yt = np.repeat(np.arange(n_classes), test_per_class)
    X = centres[y] + rng.normal(size=(len(y), dim))
    Xt = centres[yt] + rng.normal(size=(len(yt), dim))
    return X.astype(np.float32), y, Xt.astype(np.float32), yt


DATA = {
    "binary": blobs(2, 10, 64, seed=1),
    "multiclass": blobs(5, 6, 128, seed=2),
    "wide": blobs(12, 3, 1280, seed=3),  # the real shape: few examples, backbone-sized vectors
}


def fast_params(cls: type[Head]) -> dict:
    """A small C grid and 3 folds for heads that cross-validate: keeps the suite fast."""
    names = {f.name for f in fields(cls.Config)}
    params = {}
    if "Cs" in names:
        params["Cs"] = (0.1, 10.0)
    if "cv" in names:
        params["cv"] = 3
    return params


def new_head(name: str) -> Head:
    return make_head(name, **fast_params(HEADS[name]))


_FITTED: dict[tuple[str, str], Head] = {}


def fitted(name: str, data: str) -> Head:
    """A head fitted on ``DATA[data]`` with seed 0, fitted once per session (do not mutate)."""
    key = (name, data)
    if key not in _FITTED:
        X, y, _, _ = DATA[data]
        _FITTED[key] = new_head(name).fit(X, y, seed=0)
    return _FITTED[key]


# -- construction and configuration -----------------------------------------------------------
def test_registry_and_default():
    assert DEFAULT_HEAD in HEADS
    for name, cls in HEADS.items():
        assert cls.name == name and issubclass(cls, Head)
        assert head_class(name) is cls


@pytest.mark.parametrize("name", NAMES)
def test_default_config_is_valid_and_json_serialisable(name):
    head = make_head(name)
    params = head.get_params()
    json.dumps(params)
    # sklearn manners: the params rebuild an equal head
    assert type(head)(**params).get_params() == params
    # and survive a JSON round trip (tuples come back as lists)
    assert type(head)(**json.loads(json.dumps(params))).get_params() == params


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self(name):
    X, y, _, _ = DATA["binary"]
    head = new_head(name)
    assert head.fit(X, y) is head
    assert head.n_classes_ == 2


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_use_before_fit_raises_not_fitted(name, method):
    X = DATA["binary"][0]
    with pytest.raises(NotFittedError, match="Call 'fit'") as info:
        getattr(make_head(name), method)(X)
    # sklearn's NotFittedError is both
    assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    assert HEADS[name].__name__ in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_get_state_before_fit_raises_not_fitted(name):
    with pytest.raises(NotFittedError, match="fit"):
        make_head(name).get_state()


# -- predictions ------------------------------------------------------------------------------
@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("name", NAMES)
def test_separable_clusters_are_learned(name, data):
    X, y, Xt, yt = DATA[data]
    head = fitted(name, data)
    n_classes = int(y.max()) + 1
    assert head.n_classes_ == n_classes
    pred = head.predict(Xt)
    assert pred.shape == (len(Xt),) and np.issubdtype(pred.dtype, np.integer)
    assert (pred == yt).mean() >= 0.9
    assert (head.predict(X) == y).mean() >= 0.9


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("name", NAMES)
def test_predict_proba_is_a_distribution_matching_predict(name, data):
    _, _, Xt, _ = DATA[data]
    head = fitted(name, data)
    proba = head.predict_proba(Xt)
    assert proba.shape == (len(Xt), head.n_classes_)
    assert np.isfinite(proba).all()
    assert (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(proba.argmax(axis=1), head.predict(Xt))
    scores = head.decision_function(Xt)
    assert scores.shape == proba.shape
    np.testing.assert_array_equal(scores.argmax(axis=1), head.predict(Xt))


@pytest.mark.parametrize("name", NAMES)
def test_prediction_accepts_lists_and_float64(name):
    _, _, Xt, _ = DATA["binary"]
    head = fitted(name, "binary")
    expected = head.predict(Xt)
    np.testing.assert_array_equal(head.predict(Xt.astype(np.float64)), expected)
    np.testing.assert_array_equal(head.predict(Xt.tolist()), expected)


# -- persistence ------------------------------------------------------------------------------
@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_through_json_and_safetensors(name, data):
    _, _, Xt, _ = DATA[data]
    head = fitted(name, data)
    config, arrays = head.get_state()
    assert config["name"] == name and config["n_classes"] == head.n_classes_
    assert set(arrays) == set(type(head).state_arrays)
    for key, arr in arrays.items():
        assert type(arr) is np.ndarray, key
        assert arr.dtype in (np.float32, np.int64), (key, arr.dtype)
        assert arr.flags.c_contiguous, key
    # exactly what a bundle does: config as JSON, arrays as safetensors
    config2 = json.loads(json.dumps(config))
    arrays2 = st_load(st_save(arrays))
    loaded = head_class(config2["name"]).from_state(config2, arrays2)
    assert type(loaded) is type(head)
    assert loaded.get_params() == head.get_params()
    np.testing.assert_array_equal(loaded.predict(Xt), head.predict(Xt))
    np.testing.assert_array_equal(loaded.predict_proba(Xt), head.predict_proba(Xt))


@pytest.mark.parametrize("name", NAMES)
def test_from_state_with_missing_arrays_is_refused(name):
    config, arrays = fitted(name, "binary").get_state()
    first = type(fitted(name, "binary")).state_arrays[0]
    arrays = {k: v for k, v in arrays.items() if k != first}
    with pytest.raises(BadInputError, match=f"lacks arrays.*{first}.*re-train"):
        HEADS[name].from_state(config, arrays)


@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize("name", NAMES)
def test_from_state_refuses_a_config_that_disagrees_with_the_arrays(name, data):
    """A wrong n_classes was a shape error (or a silently dropped class) at predict time."""
    config, arrays = fitted(name, data).get_state()
    stored = config["n_classes"]
    for wrong in (stored - 1, stored + 1):
        with pytest.raises(BadInputError, match=f"scores {stored} classes but .* is {wrong}"):
            HEADS[name].from_state({**config, "n_classes": wrong}, arrays)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_state(name):
    X, y, _, _ = DATA["multiclass"]
    _, first = fitted(name, "multiclass").get_state()
    _, again = new_head(name).fit(X, y, seed=0).get_state()
    assert set(first) == set(again)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)


# -- groups (several views of one example) ----------------------------------------------------
def _two_views(data: str, seed: int = 7):
    """Each training example plus a slightly perturbed second view, and the pairing groups."""
    X, y, Xt, yt = DATA[data]
    rng = np.random.default_rng(seed)
    X2 = np.vstack([X, X + 0.1 * rng.normal(size=X.shape).astype(np.float32)])
    y2 = np.concatenate([y, y])
    groups = np.concatenate([np.arange(len(y)), np.arange(len(y))])
    return X2, y2, groups, Xt, yt


@pytest.mark.parametrize("name", NAMES)
def test_groups_of_views_are_accepted(name):
    X, y, groups, Xt, yt = _two_views("multiclass")
    head = new_head(name)
    assert head.fit(X, y, seed=0, groups=groups) is head
    assert (head.predict(Xt) == yt).mean() >= 0.9


@pytest.mark.parametrize("name", NAMES)
def test_groups_of_the_wrong_length_are_refused(name):
    X, y, groups, _, _ = _two_views("binary")
    with pytest.raises(BadInputError, match=rf"{len(y)} labels but {len(y) - 1} groups"):
        new_head(name).fit(X, y, groups=groups[:-1])


def test_cv_splits_never_separate_the_views_of_one_example():
    _, y, groups, _, _ = _two_views("multiclass")
    folds = cv_splits(y, groups, max_folds=5, seed=0)
    assert folds is not None and len(folds) == 5  # 6 examples per class, 5 folds at most
    for train, val in folds:
        assert not set(groups[train]) & set(groups[val])
        assert set(y[val]) == set(y)  # stratified: every class is validated on


def test_cv_splits_give_up_when_a_class_has_one_example():
    y = np.array([0, 1, 1, 1, 2, 2, 2])
    assert cv_splits(y, None, max_folds=5, seed=0) is None
    # two views of the single example are still one example
    y2 = np.concatenate([y, y])
    groups = np.concatenate([np.arange(len(y)), np.arange(len(y))])
    assert cv_splits(y2, groups, max_folds=5, seed=0) is None


# -- tiny classes ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_class_with_a_single_example_still_fits(name):
    X, y, Xt, yt = blobs(3, [1, 6, 6], 64, seed=4)
    head = new_head(name).fit(X, y)
    assert head.n_classes_ == 3
    proba = head.predict_proba(Xt)
    assert proba.shape == (len(Xt), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    big = yt > 0
    assert (head.predict(Xt[big]) == yt[big]).mean() >= 0.9
    if name in LINEAR:
        assert head.info_["cv_folds"] == 0  # no CV possible: the grid's middle C is used
        assert head.info_["C"] in head.config.Cs
    # the same with two views of each example
    Xv = np.vstack([X, X])
    yv = np.concatenate([y, y])
    groups = np.concatenate([np.arange(len(y)), np.arange(len(y))])
    assert new_head(name).fit(Xv, yv, groups=groups).n_classes_ == 3


# -- bad input ---------------------------------------------------------------------------------
def _bad_inputs():
    X, y, _, _ = DATA["binary"]
    nan = X.copy()
    nan[3, 5] = np.nan
    inf = X.copy()
    inf[0, 0] = np.inf
    return {
        "one class only": (X, np.zeros(len(y), dtype=np.int64), "at least two classes"),
        "NaN embeddings": (nan, y, "NaN"),
        "infinite embeddings": (inf, y, "infinity"),
        "X/y length mismatch": (X, y[:-1], rf"{len(X)} embeddings but {len(y) - 1} labels"),
        "2-D labels": (X, y[:, None], r"1-D array of class indices; got \(20, 1\)"),
        "1-D X": (X[0], y[:1], r"2-D array.*\(64,\)"),
        "3-D X": (X[:, :, None], y, "2-D array"),
        "negative labels": (X, y - 1, "non-negative class indices"),
        "float labels": (X, y.astype(np.float64), "non-negative class indices"),
        "a class index without examples": (X, y * 2, r"class.*\b1\b.*no examples"),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("name", NAMES)
def test_bad_training_input_is_refused_with_a_message(name, case):
    X, y, message = BAD_INPUTS[case]
    with pytest.raises(BadInputError, match=message):
        new_head(name).fit(X, y)


@pytest.mark.parametrize("name", NAMES)
def test_bad_prediction_input_is_refused_with_a_message(name):
    head = fitted(name, "binary")
    Xt = DATA["binary"][2].copy()
    with pytest.raises(BadInputError, match="2-D array"):
        head.predict(Xt[0])
    Xt[1, 2] = np.nan
    with pytest.raises(BadInputError, match="NaN"):
        head.predict_proba(Xt)


# per head: configurations that must be refused, with a fragment of the message
BAD_PARAMS: dict[str, list[tuple[dict, str]]] = {
    "linear": [
        ({"C": 0.0}, "C must be > 0"),
        ({"C": -1.0}, "C must be > 0"),
    ],
    "logistic": [
        ({"Cs": (0.0, 1.0)}, "Cs must be positive"),
        ({"Cs": (-1.0,)}, "Cs must be positive"),
        ({"Cs": ()}, "Cs must be positive"),
        ({"cv": 1}, "cv must be at least 2"),
    ],
    "svm": [
        ({"Cs": (1.0, 0)}, "Cs must be positive"),
        ({"Cs": ()}, "Cs must be positive"),
        ({"cv": 0}, "cv must be at least 2"),
    ],
    "knn": [
        ({"k": 0}, "k must be at least 1"),
        ({"k": -3}, "k must be at least 1"),
    ],
    "centroid": [
        ({"temperature": 0}, "temperature must be > 0"),
        ({"temperature": -0.5}, "temperature must be > 0"),
    ],
}


def test_every_head_lists_its_bad_configurations():
    missing = set(HEADS) - set(BAD_PARAMS)
    assert not missing, f"add the refused configurations of {sorted(missing)} to BAD_PARAMS"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [(n, p, m) for n, cases in BAD_PARAMS.items() for p, m in cases],
)
def test_bad_configuration_is_refused_at_construction(name, params, message):
    with pytest.raises(BadInputError, match=message):
        make_head(name, **params)


@pytest.mark.parametrize(("typo", "meant"), [("logistc", "logistic"), ("svn", "svm")])
def test_unknown_head_name_lists_choices_and_suggests(typo, meant):
    with pytest.raises(BadInputError) as info:
        make_head(typo)
    message = str(info.value)
    assert repr(typo) in message
    for name in HEADS:
        assert name in message
    assert f"Did you mean '{meant}'?" in message
    assert info.value.exit_code == 2


def test_unknown_head_name_without_a_close_match_has_no_suggestion():
    with pytest.raises(BadInputError, match="choose one of") as info:
        head_class("gradient-boosting")
    assert "Did you mean" not in str(info.value)


# -- the linear heads' span trick --------------------------------------------------------------
def _logistic_reference(C, head):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=head.config.max_iter, tol=1e-10)


def _svm_reference(C, head):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=C, max_iter=20000)


# the sklearn model each linear head must match when fitted directly in the full space
REFERENCE = {"logistic": _logistic_reference, "svm": _svm_reference}


def _tight_logistic(monkeypatch):
    """Make the head's lbfgs converge tightly: at the default tol (1e-4) both the head and the
    reference stop ~1e-3 short of the optimum in probability, which would hide a real error of
    the change of basis of that size."""
    import sklearn.linear_model as lm

    monkeypatch.setattr(
        lm, "LogisticRegressionCV", functools.partial(lm.LogisticRegressionCV, tol=1e-10)
    )
    monkeypatch.setattr(
        lm, "LogisticRegression", functools.partial(lm.LogisticRegression, tol=1e-10)
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize("name", LINEAR)
def test_span_trick_matches_fitting_in_the_full_space(name, data, monkeypatch):
    assert name in REFERENCE, f"add the full-space sklearn model of '{name}' to REFERENCE"
    X, y, Xt, _ = DATA[data]
    assert len(X) < X.shape[1]  # the trick is in use
    reference_model = REFERENCE[name]
    if name == "logistic":
        _tight_logistic(monkeypatch)
    # the C that cross-validation chose; refitting with a grid of just that C keeps this fast
    C = fitted(name, data).info_["C"]
    assert fitted(name, data).info_["cv_folds"] >= 2
    head = make_head(name, **{**fast_params(HEADS[name]), "Cs": (C,)}).fit(X, y, seed=0)
    assert head.info_["C"] == C

    mean = power_normalize(X).mean(axis=0)
    Z = (power_normalize(X) - mean).astype(np.float64)
    Zt = (power_normalize(Xt) - mean).astype(np.float64)
    ref = reference_model(C, head).fit(Z, y)
    scores = ref.decision_function(Zt)
    if scores.ndim == 1:  # binary: one logit for class 1
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    ref_proba = ref.predict_proba(Zt) if hasattr(ref, "predict_proba") else softmax(scores)

    np.testing.assert_allclose(head.mean_, mean, atol=1e-6)
    np.testing.assert_allclose(head.predict_proba(Xt), ref_proba, atol=1e-4)
    np.testing.assert_array_equal(head.predict(Xt), ref.predict(Zt))
    # the weights stored are the full-space ones
    assert head.coef_.shape[1] == X.shape[1]
    np.testing.assert_allclose(head.coef_, ref.coef_, atol=1e-3)


@pytest.mark.parametrize("name", LINEAR)
def test_linear_weights_lie_in_the_span_of_the_training_examples(name):
    X, _, _, _ = DATA["multiclass"]
    head = fitted(name, "multiclass")
    Z = (power_normalize(X) - head.mean_).astype(np.float64)
    _, _, vt = np.linalg.svd(Z, full_matrices=False)
    coef = head.coef_.astype(np.float64)
    residual = coef - (coef @ vt.T) @ vt
    assert np.abs(residual).max() <= 1e-5 * max(1.0, np.abs(coef).max())


@pytest.mark.parametrize("name", LINEAR)
def test_linear_heads_without_the_span_trick(name):
    """More examples than dimensions: fitted directly, still learns."""
    X, y, Xt, yt = blobs(3, 20, 16, seed=5)
    assert len(X) > X.shape[1]
    head = new_head(name).fit(X, y)
    assert head.coef_.shape == (3, 16)
    assert (head.predict(Xt) == yt).mean() >= 0.9


def test_standardized_head_ignores_the_scale_and_offset_of_each_dimension():
    """What MFCC statistics need: energy in the hundreds next to deltas near zero must not
    decide the fit; a standardised head gives the same model whatever each dimension's units."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    X = rng.normal(size=(90, 8)) + np.eye(3, 8)[y] * 1.5
    units = rng.uniform(0.01, 500, size=8), rng.uniform(-300, 300, size=8)
    rescaled = X * units[0] + units[1]
    a = make_head("logistic", standardize=True).fit(X.astype(np.float32), y, seed=0)
    b = make_head("logistic", standardize=True).fit(rescaled.astype(np.float32), y, seed=0)
    pa, pb = a.predict_proba(X.astype(np.float32)), b.predict_proba(rescaled.astype(np.float32))
    np.testing.assert_allclose(pa, pb, atol=2e-3)
    plain = make_head("logistic").fit(rescaled.astype(np.float32), y, seed=0)
    assert np.abs(plain.predict_proba(rescaled.astype(np.float32)) - pb).max() > 0.05
    config, arrays = b.get_state()
    assert {"center", "scale"} <= set(arrays) and "center" not in plain.get_state()[1]
    again = type(b).from_state(config, arrays)
    np.testing.assert_allclose(again.predict_proba(rescaled.astype(np.float32)), pb, rtol=1e-5)


# -- sample weights ----------------------------------------------------------------------------
WEIGHTED = [n for n, cls in HEADS.items() if cls.accepts_sample_weight]


def _small_weights(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Whole-number weights 1..3, one per row."""
    return np.random.default_rng(seed).integers(1, 4, size=len(y))


def _one_c(name: str) -> dict:
    """The head's fast parameters with a single C (no cross-validation), where it has a grid."""
    params = fast_params(HEADS[name])
    return {**params, "Cs": (1.0,)} if "Cs" in params else params


@pytest.mark.parametrize("name", NAMES)
def test_sample_weight_is_taken_or_refused_naming_the_heads_that_take_it(name):
    X, y, Xt, _ = DATA["multiclass"]
    if name not in WEIGHTED:
        with pytest.raises(BadInputError, match=f"the '{name}' head does not take sample") as e:
            new_head(name).fit(X, y, sample_weight=np.ones(len(y)))
        assert f"heads that do: {', '.join(sorted(WEIGHTED))}" in str(e.value)
        return
    ones = new_head(name).fit(X, y, sample_weight=np.ones(len(y)), seed=0)
    unweighted = fitted(name, "multiclass").predict_proba(Xt)
    np.testing.assert_allclose(ones.predict_proba(Xt), unweighted, atol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", WEIGHTED)
def test_whole_number_weights_count_as_repeated_rows(name, monkeypatch):
    _tight_logistic(monkeypatch)
    X, y, Xt, _ = DATA["multiclass"]
    w = _small_weights(y)
    weighted = make_head(name, **_one_c(name)).fit(X, y, sample_weight=w, seed=0)
    repeated = make_head(name, **_one_c(name)).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.predict_proba(Xt), repeated.predict_proba(Xt), atol=1e-4)


def _softmax_reference(C, head):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=head.config.max_iter, tol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("data", ["binary", "multiclass"])
@pytest.mark.parametrize("name", [*LINEAR, "linear"])
def test_weighted_fit_matches_sklearns_weighted_model(name, data, monkeypatch):
    """At the same C, a weighted head predicts what sklearn's own model fitted with the same
    ``sample_weight`` predicts (on the head's normalised embeddings; raw ones for ``linear``)."""
    _tight_logistic(monkeypatch)
    X, y, Xt, _ = DATA[data]
    w = _small_weights(y, seed=1) / 2  # fractional weights too
    head = make_head(name, **_one_c(name)).fit(X, y, sample_weight=w, seed=0)
    C = head.info_["C"]
    if name == "linear":
        Z, Zt, reference = X.astype(np.float64), Xt.astype(np.float64), _softmax_reference
    else:
        mean = np.average(power_normalize(X), axis=0, weights=w)
        Z = (power_normalize(X) - mean).astype(np.float64)
        Zt = (power_normalize(Xt) - mean).astype(np.float64)
        reference = REFERENCE[name]
    ref = reference(C, head).fit(Z, y, sample_weight=w)
    scores = ref.decision_function(Zt)
    if scores.ndim == 1:  # binary: one logit for class 1
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    ref_proba = ref.predict_proba(Zt) if hasattr(ref, "predict_proba") else softmax(scores)
    np.testing.assert_allclose(head.predict_proba(Xt), ref_proba, atol=1e-4)
    unweighted = make_head(name, **_one_c(name)).fit(X, y, seed=0)
    assert np.abs(unweighted.predict_proba(Xt) - ref_proba).max() > 1e-3  # the weights mattered


def _cross_validated_c(name, Z, y, w, folds, grid) -> float:
    """The C a weighted cross-validation picks, fold by fold with sklearn's models and metrics:
    each fold trains on its weighted rows and is scored by their weighted log-loss (logistic)
    or accuracy (svm); ties go to the first C, as sklearn's searches do."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.svm import LinearSVC

    means = []
    for C in grid:
        scores = []
        for train, test in folds:
            if name == "logistic":
                model = LogisticRegression(C=C, max_iter=3000, tol=1e-10)
                model.fit(Z[train], y[train], sample_weight=w[train])
                p = model.predict_proba(Z[test])
                scores.append(-log_loss(y[test], p, sample_weight=w[test], labels=model.classes_))
            else:
                model = LinearSVC(C=C, max_iter=20000).fit(Z[train], y[train], w[train])
                scores.append(
                    accuracy_score(y[test], model.predict(Z[test]), sample_weight=w[test])
                )
        means.append(np.mean(scores))
    return grid[int(np.argmax(means))]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", LINEAR)
def test_cross_validation_of_c_weights_each_fold(name, monkeypatch):
    _tight_logistic(monkeypatch)
    X, y, _, _ = blobs(3, 12, 24, seed=2, separation=0.5)  # overlapping: C matters
    w = np.random.default_rng(0).choice([0.05, 1.0, 8.0], size=len(y))
    grid = (0.001, 0.01, 0.1, 1.0, 10.0)
    head = make_head(name, Cs=grid, cv=3).fit(X, y, sample_weight=w, seed=0)
    Z = power_normalize(X) - np.average(power_normalize(X), axis=0, weights=w)
    folds = cv_splits(y, None, 3, 0)
    expected = _cross_validated_c(name, Z.astype(np.float64), y, w, folds, grid)
    assert head.info_["C"] == expected
    # and the weights changed the choice: the unweighted scores pick another C
    assert (
        _cross_validated_c(name, Z.astype(np.float64), y, np.ones(len(y)), folds, grid) != expected
    )


def test_centroids_are_weighted_means():
    X, y, _, _ = DATA["multiclass"]
    w = _small_weights(y, seed=2).astype(float)
    head = make_head("centroid").fit(X, y, sample_weight=w)
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    for c in range(5):
        mean = (w[y == c, None] * Z[y == c]).sum(axis=0) / w[y == c].sum()
        np.testing.assert_allclose(head.centroids_[c], mean / np.linalg.norm(mean), atol=1e-6)


BAD_WEIGHTS = {
    "wrong length": (lambda y: np.ones(len(y) - 1), "one weight per row"),
    "two columns": (lambda y: np.ones((len(y), 2)), "one weight per row"),
    "negative": (lambda y: np.r_[-1.0, np.ones(len(y) - 1)], "finite and >= 0"),
    "nan": (lambda y: np.r_[np.nan, np.ones(len(y) - 1)], "finite and >= 0"),
    "a class weighs nothing": (lambda y: (y != 1).astype(float), r"index\(es\) \[1\] have a total"),
}


@pytest.mark.parametrize("case", list(BAD_WEIGHTS))
@pytest.mark.parametrize("name", WEIGHTED)
def test_bad_sample_weights_are_refused_with_a_message(name, case):
    X, y, _, _ = DATA["multiclass"]
    make_weights, message = BAD_WEIGHTS[case]
    with pytest.raises(BadInputError, match=message):
        new_head(name).fit(X, y, sample_weight=make_weights(y))
