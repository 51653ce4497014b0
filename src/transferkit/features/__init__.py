"""Frozen-backbone embeddings: the extraction loop, each modality's encoding step, runtimes and
the on-disk cache. Which step a dataset needs is for ``transferkit.modalities`` to say
(``transferkit.modalities.extract_embeddings``)."""

from transferkit.features.cache import EmbeddingCache
from transferkit.features.extract import ExtractionResult, run_extraction

__all__ = ["EmbeddingCache", "ExtractionResult", "run_extraction"]
