"""Try it live: predictions of a trained run on uploaded bytes or typed texts, per class.

A run's bundle is loaded once (as ``transferkit serve`` loads it) and kept for the next frame
of the webcam, clip of the microphone or keystroke of the text box; a few runs are kept, the
least recently used dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from transferkit.errors import BadInputError

MAX_MODELS = 3  # bundles kept in memory (each holds its backbone unless it shares one)
MODEL_NAME = "run"  # the served model's name: never shown, never a path


class LiveModels:
    """The loaded bundles of a workspace's runs, by run id."""

    def __init__(self, workspace, max_models: int = MAX_MODELS) -> None:
        self.workspace = workspace
        self.max_models = max_models
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def model(self, rid: str):
        """Run ``rid``'s bundle as a ``ServedModel``, loaded on first use."""
        run = self.workspace.run(rid)
        if run["state"] != "done":
            raise BadInputError(
                f"run {rid} is {run['state']}; only a finished run can predict (train again, or "
                "pick a finished run)"
            )
        with self._lock:
            lock = self._locks.setdefault(rid, threading.Lock())
        with lock:  # two first requests load it once
            with self._lock:
                if rid in self._models:
                    self._models.move_to_end(rid)
                    return self._models[rid]
            from transferkit.serve.models import load_models, share_backbones

            bundle = self.workspace.run_dir(rid) / "model"
            served = load_models([f"{MODEL_NAME}={bundle}"], forward_batch=16)[MODEL_NAME]
            with self._lock:
                # a frozen backbone another kept run uses already is not held twice
                share_backbones([*self._models.values(), served])
                self._models[rid] = served
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            return served

    def forget(self, rid: str) -> None:
        with self._lock:
            self._models.pop(rid, None)

    def predict(self, rid: str, inputs: list) -> dict[str, Any]:
        """Per-class probabilities for each input ((file name, bytes) or a text), in order; an
        input that cannot be read gets its reason instead."""
        served = self.model(rid)
        with self._locks[rid]:  # one forward pass at a time: two cores gain nothing from two
            result = served.predict(inputs)
        labels = served.labels
        predictions = []
        for row, reason, named in zip(result.proba, result.reasons, result.named):
            entry: dict[str, Any] = {"input": named.get("input")}
            if reason is None and np.isfinite(row).all():
                entry["label"] = labels[int(np.argmax(row))]
                entry["probabilities"] = {lab: float(p) for lab, p in zip(labels, row)}
            else:
                entry["label"] = None
                entry["probabilities"] = None
                entry["error"] = reason or "cannot be read"
            predictions.append(entry)
        return {"labels": list(labels), "predictions": predictions}
