"""Whether a text encoder reads the data's script: one rule for the default backbone, the
ranking and contrastive training."""

from __future__ import annotations

from pathlib import Path

from transferkit.backbones import get_spec
from transferkit.backbones.scripts import is_non_latin, script_mismatch
from transferkit.data import Dataset, Sample
from transferkit.data.text import non_latin_share
from transferkit.modalities import get_modality

CHINESE = ["这家酒店很好", "房间太小了", "服务很周到", "不会再来了"]
ENGLISH = ["a fine film", "dull plot", "great fun", "not again"]


def _dataset(texts) -> Dataset:
    samples = tuple(Sample(Path(f"t.csv:{i}"), "ab"[i % 2], t) for i, t in enumerate(texts))
    return Dataset(samples, ("a", "b"), modality="text")


def test_an_english_encoder_does_not_read_chinese_and_a_multilingual_one_does():
    share = non_latin_share(CHINESE)
    assert share == 1.0 and is_non_latin(share)
    assert script_mismatch(get_spec("all_minilm_l6_v2"), share) == (
        "knows en only, and 100% of this data's letters are not Latin"
    )
    assert script_mismatch(get_spec("use_multilingual"), share) is None


def test_latin_script_data_is_read_by_an_english_encoder():
    share = non_latin_share(ENGLISH + ["très bien"])
    assert share == 0.0 and not is_non_latin(share)
    assert script_mismatch(get_spec("all_minilm_l6_v2"), share) is None
    # a few Chinese words in mostly English text stay under the 30 % line
    assert script_mismatch(get_spec("all_minilm_l6_v2"), 0.3) is None


def test_an_encoder_without_listed_languages_is_not_judged():
    unknown = get_spec("hf:test/tiny")
    assert unknown.languages == ()
    assert script_mismatch(unknown, 1.0) is None


def test_the_text_rules_keep_features_for_an_encoder_that_cannot_read_the_data():
    text = get_modality("text")
    minilm = get_spec("all_minilm_l6_v2")
    name, why = text.auto_strategy(_dataset(CHINESE), minilm)
    assert name == "features" and "knows en only" in why and "use_multilingual" in why
    assert text.auto_strategy(_dataset(ENGLISH), minilm)[0] == "contrastive"
    assert text.default_backbone(_dataset(CHINESE)) == "use_multilingual"
    assert text.default_backbone(_dataset(ENGLISH)) == "all_minilm_l6_v2"
