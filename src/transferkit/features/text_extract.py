"""Batched text embedding: tokenize once, batch texts of similar length, cache by content.

Padding is the waste of text encoders: a batch costs as much as its longest text. Sorting the
texts by token count before batching (what sentence-transformers' ``encode`` does by character
count) keeps each batch's padding small; results are handed back by sample index. This is the
encoding step of the extraction loop (``extract.py``) for texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import EmbeddingCache
from transferkit.features.extract import Delivery, ExtractionResult, run_extraction
from transferkit.system import available_cores


def text_digest(text: str) -> str:
    """Content key of a text in the embedding cache."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def extract_text_embeddings(
    backbone,
    dataset,
    *,
    batch_size: int = 64,
    cache: bool | EmbeddingCache = True,
    events: Events = NULL_EVENTS,
    num_threads: int | None = None,
) -> ExtractionResult:
    """Encode every text of ``dataset`` with the frozen text ``backbone``."""
    step = TextEncoding(backbone, list(dataset.texts), batch_size, num_threads)
    return run_extraction(step, backbone, dataset.samples, cache=cache, events=events)


class TextEncoding:
    """Texts through the encoder in batches of similar length."""

    view = "text"
    unit = "text"

    def __init__(self, backbone, texts: list[str], batch_size: int, num_threads: int | None):
        self.backbone = backbone
        self.texts = texts
        self.batch_size = batch_size
        self.num_threads = num_threads

    def digests(self, samples: Sequence) -> list[str | Exception]:
        return [text_digest(t) for t in self.texts]

    def info(self, seconds: float) -> dict:
        return {}

    def encode(self, todo: list[int], delivery: Delivery) -> str:
        module = self.backbone.materialize()
        if hasattr(module, "encode_texts"):
            # frozen non-torch encoders (USE, WordLlama, word vectors): their own batching inside
            self._encode_frozen(module, todo, delivery)
            return "numpy"
        self._encode_torch(module, todo, delivery)
        return "torch"

    def _encode_frozen(self, module, todo: list[int], delivery: Delivery) -> None:
        """Batches of similar length through ``encode_texts``."""
        order = sorted(todo, key=lambda i: -len(self.texts[i]))
        for s in range(0, len(order), self.batch_size):
            index = order[s : s + self.batch_size]
            out = module.encode_texts([self.texts[i] for i in index])
            delivery.done(index, np.asarray(out, dtype=np.float32))

    def _encode_torch(self, module, todo: list[int], delivery: Delivery) -> None:
        """One tokenizer pass, then padded batches of similar token count."""
        import torch

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads or available_cores())
        tokenizer = module.tokenizer
        try:
            # one tokenizer pass (the fast tokenizer is multi-threaded); padding per batch below
            encoded = module.token_ids([self.texts[i] for i in todo])
            order = sorted(range(len(todo)), key=lambda j: -len(encoded["input_ids"][j]))
            with torch.inference_mode():
                for s in range(0, len(order), self.batch_size):
                    rows = order[s : s + self.batch_size]
                    batch = tokenizer.pad(
                        {
                            "input_ids": [encoded["input_ids"][j] for j in rows],
                            "attention_mask": [encoded["attention_mask"][j] for j in rows],
                        },
                        return_tensors="pt",
                    )
                    out = module(batch["input_ids"], batch["attention_mask"]).float().numpy()
                    delivery.done([todo[j] for j in rows], out)
        finally:
            torch.set_num_threads(previous_threads)
