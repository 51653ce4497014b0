"""Text inputs of an exported graph: texts clipped and lower-cased as the bundle does, then
tokenised by the shipped ``tokenizer.json`` (Hugging Face ``tokenizers``, no transformers):
``input_ids`` and ``attention_mask`` int64 (B, L), padded to the batch's longest text.

``prepare_texts`` is the one implementation of what happens to a text before any tokenizer sees
it; ``TextPreprocess.prepare`` (the torch side) calls it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from transferkit.data.dataset import Sample
from transferkit.errors import BadInputError
from transferkit.runtime.inputs import Feed, GraphInputs, register_inputs

TOKENIZER_FILE = "tokenizer.json"
_ARRAYS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


def prepare_texts(texts: Iterable[str], *, max_chars: int, lowercase: bool) -> list[str]:
    """Texts as the tokenizer receives them: cut to ``max_chars``, lower-cased if the model was."""
    clipped = [t[:max_chars] for t in texts]
    return [t.lower() for t in clipped] if lowercase else clipped


@register_inputs
class TextInputs(GraphInputs):
    modality = "text"
    accepts = "texts (strings)"

    def __init__(self, folder, graph_inputs):
        from tokenizers import Tokenizer

        super().__init__(folder, graph_inputs)
        unknown = [n for n in self.graph_inputs if n not in _ARRAYS]
        if unknown or "input_ids" not in self.graph_inputs:
            raise folder.refuse(
                f"a text graph takes input_ids (and attention_mask, token_type_ids); this one "
                f"takes {list(graph_inputs)}"
            )
        max_length = self.number("max_length")
        self.max_chars = self.number("clip_characters")
        self.lowercase = self.spec.get("lowercase")
        if not isinstance(self.lowercase, bool):
            raise folder.refuse(f"'inputs.lowercase' must be true or false; got {self.lowercase!r}")
        name = self.spec.get("tokenizer", TOKENIZER_FILE)
        raw = folder.content(name)
        try:
            self.tokenizer = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as exc:  # the tokenizers library names what is wrong in the file
            raise folder.refuse(f"{name} cannot be read ({exc})") from None
        # what the bundle's tokenizer call does: truncate to max_length from the right, pad on
        # the right to the longest text of the batch (set here, whatever the file itself says)
        pad_id = (self.spec.get("padding") or {}).get("pad_id")
        pad_token = self.tokenizer.id_to_token(pad_id) if isinstance(pad_id, int) else None
        if pad_token is None:
            raise folder.refuse(
                f"'inputs.padding.pad_id' must name a token of {name}; got {pad_id!r}"
            )
        self.tokenizer.enable_truncation(max_length, stride=0, strategy="longest_first")
        self.tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token)

    def name(self, item) -> str:
        return str(item.path) if isinstance(item, Sample) else str(item)

    def feeds(self, items: Sequence) -> tuple[list[Feed], dict[int, str]]:
        texts: list[str] = []
        rows: list[int] = []
        bad: dict[int, str] = {}
        for i, item in enumerate(items):
            text = item.text if isinstance(item, Sample) else item
            if not isinstance(text, str):
                raise BadInputError(
                    f"input {i} is a {type(item).__name__}; a text model takes the texts "
                    "themselves (strings)"
                )
            if not text.strip():
                bad[i] = "an empty text; give the text to classify"
                continue
            texts.append(text)
            rows.append(i)
        if not texts:
            return [], bad
        prepared = prepare_texts(texts, max_chars=self.max_chars, lowercase=self.lowercase)
        encodings = self.tokenizer.encode_batch(prepared, add_special_tokens=True)
        feed = {
            name: np.array([getattr(e, _ARRAYS[name]) for e in encodings], dtype=np.int64)
            for name in self.graph_inputs
        }
        return [(rows, feed)], bad
