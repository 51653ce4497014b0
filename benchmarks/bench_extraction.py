"""Embedding extraction throughput: transferkit from image files vs bare MobileNetV2 forward passes.

transferkit side (the whole user path, timed from the PNG files on disk to the embeddings):
``load_image_folder(folder)`` + ``extract_embeddings(bb, ds, batch_size=64, cache=False)`` with
``bb = load_backbone("mobilenet_v2")`` (backbone loading and one warm-up pass excluded).

Bare references, each on pre-made, pre-processed tensors (decoding and resizing NOT timed, so they
are upper bounds for any path that starts from files): MobileNetV2 ImageNet-1k V1 with the
classifier removed (1280-d pooled output, what transferkit extracts), batch 64, 224x224,
  * plain torch fp32 — the tutorial code: ``model.eval(); with torch.no_grad(): model(x)``
  * torch fp32 channels_last + ``torch.inference_mode()``
  * ONNX Runtime fp32 (CPUExecutionProvider) on a ``torch.onnx.export`` of the same model; its
    outputs are checked against torch to 1e-4.
Same threads everywhere: ``torch.set_num_threads(2)``, ORT ``intra_op_num_threads=2``.

Every contender gets warm-up batches that are not timed, then R timed rounds (full: 5, quick: 1),
interleaved (order alternating round by round) so that load from other processes hits all of
them alike; the median round of each is reported (best round in the notes). A round is the whole
folder for transferkit and all pre-made batches for the bare paths, except the (slow) plain
torch path, which times its first two batches. Target: transferkit / fastest bare >= 0.9.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks import _common as c
from benchmarks import datasets

NAME = "extraction"
TITLE = "Embedding extraction throughput (MobileNetV2, CPU)"
TARGET_RATIO = 0.9
ATOL = 1e-4
PLAIN_BATCHES = 2


def _export_onnx(model, example, path: Path) -> str:
    """Export with the TorchScript exporter (``dynamo=False``): the default dynamo exporter of
    torch >= 2.9 needs ``onnxscript``, which is not a dependency. Falls back to dynamo if the
    legacy exporter is gone. Returns a description of the exporter used."""
    import torch

    kwargs = dict(
        input_names=["input"],
        output_names=["embedding"],
        dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=17,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        try:
            torch.onnx.export(model, (example,), str(path), dynamo=False, **kwargs)
            return f"torch.onnx.export(dynamo=False), opset {kwargs['opset_version']}"
        except TypeError:
            torch.onnx.export(model, (example,), str(path), dynamo=True, **kwargs)
            return "torch.onnx.export(dynamo=True)"


def _ort_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = c.NUM_THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _bare_contenders(model, batches, tmp: Path):
    """name -> (label, run_one_batch(i) -> ndarray). Inputs are converted beforehand."""
    import torch

    plain = model

    def run_plain(i):
        with torch.no_grad():
            return plain(batches[i]).numpy()

    cl_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    cl_batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]

    def run_cl(i):
        with torch.inference_mode():
            return cl_model(cl_batches[i]).numpy()

    onnx_path = tmp / "mobilenet_v2.onnx"
    exporter = _export_onnx(model, batches[0][:1], onnx_path)
    sess = _ort_session(onnx_path)
    np_batches = [b.numpy() for b in batches]

    def run_ort(i):
        return sess.run(None, {"input": np_batches[i]})[0]

    contenders = {
        "torch_fp32": ("plain torch fp32 (tutorial code)", run_plain),
        "torch_channels_last": ("torch fp32 channels_last + inference_mode", run_cl),
        "onnxruntime_fp32": ("ONNX Runtime fp32", run_ort),
    }
    return contenders, exporter


class _TransferkitSide:
    def __init__(self, folder: Path):
        load_backbone, load_image_folder, extract_embeddings = c.import_transferkit_api(
            "transferkit.backbones.load_backbone",
            "transferkit.data.load_image_folder",
            "transferkit.modalities.extract_embeddings",
        )
        self.folder = folder
        self._load_image_folder = load_image_folder
        self._extract = extract_embeddings
        self.bb = load_backbone("mobilenet_v2")
        self.last = None
        self.last_ds = None

    def run_once(self) -> float:
        t0 = time.perf_counter()
        ds = self._load_image_folder(self.folder)
        res = self._extract(self.bb, ds, batch_size=c.BATCH_SIZE, cache=False)
        seconds = time.perf_counter() - t0
        self.last, self.last_ds = res, ds
        return seconds


def _compare_embeddings(tk_side, files, ref_emb: np.ndarray) -> dict:
    """Shape/dtype checks, and closeness to the torchvision reference when the order is known."""
    res = tk_side.last
    emb = np.asarray(res.embeddings)
    out = {
        "shape": list(emb.shape),
        "dtype": str(emb.dtype),
        "finite": bool(np.isfinite(emb).all()),
    }
    if emb.shape != ref_emb.shape:
        raise RuntimeError(
            f"transferkit embeddings have shape {emb.shape}, expected {ref_emb.shape}"
        )
    # map transferkit's sample order to ours if the dataset exposes its file paths
    ds = tk_side.last_ds
    paths = None
    for attr in ("paths", "files", "samples"):
        val = getattr(ds, attr, None)
        if val is not None and len(val) == len(files):
            paths = [Path(p[0] if isinstance(p, (tuple, list)) else p) for p in val]
            break
    if paths is not None:
        try:
            index = {Path(f).resolve(): i for i, f in enumerate(files)}
            order = [index[p.resolve()] for p in paths]
        except (KeyError, TypeError):
            order = None
        if order is not None:
            ref = ref_emb[order]
            cos = np.sum(emb * ref, 1) / (
                np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12
            )
            out["max_abs_diff_vs_torchvision_reference"] = float(np.abs(emb - ref).max())
            out["min_cosine_vs_torchvision_reference"] = float(cos.min())
    return out


class _LogCapture:
    """Collect transferkit's log records (e.g. why it fell back from ONNX Runtime to torch)."""

    def __init__(self):
        import logging

        self.messages: list[str] = []
        self._logger = logging.getLogger("transferkit")
        self._handler = logging.Handler(level=logging.INFO)
        self._handler.emit = lambda record: self.messages.append(
            f"{record.levelname}: {record.getMessage()}"
        )
        self._old_level = self._logger.level

    def __enter__(self):
        import logging

        self._logger.addHandler(self._handler)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._old_level)


