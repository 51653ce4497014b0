"""Transfer strategies by name (add one: a module here + one entry in STRATEGIES)."""

from __future__ import annotations

from typing import Any

from transferkit.naming import lookup
from transferkit.strategies.base import Strategy, StrategyResult
from transferkit.strategies.contrastive import ContrastiveStrategy
from transferkit.strategies.features import FeaturesStrategy
from transferkit.strategies.finetune import FinetuneStrategy, ScratchStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (FeaturesStrategy, FinetuneStrategy, ScratchStrategy, ContrastiveStrategy)
}
DEFAULT_STRATEGY = "features"


def make_strategy(name: str = DEFAULT_STRATEGY, **params: Any) -> Strategy:
    if name == "auto":  # without data to look at (see choose_strategy), the default
        name = DEFAULT_STRATEGY
    return strategy_class(name)(**params)


def choose_strategy(dataset, spec) -> tuple[str, str]:
    """``--strategy auto``: (strategy name, the reason in one sentence) for this data.

    Text with a trainable sentence encoder: ``contrastive`` — on few examples, pulling the
    classes apart in the encoder beats a head on frozen embeddings (benchmarks/bench_text.py)
    at a cost of a minute or two on a CPU. Everything else: ``features``, the fast, safe
    default (fine-tuning images does not yet beat it on our benchmarks).
    """
    if dataset.modality == "text" and spec.trainable:
        counts = [c for c in dataset.class_counts().values() if c]
        return (
            "contrastive",
            f"text with a trainable encoder ({spec.name}) and {min(counts)}-{max(counts)} "
            "examples per class: contrastive fine-tuning of the encoder, then a head",
        )
    why = "a frozen encoder" if not spec.trainable else f"{dataset.modality} data"
    return "features", f"{why}: frozen embeddings + a head (fast, and hard to beat here)"


def strategy_class(name: str) -> type[Strategy]:
    return lookup("strategy", DEFAULT_STRATEGY if name == "auto" else name, STRATEGIES)


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Strategy",
    "StrategyResult",
    "make_strategy",
    "strategy_class",
]
