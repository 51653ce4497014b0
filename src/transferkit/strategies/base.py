"""The strategy contract: how knowledge moves from the pretrained backbone to the new task.

A strategy never reads files or prints: it gets the backbone, the training data, a function that
embeds a dataset (decoding and caching live elsewhere) and a fresh head, and returns what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from transferkit.heads import Head


@dataclass
class StrategyResult:
    """What fitting produced, for the manifest and the report."""

    n_train: int
    info: dict[str, Any] = field(default_factory=dict)
    # strategies that train the backbone return it (and the head trained with it)
    backbone: Any = None
    head: Any = None


class Strategy:
    name: ClassVar[str]
    Config: ClassVar[type]
    default_head: ClassVar[str] = "logistic"
    # settings for the default head when the user sets none (e.g. no C search after contrastive)
    default_head_params: ClassVar[dict] = {}
    trains_backbone: ClassVar[bool] = False  # True: the bundle stores the trained backbone

    def __init__(self, **params: Any):
        self.config = self.Config(**params)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": asdict(self.config)}

    def fit(
        self,
        backbone,
        train,
        *,
        embed: Callable[[Any], Any],
        head: Head,
        seed: int = 0,
        val: Any = None,
        checkpoint_dir: Any = None,
        resume: bool = False,
        progress: bool = True,
    ) -> StrategyResult:
        """Fit on ``train``; ``val`` (optional) is held-out data for strategies that monitor it.

        ``checkpoint_dir`` and ``resume`` matter to strategies that train for epochs.
        """
        raise NotImplementedError
