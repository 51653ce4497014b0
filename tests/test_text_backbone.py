"""Text backbones: the encoder interface on a tiny random BERT (every line but the download of
``hf:`` / ``st:`` models), and the real offline all-MiniLM-L6-v2 against sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from conftest import require_offline_weights  # noqa: E402

from transferkit.backbones import (  # noqa: E402
    get_spec,
    list_backbones,
    list_specs,
    resolve_backbone,
)
from transferkit.backbones.text_models import load_text_backbone  # noqa: E402
from transferkit.backbones.text_preprocess import TextPreprocess, preprocess_from_dict  # noqa: E402
from transferkit.data import Dataset, Sample  # noqa: E402
from transferkit.errors import BadInputError  # noqa: E402
from transferkit.weights.resolver import ResolvedWeights, sha256_file  # noqa: E402

WORDS = "good bad movie film great awful fun dull plot actor the a is was very not".split()


def _tiny_bert_folder(folder: Path, *, sentence_transformers_files: bool = False) -> Path:
    """A 2-layer BERT with random weights, its config and a tiny word-piece vocabulary."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    if sentence_transformers_files:
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
        (folder / "modules.json").write_text(
            '[{"type": "sentence_transformers.models.Transformer"},'
            ' {"type": "sentence_transformers.models.Normalize"}]'
        )
        (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 8}')
    return folder


def _load_tiny(tmp_path, name="hf:test/tiny-bert", **kwargs):
    folder = _tiny_bert_folder(tmp_path / "tiny", **kwargs)
    weights_file = folder / "model.safetensors"
    weights = ResolvedWeights(weights_file, sha256_file(weights_file), "test folder")
    return load_text_backbone(get_spec(name), weights)


def test_hub_names_make_text_specs_without_network():
    st = get_spec("st:all-mpnet-base-v2")
    assert st.modality == "text"
    assert st.weights.hf_hub_id == "sentence-transformers/all-mpnet-base-v2"
    hf = get_spec("hf:bert-base-chinese")
    assert hf.source == "huggingface" and hf.weights.hf_hub_id == "bert-base-chinese"
    with pytest.raises(BadInputError, match="give a Hub model"):
        get_spec("hf:")


def test_tiny_encoder_pools_real_tokens_only(tmp_path):
    enc = _load_tiny(tmp_path)
    assert enc.num_features == 16 and enc.preprocess.pooling == "mean"
    assert not enc.preprocess.normalize
    with torch.inference_mode():
        alone = enc(**enc.tokenize(["good movie"]))
        padded = enc(**enc.tokenize(["good movie", "the plot was very very dull and not fun"]))
    assert padded.shape == (2, 16)
    # padding never leaks into the mean: the short text embeds the same in any batch
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-5, atol=1e-5)


def test_sentence_transformers_files_set_pooling_length_and_normalisation(tmp_path):
    enc = _load_tiny(tmp_path, sentence_transformers_files=True)
    assert enc.preprocess.pooling == "cls" and enc.preprocess.normalize
    assert enc.preprocess.max_length == 8
    with torch.inference_mode():
        out = enc(**enc.tokenize(["good movie " * 20]))
    assert enc.tokenize(["good movie " * 20])["input_ids"].shape[1] == 8  # truncated
    torch.testing.assert_close(out.norm(dim=1), torch.ones(1))


def test_layer_groups_cover_every_parameter_from_embeddings_up(tmp_path):
    enc = _load_tiny(tmp_path)
    groups = enc.layer_groups()
    names = [n for g in groups for n in g]
    assert sorted(names) == sorted(n for n, _ in enc.named_parameters())
    assert len(groups) == 3  # embeddings, layer 0, layer 1 (+ pooler)
    assert all("embeddings" in n for n in groups[0])
    assert all(".layer.0." in n for n in groups[1])


def test_weights_that_do_not_fit_are_refused(tmp_path):
    from safetensors.torch import save_file

    folder = _tiny_bert_folder(tmp_path / "tiny")
    bad = folder / "bad.safetensors"
    save_file({"encoder.nothing.weight": torch.zeros(2)}, bad)
    weights = ResolvedWeights(bad, sha256_file(bad), "test")
    with pytest.raises(RuntimeError, match="do not fit"):
        load_text_backbone(get_spec("hf:test/tiny"), weights)


def test_text_preprocess_round_trips_and_is_told_apart_from_images():
    cfg = TextPreprocess(max_length=128, pooling="cls", normalize=True, tokenizer_sha256="ab")
    again = preprocess_from_dict(cfg.to_dict())
    assert again == cfg and again.fingerprint() == cfg.fingerprint()
    assert type(preprocess_from_dict({"input_size": 224})).__name__ == "ImagePreprocess"
    with pytest.raises(ValueError, match="pooling"):
        TextPreprocess(pooling="sum")


# --------------------------------------------------------------------------- registry contract

# trainable encoders; frozen ones (USE, word vectors) have no random init (test_frozen_text)
TEXT_NAMES = [s.name for s in list_specs() if s.modality == "text" and s.trainable]


