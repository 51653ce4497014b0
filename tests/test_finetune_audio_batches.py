"""AudioBatches: decoded clips cut into windows, capped per clip, NaN-padded, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.finetune.audio_batches import AudioBatches, pack_windows

sf = pytest.importorskip("soundfile")
RATE = 8000


class _Windows:
    """A stand-in backbone whose windows are 0.1 s slices of the clip (so they are checkable)."""

    class preprocess:  # noqa: N801 - mimics the attribute of a real backbone
        sample_rate = RATE

    def window_inputs(self, wave):
        step = RATE // 10
        return [wave[i : i + step] for i in range(0, len(wave), step)]


@pytest.fixture
def clips(tmp_path):
    """Three clips: 0.1 s, 0.5 s and 2 s of a ramp (values say where they came from)."""
    paths = []
    for i, seconds in enumerate((0.1, 0.5, 2.0)):
        n = int(seconds * RATE)
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, np.linspace(0.1, 0.9, n), RATE, subtype="FLOAT")
        paths.append(path)
    return paths


def test_pack_windows_pads_missing_windows_and_short_ones_with_nan():
    clips = [[np.ones(4, np.float32)], [np.ones(4, np.float32), np.full(2, 2, np.float32)]]
    x = pack_windows(clips)
    assert x.shape == (2, 2, 4)
    assert torch.isnan(x[0, 1]).all() and not torch.isnan(x[0, 0]).any()
    assert torch.isnan(x[1, 1, 2:]).all() and (x[1, 1, :2] == 2).all()


def test_eval_batches_keep_order_and_cap_windows_evenly(clips):
    batches = AudioBatches(
        clips, np.array([0, 1, 2]), _Windows(), batch_size=2, augment="none", eval_windows=5
    )
    out = list(batches.eval_batches())
    assert [len(y) for _, y in out] == [2, 1] and batches.num_batches() == 2
    x, y = out[1]  # the 2 s clip: 20 windows, 5 kept, first and last among them
    assert y.tolist() == [2] and x.shape[1] == 5
    starts = x[0, :, 0].numpy()
    assert np.all(np.diff(starts) > 0)
    assert starts[0] == pytest.approx(0.1, abs=1e-3) and x[0, -1, -1] == pytest.approx(
        0.9, abs=1e-3
    )


def test_training_draws_capped_windows_and_augments_reproducibly(clips):
    def epoch(seed):
        batches = AudioBatches(
            clips, np.array([0, 1, 2]), _Windows(), batch_size=3, augment="light", train_windows=3
        )
        return list(batches.train_epoch(np.random.default_rng(seed)))

    ((x, y),) = epoch(0)
    assert x.shape[:2] == (3, 3) and sorted(y.tolist()) == [0, 1, 2]
    again, other = epoch(0)[0][0], epoch(1)[0][0]
    assert torch.equal(torch.nan_to_num(x), torch.nan_to_num(again))
    assert not torch.equal(torch.nan_to_num(x), torch.nan_to_num(other))
    # gain and delay change the values but every clip keeps at least one window
    assert (~torch.isnan(x.flatten(2)).all(2)).sum(1).min() >= 1


def test_unknown_augmentation_is_refused(clips):
    with pytest.raises(ValueError, match="augment must be one of"):
        AudioBatches(clips, np.array([0, 1, 2]), _Windows(), batch_size=2, augment="mixup")
