"""Predict with an exported model (``transferkit export``) without torch.

``pip install 'transferkit[runtime]'`` (numpy, Pillow, ONNX Runtime, tokenizers, soundfile,
soxr, charset-normalizer) is all it needs: an import-linter contract keeps this package from
importing torch, torchvision, scikit-learn or transformers. Preprocessing outside the graph is
the training side's own code (``runtime.pixels`` and ``runtime.text`` are what
``transferkit.backbones`` calls, ``runtime.audio`` what ``transferkit.export`` cuts with), so
an exported model reads its inputs exactly as its bundle does.

    from transferkit.runtime import load_exported
    model = load_exported("model-onnx")
    proba, ok, problems = model.predict_proba(["cat.jpg", ("upload.png", png_bytes)])
"""

from __future__ import annotations

# the per-modality input classes register themselves on import
from transferkit.runtime import audio, image, text  # noqa: F401
from transferkit.runtime.folder import ExportedFolder, is_exported, read_exported
from transferkit.runtime.model import ExportedModel, Prediction, load_exported

__all__ = [
    "ExportedFolder",
    "ExportedModel",
    "Prediction",
    "is_exported",
    "load_exported",
    "read_exported",
]
