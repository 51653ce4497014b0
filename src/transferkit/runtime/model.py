"""``ExportedModel``: an exported folder run by ONNX Runtime, with no torch anywhere.

``load_exported(folder)`` checks the folder (``runtime.folder``), starts an ONNX Runtime session
on the verified graph bytes and checks that the graph gives what ``export.json`` says: outputs
``probabilities`` (B, C) with one column per label and ``embedding`` (B, D). Predicting reads
each input as the bundle does (``runtime.inputs`` and the per-modality classes), one chunk of
``batch_size`` inputs at a time; an input that cannot be read gives a NaN row and a problem
``(input, reason)``, like the bundle's predict.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from transferkit.errors import BadInputError
from transferkit.runtime.folder import MODEL_FILE, OUTPUTS, ExportedFolder, read_exported
from transferkit.runtime.inputs import GraphInputs, inputs_for
from transferkit.system import available_cores, cpu_forward_chunk


@dataclass(frozen=True)
class Prediction:
    """What the graph gives for every input, in input order (NaN rows where unreadable)."""

    probabilities: np.ndarray  # (N, C) float32, columns ordered as the labels
    embeddings: np.ndarray  # (N, D) float32, what the head sees
    ok: np.ndarray  # (N,) bool: the input could be read
    problems: list[tuple[str, str]]  # (input, reason) for each unreadable input


class ExportedModel:
    """A loaded exported model: ``labels``, ``modality``, ``predict_proba``, ``embed``,
    ``predict``; ``run`` gives probabilities and embeddings in one pass."""

    def __init__(self, folder: ExportedFolder, *, threads: int | None = None, providers=None):
        import onnxruntime as ort

        self.folder = folder
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                folder.content(MODEL_FILE),
                options,
                providers=list(providers or ["CPUExecutionProvider"]),
            )
        except Exception as exc:  # onnxruntime names what it cannot load (opset, operator)
            raise folder.refuse(f"{MODEL_FILE} cannot be loaded by onnxruntime ({exc})") from None
        self._check_outputs()
        self.inputs: GraphInputs = inputs_for(folder, [i.name for i in self.session.get_inputs()])
        # the session and the tokenizer hold what they need: the file bytes can go
        self.folder = replace(folder, contents={})
        # images run through a CNN on CPU a few per call (``cpu_forward_chunk``: the activations
        # stay in cache); a GPU, texts and clips take the whole chunk of inputs at once
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        small = on_cpu and self.inputs.small_cpu_passes
        self._pass = cpu_forward_chunk(threads or available_cores()) if small else None

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def labels(self) -> list[str]:
        return self.folder.labels

    @property
    def modality(self) -> str:
        return self.folder.modality

    @property
    def manifest(self) -> dict:
        return self.folder.manifest

    def _check_outputs(self) -> None:
        """Refuse a graph whose outputs are not (probabilities, embedding) of the stated widths."""
        outputs = self.session.get_outputs()
        names = tuple(o.name for o in outputs)
        if names != OUTPUTS:
            raise self.folder.refuse(
                f"{MODEL_FILE} gives {list(names)}; an exported model's graph gives "
                f"{list(OUTPUTS)}, in this order"
            )
        for output in outputs:
            if len(output.shape) != 2:
                raise self.folder.refuse(
                    f"{MODEL_FILE} gives {output.name} of shape {output.shape}, not (batch, width)"
                )
            # a symbolic width is checked on the arrays themselves (``_check_width``)
            if isinstance(output.shape[1], int):
                self._check_width(output.name, output.shape[1])

    def _check_width(self, name: str, width: int) -> None:
        stated = self.folder.manifest["outputs"][name][1]
        if width != stated:
            raise self.folder.refuse(
                f"{MODEL_FILE} gives {name} of width {width}, but export.json says {stated} "
                f"(for {len(self.labels)} labels)"
            )

    def run(self, inputs: Sequence, *, batch_size: int = 32) -> Prediction:
        """Probabilities and embeddings of every input (files, ``(name, bytes)`` pairs, bytes or
        Samples; for a text model the texts themselves), in order."""
        if isinstance(inputs, (str, bytes, os.PathLike)):
            inputs = [inputs]
        inputs = list(inputs)
        if not inputs:
            raise BadInputError(f"nothing to predict: give {self.inputs.accepts}")
        if batch_size < 1:
            raise BadInputError(f"batch_size must be at least 1; got {batch_size}")
        n = len(inputs)
        proba = np.full((n, len(self.labels)), np.nan, dtype=np.float32)
        embeddings = np.full((n, self.manifest["outputs"]["embedding"][1]), np.nan, np.float32)
        ok = np.zeros(n, dtype=bool)
        problems: list[tuple[str, str]] = []
        for start in range(0, n, batch_size):
            chunk = inputs[start : start + batch_size]
            feeds, bad = self.inputs.feeds(chunk)
            for rows, feed in feeds:
                p, e = self._forward(feed)
                self._check_width(OUTPUTS[0], p.shape[1])
                self._check_width(OUTPUTS[1], e.shape[1])
                index = np.asarray(rows) + start
                proba[index], embeddings[index], ok[index] = p, e, True
            problems += [(self.inputs.name(chunk[i]), bad[i]) for i in sorted(bad)]
        return Prediction(proba, embeddings, ok, problems)

    def _forward(self, feed: dict) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, embeddings) of one feed, in passes of ``self._pass`` rows if set."""
        n = len(next(iter(feed.values())))
        if self._pass is None or n <= self._pass:
            return tuple(self.session.run(list(OUTPUTS), feed))
        parts = [
            self.session.run(list(OUTPUTS), {k: v[i : i + self._pass] for k, v in feed.items()})
            for i in range(0, n, self._pass)
        ]
        return np.concatenate([p for p, _ in parts]), np.concatenate([e for _, e in parts])

    def predict_proba(
        self, inputs: Sequence, *, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
        """(probabilities (N, C), NaN rows where unreadable; ok mask; problems)."""
        result = self.run(inputs, batch_size=batch_size)
        return result.probabilities, result.ok, result.problems

    def embed(
        self, inputs: Sequence, *, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
        """(embeddings (N, D) the head sees, NaN rows where unreadable; ok mask; problems)."""
        result = self.run(inputs, batch_size=batch_size)
        return result.embeddings, result.ok, result.problems

    def predict(self, inputs: Sequence, *, batch_size: int = 32) -> list[str | None]:
        """The most probable label per input (None where the input could not be read)."""
        proba, ok, _ = self.predict_proba(inputs, batch_size=batch_size)
        best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        return [self.labels[int(i)] if good else None for i, good in zip(best, ok)]


def load_exported(
    path: str | os.PathLike[str], *, threads: int | None = None, providers=None
) -> ExportedModel:
    """Load and check an exported folder (``transferkit export MODEL --format onnx``).

    Args:
        threads: ONNX Runtime's intra-op threads (default: its own choice, every core).
        providers: ONNX Runtime execution providers (default CPU only).
    """
    return ExportedModel(read_exported(path), threads=threads, providers=providers)
