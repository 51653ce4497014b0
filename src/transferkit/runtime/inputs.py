"""What an exported graph takes, per modality: inputs to predict → the graph's feeds.

One ``GraphInputs`` class per modality, registered under the modality's name (what
``export.json`` says in ``modality``). It reads the preprocessing ``export.json`` states in
``inputs`` and turns a chunk of inputs into feeds: batches of the graph's input arrays, and the
reason each input it could not use was refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from transferkit.data.dataset import Sample, as_upload
from transferkit.errors import BadInputError
from transferkit.runtime.folder import ExportedFolder

# (the rows of the chunk a batch holds, the graph's inputs for them)
Feed = tuple[list[int], dict[str, np.ndarray]]


class GraphInputs:
    """Turns inputs into a graph's feeds; subclasses implement ``feeds`` for one modality."""

    modality: ClassVar[str]
    # what one input is, in messages ("image files or (name, bytes) pairs")
    accepts: ClassVar[str]
    # its graphs are CNNs that run faster on CPU a few inputs per call (``cpu_forward_chunk``)
    small_cpu_passes: ClassVar[bool] = False

    def __init__(self, folder: ExportedFolder, graph_inputs: Sequence[str]):
        # a subclass reads the files it needs from ``folder`` while it is built; kept without
        # their bytes, which a loaded model does not hold on to
        self.folder = replace(folder, contents={})
        self.spec = folder.inputs
        self.graph_inputs = tuple(graph_inputs)

    def number(self, key: str) -> int:
        """A whole number ``export.json`` states in ``inputs``; refused when missing or negative."""
        value = self.spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.folder.refuse(
                f"'inputs.{key}' must be a whole number for a {self.modality} model; got {value!r}"
            )
        return value

    def feeds(self, items: Sequence) -> tuple[list[Feed], dict[int, str]]:
        """Feeds for ``items`` (one chunk) and {row: reason} for the inputs that cannot be used."""
        raise NotImplementedError

    def name(self, item) -> str:
        """How an input is named in a problem report."""
        return _file_name(item)


INPUTS: dict[str, type[GraphInputs]] = {}


def register_inputs(cls: type[GraphInputs]) -> type[GraphInputs]:
    """Add a modality's ``GraphInputs`` to the registry, under its ``modality``."""
    INPUTS[cls.modality] = cls
    return cls


def inputs_for(folder: ExportedFolder, graph_inputs: Sequence[str]) -> GraphInputs:
    """The ``GraphInputs`` of ``folder``'s modality."""
    cls = INPUTS.get(folder.modality)
    if cls is None:
        raise folder.refuse(
            f"it was exported for {folder.modality!r} inputs, which this transferkit cannot "
            f"read (it reads {', '.join(sorted(INPUTS))}); upgrade transferkit"
        )
    return cls(folder, graph_inputs)


def file_source(item, index: int) -> Path | bytes:
    """What a decoder reads for one input of a file modality: a file, or bytes in memory.

    An input is a path, a ``(name, bytes)`` pair (an upload, never written to disk), bytes, or
    a ``Sample`` of a Dataset.
    """
    if isinstance(item, Sample):
        return item.raw
    upload = as_upload(item)
    if upload is not None:
        return upload[1]
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, (str, os.PathLike)):
        return Path(item)
    raise BadInputError(
        f"input {index} is a {type(item).__name__}; give file paths, (name, bytes) pairs or bytes"
    )


def _file_name(item) -> str:
    if isinstance(item, Sample):
        return str(item.path)
    upload = as_upload(item)
    if upload is not None:
        return upload[0]
    if isinstance(item, (bytes, bytearray)):
        return "<bytes in memory>"
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else repr(item)


def decode_all(
    items: Sequence, decode: Callable[[Path | bytes], Any], unreadable: type[Exception]
) -> tuple[list[tuple[int, Any]], dict[int, str]]:
    """``decode`` every input of a file modality in threads (the decoders release the GIL):
    (row, decoded) for those that decode, {row: reason} for the others."""
    from concurrent.futures import ThreadPoolExecutor

    from transferkit.data.images import failure_reason
    from transferkit.system import available_cores

    sources = [file_source(item, i) for i, item in enumerate(items)]

    def one(source):
        try:
            return decode(source), None
        except unreadable as exc:
            return None, failure_reason(exc, source)
        except OSError as exc:
            return None, f"cannot read file ({exc})"

    with ThreadPoolExecutor(max_workers=min(8, max(1, available_cores()))) as pool:
        results = list(pool.map(one, sources))
    good = [(i, value) for i, (value, reason) in enumerate(results) if reason is None]
    bad = {i: reason for i, (_, reason) in enumerate(results) if reason is not None}
    return good, bad
