"""Text graphs: token ids and attention mask in, pooling and normalisation inside the graph.

The transformer encoders (``all_minilm_l6_v2``, ``st:`` and ``hf:`` models, pretrained or
trained by ``finetune`` / ``contrastive``) export with their tokenizer shipped beside the graph
as ``tokenizer.json`` (Hugging Face ``tokenizers`` format), carrying the truncation and padding
the bundle tokenises with. The frozen encoders that are not torch modules (word vectors,
WordLlama, the multilingual USE) tokenise with their own code that a tokenizer file cannot
express exactly, so they are refused, naming those that export.
"""

from __future__ import annotations

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
_EXPORTABLE = "all_minilm_l6_v2 and the st:NAME / hf:NAME transformer encoders"


@register_graph
class TextGraph(ModalityGraph):
    modality = TextModality.name
    input_names = ("input_ids", "attention_mask")
    varying_axes = {"input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}}

    def check(self) -> None:
        module = self.backbone.materialize()
        if not isinstance(module, nn.Module):
            raise BadInputError(
                f"{self.backbone.name} is a frozen text encoder that is not a neural network "
                "graph (its own tokenisation and lookup code has no exact ONNX equivalent), so "
                f"it cannot be exported; text backbones that export: {_EXPORTABLE}. Re-train "
                "with one of them (--backbone all_minilm_l6_v2) to deploy with ONNX."
            )
        if getattr(module.tokenizer, "backend_tokenizer", None) is None:
            raise BadInputError(
                f"{self.backbone.name} has no fast (tokenizers) tokenizer to ship beside the "
                "graph; only encoders whose tokenizer.json the tokenizers library reads export."
            )
        self._tokenizer = None

    def embedder(self) -> nn.Module:
        return self.backbone.materialize().eval()

    def example(self) -> tuple[torch.Tensor, ...]:
        batch = self.backbone.materialize().tokenize(["an example", "another, longer example"])
        return batch["input_ids"], batch["attention_mask"]

    def inputs_spec(self) -> dict[str, Any]:
        p = self.backbone.preprocess
        pad = self._tokenizer.padding
        described = get_modality(self.modality).export_inputs(self.backbone)
        # the sha256 of the encoder's own tokenizer file; the shipped one (listed in "files")
        # differs by the truncation and padding written into it
        described["source_tokenizer_sha256"] = described.pop("tokenizer_sha256", None)
        return {
            **described,
            "names": list(self.input_names),
            "input_ids": {"dtype": "int64", "shape": [None, None]},
            "attention_mask": {"dtype": "int64", "shape": [None, None]},
            "token_type_ids": "not an input: the encoder reads zeros",
            "tokenizer": TOKENIZER_FILE,
            "clip_characters": p.max_chars,
            "truncation": {"max_length": p.max_length, "strategy": "longest_first",
                           "direction": "right", "counts_special_tokens": True},
            "padding": {"to": "the longest text of the batch", "pad_id": pad["pad_id"],
                        "direction": "right", "attention_mask": 0},
            "pooling": f"inside the graph: {p.pooling} over real tokens"
            + (", then unit length" if p.normalize else ""),
            "steps": [
                f"cut each text to its first {p.max_chars} characters (str[:n])",
                "lower-case it (str.lower())" if p.lowercase else "keep its case (the "
                "tokenizer's own normaliser applies)",
                f"encode the batch with tokenizers.Tokenizer.from_file('{TOKENIZER_FILE}')"
                ".encode_batch(texts): its truncation and padding are set in the file",
                "input_ids = [e.ids], attention_mask = [e.attention_mask], as int64",
            ],
        }  # fmt: skip

    def write_side_files(self, folder: Path) -> list[str]:
        from tokenizers import Tokenizer

        module = self.backbone.materialize()
        p = self.backbone.preprocess
        hf = module.tokenizer
        tokenizer = Tokenizer.from_str(hf.backend_tokenizer.to_str())
        # the bundle tokenises with truncation to max_length and padding to the batch's
        # longest text (TextEncoder.tokenize), whatever the file's own settings say
        tokenizer.enable_truncation(max_length=p.max_length, strategy="longest_first")
        tokenizer.enable_padding(
            pad_id=int(hf.pad_token_id or 0), pad_token=str(hf.pad_token or "[PAD]")
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
