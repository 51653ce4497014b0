"""The domain discriminator of DANN and CDAN: a small MLP telling source from target."""

from __future__ import annotations

from torch import nn

# tllib's examples (and the DANN paper's Office-31 runs) use two hidden layers of 1024
DEFAULT_HIDDEN = 1024


class DomainDiscriminator(nn.Sequential):
    """``(N, in_features)`` → ``(N, 1)`` logits of "this came from the source domain".

    tllib's ``DomainDiscriminator`` with ``batch_norm=True``, but ending in a logit instead of a
    sigmoid: the losses apply ``binary_cross_entropy_with_logits`` (the same value, stable for
    confident outputs, and allowed under CUDA autocast where ``binary_cross_entropy`` is not).
    """

    def __init__(self, in_features: int, hidden: int = DEFAULT_HIDDEN) -> None:
        super().__init__(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
        self.in_features = int(in_features)
