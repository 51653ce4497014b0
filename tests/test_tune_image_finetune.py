"""benchmarks/tune_image_finetune.py: which draws it tunes on (never the image suite's own)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tune():
    if str(ROOT) not in sys.path:  # benchmarks/ is not installed: run from the checkout
        sys.path.insert(0, str(ROOT))
    import benchmarks.tune_image_finetune as tune

    return tune


def test_draws_expand_seed_ranges_and_lists(tune):
    assert tune.parse_draws("mnist:50:10-12, tuxpaint:10:14+15") == [
        ("mnist", 50, 10),
        ("mnist", 50, 11),
        ("mnist", 50, 12),
        ("tuxpaint", 10, 14),
        ("tuxpaint", 10, 15),
    ]


def test_the_suites_reported_seeds_are_refused(tune):
    assert tune.SEEDS  # the seeds bench_image_suite reports
    for seed in tune.SEEDS:
        with pytest.raises(SystemExit, match="the image suite reports"):
            tune.parse_draws(f"fashion:10:{seed}")
    with pytest.raises(SystemExit, match=r"seeds \[2\]"):
        tune.parse_draws("fashion:10:2-4")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fashion:10", "is not name:k:seeds"),
        ("cifar:10:10", "unknown dataset 'cifar'"),
        ("tuxpaint:50:10", "tuxpaint has K = \\(10,\\) only"),
        ("", "no draws given"),
    ],
)
def test_bad_draws_say_what_is_wrong(tune, text, message):
    with pytest.raises(SystemExit, match=message):
        tune.parse_draws(text)
