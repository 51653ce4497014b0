"""ONNX export per modality: the exported model against its bundle, measured in the same run.

For each modality a ``features`` bundle is trained on a small real task with a test folder of
its own (so ``export`` finds the held-out examples the run recorded), then exported twice:
float (``transferkit export MODEL``) and int8 (``--quantize int8``). Measured:

- parity: ``export.json``'s max |probability difference| between the graph and the bundle on
  the test folder (target ≤ 1e-4), and whether the torch-free runtime
  (``transferkit.runtime.load_exported``) predicts the bundle's labels on the same inputs;
- size of ``model.onnx``, float and int8;
- latency, ms per example, end to end from files (or texts) to probabilities: the runtime on the
  exported folder vs the bundle's ``TransferClassifier.predict_proba`` (embedding cache off), at
  batch 1 (the first input, median of repeats) and batch 32 (the first 32 inputs);
- int8: the accuracy drop on the test folder that decides whether it is kept (≤ 0.5 points).

Tasks: image — MobileNetV2 on Fashion-MNIST, 10 per class (seed 0) + the first 200 official
test images (quick: 50); text — all-MiniLM-L6-v2 on Rotten Tomatoes, 16 per class (seed 0) +
the first 400 rows of the fixed test set (quick: 60); audio — aisfx on espeak-ng words (10
words x 8 voices x 3 speeds), trained on 6 voices, tested on the other 2 (quick: 3 words).
"""

from __future__ import annotations

import csv
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import _common as c

NAME = "export"
TITLE = "ONNX export: parity, size and latency against the bundle"
TOLERANCE = 1e-4
MAX_DROP = 0.5
TEST_VOICES = ("en-gb-x-rp_f2", "en-us-nyc_f4")


# ----------------------------------------------------------------------------- the tasks


def _image_task(tmp: Path, quick: bool):
    from benchmarks import datasets

    train, test = datasets.write_fashion_folders(10, seed=0, n_test=50 if quick else 200)
    return train, test, sorted(test.rglob("*.png"))


def _text_task(tmp: Path, quick: bool):
    from benchmarks import text_datasets

    train, full_test = text_datasets.write_task(16, seed=0)
    with open(full_test, newline="", encoding="utf-8") as fp:
        rows = list(csv.reader(fp))
    header, body = rows[0], rows[1 : 1 + (60 if quick else 400)]
    test = tmp / "test.csv"
    with open(test, "w", newline="", encoding="utf-8") as fp:
        csv.writer(fp).writerows([header, *body])
    return train, test, [r[header.index("text")] for r in body]


def _audio_task(tmp: Path, quick: bool):
    from benchmarks import audio_datasets

    words = audio_datasets.fetch_espeak_words()
    chosen = sorted(p for p in words.iterdir() if p.is_dir())[: 3 if quick else None]
    for word in chosen:
        for clip in sorted(word.glob("*.wav")):
            split = "test" if audio_datasets.espeak_group(clip) in TEST_VOICES else "train"
            dest = tmp / split / word.name / clip.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(clip, dest)
    return tmp / "train", tmp / "test", sorted((tmp / "test").rglob("*.wav"))


CASES = (
    ("image", "mobilenet_v2", _image_task),
    ("text", "all_minilm_l6_v2", _text_task),
    ("audio", "aisfx", _audio_task),
)


# ----------------------------------------------------------------------------- measuring


