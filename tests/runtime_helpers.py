"""Exported folders built in the tests: a tiny torch model exported to ONNX and an export.json
sealed as the format says (written here, independently of the code under test)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

# what `pip install transferkit[runtime]` leaves out (the train extra, and the text, serve and
# scale libraries): blocked in the subprocesses that prove the runtime needs none of it
NOT_IN_RUNTIME = (
    *("torch", "torchvision", "sklearn", "safetensors", "onnx", "tqdm", "rich"),
    *("transformers", "huggingface_hub", "pyarrow", "wordllama"),
    *("fastapi", "uvicorn", "starlette", "prometheus_client", "ray"),
)


def seal(document: dict) -> dict:
    """``document`` with ``export_sha256``: sha256 of its canonical JSON (keys sorted, compact)."""
    body = {k: v for k, v in document.items() if k != "export_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {**body, "export_sha256": hashlib.sha256(canonical.encode("ascii")).hexdigest()}


def write_folder(folder: Path, document: dict, files: dict[str, bytes]) -> Path:
    """Write ``files`` and a sealed export.json listing their sha256."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    (folder / "export.json").write_text(json.dumps(seal({**document, "files": digests})))
    return folder


def onnx_bytes(
    module: nn.Module,
    example: tuple,
    input_names: list[str],
    tmp: Path,
    varying: dict[int, str] | None = None,
) -> bytes:
    """``module`` exported as the exported folder's graph: outputs probabilities, embedding;
    the batch axis of every input varies, and ``varying`` axes too (tokens, windows)."""
    varying = {n: {0: "batch", **(varying or {})} for n in input_names}
    path = tmp / "graph.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            input_names=input_names,
            output_names=["probabilities", "embedding"],
            dynamic_axes={**varying, "probabilities": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path.read_bytes()


class TinyImageNet(nn.Module):
    """uint8 pixels -> /255 -> conv -> mean -> embedding (4) -> softmax head."""

    def __init__(self, n_classes: int):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 5, stride=3)
        self.head = nn.Linear(4, n_classes)

    def forward(self, pixels):
        embedding = self.conv(pixels.float() / 255.0).mean(dim=(2, 3))
        return torch.softmax(self.head(embedding) * 20.0, dim=1), embedding


class TinyTextNet(nn.Module):
    """token ids + mask -> embedding table -> masked mean -> softmax head."""

    def __init__(self, vocab: int, n_classes: int):
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(vocab, 6)
        self.head = nn.Linear(6, n_classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        embedding = (self.table(input_ids) * mask).sum(dim=1) / mask.sum(dim=1)
        return torch.softmax(self.head(embedding) * 5.0, dim=1), embedding


IMAGE_LABELS = ["cat", "dog", "bird"]
IMAGE_INPUTS = {"kind": "image", "input_size": 32, "resize_size": 40, "interpolation": "bilinear"}


def image_folder(folder: Path, tmp: Path, **changes) -> Path:
    """A tiny exported image model (32x32 crops of a 40-pixel resize)."""
    size = IMAGE_INPUTS["input_size"]
    example = (torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8),)
    graph = onnx_bytes(TinyImageNet(len(IMAGE_LABELS)), example, ["pixels"], tmp)
    document = {
        "format": "transferkit-export",
        "format_version": 1,
        "modality": "image",
        "labels": IMAGE_LABELS,
        "inputs": {**IMAGE_INPUTS, "names": ["pixels"]},
        "outputs": {"probabilities": [None, len(IMAGE_LABELS)], "embedding": [None, 4]},
        **changes,
    }
    return write_folder(folder, document, {"model.onnx": graph})


# what the runtime extra installs (import names), besides numpy and Pillow, the base
RUNTIME_PACKAGES = ("numpy", "PIL", "onnxruntime", "tokenizers", "soundfile", "soxr")
RUNTIME_PACKAGES += ("charset_normalizer", "transferkit")

# Two fences: the training stack is blocked outright, and an import made by transferkit's own code
# of anything but the standard library and the runtime extra fails as it would in that install.
_FENCE = """
import builtins, sys
for _m in {blocked!r}:
    sys.modules[_m] = None
_allowed = set({allowed!r}) | set(sys.stdlib_module_names)
_import = builtins.__import__

def _fenced(name, globals=None, locals=None, fromlist=(), level=0):
    caller = (globals or {{}}).get("__name__") or ""
    top = name.split(".")[0]
    if level == 0 and caller.startswith("transferkit") and top not in _allowed:
        raise ModuleNotFoundError(f"No module named {{top!r}} (fenced off)", name=top)
    return _import(name, globals, locals, fromlist, level)

builtins.__import__ = _fenced
"""


def run_blocked(code: str, *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python that imports as a ``pip install transferkit[runtime]``
    environment would: the training stack fails to import, and so does anything else outside
    the standard library and the runtime extra that transferkit's code asks for."""
    prelude = _FENCE.format(blocked=NOT_IN_RUNTIME, allowed=RUNTIME_PACKAGES)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def cli_code(argv: list[str]) -> str:
    """Python code that runs ``transferkit ARGV`` and exits with its code."""
    return f"import sys\nfrom transferkit.cli import main\nsys.exit(main({argv!r}))\n"
