"""Text graphs: token ids and attention mask in, pooling (and normalisation) inside the graph.

The transformer encoders (``all_minilm_l6_v2``, ``st:`` and ``hf:`` models, pretrained or
trained by ``finetune`` / ``contrastive``) export with their tokenizer shipped beside the graph
as ``tokenizer.json`` (Hugging Face ``tokenizers`` format), carrying the truncation and padding
the bundle tokenises with. WordLlama is a lookup of static token vectors and their mean over
the text's tokens, with a ``tokenizers`` tokenizer of its own: it exports as Gather + masked
mean, its tokenizer shipped without special tokens and without truncation, as it embeds.
GloVe and fastText vectors (a regular expression and greedy CJK segmentation against the
vocabulary) and the multilingual USE (its own numpy graph) have no exact equivalent in a
tokenizer file and a graph, so they are refused, naming those that export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from transferkit.errors import BadInputError
from transferkit.export.graphs import ModalityGraph, register_graph
from transferkit.modalities import get_modality
from transferkit.modalities.text import TextModality

TOKENIZER_FILE = "tokenizer.json"
_EXPORTABLE = "all_minilm_l6_v2, wordllama and the st:NAME / hf:NAME transformer encoders"
# a UTF-8 character is at most 4 bytes, and byte fallback makes at most one token of each
_MAX_TOKENS_PER_CHAR = 4


class TokenVectorMean(nn.Module):
    """WordLlama's ``embed``: ids clipped to the vocabulary, their vectors, the mean over real
    tokens (divided by at least 1, so a text without tokens embeds as zeros)."""

    def __init__(self, vectors: np.ndarray):
        super().__init__()
        self.register_buffer("vectors", torch.from_numpy(np.array(vectors, dtype=np.float32)))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = input_ids.clamp(0, self.vectors.shape[0] - 1)
        mask = attention_mask.to(torch.float32).unsqueeze(-1)
        summed = (nn.functional.embedding(ids, self.vectors) * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp_min(1.0)


@register_graph
class TextGraph(ModalityGraph):
    modality = TextModality.name
    input_names = ("input_ids", "attention_mask")
    varying_axes = {"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}}

    def check(self) -> None:
        module = self.backbone.materialize()
        # WordLlama's inference object: a token-vector matrix and a tokenizers Tokenizer
        inference = getattr(module, "_model", None)
        self.vectors = getattr(inference, "embedding", None)
        if self.vectors is not None:
            self.source_tokenizer, self.static = inference.tokenizer, True
            self.pad_id = int((self.source_tokenizer.padding or {}).get("pad_id") or 0)
            return
        if not isinstance(module, nn.Module):
            raise BadInputError(
                f"{self.backbone.name} is a frozen text encoder whose tokenisation (or graph) "
                "has no exact ONNX equivalent, so it cannot be exported; text backbones that "
                f"export: {_EXPORTABLE}. Re-train with one of them (--backbone "
                "all_minilm_l6_v2) to deploy with ONNX."
            )
        self.source_tokenizer = getattr(module.tokenizer, "backend_tokenizer", None)
        if self.source_tokenizer is None:
            raise BadInputError(
                f"{self.backbone.name} has no fast (tokenizers) tokenizer to ship beside the "
                "graph; only encoders whose tokenizer.json the tokenizers library reads export."
            )
        self.static = False
        self.pad_id = int(module.tokenizer.pad_token_id or 0)

    def max_length(self) -> int:
        """Tokens kept: the encoder's ``max_length``, or for WordLlama (which never truncates)
        a bound no clipped text reaches."""
        p = self.backbone.preprocess
        return p.max_chars * _MAX_TOKENS_PER_CHAR if self.static else p.max_length

    def embedder(self) -> nn.Module:
        if self.static:
            return TokenVectorMean(self.vectors).eval()
        return self.backbone.materialize().eval()

    def example(self) -> tuple[torch.Tensor, ...]:
        feed = self.batch(["an example", "another, longer example"])
        return torch.from_numpy(feed["input_ids"]), torch.from_numpy(feed["attention_mask"])

    def inputs_spec(self) -> dict[str, Any]:
        p = self.backbone.preprocess
        described = get_modality(self.modality).export_inputs(self.backbone)
        # the sha256 of the encoder's own tokenizer file; the shipped one (listed in "files")
        # differs by the truncation and padding written into it
        described["source_tokenizer_sha256"] = described.pop("tokenizer_sha256", None) or None
        if self.static:
            pooling = "the mean of the token vectors over real tokens"
        else:
            pooling = f"{p.pooling} over real tokens" + (", then unit length" * p.normalize)
        return {
            **described,
            "names": list(self.input_names),
            "input_ids": {"dtype": "int64", "shape": [None, None]},
            "attention_mask": {"dtype": "int64", "shape": [None, None]},
            "token_type_ids": "not an input: the encoder reads zeros",
            "tokenizer": TOKENIZER_FILE,
            "max_length": self.max_length(),
            "clip_characters": p.max_chars,
            "special_tokens": not self.static,
            "truncation": {"max_length": self.max_length(), "strategy": "longest_first",
                           "direction": "right", "counts_special_tokens": True},
            "padding": {"to": "the longest text of the batch", "pad_id": self.pad_id,
                        "direction": "right", "attention_mask": 0},
            "pooling": f"inside the graph: {pooling}",
            "steps": [
                f"cut each text to its first {p.max_chars} characters (str[:n])",
                "lower-case it (str.lower())" if p.lowercase else "keep its case (the "
                "tokenizer's own normaliser applies)",
                f"encode the batch with tokenizers.Tokenizer.from_file('{TOKENIZER_FILE}')"
                ".encode_batch(texts): its truncation, padding and special tokens are set in "
                "the file",
                "input_ids = [e.ids], attention_mask = [e.attention_mask], as int64",
            ],
        }  # fmt: skip

    def write_side_files(self, folder: Path) -> list[str]:
        from tokenizers import Tokenizer

        spec = json.loads(self.source_tokenizer.to_str())
        if self.static:
            # WordLlama encodes with add_special_tokens=False: a file without a post-processor
            # adds none whatever the caller asks
            spec["post_processor"] = None
        tokenizer = Tokenizer.from_str(json.dumps(spec))
        # the bundle tokenises with truncation to max_length and padding to the batch's
        # longest text (TextEncoder.tokenize, WordLlama's embed), whatever the file says
        tokenizer.enable_truncation(max_length=self.max_length(), strategy="longest_first")
        tokenizer.enable_padding(
            pad_id=self.pad_id, pad_token=tokenizer.id_to_token(self.pad_id) or "[PAD]"
        )
        tokenizer.save(str(folder / TOKENIZER_FILE))
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        return [TOKENIZER_FILE]

    def prepare(self, sample) -> str:
        return sample.text

    def batch(self, items: list[str]) -> dict[str, np.ndarray]:
        from transferkit.runtime.text import prepare_texts

        p = self.backbone.preprocess
        prepared = prepare_texts(items, max_chars=p.max_chars, lowercase=p.lowercase)
        encoded = self._tokenizer.encode_batch(prepared)
        return {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        }
