"""Install size of the torch-free runtime: `pip install transferkit[runtime]` vs the full stack.

Size: a fresh ``python -m venv`` in a temp dir, ``pip install 'REPO[runtime]'`` (the wheel built
from this checkout; dependencies from the machine's package registry), then ``du -sk`` of its
site-packages. The reference: the same for ``pip install 'REPO[train]'`` (what ``transferkit
train`` needs: torch, torchvision, scikit-learn...). Target: the runtime ≤ 1/10 of the full
environment. Quick mode skips the second install and compares with this checkout's ``.venv``
(the dev extra: train + runtime + the text, serving and Ray libraries, so bigger than [train]).

Use: a features model is trained here (Fashion-MNIST, 10 images per class, MobileNetV2, with a
separate test folder) and exported (``transferkit export``); the runtime venv — where importing
torch fails, checked — runs ``transferkit predict EXPORTED`` on the test images and must print
the same labels as ``transferkit predict BUNDLE`` here, probabilities within 1e-4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _common as c
from benchmarks import datasets

NAME = "runtime_size"
TITLE = "Runtime install size: pip install transferkit[runtime] (no torch) vs the training stack"
TARGET_RATIO = 0.10
TOLERANCE = 1e-4


def _venv(root: Path, extra: str) -> tuple[Path, float]:
    """A fresh venv at ``root`` with ``REPO[extra]`` installed; (its python, install seconds)."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    python = root / "bin" / "python"
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{c.REPO_ROOT}[{extra}]"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install .[{extra}] failed:\n{done.stderr[-2000:]}")
    return python, time.perf_counter() - t0


def _site_packages(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                               check=True).stdout.strip())  # fmt: skip


