"""Batched text embedding: tokenize once, batch texts of similar length, cache by content.

Padding is the waste of text encoders: a batch costs as much as its longest text. Sorting the
texts by token count before batching (what sentence-transformers' ``encode`` does by character
count) keeps each batch's padding small; results are scattered back to sample order.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from transferkit.events import NULL_EVENTS, Events
from transferkit.features.cache import EmbeddingCache, open_store, release_store
from transferkit.features.extract import ExtractionResult
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
    start = time.perf_counter()
    texts = list(dataset.texts)
    n, dim = len(texts), int(backbone.num_features)
    embeddings = np.zeros((n, dim), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)

    store = open_store(backbone, cache, "text", dim)
    digests = [text_digest(t) for t in texts]
    if store is not None and n:
        hits = store.get_many(digests)
        for i, d in enumerate(digests):
            if d in hits:
                embeddings[i] = hits[d]
                ok[i] = True
    n_cached = int(ok.sum())
    todo = [i for i in range(n) if not ok[i]]
    if todo and hasattr(backbone.materialize(), "encode_texts"):
        # frozen non-torch encoders (USE, WordLlama, word vectors): their own batching inside
        _encode_frozen(backbone, texts, todo, embeddings, ok, digests, store, batch_size, events)
        todo = []
        runtime = "numpy"
    else:
        runtime = "torch"
    if todo:
        import torch

        module = backbone.materialize()
        threads = num_threads or available_cores()
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        tokenizer = module.tokenizer
        # one tokenizer pass (the fast tokenizer is multi-threaded); padding per batch below
        encoded = module.token_ids([texts[i] for i in todo])
        order = sorted(range(len(todo)), key=lambda j: -len(encoded["input_ids"][j]))
        bar = events.progress(n, f"Encoding ({backbone.name})", "text", initial=n_cached)
        try:
            with torch.inference_mode():
                for s in range(0, len(order), batch_size):
                    rows = order[s : s + batch_size]
                    batch = tokenizer.pad(
                        {
                            "input_ids": [encoded["input_ids"][j] for j in rows],
                            "attention_mask": [encoded["attention_mask"][j] for j in rows],
                        },
                        return_tensors="pt",
                    )
                    out = module(batch["input_ids"], batch["attention_mask"]).float().numpy()
                    index = [todo[j] for j in rows]
                    embeddings[index] = out
                    ok[index] = True
                    if store is not None:
                        store.put_many((digests[i], out[k]) for k, i in enumerate(index))
                    bar.update(len(rows))
        finally:
            bar.close()
            torch.set_num_threads(previous_threads)
    release_store(store, cache)
    return ExtractionResult(
        embeddings=embeddings,
        ok=ok,
        problems=[],
        seconds=time.perf_counter() - start,
        runtime=runtime if n_cached < n else "cache",
        n_cached=n_cached,
    )


def _encode_frozen(backbone, texts, todo, embeddings, ok, digests, store, batch_size, events):
    """Batches of similar length through ``encode_texts``, results scattered back in place."""
    module = backbone.materialize()
    order = sorted(todo, key=lambda i: -len(texts[i]))
    desc = f"Encoding ({backbone.name})"
    with events.progress(len(ok), desc, "text", initial=len(ok) - len(todo)) as bar:
        for s in range(0, len(order), batch_size):
            index = order[s : s + batch_size]
            out = np.asarray(module.encode_texts([texts[i] for i in index]), dtype=np.float32)
            embeddings[index] = out
            ok[index] = True
            if store is not None:
                store.put_many((digests[i], out[k]) for k, i in enumerate(index))
            bar.update(len(index))