def _ms_per_example(predict, inputs: list, size: int, repeats: int) -> float:
    """Median wall ms per example of ``predict`` on the first ``size`` inputs (one warm-up)."""
    batch = [inputs[i % len(inputs)] for i in range(size)]
    predict(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict(batch)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / size


def _latencies(predict, inputs: list, quick: bool) -> dict[str, float]:
    return {
        "batch_1": _ms_per_example(predict, inputs, 1, 3 if quick else 7),
        "batch_32": _ms_per_example(predict, inputs, 32, 2 if quick else 3),
    }


def _measure(modality: str, backbone: str, make_task, quick: bool) -> dict:
    from transferkit.errors import BadInputError
    from transferkit.estimator import TransferClassifier
    from transferkit.export import export_model
    from transferkit.runtime import load_exported
    from transferkit.training import train_run

    with tempfile.TemporaryDirectory(prefix=f"tk-bench-export-{modality}-") as tmp:
        tmp = Path(tmp)
        train, test, inputs = make_task(tmp, quick)
        t0 = time.perf_counter()
        train_run(train, tmp / "run", test=test, backbone=backbone, strategy="features",
                  progress=False, learning_curve=False)  # fmt: skip
        out = {"n_inputs": len(inputs), "seconds_train": time.perf_counter() - t0}
        bundle = tmp / "run" / "model"
        t0 = time.perf_counter()
        exported = export_model(bundle)
        out["seconds_export"] = time.perf_counter() - t0
        out["float"] = exported.document
        t0 = time.perf_counter()
        try:
            out["int8"] = export_model(bundle, quantize="int8").document
        except BadInputError as exc:  # the gate refused it: the message has the measured drop
            out["int8_refused"] = str(exc)
        out["seconds_export_int8"] = time.perf_counter() - t0
        clf = TransferClassifier.load(bundle, progress=False, cache=False)
        runtime = load_exported(exported.path)
        expected, got = clf.predict_proba(inputs), runtime.predict_proba(inputs)[0]
        out["runtime_max_abs_diff"] = float(abs(expected - got).max())
        out["same_labels"] = int((expected.argmax(1) == got.argmax(1)).sum())
        out["latency_bundle"] = _latencies(clf.predict_proba, inputs, quick)
        out["latency_runtime"] = _latencies(lambda b: runtime.predict_proba(b), inputs, quick)
        if "int8" in out:
            quantized = load_exported(Path(f"{bundle}-onnx-int8"))
            out["latency_runtime_int8"] = _latencies(
                lambda b: quantized.predict_proba(b), inputs, quick
            )
        shutil.rmtree(tmp / "run", ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- rows


def _rows(modality: str, backbone: str, r: dict) -> list[dict]:
    doc, name = r["float"], f"{modality} ({backbone})"
    parity = doc["parity"]
    diff = parity["max_abs_diff_probabilities"]
    mb = doc["size_bytes"] / 1e6
    rows = [
        c.row(
            f"{name}: max |Δp| graph vs bundle, {parity['examples']} test examples",
            f"{diff:.1e}",
            target=f"≤ {TOLERANCE:g}",
            status=c.verdict(diff <= TOLERANCE),
        ),
        c.row(
            f"{name}: runtime labels = bundle labels ({r['n_inputs']} inputs)",
            f"{r['same_labels']}/{r['n_inputs']} (max |Δp| {r['runtime_max_abs_diff']:.1e})",
            target="all",
            status=c.verdict(r["same_labels"] == r["n_inputs"]),
        ),
    ]
    for size in ("batch_1", "batch_32"):
        rt, bd = r["latency_runtime"][size], r["latency_bundle"][size]
        rows.append(
            c.row(
                f"{name}: ms/example at {size.replace('_', ' ')}, runtime (float) vs bundle",
                f"{rt:.2f}",
                f"{bd:.2f}",
                f"{rt / bd:.2f}",
            )
        )
    if "int8" in r:
        q = r["int8"]["quantization"]
        q_mb = r["int8"]["size_bytes"] / 1e6
        rows.append(c.row(f"{name}: model.onnx MB, int8 vs float", f"{q_mb:.1f}", f"{mb:.1f}",
                          f"{q_mb / mb:.2f}"))  # fmt: skip
        rows.append(
            c.row(
                f"{name}: int8 accuracy drop, points ({q['examples']} test examples)",
                f"{q['drop_points']:.2f} ({q['accuracy_int8']:.4f} vs {q['accuracy_float']:.4f})",
                target=f"≤ {MAX_DROP:g} to keep",
                status="kept",
            )
        )
        for size in ("batch_1", "batch_32"):
            q_ms, f_ms = r["latency_runtime_int8"][size], r["latency_runtime"][size]
            rows.append(
                c.row(
                    f"{name}: ms/example at {size.replace('_', ' ')}, runtime int8 vs float",
                    f"{q_ms:.2f}",
                    f"{f_ms:.2f}",
                    f"{q_ms / f_ms:.2f}",
                )
            )
    else:
        rows.append(c.row(f"{name}: model.onnx MB (float)", f"{mb:.1f}"))
        rows.append(
            c.row(
                f"{name}: int8",
                r["int8_refused"][:160],
                target=f"≤ {MAX_DROP:g} points to keep",
                status="refused",
            )
        )
    return rows


def run(quick: bool) -> dict:
    c.use_repo_transferkit()
    rows, notes, data = [], [], {"quick": quick}
    for modality, backbone, make_task in CASES:
        try:
            result = _measure(modality, backbone, make_task, quick)
        except Exception as exc:  # one modality failing must not hide the others
            data[modality] = {"error": c.short_error(exc, 2000)}
            rows.append(c.row(f"{modality} ({backbone})", c.short_error(exc),
                              status=c.unavailable_status(exc)))  # fmt: skip
            continue
        data[modality] = result
        rows += _rows(modality, backbone, result)
        inputs = result["float"]["inputs"]
        notes.append(
            f"{modality}: train {result['seconds_train']:.0f} s, export "
            f"{result['seconds_export']:.0f} s (int8 {result['seconds_export_int8']:.0f} s); "
            "graph-only latency in export.json "
            f"{result['float']['latency_ms_per_example']}; inputs {inputs['names']}"
        )
    notes += [
        "latency: end to end from the input files (texts) to probabilities, decoding included, in "
        "this process; the bundle's image path already runs its backbone through ONNX Runtime "
        "(features/runtime.py), so the image rows compare the same network runtime",
        "int8: static QDQ for the convolutional graphs (image, aisfx's CNN: calibrated min/max "
        "on a seeded half of the test examples, at most 64, and judged on the rest; the first and "
        "last convolution, aisfx's spectrogram and the head stay float), dynamic for the "
        "transformer (judged on every test example); see each graph's method in export.json",
        f"machine load at the start: {os.getloadavg()[0]:.2f} (1 min average)",
    ]
    if quick:
        notes.append("QUICK run: small test sets — a smoke test, not the acceptance numbers")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
