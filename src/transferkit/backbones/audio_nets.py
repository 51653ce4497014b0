"""The torch networks behind two pretrained audio encoders, defined here so that only their weight
files are needed (the packages' own code imports librosa, webrtcvad or essentia).

* ``AisfxCnn``: aisfx's ``EmbeddingNet('max', 3, 1, 64)`` (ISMIR 2022 sound-effects CNN, CNN9
  style) with each BatchNorm folded into the convolution before it, for inference only.
* ``SpeakerNet``: resemblyzer's GE2E speaker encoder (3-layer LSTM 40->256, Linear 256->256, ReLU,
  L2 normalisation).

Both load with ``torch.load(weights_only=True)``; nothing is unpickled beyond tensors and the
numpy scalar types the aisfx checkpoint holds (allowlisted by name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_AISFX_CHANNELS = (1, 64, 128, 256, 512)
_BN_EPS = 1e-5  # torch's BatchNorm2d default, which aisfx uses


class AisfxCnn(nn.Module):
    """(B, time=100, mel=96) log-mel blocks -> (B, 512): four blocks of two 3x3 conv + ReLU (BN
    folded in), 2x2 max pooling after the first three, then mean over mel and max over time."""

    def __init__(self):
        super().__init__()
        pairs = zip(_AISFX_CHANNELS[:-1], _AISFX_CHANNELS[1:])
        self.convs = nn.ModuleList()
        for cin, cout in pairs:
            self.convs.append(nn.Conv2d(cin, cout, 3, padding=1))
            self.convs.append(nn.Conv2d(cout, cout, 3, padding=1))
        self._mkldnn_weights: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mkldnn_weights is not None and not torch.is_grad_enabled():
            return self._forward_mkldnn(x)
        x = x.unsqueeze(1)
        for block in range(4):
            x = F.relu(self.convs[2 * block](x))
            x = F.relu(self.convs[2 * block + 1](x))
            if block < 3:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=3).amax(dim=2)

    def _forward_mkldnn(self, x: torch.Tensor) -> torch.Tensor:
        # activations stay in oneDNN's blocked layout from the first conv to the last, instead of
        # being reordered from and back to NCHW around every convolution
        y = x.unsqueeze(1).to_mkldnn()
        for block in range(4):
            for j in (0, 1):
                weight, bias = self._mkldnn_weights[2 * block + j]
                y = F.conv2d(y, weight, bias, padding=1).relu_()
            if block < 3:
                y = F.max_pool2d(y, 2)
        return y.to_dense().mean(dim=3).amax(dim=2)

    def use_mkldnn(self) -> bool:
        """Run inference (no-grad) forwards on oneDNN tensors: the same numbers, ~1.4x faster on
        x86 CPUs. Call after loading the weights; returns False (and changes nothing) where this
        torch build cannot."""
        self._mkldnn_weights = None
        if not torch.backends.mkldnn.is_available():
            return False
        try:
            with torch.no_grad():
                weights = [(c.weight.to_mkldnn(), c.bias.clone()) for c in self.convs]
                self._mkldnn_weights = weights
                probe = torch.rand(2, 16, 16)
                if not torch.allclose(self(probe), self.forward_dense(probe), atol=1e-4, rtol=1e-4):
                    raise RuntimeError("oneDNN forward differs from the dense one")
        except RuntimeError:
            self._mkldnn_weights = None
            return False
        return True

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """The plain NCHW forward, whatever ``use_mkldnn`` chose."""
        weights, self._mkldnn_weights = self._mkldnn_weights, None
        try:
            return self(x)
        finally:
            self._mkldnn_weights = weights

    def load_embedding_net_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load the ``embedding_net.*`` part of aisfx's checkpoint (prefix removed), folding
        ``bn{1,2}`` of each ``conv_block{i}`` into ``conv{1,2}``. Call ``use_mkldnn`` again
        afterwards to run on oneDNN."""
        self._mkldnn_weights = None
        expected = {
            f"conv_block{b}.{kind}{j}.{p}"
            for b in range(1, 5)
            for j in (1, 2)
            for kind, params in (
                ("conv", ("weight",)),
                ("bn", ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")),
            )
            for p in params
        }
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(
                f"not an aisfx EmbeddingNet state: missing {sorted(missing)[:4]}, "
                f"unexpected {sorted(unexpected)[:4]}"
            )
        for b in range(4):
            for j in (1, 2):
                pre = f"conv_block{b + 1}."
                weight = state[f"{pre}conv{j}.weight"].float()
                gamma, beta = state[f"{pre}bn{j}.weight"].float(), state[f"{pre}bn{j}.bias"].float()
                mean, var = state[f"{pre}bn{j}.running_mean"], state[f"{pre}bn{j}.running_var"]
                scale = gamma / torch.sqrt(var.float() + _BN_EPS)
                conv = self.convs[2 * b + j - 1]
                if conv.weight.shape != weight.shape:
                    raise ValueError(f"{pre}conv{j}: shape {tuple(weight.shape)} is not aisfx's")
                with torch.no_grad():
                    conv.weight.copy_(weight * scale[:, None, None, None])
                    conv.bias.copy_(beta - mean.float() * scale)


def _numpy_scalar_globals() -> list:
    """The numpy globals aisfx's checkpoint pickles (its ``ds_dict`` holds numpy.int64 values).
    The pickle names ``numpy.core.multiarray.scalar``; on numpy 2 the object lives in
    ``numpy._core``, so it is allowlisted under the old name explicitly."""
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    allowed: list = [(scalar, "numpy.core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    if dtypes is not None and hasattr(dtypes, "Int64DType"):
        allowed.append(dtypes.Int64DType)
    return allowed


def load_aisfx_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``embedding_net.*`` tensors (prefix removed) of aisfx's ``models/checkpoint.pth``, a
    tuple ``(state_dict, ds_dict)``; the per-dataset classifier heads ``fc.*`` are dropped."""
    with torch.serialization.safe_globals(_numpy_scalar_globals()):
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    state = loaded[0] if isinstance(loaded, tuple | list) else loaded
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an aisfx checkpoint (no state dict)")
    prefix = "embedding_net."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_aisfx_cnn(path: str | Path) -> AisfxCnn:
    """aisfx's ``models/checkpoint.pth`` -> an eval-mode ``AisfxCnn`` (dense forward; call
    ``use_mkldnn`` for the faster one)."""
    net = AisfxCnn()
    net.load_embedding_net_state(load_aisfx_state(path))
    return net.eval().requires_grad_(False)


class SpeakerNet(nn.Module):
    """(B, frames, 40) power mel -> (B, 256) L2-normalised speaker embedding; the parameter names
    are resemblyzer's ``VoiceEncoder`` ones (``lstm.*``, ``linear.*``)."""

    def __init__(self, n_mels: int = 40, hidden: int = 256, embedding: int = 256, layers: int = 3):
        super().__init__()
        self.lstm = nn.LSTM(n_mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, embedding)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        emb = F.relu(self.linear(hidden[-1]))
        # resemblyzer divides by the bare norm; the clamp keeps an all-zero output finite
        return emb / torch.linalg.vector_norm(emb, dim=1, keepdim=True).clamp_min(1e-12)


def load_speaker_net(path: str | Path) -> SpeakerNet:
    """resemblyzer's ``pretrained.pt`` (``{'step', 'model_state', 'optimizer_state'}``) -> an
    eval-mode ``SpeakerNet``; the GE2E loss parameters ``similarity_*`` are dropped."""
    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    state = loaded.get("model_state", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a resemblyzer checkpoint (no model_state dict)")
    net = SpeakerNet()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity_")})
    return net.eval().requires_grad_(False)
