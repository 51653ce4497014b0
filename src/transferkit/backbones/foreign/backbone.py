"""A frozen image encoder that is an ONNX graph (an ONNX file, or a Keras / TF model converted
to one): the attributes every backbone has, and a runner from cropped pixels to embeddings.

It is not a torch module: extraction asks it for ``pixel_runner`` (see
``features/image_extract.py``), which takes the same planar uint8 batch as the torch backbones'
runners and does this model's own normalisation, channel order and layout before the session.
"""

from __future__ import annotations

import numpy as np

from transferkit.backbones.foreign_preprocess import ForeignPreprocess
from transferkit.errors import BadInputError

_PROBE_BATCH = 2  # two images, so an output that mixes the batch cannot pass as per-input


class ForeignBackbone:
    """An ONNX graph cut at its embedding tensor, run by ONNX Runtime on the CPU."""

    trainable = False

    def __init__(self, spec, weights, preprocess: ForeignPreprocess, model, input_name: str):
        self.spec = spec
        self.name: str = spec.name
        self.preprocess = preprocess
        self.weights_sha256 = weights.sha256 if weights else None
        self.weights_source = weights.source if weights else "none"
        self.input_name = input_name
        self._model_bytes = model.SerializeToString()
        self._runners: dict[int, OnnxPixelRunner] = {}
        # the rank of the cut tensor (2 for vectors, 4 for a map pooled by "pool": "avg")
        self.output_rank = 2
        self.num_features = self.pixel_runner(1).probe()

    def onnx_model(self):
        """The checked graph, cut at the embedding tensor (a fresh copy: export joins it)."""
        import onnx

        return onnx.load_model_from_string(self._model_bytes)

    def materialize(self) -> ForeignBackbone:
        return self

    def eval(self) -> ForeignBackbone:  # the module protocol BackboneRef uses; nothing trains
        return self

    def layer_groups(self) -> list[list[str]]:
        return []

    def pixel_runner(self, num_threads: int) -> OnnxPixelRunner:
        """The runner for ``num_threads`` threads (one session per thread count, kept)."""
        if num_threads not in self._runners:
            self._runners[num_threads] = OnnxPixelRunner(self, num_threads)
        return self._runners[num_threads]


class OnnxPixelRunner:
    """uint8 (B, 3, H, W) RGB pixels -> this model's input -> (B, D) float32 embeddings."""

    name = "onnx"

    def __init__(self, backbone: ForeignBackbone, num_threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        self.backbone = backbone
        self.session = ort.InferenceSession(
            backbone._model_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
        )
        cfg: ForeignPreprocess = backbone.preprocess
        order = [2, 1, 0] if cfg.channel_order == "bgr" else [0, 1, 2]
        mean = np.asarray(cfg.mean, dtype=np.float32)
        std = np.asarray(cfg.std, dtype=np.float32)
        # (p * scale - mean) / std as one multiply-add per value
        self._order = order
        self._mul = (np.float32(cfg.scale) / std).reshape(1, 3, 1, 1)
        self._add = (-mean / std).reshape(1, 3, 1, 1)

    def inputs(self, pixels: np.ndarray) -> np.ndarray:
        """The model's input for planar RGB uint8 ``pixels``."""
        x = pixels[:, self._order].astype(np.float32)
        x *= self._mul
        x += self._add
        if self.backbone.preprocess.layout == "nhwc":
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.backbone.input_name: self.inputs(pixels)})[0]
        return self._vectors(np.asarray(out), len(pixels))

    def _vectors(self, out: np.ndarray, batch: int) -> np.ndarray:
        cfg = self.backbone.preprocess
        tensor = cfg.output or "the model's output"
        if out.ndim >= 3 and cfg.pool == "avg":
            axes = (
                tuple(range(2, out.ndim)) if cfg.layout == "nchw" else tuple(range(1, out.ndim - 1))
            )
            out = out.mean(axis=axes)
        if out.ndim == 4 and out.shape[0] == batch and np.prod(out.shape[2:]) == 1:
            out = out.reshape(batch, -1)  # (B, C, 1, 1) / (B, 1, 1, C): already pooled
        if out.ndim != 2 or out.shape[0] != batch:
            fix = (
                ' add "pool": "avg" to the sidecar JSON to average the feature map, or name'
                if out.ndim >= 3 and out.shape[0] == batch
                else " name"
            )
            raise BadInputError(
                f"{self.backbone.name}: {tensor} has shape {tuple(out.shape)} for a batch of "
                f"{batch} images of shape {self.inputs_shape(batch)}; a backbone gives one "
                f'vector per input, (batch, dim):{fix} a tensor that is one ("output" in the '
                "sidecar JSON)"
            )
        return np.asarray(out, dtype=np.float32)

    def inputs_shape(self, batch: int) -> tuple[int, ...]:
        s = self.backbone.preprocess.input_size
        return (batch, 3, s, s) if self.backbone.preprocess.layout == "nchw" else (batch, s, s, 3)

    def probe(self) -> int:
        """The embedding width, from a batch of grey images; refuses a non-vector output."""
        size = self.backbone.preprocess.input_size
        pixels = np.full((_PROBE_BATCH, 3, size, size), 128, dtype=np.uint8)
        try:
            raw = np.asarray(
                self.session.run(None, {self.backbone.input_name: self.inputs(pixels)})[0]
            )
            self.backbone.output_rank = raw.ndim
            out = self._vectors(raw, _PROBE_BATCH)
        except BadInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors name the node that failed
            raise BadInputError(
                f"{self.backbone.name}: the model does not run on a batch of shape "
                f"{self.inputs_shape(_PROBE_BATCH)} ({exc}); check size and layout in its "
                "sidecar JSON"
            ) from None
        return int(out.shape[1])