def _du_bytes(path: Path) -> int:
    """Disk usage of ``path`` as ``du -sk`` counts it, in bytes."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) * 1024


def _largest(site: Path, n: int = 6) -> list[tuple[str, int]]:
    """The ``n`` biggest entries of a site-packages folder: (name, bytes by ``du -sk``)."""
    entries = sorted(site.iterdir())
    out = subprocess.run(["du", "-sk", *map(str, entries)], capture_output=True, text=True)
    sizes = [(Path(path).name, int(kib) * 1024) for kib, path in
             (line.split("\t", 1) for line in out.stdout.splitlines())]  # fmt: skip
    return sorted(sizes, key=lambda item: -item[1])[:n]


def _packages(python: Path) -> list[str]:
    done = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    return sorted(p["name"].lower() for p in json.loads(done.stdout))


def _predict(command: list[str], model: Path, files: list[Path], env=None) -> list[dict]:
    """``transferkit predict MODEL FILES --top 10`` as JSON lines (env: None = this one's)."""
    done = subprocess.run(
        [*command, "predict", str(model), *map(str, files), "--top", "10"],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"predict {model} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def _use(tmp: Path, runtime_python: Path, quick: bool) -> dict:
    """Train, export, and predict with the bundle here and the export in the runtime venv."""
    train_dir, test_dir = datasets.write_fashion_folders(10, seed=0, n_test=50 if quick else 200)
    env = c.transferkit_env(cache_dir=tmp / "cache")
    run = tmp / "RUN"
    c.run_cli(
        ["train", train_dir, "--test", test_dir, "--out", run, "--backbone", "mobilenet_v2"]
        + ["--strategy", "features", "--no-progress"],
        env,
    )
    exported = tmp / "model-onnx"
    _, export_tail = c.run_cli(
        ["export", run / "model", "--out", exported, "--data", test_dir], env
    )
    files = sorted(test_dir.rglob("*.png"))
    bundle = _predict(c.transferkit_cli_command(), run / "model", files, env)
    runtime_cli = [str(runtime_python.parent / "transferkit")]
    # the runtime venv sees its own installed transferkit, not this checkout's src/
    lean = _predict(runtime_cli, exported, files, env={"PATH": os.defpath, "HOME": str(tmp)})
    torch_there = subprocess.run([str(runtime_python), "-c", "import torch"], capture_output=True)
    same = [a["label"] == b["label"] for a, b in zip(bundle, lean)]
    diff = max(
        abs(a["scores"][k] - b["scores"][k]) for a, b in zip(bundle, lean) for k in a["scores"]
    )
    return {
        "images": len(files),
        "same_labels": sum(same),
        "max_abs_diff": diff,
        "inputs_match": [a["input"] for a in bundle] == [b["input"] for b in lean],
        "torch_importable_in_runtime": torch_there.returncode == 0,
        "export_output": export_tail[-600:],
    }


def run(quick: bool) -> dict:
    data: dict = {"quick": quick}
    target = f"≤ {TARGET_RATIO:.2f}"
    notes = [
        "command: `python -m venv V && V/bin/pip install 'REPO[runtime]' && du -sk "
        "V/lib/python3.*/site-packages` (the same with [train] for the reference)",
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="tk-bench-runtime-") as name:
            tmp = Path(name)
            rt_python, rt_seconds = _venv(tmp / "venv-runtime", "runtime")
            rt_site = _site_packages(rt_python)
            rt_bytes = _du_bytes(rt_site)
            data["runtime"] = {"bytes": rt_bytes, "install_seconds": rt_seconds,
                               "packages": _packages(rt_python),
                               "largest": _largest(rt_site)}  # fmt: skip
            if quick:
                reference = "this checkout's .venv (dev extra)"
                full_bytes = _du_bytes(_site_packages(Path(sys.executable)))
            else:
                reference = "fresh venv, pip install 'REPO[train]'"
                full_python, full_seconds = _venv(tmp / "venv-train", "train")
                full_site = _site_packages(full_python)
                full_bytes = _du_bytes(full_site)
                data["train"] = {"bytes": full_bytes, "install_seconds": full_seconds,
                                 "packages": _packages(full_python),
                                 "largest": _largest(full_site)}  # fmt: skip
            data["reference"] = reference
            data["use"] = _use(tmp, rt_python, quick)
    except Exception as exc:
        data["error"] = c.short_error(exc, 2000)
        row = c.row("site-packages MB, runtime / full", c.short_error(exc), target=target,
                    status=c.unavailable_status(exc))  # fmt: skip
        return {"name": NAME, "title": TITLE, "rows": [row], "notes": notes, "data": data}

    ratio = rt_bytes / full_bytes
    use = data["use"]
    works = (
        use["same_labels"] == use["images"]
        and use["max_abs_diff"] <= TOLERANCE
        and use["inputs_match"]
        and not use["torch_importable_in_runtime"]
    )
    rows = [
        c.row(
            "site-packages MB: [runtime] / full environment",
            f"{rt_bytes / 1e6:.0f}",
            f"{full_bytes / 1e6:.0f} ({reference})",
            f"{ratio:.3f}",
            target,
            c.verdict(ratio <= TARGET_RATIO),
        ),
        c.row(
            f"predict EXPORTED in the runtime venv vs predict BUNDLE, {use['images']} images: "
            "same labels, max |Δ score|",
            f"{use['same_labels']}/{use['images']}, {use['max_abs_diff']:.1e}",
            "the bundle (torch)",
            "—",
            f"all, ≤ {TOLERANCE:g}, no torch",
            c.verdict(works),
        ),
    ]
    notes += [
        f"runtime venv: {len(data['runtime']['packages'])} packages "
        f"({', '.join(data['runtime']['packages'])}), pip install took "
        f"{rt_seconds:.0f} s; torch importable there: {use['torch_importable_in_runtime']}",
        "largest in the runtime venv: "
        + ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in data["runtime"]["largest"]),
        "the model: `transferkit train` Fashion-MNIST 10/class, mobilenet_v2, features, then "
        "`transferkit export RUN/model`; both predicts print --top 10 (every class)",
    ]
    if not quick:
        notes.append(
            f"[train] venv: {len(data['train']['packages'])} packages; largest: "
            + ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in data["train"]["largest"])
        )
    if quick:
        notes.append("QUICK run: the reference is the dev .venv, not a fresh [train] install")
    return {"name": NAME, "title": TITLE, "rows": rows, "notes": notes, "data": data}