@pytest.mark.parametrize("name", TEXT_NAMES)
def test_text_contract_with_random_weights(name):
    """Random init needs only the config and tokenizer, which ship with the weights."""
    spec = get_spec(name)
    if not name.startswith(("st:", "hf:")):
        require_offline_weights(name)  # its config and tokenizer ship with the weights
    enc = resolve_backbone(name, pretrained=False).materialize()
    assert enc.name == spec.name and not enc.training
    assert enc.num_features == spec.embedding_dim and enc.preprocess == spec.preprocess
    assert enc.weights_sha256 is None and "random" in enc.weights_source
    with torch.inference_mode():
        batch = enc.tokenize(["a short text", "a somewhat longer text to pad against"])
        out, again = enc(**batch), enc(**batch)
    assert out.shape == (2, spec.embedding_dim) and torch.equal(out, again)
    names = sorted(n for g in enc.layer_groups() for n in g)
    assert names == sorted(n for n, _ in enc.named_parameters())


# --------------------------------------------------------------------------- real weights


def _minilm_or_skip():
    require_offline_weights("all_minilm_l6_v2")  # skips outside CI, fails under CI
    return resolve_backbone("all_minilm_l6_v2", allow_download=False)


TEXTS = [
    "A dazzling, heartfelt triumph of a film.",
    "Tedious.",
    "这部电影非常好看",
    "The plot meanders for two hours and the jokes land with a thud, " * 3,
    "Fine.",
]


@pytest.mark.e2e
def test_minilm_is_listed_offline_and_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    ref = _minilm_or_skip()
    row = next(r for r in list_backbones() if r["name"] == "all_minilm_l6_v2")
    assert row["modality"] == "text" and row["offline_available"]
    assert "sha256 verified" in ref.weights_source
    enc = ref.materialize()
    with torch.inference_mode():
        ours = enc(**enc.tokenize(TEXTS)).numpy()
    theirs = st.SentenceTransformer(str(ref.weights.path.parent), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.e2e
def test_extraction_batches_by_length_keeps_order_and_caches(tmp_path, monkeypatch):
    from transferkit.modalities import extract_embeddings

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    ref = _minilm_or_skip()
    ds = Dataset(
        tuple(Sample(Path(f"t:{i}"), None, t) for i, t in enumerate(TEXTS)),
        (),
        modality="text",
    )
    first = extract_embeddings(ref, ds, batch_size=2)
    assert first.ok.all() and first.n_cached == 0
    enc = ref.materialize()
    with torch.inference_mode():
        one_by_one = np.concatenate([enc(**enc.tokenize([t])).numpy() for t in TEXTS])
    np.testing.assert_allclose(first.embeddings, one_by_one, atol=1e-5)
    again = extract_embeddings(ref, ds, batch_size=2)
    assert again.n_cached == len(TEXTS) and again.runtime == "cache"
    np.testing.assert_array_equal(again.embeddings, first.embeddings)


# --------------------------------------------------------------------------- huge texts


def test_a_huge_text_is_cut_before_tokenising_without_changing_its_tokens(tmp_path):
    from transferkit.finetune.text_batches import TextBatches

    enc = _load_tiny(tmp_path)
    huge = "the good movie was not very dull " * 200_000  # 6.6 MB
    assert len(enc.preprocess.clip(huge)) == enc.preprocess.max_chars < len(huge) // 100
    ids = enc.token_ids([huge])["input_ids"][0]
    assert len(ids) == enc.preprocess.max_length
    assert ids == enc.token_ids([huge[:20_000]])["input_ids"][0]  # the same tokens as uncut
    batches = TextBatches([huge, "a film"], np.array([0, 1]), enc, batch_size=2)
    assert batches.input_ids[0] == ids


# Embeds one 5 MB text in a fresh process (peak memory is per process) and prints how far the
# peak resident memory rose above the memory in use just before. Address space is capped so that
# an unbounded encoder fails with MemoryError instead of exhausting the machine.
_PEAK_SCRIPT = """
import resource, sys
from pathlib import Path
from transferkit.backbones import resolve_backbone
from transferkit.data import Dataset, Sample
from transferkit.modalities import extract_embeddings

ref = resolve_backbone(sys.argv[1], allow_download=False)
ref.materialize()
text = "The plot meanders and the jokes land with a thud. " * 100_000
samples = (Sample(Path("t:0"), None, text), Sample(Path("t:1"), None, "short"))
ds = Dataset(samples, (), modality="text")

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from the current use
resource.setrlimit(resource.RLIMIT_AS, (status("VmSize") + 3 * 2**30, resource.RLIM_INFINITY))
before = status("VmRSS")
result = extract_embeddings(ref, ds, cache=False)
assert result.ok.all()
print((status("VmHWM") - before) / 2**20)
"""


# MiB the peak may rise while embedding the 5 MB text (uncut: 760 for MiniLM, 355 for GloVe, over
# 3 GiB for WordLlama and USE). USE embeds every token of the up to ``max_chars`` characters it
# keeps (about 7000 tokens here), at about 40 KiB a token.
_PEAK_MIB = {"use_multilingual": 400}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "name", ["all_minilm_l6_v2", "use_multilingual", "wordllama", "glove_6b_50d"]
)
def test_embedding_a_5_mb_text_keeps_memory_bounded(name):
    import subprocess
    import sys

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("measures peak memory through Linux /proc")
    require_offline_weights(name)
    run = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, name], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout.split()[-1]) < _PEAK_MIB.get(name, 200)
