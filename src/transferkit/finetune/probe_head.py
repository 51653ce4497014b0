"""The frozen-features head as a torch layer, so fine-tuning can start from it (LP-FT).

LP-FT (Kumar et al., "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution", ICLR 2022): fit the linear probe first, then fine-tune the whole network
starting from that probe. A head that already classifies well sends small gradients into the
encoder, so its pretrained features move only where the data asks for it; a head warmed up
from scratch is worse at the start and pulls the encoder towards its own errors.

The probe here is ``--strategy features``' default head (``heads/linear.py``: power-normalised,
L2-normalised, centred embeddings under a logistic regression whose C was cross-validated).
``ProbeHead`` computes the same logits in torch; ``to_head`` writes the trained weights back
into a head of the probe's type, so the bundle stores a head every runtime already reads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# sqrt has an infinite slope at 0 and pooled ReLU features are often exactly 0: a tiny floor
# keeps the gradient finite and moves the logits by < 1e-4 (the numpy head uses no floor)
SQRT_FLOOR = 1e-8


class ProbeHead(nn.Module):
    """Logits of a fitted power-normalised linear head (``LogisticHead``, ``LinearSVMHead``).

    Binary heads store one row (class 0 is the zero logit); here both rows are trained, and
    ``to_head`` stores their difference, which gives the same probabilities.
    """

    def __init__(self, head) -> None:
        super().__init__()
        if getattr(head, "center_", None) is not None:
            # standardised classical features (MFCC statistics) have no trainable encoder
            raise ValueError("a standardised head cannot start fine-tuning: no encoder to tune")
        coef = torch.from_numpy(np.asarray(head.coef_, dtype=np.float32)).clone()
        bias = torch.from_numpy(np.asarray(head.intercept_, dtype=np.float32)).clone()
        self.binary = coef.shape[0] == 1
        if self.binary:
            coef = torch.cat([torch.zeros_like(coef), coef])
            bias = torch.cat([torch.zeros_like(bias), bias])
        self.weight = nn.Parameter(coef)
        self.bias = nn.Parameter(bias)
        # the probe's centre is part of its normalisation, not learned (as at fit time)
        self.register_buffer("mean", torch.from_numpy(np.asarray(head.mean_, np.float32)).clone())
        self.in_features = int(coef.shape[1])
        self.out_features = int(coef.shape[0])
        self._template = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.sign(x) * torch.sqrt(x.abs() + SQRT_FLOOR)
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return (z - self.mean) @ self.weight.T + self.bias

    def to_head(self, info: dict | None = None):
        """A fitted head of the probe's type holding this layer's (trained) weights."""
        config, arrays = self._template.get_state()
        coef = self.weight.detach().cpu().float().numpy()
        bias = self.bias.detach().cpu().float().numpy()
        if self.binary:
            coef, bias = coef[1:] - coef[:1], bias[1:] - bias[:1]
        arrays = {**arrays, "coef": coef.copy(), "intercept": bias.copy()}
        head = type(self._template).from_state(config, arrays)
        head.info_ = {**config.get("fitted", {}), **(info or {})}
        return head
