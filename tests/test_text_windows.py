"""Windows of long texts for contrastive's pair loss (``finetune/text_windows.py``): each long
text is cut into windows of the pair loss's length that together cover what the encoder reads;
each epoch reads one at random; texts that fit are read exactly as before."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.finetune.text_windows import WindowPicker, split_windows

CLS, SEP = 101, 102


def _ids(n: int, start: int = 1000) -> list[int]:
    """A text of ``n`` tokens of its own, wrapped as a BERT tokenizer wraps it."""
    return [CLS, *range(start, start + n), SEP]


def test_a_long_text_is_cut_into_windows_that_cover_it_each_wrapped():
    windows, owner = split_windows([_ids(3), _ids(10, 2000)], [CLS, SEP], max_length=6)
    assert windows[0] == _ids(3) and owner.tolist() == [0, 1, 1, 1]
    inner = [w[1:-1] for w in windows[1:]]
    assert all(w[0] == CLS and w[-1] == SEP and len(w) == 6 for w in windows[1:])
    # consecutive, the last one ending at the text's end: every token is in some window
    assert inner == [list(range(2000, 2004)), list(range(2004, 2008)), list(range(2006, 2010))]


def test_a_prompt_before_the_text_is_kept_in_every_window():
    prompt = [CLS, 7, 8]  # e.g. "query: " after [CLS]
    text = [*prompt, *range(500, 510), SEP]
    windows, _ = split_windows([text], [*prompt, SEP], max_length=8)
    assert all(w[:3] == prompt and w[-1] == SEP and len(w) == 8 for w in windows)
    assert sorted({t for w in windows for t in w[3:-1]}) == list(range(500, 510))


def test_texts_that_fit_are_their_own_single_window_and_draw_nothing():
    texts = [_ids(2), _ids(4)]
    windows, owner = split_windows(texts, [CLS, SEP], max_length=6)
    assert windows == texts and owner.tolist() == [0, 1]
    picker = WindowPicker(owner, seed=0)
    state = picker.rng.bit_generator.state
    assert picker.epoch_windows().tolist() == [0, 1] and picker.windowed() == 0
    assert picker.rng.bit_generator.state == state
    # batches are then the texts shuffled exactly as TextBatches.epoch_rows shuffles them
    rows = list(picker.epoch_rows(np.random.default_rng(3), batch_size=1))
    assert rows == [[int(i)] for i in np.random.default_rng(3).permutation(2)]


def test_a_tokenizer_whose_wrapping_cannot_be_found_reads_first_tokens():
    assert split_windows([[5, *range(20), 6]], [CLS, SEP], max_length=6) is None


def test_each_epoch_picks_one_window_of_every_text_seeded():
    _, owner = split_windows([_ids(20), _ids(1), _ids(9)], [CLS, SEP], max_length=5)
    picker = WindowPicker(owner, seed=4)
    epochs = [picker.epoch_windows() for _ in range(40)]
    for rows in epochs:
        assert owner[rows].tolist() == [0, 1, 2]  # one window of each text, in text order
    seen = {int(r) for rows in epochs for r in rows}
    assert seen == set(range(len(owner)))  # over the epochs, every window is read
    again = WindowPicker(owner, seed=4)
    assert all((again.epoch_windows() == rows).all() for rows in epochs)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_an_epochs_batches_hold_every_text_once(batch_size):
    _, owner = split_windows([_ids(20), _ids(1), _ids(9)], [CLS, SEP], max_length=5)
    batches = list(WindowPicker(owner, seed=0).epoch_rows(np.random.default_rng(0), batch_size))
    rows = [r for b in batches for r in b]
    assert sorted(owner[rows].tolist()) == [0, 1, 2]
    assert all(len(b) <= batch_size for b in batches)
