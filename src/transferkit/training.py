"""One training run end to end: data → split → fit → evaluate → bundle, metrics.json, report.html.

This is what ``transferkit train`` does; it lives here (not in the CLI) so Python users and the
benchmarks get exactly the same run.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from transferkit.errors import BadInputError
from transferkit.learning_curve import CHEAP_LEARNING_CURVE_MAX_TRAIN


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise BadInputError(f"{name} must be a fraction in [0, 1); got {value}")


def train_run(
    data: str | Path,
    out: str | Path,
    *,
    test: str | Path | None = None,
    backbone: str | None = None,
    strategy: str = "features",
    head: str | None = None,
    weights: str | Path | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    val_size: float | None = None,
    baseline: bool = False,
    resume: bool = False,
    settings: dict[str, Any] | None = None,
    cv: int | None = None,
    learning_curve: bool | None = None,
    text_col: str | None = None,
    label_col: str | None = None,
    path_col: str | None = None,
    target: str | Path | None = None,
    source: str | Path | None = None,
    target_test: str | Path | None = None,
    accept_licence: bool = False,
    budget: float | None = None,
    **classifier_params: Any,
) -> dict[str, Any]:
    """Train, evaluate and write RUN/model, RUN/metrics.json, RUN/report.html; return a summary.

    Strategies that train the backbone keep the validation split apart (early stopping) when it
    is worth it (``val_size`` None: every class has 10 examples in it; 0: never) and
    checkpoint into ``out`` after every epoch; ``resume=True`` continues from that checkpoint.
    ``baseline=True`` also trains the same architecture from scratch and adds the verdict.
    ``cv=K`` adds K-fold cross-validated accuracy of DATA (mean ± std, 95 % interval).
    ``learning_curve`` (accuracy against examples per class): None draws it when it is cheap.
    ``backbone=None`` picks the default for the data's modality, ``backbone="auto"`` ranks the
    offline candidates on the training data and takes the winner (``metrics["ranking"]``);
    ``text_col`` / ``label_col`` name the columns of a text table, ``path_col`` / ``label_col``
    those of a table of audio clips (found by their usual names otherwise). ``target``:
    unlabelled inputs of the domain the model will see (a file or a folder), for strategies
    that adapt to it; ``source``: labelled data of another domain with the same classes as
    DATA (a folder or a table), for strategies that learn from one (``tradaboost``).
    ``target_test``: a few labelled target examples, on which source-only (fitted too) and
    the adapted model are compared (``metrics["target_test"]``); a labelled ``target`` serves
    as both, its labels unused for training. ``strategy="adapt"`` with
    ``strategy_params={"method": NAME}`` runs the strategy NAME. A backbone whose weights are
    for non-commercial use only is refused unless ``accept_licence`` (``--backbone auto`` skips
    it as a candidate). ``budget``: the minutes ``strategy="auto"`` may spend, which weighs the
    costlier strategies on evidence from the training data (``auto_evidence``; None: its
    default) and refuses any other strategy.
    """
    from transferkit.atomic import write_json_atomic
    from transferkit.data import check_split_classes
    from transferkit.estimator import TransferClassifier
    from transferkit.modalities import get_modality, load_dataset
    from transferkit.report import write_report
    from transferkit.run_folder import prepare_run_folder, publish_run
    from transferkit.strategies import FitData, check_fit_data, strategy_class
    from transferkit.strategies.adapt.strategy import resolve_method

    started = time.perf_counter()
    if strategy == "auto":
        from transferkit.auto_evidence import DEFAULT_BUDGET_MINUTES, check_budget

        budget = check_budget(DEFAULT_BUDGET_MINUTES if budget is None else budget)
    elif budget is not None:
        raise BadInputError(
            f"--budget limits the time --strategy auto spends weighing strategies; the "
            f"{strategy} strategy was named. Drop --budget, or use --strategy auto."
        )
    if backbone not in (None, "auto"):
        from transferkit.backbones.licence import check_licence_accepted

        check_licence_accepted(backbone, accept_licence)  # before any work is done with it
    strategy, own = resolve_method(strategy, dict(classifier_params.get("strategy_params") or {}))
    if "strategy_params" in classifier_params:
        classifier_params["strategy_params"] = own
    prepare_run_folder(out)  # before any work: a run that cannot be written is not trained
    from transferkit.strategies.finetune import AUTO_VAL_SHARE, validation_too_small

    _check_fraction("test_size", test_size)
    if val_size is not None:
        _check_fraction("val_size", val_size)
    auto_val = val_size is None
    val_size = AUTO_VAL_SHARE if auto_val else val_size
    if test_size + val_size >= 1.0:
        raise BadInputError(
            f"test_size + val_size must leave data to train on; got {test_size} + {val_size}"
        )
    strict = bool(classifier_params.get("strict", False))
    columns = {"text_col": text_col, "label_col": label_col, "path_col": path_col}
    folders = _split_folders(data, test)
    full = load_dataset(folders.get("train", data), strict=strict, **columns)
    full.check_trainable()
    given_val = None
    if "val" in folders:
        # a validation folder is used as it is, whatever its size (as a test folder is); the
        # files it left out at load are reported with the training folder's
        given_val = load_dataset(folders["val"], strict=strict, **columns)
        full = replace(full, skipped=(*full.skipped, *given_val.skipped))
        auto_val = False
    test = folders.get("test", test)
    split_val = val_size if given_val is None else 0.0
    if cv:
        from transferkit.crossval import check_folds

        check_folds(full, cv)
    if test is not None:
        test_ds = load_dataset(test, strict=strict, **columns)
        get_modality(full.modality).report_overlap(full, test_ds)
        train_part, val_part, _ = full.split(test_size=0.0, val_size=split_val, seed=seed)
        split_info = {"test": str(test), "val_size": split_val, "seed": seed}
    else:
        train_part, val_part, test_ds = full.split(
            test_size=test_size, val_size=split_val, seed=seed
        )
        split_info = {"test_size": test_size, "val_size": split_val, "seed": seed}
    split_info["test_examples"] = _test_examples(
        test if test is not None else folders.get("train", data),
        None if test is not None else {"test_size": test_size, "val_size": split_val, "seed": seed},
        columns,
        test_ds,
    )
    if folders:
        parts = {"train": full, "val": given_val, "test": test_ds if "test" in folders else None}
        check_split_classes({role: part for role, part in parts.items() if part is not None})
        split_info["folders"] = {role: str(folder) for role, folder in folders.items()}
    if given_val is not None:
        val_part = given_val
    choice = weigh = None
    libraries_seconds = 0.0
    if "auto" in (backbone, strategy):
        # decided on the training data only (never the test set), before the validation split
        # is used or merged, since that depends on whether the strategy trains the backbone
        if strategy == "auto":
            from transferkit.auto_evidence import Weigher

            # the evidence holds out what the run itself would: fine-tuning's validation split
            # when it gets one, else nothing (cross-fit)
            watched = len(val_part) and not (
                val_size == 0 or (auto_val and validation_too_small(val_part, full.labels))
            )
            weigh = Weigher(
                train=train_part if watched else train_part.merge(val_part),
                val=val_part if watched else None,
                budget_minutes=budget,
                started=started,
                seed=seed,
                weights=weights,
                head=head,
                fit_params=classifier_params,
            )
        choose_started = time.perf_counter()
        choice = _choose(
            train_part.merge(val_part),
            backbone,
            strategy,
            weights,
            classifier_params,
            accept_licence,
            weigh,
        )
        backbone, strategy = choice.backbone, choice.strategy
        # what the user waited for before training: ranking, probes, auto's evidence fits;
        # importing the frozen check's head libraries is loading (seconds.load), as a fit
        # times it
        libraries_seconds = choice.load_seconds
        choose_seconds = time.perf_counter() - choose_started - libraries_seconds
        if settings is not None:
            # a resumed run continues the strategy chosen, not a new choice on other timings
            settings = {**settings, "strategy": strategy, "budget": None}
    capabilities = strategy_class(strategy).capabilities
    trains_backbone = capabilities.trains_backbone
    # before any training: a strategy that needs a target without one, or gets one it ignores
    check_fit_data(strategy, FitData(train=train_part, target=target, source=source))
    target, target_test = _target_data(target, target_test, strategy, full, strict, columns)
    fit_params = {} if target is None else {"target": target}
    if source is not None:
        from transferkit.strategies.source import source_like_training

        # refused here, before any embedding, when its kind or its classes differ from DATA's
        source_ds = load_dataset(source, strict=strict, **columns)
        fit_params["source"] = source_like_training(full, source_ds)
    if resume and not trains_backbone:
        raise BadInputError(
            f"--resume continues an interrupted fine-tuning run; the {strategy} strategy has no "
            "epochs to resume (it re-runs in seconds from the embedding cache)"
        )
    if resume and not (Path(out) / "checkpoint.safetensors").is_file():
        raise BadInputError(
            f"--resume {out}: there is no checkpoint.safetensors in it, so nothing to resume. "
            "Point --resume at the --out directory of an interrupted finetune/scratch run."
        )
    # strategies that watch a validation split (finetune, scratch) decide whether it is worth it
    engine = capabilities.uses_validation
    no_validation = engine and (
        val_size == 0 or (auto_val and validation_too_small(val_part, full.labels))
    )
    if engine and not no_validation:
        # early stopping watches the validation split
        train_ds, val_ds = train_part, val_part
    elif engine:
        # too few validation examples to choose epochs by: train on all, keep the last epoch
        train_ds, val_ds = train_part.merge(val_part), None
        params = dict(classifier_params.get("strategy_params") or {})
        classifier_params["strategy_params"] = {**params, "val_size": 0}
    else:
        # features and contrastive have no use for a separate validation set (the head picks
        # C by cross-validation; contrastive trains a fixed budget), so validation examples
        # are trained on rather than wasted
        train_ds, val_ds = train_part.merge(val_part), None

    out = Path(out)
    clf = TransferClassifier(
        backbone=backbone,
        strategy=strategy,
        head=head,
        weights=weights,
        seed=seed,
        checkpoint_dir=out if trains_backbone else None,
        resume=resume,
        **classifier_params,
    )
    if trains_backbone:
        out.mkdir(parents=True, exist_ok=True)
        if settings is not None and not resume:
            from transferkit.run_settings import write_settings

            write_settings(out, settings)
    taken = None
    if weigh is not None and val_ds is None and not fit_params and not resume:
        taken = weigh.take_fitted(strategy, train_ds)
    if taken is not None:
        # auto's probe of this strategy ran to its end on these examples with these settings:
        # that fit is this run's model (fitting the same again would double the wait)
        fitted = taken.classifier
        fitted.progress, fitted.checkpoint_dir = clf.progress, clf.checkpoint_dir
        clf = fitted
        choose_seconds -= taken.seconds  # counted once, as training (seconds.train)
    else:
        clf.fit(train_ds, val=val_ds, **fit_params)
    metrics, mistakes = clf.evaluate_details(test_ds)
    # what was held out for validation: nothing when it was trained on
    metrics["split"] = {**split_info, "val_size": split_info["val_size"] if val_ds else 0}
    metrics.update(clf.strategy_metrics_)
    if engine and "hyperparameters" in metrics:
        # the validation split is made here, so the fraction that counts is this one
        metrics["hyperparameters"] = {
            **metrics["hyperparameters"],
            "val_size": 0 if no_validation else val_size,
        }
    if choice is not None:
        metrics.update(choice.describe())
        if choice.ranking:
            metrics["ranking"] = choice.ranking
    if target_test is not None:
        metrics["target_test"] = _compare_on_target(
            clf, target_test, train_ds, val_ds, seed=seed, **classifier_params
        )
    embedding_map = _embedding_map(clf, test_ds, seed=seed)
    if embedding_map:
        metrics["embedding_map"] = embedding_map
    if cv:
        metrics["cv"] = _cross_validation(
            full, cv, clf, seed=seed, fit_params=fit_params, **classifier_params
        )
    if learning_curve is None:  # by default, whenever it costs only head fits on few examples
        # (with a source domain, every point would fit on all of the source as well; an
        # adaptation would be re-fitted, and re-validated, at every point)
        learning_curve = (
            not trains_backbone
            and source is None
            and not capabilities.needs_target
            and len(train_ds) <= CHEAP_LEARNING_CURVE_MAX_TRAIN
        )
    if learning_curve:
        metrics["learning_curve"] = _learning_curve(
            train_ds, test_ds, clf, seed=seed, fit_params=fit_params, **classifier_params
        )
    if baseline:
        metrics["baseline"] = _scratch_baseline(
            clf,
            train_ds,
            val_ds,
            test_ds,
            backbone=clf.backbone_.name,
            seed=seed,
            metrics=metrics,
            **classifier_params,
        )
    # every file left out: at load (the test set's are in metrics already), then any that
    # training still could not read
    skipped = [*full.skipped, *clf.skipped_]
    skipped = [[str(p), r] for p, r in skipped] + metrics.get("skipped_files", [])
    if skipped:
        metrics["skipped_files"] = skipped
    if choice is not None:
        metrics["seconds"]["choose"] = choose_seconds
    if libraries_seconds:
        metrics["seconds"]["load"] = metrics["seconds"].get("load", 0.0) + libraries_seconds
    metrics["seconds"]["total"] = time.perf_counter() - started

    # the results appear together, in one step (see run_folder)
    with publish_run(out, keep_resume=trains_backbone) as results:
        # the bundle keeps the numbers; the map's points are for the report (and metrics.json)
        bundle_metrics = {k: v for k, v in metrics.items() if k != "embedding_map"}
        clf.save(results / "model", metrics=bundle_metrics)
        write_json_atomic(results / "metrics.json", metrics)
        section = clf.strategy_.report_section(metrics)
        from transferkit.auto_evidence import auto_section

        write_report(
            results / "report.html",
            metrics,
            mistakes=mistakes[:24],
            title=f"transferkit — {Path(data).name}",
            sections=[s for s in (section, auto_section(metrics)) if s],
        )
    summary = {
        "out": str(out),
        "accuracy": round(metrics["accuracy"], 4),
        "macro_f1": round(metrics["macro_f1"], 4),
        "n_train": metrics["n_train"],
        "n_test": metrics["n_test"],
        "backbone": metrics["backbone"],
        "report": str(out / "report.html"),
    }
    if cv:
        summary["cv_accuracy"] = round(metrics["cv"]["mean_accuracy"], 4)
        summary["cv_ci95"] = [round(x, 4) for x in metrics["cv"]["ci95_accuracy"]]
    if baseline:
        summary["baseline"] = metrics["baseline"]["message"]
    return summary


def _target_data(target, target_test, strategy: str, full, strict: bool, columns: dict):
    """(--target's inputs, the labelled target examples to compare on, or None): from
    ``target_test``, or from a labelled ``target`` (whose labels then only serve that)."""
    from transferkit.strategies import STRATEGIES, strategy_class
    from transferkit.target_test import load_target, load_target_test

    if target_test is not None and not strategy_class(strategy).capabilities.needs_target:
        takers = [n for n, c in STRATEGIES.items() if c.capabilities.needs_target]
        raise BadInputError(
            f"--target-test compares source-only with an adapted model; the {strategy} strategy "
            f"does not adapt. Use --strategy {' or '.join(takers)} with --target."
        )
    if target is None:
        return None, None
    target, labelled = load_target(target, full, strict=strict, columns=columns)
    if target_test is not None:
        labelled = load_target_test(target_test, full, strict=strict, columns=columns)
    return target, labelled


def _compare_on_target(clf, target_test, train_ds, val_ds, *, seed: int, **classifier_params):
    """Fit source-only like ``clf`` (same backbone, head, seed, training data), then score both
    on the labelled target examples."""
    import dataclasses

    from transferkit.estimator import TransferClassifier
    from transferkit.strategies import strategy_class
    from transferkit.target_test import compare, source_only_strategy

    name = source_only_strategy(clf.strategy_.capabilities)
    fields = {f.name for f in dataclasses.fields(strategy_class(name).Config)}
    own = clf.strategy_.describe()["config"]
    params = {k: v for k, v in classifier_params.items() if k != "strategy_params"}
    source_only = TransferClassifier(
        backbone=clf.backbone_.name,
        strategy=name,
        strategy_params={k: v for k, v in own.items() if k in fields},
        head=clf.head_.name,
        weights=clf.weights,
        seed=seed,
        **params,
    )
    source_only.fit(train_ds, val=val_ds)
    return compare(clf, source_only, target_test)


def _test_examples(source, drawn: dict | None, columns: dict, test_ds) -> dict:
    """How to read this run's test examples again (``export`` checks its graph on them): the
    folder or table they came from, the draw that picked them from it (None: all of it), and
    a digest that tells whether what is read later is still the same examples."""
    return {
        "data": str(Path(source).resolve()),
        "drawn": drawn,
        "columns": {k: v for k, v in columns.items() if v is not None},
        "sha256": test_ds.identity_digest(),
    }


def _split_folders(data: str | Path, test: str | Path | None) -> dict[str, Path]:
    """DATA's train/, val/ and test/ folders when it is split into them (said in one log
    line), else {}; a test folder and ``--test`` together are refused."""
    import logging

    from transferkit.data import find_split_folders

    folders = find_split_folders(data)
    if not folders:
        return {}
    if test is not None and "test" in folders:
        raise BadInputError(
            f"{data} has its own test folder ({folders['test'].name}/) and --test {test} was "
            f"given too; pass one test set: drop --test, or pass {folders['train']} as DATA."
        )
    roles = {"train": "training", "val": "validation", "test": "test"}
    said = ", ".join(f"{folders[r].name}/ ({roles[r]})" for r in roles if r in folders)
    logging.getLogger("transferkit").info("%s holds split folders: using %s", data, said)
    return folders


def _embedding_map(clf, test_ds, *, seed: int) -> dict[str, Any] | None:
    """A 2-D t-SNE map of (a sample of) the test embeddings, or None if it cannot be drawn.

    A picture for the report: a failure here is logged and skipped, never the end of the run.
    """
    import logging

    import numpy as np

    from transferkit.report.embedding_map import embedding_map, project_2d, sample_indices

    try:
        ds = test_ds.with_labels(clf.labels_)
        part = ds.subset(sample_indices(ds.targets, seed=seed))
        emb = clf.transform(part)
        ok = ~np.isnan(emb).any(axis=1)
        if ok.sum() < 3:
            return None
        predicted = clf.head_.predict_proba(emb[ok]).argmax(axis=1)
        points = project_2d(emb[ok], seed=seed)
        return embedding_map(points, part.targets[ok], predicted, clf.labels_)
    except Exception as exc:  # noqa: BLE001 - a missing picture must not lose the run
        logging.getLogger("transferkit").warning("embedding map skipped: %s", exc)
        return None


def _choose(train_data, backbone, strategy, weights, classifier_params, accept_licence, weigh):
    from transferkit.auto_choice import choose
    from transferkit.progress import as_events

    keys = ("batch_size", "cache", "runtime")
    return choose(
        train_data,
        backbone,
        strategy,
        weights=weights,
        events=as_events(classifier_params.get("progress", True)),
        accept_licence=accept_licence,
        weigh=weigh,
        **{k: classifier_params[k] for k in keys if k in classifier_params},
    )


def _same_classifier(clf, seed: int, classifier_params: dict[str, Any]):
    """A factory of unfitted classifiers configured like the fitted ``clf`` (quietly)."""
    from transferkit.estimator import TransferClassifier

    params = {
        k: v for k, v in classifier_params.items() if k not in ("progress", "strategy_params")
    }
    strategy_params = clf.strategy_.describe()["config"]

    def make():
        return TransferClassifier(
            backbone=clf.backbone_.name,
            strategy=clf.strategy_.name,
            strategy_params=strategy_params,
            # the head asked for (a strategy may build another from it: tradaboost's vote)
            head=clf.head,
            weights=clf.weights,
            seed=seed,
            progress=False,
            **params,
        )

    return make


def _learning_curve(train_ds, test_ds, clf, *, seed: int, fit_params=None, **classifier_params):
    """``--learning-curve``: accuracy against examples per class, on cached embeddings."""
    from transferkit.learning_curve import learning_curve

    if clf.strategy_.capabilities.trains_backbone:
        raise BadInputError(
            f"--learning-curve retrains the model for every point; with --strategy "
            f"{clf.strategy_.name} that means training the backbone again and again. Use it "
            "with --strategy features."
        )
    params = dict(classifier_params)
    chosen_c = getattr(clf.head_, "info_", {}).get("C")
    # only heads that choose C from a grid (logistic, svm) have one to pin; ``linear`` has a
    # fixed C and no grid
    if chosen_c is not None and hasattr(getattr(clf.head_, "config", None), "Cs"):
        # the curve varies the data, not the model: every point keeps the regularisation chosen
        # on all the training data (as sklearn's learning_curve keeps its estimator), which
        # also spares a cross-validated grid search per point (~10x faster)
        params["head_params"] = {**(params.get("head_params") or {}), "Cs": (chosen_c,)}
    make = _same_classifier(clf, seed, params)
    return learning_curve(make, train_ds, test_ds, seed=seed, fit_params=fit_params)


def _cross_validation(full, folds: int, clf, *, seed: int, fit_params=None, **classifier_params):
    """``--cv``: the same backbone, strategy and head, K times on K stratified folds of DATA."""
    from transferkit.crossval import cross_validate

    if clf.strategy_.capabilities.trains_backbone:
        raise BadInputError(
            f"--cv retrains the model once per fold; with --strategy {clf.strategy_.name} that "
            "means training the backbone K times. Use it with --strategy features."
        )
    make = _same_classifier(clf, seed, classifier_params)
    return cross_validate(make, full, folds, seed=seed, fit_params=fit_params)


def _scratch_baseline(
    clf, train_part, val_part, test_ds, *, backbone, seed, metrics, **classifier_params
) -> dict[str, Any]:
    """Train the same architecture from random weights with the same epoch budget (or, for a
    modality whose reference is a hand-made encoder, that encoder with the same head)."""
    import logging

    from transferkit.baseline import baseline_section
    from transferkit.estimator import TransferClassifier
    from transferkit.finetune.config import FinetuneConfig
    from transferkit.modalities import get_modality

    params = dict(classifier_params)
    own = dict(params.pop("strategy_params", None) or {})
    recipe = get_modality(clf.backbone_.spec.modality).baseline
    if recipe.backbone is not None:
        return _reference_baseline(
            clf, recipe, train_part, val_part, test_ds, seed, metrics, params
        )
    epochs = int(own.get("epochs", FinetuneConfig.epochs))
    scratch_params = {"epochs": epochs}
    for key in ("batch_size", "augment", "patience", "val_size"):
        if key in own:
            scratch_params[key] = own[key]
    logging.getLogger("transferkit").info(
        "baseline: training %s from scratch for %d epochs", backbone, epochs
    )
    params.pop("head_params", None)
    scratch = TransferClassifier(
        backbone=backbone,
        strategy="scratch",
        strategy_params=scratch_params,
        seed=seed,
        **params,
    )
    scratch.fit(train_part, val=val_part)
    scratch_metrics = scratch.evaluate(test_ds)
    scratch_metrics["training"] = scratch.fit_info_.get("training")
    return baseline_section(metrics, scratch_metrics, strategy=clf.strategy_.name, epochs=epochs)


def _reference_baseline(
    clf, recipe, train_part, val_part, test_ds, seed, metrics, params
) -> dict[str, Any]:
    """A modality's hand-made reference (audio: MFCC statistics) with the same head, the same
    data."""
    from transferkit.baseline import baseline_section
    from transferkit.estimator import TransferClassifier

    params.pop("head_params", None)
    reference = TransferClassifier(
        backbone=recipe.backbone,
        strategy=recipe.strategy,
        head=clf.head_.name,
        seed=seed,
        **params,
    )
    reference.fit(train_part if val_part is None else train_part.merge(val_part))
    reference_metrics = reference.evaluate(test_ds)
    return baseline_section(
        metrics, reference_metrics, strategy=clf.strategy_.name, epochs=0, reference=recipe.backbone
    )
