"""``adapt``: DEV against pytorch-adapt's formula, the chooser on synthetic shifts (it must pick
a method that helps and refuse one that harms), and ``--method`` resolution."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import BadInputError
from transferkit.heads import make_head
from transferkit.strategies.adapt.base import DomainEmbeddings, HeadTrainingSet
from transferkit.strategies.adapt.strategy import (
    ChooserConfig,
    candidates,
    choose_method,
    resolve_method,
)
from transferkit.strategies.adapt.validator import (
    SOURCE_ONLY,
    Validation,
    choose,
    dev_risk,
    estimated_accuracy,
    example_folds,
)
from transferkit.strategies.features import TrainingEmbeddings

CLASSES = 4


def _pytorch_adapt_dev_risk(weight, error):
    """pytorch_adapt.validators.deep_embedded_validator.get_dev_risk (normalization=None), as
    written there (from the DEV authors' code), on (N, 1) arrays."""
    weight, error = weight[:, None], error[:, None]
    weighted_error = weight * error
    cov = np.cov(np.concatenate((weighted_error, weight), axis=1), rowvar=False)[0][1]
    var_w = np.var(weight, ddof=1)
    eta = -cov / var_w
    return np.mean(weighted_error) + eta * np.mean(weight) - eta


def test_dev_risk_is_pytorch_adapts_and_reduces_to_the_mean_for_equal_weights():
    rng = np.random.default_rng(0)
    for _ in range(5):
        w = rng.gamma(2.0, 0.5, 300)
        loss = rng.random(300) < 0.3
        assert dev_risk(w, loss) == pytest.approx(_pytorch_adapt_dev_risk(w, loss.astype(float)))
    loss = rng.random(50) < 0.2
    assert dev_risk(np.ones(50), loss) == pytest.approx(loss.mean())


def test_uncovered_target_mass_counts_at_chance():
    wrong = np.zeros(100)
    # a domain classifier that always tells the rows from the target: nothing is covered
    acc, coverage = estimated_accuracy(np.full(100, 0.01), wrong, 1.0, n_classes=4)
    assert coverage == 0 and acc == pytest.approx(0.25)
    # at chance (0.5): all is covered, and the accuracy is DEV's
    w = np.random.default_rng(1).gamma(4.0, 0.25, 100)
    wrong = np.random.default_rng(2).random(100) < 0.2
    acc, coverage = estimated_accuracy(w, wrong, 0.5, n_classes=4)
    assert coverage == 1.0 and acc == pytest.approx(1 - dev_risk(w, wrong))
    # half covered: half DEV's, half chance
    acc, coverage = estimated_accuracy(w, wrong, 0.75, n_classes=4)
    assert coverage == 0.5 and acc == pytest.approx(0.5 * (1 - dev_risk(w, wrong)) + 0.5 * 0.25)


def _domains(seed: int, shift: float, n: int = 50, dim: int = 24):
    """Four Gaussian classes; the target: the same classes scaled per dimension and moved."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1.0, (CLASSES, dim))
    ys = np.repeat(np.arange(CLASSES), n)
    xs = means[ys] + rng.normal(0, 0.6, (len(ys), dim))
    yt = np.repeat(np.arange(CLASSES), n)
    scale = rng.uniform(0.3, 2.5, dim) if shift else np.ones(dim)
    xt = (means[yt] + rng.normal(0, 0.6, (len(yt), dim))) * scale + shift * rng.normal(0, 1, dim)
    source = TrainingEmbeddings(
        X=xs.astype(np.float32), y=ys, groups=None, rows=np.arange(len(ys)), n_train=len(ys),
        info={},
    )  # fmt: skip
    return DomainEmbeddings(source=source, target=xt.astype(np.float32)), yt


def _target_accuracy(prepared: HeadTrainingSet, emb, yt) -> float:
    head = make_head()
    head.fit(prepared.X, prepared.y, sample_weight=prepared.weight, groups=prepared.groups)
    return float((head.predict(emb.target) == yt).mean())


def _flip_labels(emb, seed):
    """A method that harms: it trains the head on wrong labels."""
    return HeadTrainingSet(X=emb.source.X, y=(emb.source.y + 1) % CLASSES)


def _coral():
    return candidates()["coral"]().prepare


def test_the_validator_picks_a_method_that_helps_on_a_shift():
    emb, yt = _domains(0, shift=12.0)
    methods = {"coral": _coral(), "harm": _flip_labels}
    choice, prepared = choose_method(emb, methods, make_head, seed=0, margin=0.02)
    scores = {v.name: v.dev_accuracy for v in choice.validations}
    assert choice.chosen == "coral", choice.reason
    assert scores["coral"] > scores[SOURCE_ONLY] + 0.2 and scores["coral"] > scores["harm"]
    # and it was right to: on the target's own labels, coral beats source-only
    plain = HeadTrainingSet(X=emb.source.X, y=emb.source.y)
    assert _target_accuracy(prepared, emb, yt) > _target_accuracy(plain, emb, yt) + 0.2
    record = choice.record()
    assert record["chosen"] == "coral" and not record["kept_source_only"]
    assert set(record["candidates"]) == {SOURCE_ONLY, "coral", "harm"}


def test_the_guard_refuses_a_method_that_harms_and_says_so():
    emb, yt = _domains(1, shift=0.0)  # one domain: nothing to adapt
    choice, prepared = choose_method(emb, {"harm": _flip_labels}, make_head, 0, 0.02)
    assert choice.chosen == SOURCE_ONLY and choice.guarded
    assert choice.reason.startswith("adaptation not expected to help: kept source-only")
    scores = {v.name: v.dev_accuracy for v in choice.validations}
    assert scores["harm"] < 0.3 < 0.8 < scores[SOURCE_ONLY]
    assert np.array_equal(prepared.y, emb.source.y)


def test_a_gain_below_the_margin_keeps_source_only():
    base = Validation(SOURCE_ONLY, dev_accuracy=0.80)
    close = Validation("coral", dev_accuracy=0.81)
    assert choose([base, close], margin=0.02).chosen == SOURCE_ONLY
    assert choose([base, close], margin=0.005).chosen == "coral"
    skipped = Validation("selftrain", skipped="cannot")
    choice = choose([base, skipped], margin=0.02)
    assert (
        choice.chosen == SOURCE_ONLY and "no adaptation method could be validated" in choice.reason
    )


def test_folds_keep_the_views_of_an_example_together_and_every_class_in_both():
    y = np.repeat(np.arange(3), 6)
    rows = np.r_[np.arange(18), np.arange(18)]  # each example and its mirror image
    source = TrainingEmbeddings(
        X=np.zeros((36, 2)), y=np.r_[y, y], groups=rows, rows=rows, n_train=18, info={}
    )
    masks = example_folds(source, seed=3)
    assert (masks[0] ^ masks[1]).all()
    for m in masks:
        assert set(source.y[m]) == {0, 1, 2}
        assert set(rows[m]).isdisjoint(rows[~m])


def test_too_few_examples_to_validate_keeps_source_only():
    emb, _ = _domains(2, shift=5.0, n=1)  # one example per class: no half has every class
    choice, _ = choose_method(emb, {"coral": _coral()}, make_head, 0, 0.02)
    assert choice.chosen == SOURCE_ONLY and "too few training examples" in choice.reason


def test_method_names_a_strategy_and_only_with_adapt():
    assert resolve_method("adapt", {"method": "coral", "augment": "none"}) == (
        "coral",
        {"augment": "none"},
    )
    assert resolve_method("adapt", {"method": "auto"}) == ("adapt", {"method": "auto"})
    # a labelled source domain is adaptation too (the issue's `--method tradaboost`)
    assert resolve_method("adapt", {"method": "tradaboost"}) == ("tradaboost", {})
    with pytest.raises(BadInputError, match="--method chooses the adaptation method of --strat"):
        resolve_method("features", {"method": "coral"})
    with pytest.raises(BadInputError, match="'features' is not an adaptation method"):
        resolve_method("adapt", {"method": "features"})
    with pytest.raises(BadInputError, match="use strategy='coral'"):
        ChooserConfig(method="coral")


def test_every_frozen_embedding_method_is_a_candidate():
    found = candidates()
    assert "coral" in found and "adapt" not in found
    assert all(not c.capabilities.trains_backbone for c in found.values())


def test_every_registered_method_is_validated_none_skipped():
    """Each candidate says which of its training rows are source rows (selftrain appends
    pseudo-labelled target rows), so the validator scores every one of them."""
    emb, _ = _domains(1, shift=12.0)
    methods = {name: cls().prepare for name, cls in candidates().items()}
    assert {"coral", "subspace", "selftrain", "importance", "kmm"} <= set(methods)
    choice, _ = choose_method(emb, methods, make_head, seed=0, margin=0.02)
    skipped = {v.name: v.skipped for v in choice.validations if v.skipped}
    assert not skipped
    assert all(v.dev_accuracy is not None for v in choice.validations)
