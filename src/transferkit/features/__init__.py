"""Frozen-backbone embeddings: extraction, runtimes and the on-disk cache."""

from transferkit.features.cache import EmbeddingCache
from transferkit.features.extract import ExtractionResult, extract_embeddings

__all__ = ["EmbeddingCache", "ExtractionResult", "extract_embeddings"]
