"""The ``gap`` sub-command's arguments and run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def add_parser(
    sub,
    *,
    common: Callable[[argparse.ArgumentParser], None],
    column_options: Callable[..., None],
) -> None:
    """Add ``gap`` to ``sub`` (``common``/``column_options``: the CLI's shared options)."""
    g = sub.add_parser(
        "gap",
        help="how far apart two domains are, and where (proxy A-distance, map, examples)",
        description="Embed SOURCE (labelled) and TARGET (inputs; labels, if any, unused) with a "
        "frozen backbone and write OUT/gap.json and OUT/gap.html: the proxy A-distance (0: a "
        "linear classifier cannot tell the domains apart, 2: it always can), each source "
        "class's mix with the target on the embedding map, and the source examples most and "
        "least like the target.",
    )
    g.add_argument("source", metavar="SOURCE", help="labelled data of the source domain")
    g.add_argument("target", metavar="TARGET", help="inputs of the target domain (file/folder)")
    g.add_argument("--backbone", default=None, help="backbone (default: the data's default)")
    g.add_argument("--out", metavar="DIR", default="gap", help="where to write (default gap)")
    g.add_argument("--seed", type=int, default=0, help="seed of the subsamples and folds")
    column_options(g)
    common(g)


def run(args, *, progress: bool) -> int:
    from transferkit.domain_gap import run_gap

    summary = run_gap(
        args.source,
        args.target,
        out=args.out,
        backbone=args.backbone,
        weights=args.weights,
        seed=args.seed,
        batch_size=args.batch_size or 64,
        cache=not args.no_cache,
        progress=progress,
        strict=args.strict,
        runtime=args.runtime,
        columns={"text_col": args.text_col, "label_col": args.label_col, "path_col": args.path_col},
    )
    print(json.dumps(summary, ensure_ascii=False))
    return 0
