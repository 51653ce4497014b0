"""ONNX export of a trained bundle: backbone + head as one graph, checked against the bundle.

``export_model(MODEL, out=..., quantize="int8", data=...)`` (``transferkit export``) writes a
folder holding ``model.onnx``, the files its inputs need (a text model's ``tokenizer.json``) and
``export.json`` (format ``transferkit-export`` 1: labels, inputs and every preprocessing step
outside the graph, parity, size, latency, the sha256 of each file and of itself), which
``transferkit.runtime`` loads without torch. Per modality (``graphs.py``): ``image.py``,
``text.py``, ``audio.py``; per head: ``heads.py``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportResult", "export_model"]


def __getattr__(name: str) -> Any:
    # the exporter imports torch: only when export is used, not when the package is named
    if name in __all__:
        from transferkit.export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'transferkit.export' has no attribute {name!r}")
