"""``transferkit export MODEL --format onnx [--quantize int8] [--out DIR] [--data DIR]``, and
``--format peft|adapterhub`` for an adapter bundle's adapter."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def add_parser(sub, *, column_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``export`` sub-command to ``sub`` (``column_options`` adds the CLI's
    --text-col / --path-col / --label-col, shared with the other commands)."""
    x = sub.add_parser(
        "export",
        help="export a model bundle to one ONNX graph (backbone + head), checked against it",
        description="Write MODEL (a bundle, RUN/model) as one ONNX graph with the files its "
        "inputs need and export.json (labels, preprocessing outside the graph, parity, size, "
        "latency), for `transferkit predict` without torch (pip install 'transferkit[runtime]') "
        "and `transferkit serve`. The graph must match the bundle's probabilities within 1e-4 "
        "on the bundle's held-out examples: the run's test folder, or --data DIR. With "
        "--format peft or adapterhub, it writes instead the adapter of a `--strategy adapter` "
        "bundle as peft's save_pretrained or AdapterHub's save_adapter would.",
    )
    x.add_argument("model", metavar="MODEL", help="bundle directory (RUN/model)")
    x.add_argument(
        "--format",
        choices=("onnx", "peft", "adapterhub"),
        default="onnx",
        help="onnx (default: backbone + head as one graph); peft or adapterhub: the adapter of "
        "a `--strategy adapter` bundle as those libraries save one (peft: LoRA; adapterhub: "
        "LoRA, houlsby, pfeiffer), for the base model on the Hugging Face Hub; the head stays "
        "in the bundle",
    )
    x.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="int8: static for convolutional graphs (calibrated on half the held-out examples, "
        "judged on the other half), dynamic for transformers; kept only if held-out accuracy "
        "drops by at most 0.5 points (else refused, exit 2, nothing written)",
    )
    x.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output folder (default MODEL-onnx[-int8], MODEL-peft, MODEL-adapterhub)",
    )
    x.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="labelled held-out examples to check the graph on (required when the run drew its "
        "test split at random; default: the run's test folder)",
    )
    x.add_argument(
        "--weights",
        metavar="PATH",
        default=None,
        help="the backbone's pretrained weight file, if not installed",
    )
    column_options(x)


def run(args) -> int:
    from transferkit.export import export_model

    if args.format != "onnx":
        return _run_adapter(args)
    result = export_model(
        args.model,
        out=args.out,
        quantize=args.quantize,
        data=args.data,
        weights=args.weights,
        text_col=args.text_col,
        label_col=args.label_col,
        path_col=args.path_col,
    )
    print(json.dumps(result.summary(), ensure_ascii=False))
    return 0


def _run_adapter(args) -> int:
    from transferkit.errors import BadInputError
    from transferkit.export.adapter_files import export_adapter

    for flag, value in (("--quantize", args.quantize), ("--data", args.data)):
        if value is not None:
            raise BadInputError(
                f"{flag} is for --format onnx; --format {args.format} writes the adapter's own "
                "tensors, unchanged and unchecked against held-out examples"
            )
    result = export_adapter(args.model, args.format, out=args.out, weights=args.weights)
    print(json.dumps(result.summary(), ensure_ascii=False))
    return 0
