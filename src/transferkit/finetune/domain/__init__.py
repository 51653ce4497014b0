"""Deep domain adaptation losses (tllib-style standalone modules) and the engine hook using them.

Each loss takes source and target features (CDAN also the classifier's logits) and knows nothing
of the model, so a training loop adds one to its classification loss; ``hook.py`` is that loop's
part for the fine-tuning engine.
"""

from transferkit.finetune.domain.adversarial import (
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    MultiLinearMap,
    RandomizedMultiLinearMap,
    entropy,
)
from transferkit.finetune.domain.discriminator import DomainDiscriminator
from transferkit.finetune.domain.grl import GradientReverseLayer, warm_up_coefficient
from transferkit.finetune.domain.mmd import GaussianKernels, MultipleKernelMMD

__all__ = [
    "ConditionalDomainAdversarialLoss",
    "DomainAdversarialLoss",
    "DomainDiscriminator",
    "GaussianKernels",
    "GradientReverseLayer",
    "MultiLinearMap",
    "MultipleKernelMMD",
    "RandomizedMultiLinearMap",
    "entropy",
    "warm_up_coefficient",
]
