"""Whether a text encoder can read the data's script.

An encoder trained on Latin-script languages only (all-MiniLM: English) tokenizes Chinese,
Russian or Arabic text into pieces it never learned the meaning of. Three places act on it:
the default backbone (the multilingual encoder for such data), the ranking (such an encoder
goes after every one that reads the data) and contrastive training (its pretrained geometry is
no starting point to pull pairs from; see ``strategies/contrastive.py``).
"""

from __future__ import annotations

# languages written in the Latin script: an encoder that knows only these cannot read Chinese,
# Russian, Arabic... text (ISO 639-1)
LATIN_SCRIPT_LANGUAGES = frozenset(
    "en de fr es it nl pt pl tr sv da no fi cs sk sl hr ro hu et lv lt id ms vi".split()
)
NON_LATIN_DATA = 0.3  # share of letters outside the Latin script that makes text "non-Latin"


def is_non_latin(share: float) -> bool:
    """Whether text with ``share`` of its letters outside the Latin script counts as non-Latin."""
    return share > NON_LATIN_DATA


def script_mismatch(spec, share: float) -> str | None:
    """Why the encoder ``spec`` cannot read text with ``share`` non-Latin letters, or None when
    it can (or its languages are not listed, so nothing is known)."""
    languages = set(spec.languages)
    if not is_non_latin(share) or not languages or not languages <= LATIN_SCRIPT_LANGUAGES:
        return None
    return (
        f"knows {', '.join(sorted(languages))} only, and {share:.0%} of this data's letters are "
        "not Latin"
    )
