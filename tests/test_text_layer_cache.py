"""The frozen-lower-layer shortcut for contrastive training: it must give the encoder's own
embeddings and gradients for any batch composition, and step aside when it cannot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from test_text_backbone import _tiny_bert_folder  # noqa: E402

from transferkit.finetune.text_batches import TextBatches  # noqa: E402
from transferkit.finetune.text_layer_cache import FrozenLayerCache  # noqa: E402

TEXTS = [
    "good movie",
    "a great fun film with a good actor and a great plot",
    "bad",
    "dull film",
    "a bad actor in an awful plot and a dull movie",
    "not fun",
    "good fun",
]


@pytest.fixture()
def encoder(tmp_path, monkeypatch):
    from transferkit.backbones import resolve_backbone

    monkeypatch.setenv("TRANSFERKIT_CACHE_DIR", str(tmp_path / "cache"))
    weights = _tiny_bert_folder(tmp_path / "tiny") / "model.safetensors"
    return resolve_backbone("hf:test/tiny", weights=weights).materialize()


def _batches(encoder, batch_size=3) -> TextBatches:
    return TextBatches(TEXTS, np.arange(len(TEXTS)) % 2, encoder, batch_size=batch_size)


def test_by_length_covers_every_text_once_shortest_first(encoder):
    batches = _batches(encoder)
    seen = [rows for rows, _ in batches.by_length()]
    assert sorted(sum(seen, [])) == list(range(len(TEXTS)))
    lengths = [len(batches.input_ids[r]) for rows in seen for r in rows]
    assert lengths == sorted(lengths)


@pytest.mark.parametrize("start", [0, 1])
def test_cached_forward_equals_the_encoder_for_any_batch_composition(encoder, start):
    batches = _batches(encoder)
    cache = FrozenLayerCache.build(encoder, batches, start)
    assert cache is not None
    encoder.eval()
    # the cache was filled in length-sorted batches; these mix short and long texts
    for rows in ([1, 2], [6, 4, 0, 3], [5]):
        x, _ = batches.pack(rows)
        with torch.no_grad():
            torch.testing.assert_close(cache.forward(x, rows), encoder(x), atol=1e-5, rtol=1e-5)


def test_cached_training_step_gives_the_encoders_gradients(encoder):
    from transferkit.finetune.freezing import set_unfrozen_groups
    from transferkit.finetune.pair_losses import supcon_loss as pair_loss

    groups = encoder.layer_groups()
    set_unfrozen_groups(encoder, groups, 1)  # the top layer trains
    batches = _batches(encoder)
    cache = FrozenLayerCache.for_top_layers(encoder, batches, 1)
    assert cache is not None and cache.start == 1
    encoder.eval()  # no dropout, so both paths compute the same function
    rows = [0, 4, 2, 5]
    x, y = batches.pack(rows)

    def grads(forward) -> dict[str, torch.Tensor]:
        encoder.zero_grad(set_to_none=True)
        pair_loss(forward(), y, temperature=0.1).backward()
        # (the pooler sits in the top group but takes no part in mean pooling: no gradient)
        return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}

    via_cache, direct = grads(lambda: cache.forward(x, rows)), grads(lambda: encoder(x))
    assert set(via_cache) == set(direct) and set(direct) <= set(groups[-1])
    assert any(".layer.1." in name for name in direct)
    for name in direct:
        torch.testing.assert_close(via_cache[name], direct[name], atol=1e-5, rtol=1e-4)


def test_every_layer_training_needs_no_cache(encoder):
    # top 3 groups of [embeddings, layer 0, layer 1]: nothing frozen below to cache
    assert FrozenLayerCache.for_top_layers(encoder, _batches(encoder), 3) is None


def test_a_step_after_the_layers_that_the_cache_cannot_see_turns_it_off(encoder, caplog):
    # a norm after the layer loop (as some architectures have) is not reproduced: the check
    # against the full forward pass must notice and refuse the shortcut
    encoder.model.encoder.register_forward_hook(
        lambda _m, _args, out: type(out)(last_hidden_state=out.last_hidden_state * 2.0)
    )
    with caplog.at_level("INFO", logger="transferkit"):
        assert FrozenLayerCache.build(encoder, _batches(encoder), 1) is None
    assert "whole encoder" in caplog.text


def test_training_mode_is_restored_after_building(encoder):
    encoder.train()
    FrozenLayerCache.build(encoder, _batches(encoder), 1)
    assert encoder.training


def test_contrastive_reports_whether_it_used_the_cache(encoder, tmp_path):
    from transferkit.data import Dataset, Sample
    from transferkit.estimator import TransferClassifier

    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(TEXTS)]
    samples = tuple(Sample(Path(f"d.csv:{i}"), y, t) for i, (t, y) in enumerate(rows))
    ds = Dataset(samples, ("neg", "pos"), source="d.csv", modality="text")
    clf = TransferClassifier(
        backbone="hf:test/tiny",
        weights=tmp_path / "tiny" / "model.safetensors",  # the encoder fixture's
        strategy="contrastive",
        strategy_params={"epochs": 2, "lr": 1e-3, "train_groups": 1},
        progress=False,
        cache=False,
    ).fit(ds)
    assert clf.fit_info_["contrastive"]["cached_lower_layers"] is True


def test_length_chunks_sort_by_length_and_keep_every_row(encoder):
    batches = _batches(encoder)
    rows = [4, 0, 6, 1, 2]
    chunks = batches.length_chunks(rows, 2)
    assert [len(c) for c in chunks] == [2, 2, 1]
    flat = [r for c in chunks for r in c]
    assert sorted(flat) == sorted(rows)
    lengths = [len(batches.input_ids[r]) for r in flat]
    assert lengths == sorted(lengths)


def test_chunked_forward_gives_the_batch_embeddings_in_chunk_order(encoder):
    # contrastive concatenates the chunks' embeddings: the same rows, less padding
    batches = _batches(encoder)
    encoder.eval()
    rows = [1, 2, 4, 5, 6]
    chunks = batches.length_chunks(rows, 2)
    flat = [r for c in chunks for r in c]
    with torch.no_grad():
        chunked = torch.cat([encoder(batches.pack(c)[0]) for c in chunks])
        whole = encoder(batches.pack(flat)[0])
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
