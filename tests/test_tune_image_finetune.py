"""benchmarks/tune_image_finetune.py: which draws it tunes on (never the image suite's own)."""

import pytest

from benchmarks.bench_image_suite import SEEDS
from benchmarks.tune_image_finetune import parse_draws


def test_draws_expand_seed_ranges_and_lists():
    assert parse_draws("mnist:50:10-12, tuxpaint:10:14+15") == [
        ("mnist", 50, 10),
        ("mnist", 50, 11),
        ("mnist", 50, 12),
        ("tuxpaint", 10, 14),
        ("tuxpaint", 10, 15),
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_suites_reported_seeds_are_refused(seed):
    with pytest.raises(SystemExit, match="the image suite reports"):
        parse_draws(f"fashion:10:{seed}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fashion:10", "is not name:k:seeds"),
        ("cifar:10:10", "unknown dataset 'cifar'"),
        ("tuxpaint:50:10", "tuxpaint has K = \\(10,\\) only"),
        ("", "no draws given"),
    ],
)
def test_bad_draws_say_what_is_wrong(text, message):
    with pytest.raises(SystemExit, match=message):
        parse_draws(text)