def run(quick: bool) -> dict:
    import torch

    n_images = 128 if quick else 512
    rounds = 1 if quick else 5
    warmup_batches = 2

    torch.set_num_threads(c.NUM_THREADS)
    folder = datasets.write_fashion_test_folder(n_images)
    files, _ = datasets.list_folder_images(folder)
    x = c.load_preprocessed(files)  # pre-made tensors for the bare passes (not timed)
    batches = list(x.split(c.BATCH_SIZE))
    model = c.load_mobilenet_v2_embedder()
    # the tutorial path is ~10x slower than the others and only feeds an "info" ratio: time it
    # on PLAIN_BATCHES batches per round; every other side covers all images every round
    per_round = {"torch_fp32": min(PLAIN_BATCHES, len(batches))}

    notes, data = [], {"quick": quick, "n_images": n_images, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="tk-bench-extract-") as tmp:
        contenders, exporter = _bare_contenders(model, batches, Path(tmp))
        labels = {name: label for name, (label, _) in contenders.items()}

        # correctness: every bare path computes the same embeddings (first batch)
        ref_first = contenders["torch_fp32"][1](0)
        diffs = {
            k: float(np.abs(fn(0) - ref_first).max())
            for k, (_, fn) in contenders.items()
            if k != "torch_fp32"
        }
        data["max_abs_diff_vs_plain_torch"] = diffs
        if diffs["onnxruntime_fp32"] > ATOL:
            raise RuntimeError(
                f"ONNX Runtime output differs from torch by {diffs['onnxruntime_fp32']:.2e} "
                f"(> {ATOL}): the export is wrong, its timing would be meaningless"
            )
        notes.append(
            f"ONNX export: {exporter}; max |ORT - torch| = {diffs['onnxruntime_fp32']:.1e}, "
            f"max |channels_last - torch| = {diffs['torch_channels_last']:.1e} (tolerance {ATOL})"
        )

        # transferkit side: set up + one untimed warm-up pass over the same folder
        tk_error, tk = None, None
        with _LogCapture() as logs:
            try:
                tk = _TransferkitSide(folder)
                data["transferkit_cold_seconds"] = tk.run_once()
            except Exception as exc:
                tk, tk_error = None, exc
        data["transferkit_log"] = logs.messages[:20]

        for _label, fn in contenders.values():
            torch.set_num_threads(c.NUM_THREADS)
            for _ in range(warmup_batches):
                fn(0)

        def time_bare(name, fn):
            torch.set_num_threads(c.NUM_THREADS)  # in case transferkit changed it
            k = per_round.get(name, len(batches))
            t0 = time.perf_counter()
            outs = [fn(i) for i in range(k)]
            rates[name].append(sum(len(b) for b in batches[:k]) / (time.perf_counter() - t0))
            return outs

        rates = {name: [] for name in contenders}
        tk_rates, tk_reported = [], []
        ref_emb = None
        sides = list(contenders) + ["transferkit"]
        for r in range(rounds):
            # interleave the sides and alternate their order so bursts of load from other
            # processes fall on all of them alike
            for name in sides if r % 2 == 0 else sides[::-1]:
                if name != "transferkit":
                    outs = time_bare(name, contenders[name][1])
                    if name == "torch_channels_last":
                        ref_emb = np.concatenate(outs)  # all images, torchvision preprocessing
                elif tk is not None and tk_error is None:
                    try:
                        torch.set_num_threads(c.NUM_THREADS)
                        tk_rates.append(n_images / tk.run_once())
                        tk_reported.append(float(tk.last.seconds))
                    except Exception as exc:
                        tk_error = exc
        del contenders

    med = {name: statistics.median(r) for name, r in rates.items()}
    best = {name: max(r) for name, r in rates.items()}
    fastest = max(med, key=med.get)
    data["reference_images_per_second"] = {
        k: {
            "median": med[k],
            "best": best[k],
            "rounds": v,
            "images_per_round": len(batches[0]) * per_round.get(k, len(batches)),
        }
        for k, v in rates.items()
    }
    data["fastest_reference"] = fastest
    data["statistic"] = "median over interleaved rounds"

    def label(name):
        return f"vs {labels[name]}" + (" — fastest bare" if name == fastest else "")

    rows = []
    if tk_error is None and tk_rates:
        tk_med, tk_best = statistics.median(tk_rates), max(tk_rates)
        runtime = str(getattr(tk.last, "runtime", "?"))
        data["transferkit"] = {
            "runtime": runtime,
            "median": tk_med,
            "best": tk_best,
            "rounds": tk_rates,
            "reported_seconds": tk_reported,
            "torch_threads_after": torch.get_num_threads(),
            "embeddings": _compare_embeddings(tk, files, ref_emb),
        }
        rows.append(
            c.row(f"images/s, transferkit from PNG files (runtime `{runtime}`)", f"{tk_med:.1f}")
        )
        for name in med:
            ratio = tk_med / med[name]
            is_fastest = name == fastest
            rows.append(
                c.row(
                    label(name),
                    f"{tk_med:.1f}",
                    f"{med[name]:.1f}",
                    f"{ratio:.2f}",
                    f"≥ {TARGET_RATIO}" if is_fastest else "—",
                    c.verdict(ratio >= TARGET_RATIO) if is_fastest else "info",
                )
            )
        notes.append(
            "best round instead of median: transferkit "
            f"{tk_best:.1f} img/s, "
            + ", ".join(f"{labels[k]} {best[k]:.1f}" for k in best)
            + f" (ratio to the fastest {tk_best / max(best.values()):.2f})"
        )
        notes.append(
            f"transferkit runtime: `{runtime}`; cold first pass (not timed) "
            f"{data['transferkit_cold_seconds']:.1f} s; res.seconds per round: "
            + ", ".join(f"{s:.2f}" for s in tk_reported)
        )
        emb_info = data["transferkit"]["embeddings"]
        if "min_cosine_vs_torchvision_reference" in emb_info:
            notes.append(
                "transferkit embeddings vs torchvision-preprocessed reference: min cosine "
                f"{emb_info['min_cosine_vs_torchvision_reference']:.4f}, max |diff| "
                f"{emb_info['max_abs_diff_vs_torchvision_reference']:.2e}"
            )
    else:
        err = tk_error or RuntimeError("no transferkit round ran")
        data["transferkit_error"] = c.short_error(err, 2000)
        for name in med:
            is_fastest = name == fastest
            rows.append(
                c.row(
                    label(name),
                    c.short_error(err) if is_fastest else "—",
                    f"{med[name]:.1f}",
                    target=f"≥ {TARGET_RATIO}" if is_fastest else "—",
                    status=c.unavailable_status(err) if is_fastest else "—",
                )
            )
    if data["transferkit_log"]:
        notes.append("transferkit log: " + " / ".join(data["transferkit_log"][:5]))
    notes.append(
        f"{n_images} Fashion-MNIST test images (28x28 PNG -> RGB 224x224), batch {c.BATCH_SIZE}, "
        f"{c.NUM_THREADS} threads, {warmup_batches} warm-up batches per bare path and one "
        f"warm-up pass for transferkit, then {rounds} interleaved round(s); images/s = median "
        f"over rounds; bare paths start from pre-made tensors (plain torch: "
        f"{per_round['torch_fp32']} batches per round), transferkit from the files"
    )
    if quick:
        notes.append("QUICK run: few images and one round — smoke test, not the acceptance number")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
