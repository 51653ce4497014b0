"""The in-batch pair losses of contrastive fine-tuning: values worked out by hand, a naive
per-anchor loop as reference, and the edge cases a few-shot batch meets (a class with one text,
a batch with no same-class pair)."""

from __future__ import annotations

import math

import pytest
import torch

from transferkit.finetune.pair_losses import PAIR_LOSSES, cosine_pair_loss, supcon_loss
from transferkit.strategies.contrastive import ContrastiveConfig

Y4 = torch.tensor([0, 0, 1, 1])
T = ContrastiveConfig().temperature  # the default the strategy trains with
PERFECT = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]])  # classes on orthogonal axes


def test_cosine_loss_is_zero_for_perfect_clusters_and_weighs_pair_kinds_equally():
    assert float(cosine_pair_loss(PERFECT, Y4)) == pytest.approx(0.0, abs=1e-7)
    collapsed = torch.ones(4, 2)  # every pair at cosine 1: positives right, negatives wrong
    assert float(cosine_pair_loss(collapsed, Y4)) == pytest.approx(0.5)  # (0 + 1) / 2
    three = torch.tensor([0, 0, 0, 1])  # 3 positive pairs, 3 negative: still half and half
    assert float(cosine_pair_loss(torch.ones(4, 2), three)) == pytest.approx(0.5)


def test_supcon_on_perfect_clusters_is_the_value_worked_out_by_hand():
    # each anchor: its positive at cosine 1, two negatives at cosine 0, so the loss is
    # -log(e^(1/t) / (e^(1/t) + 2)) = log(1 + 2 e^(-1/t))
    for t in (0.1, 0.5, 1.0):
        expected = math.log(1 + 2 * math.exp(-1 / t))
        got = float(supcon_loss(PERFECT, Y4, temperature=t))
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)  # float32 near log(1)
    # collapsed: all three others at cosine 1, one of them positive: log 3 at any temperature
    assert float(supcon_loss(torch.ones(4, 2), Y4, temperature=T)) == pytest.approx(
        math.log(3), rel=1e-5
    )


def _naive_supcon(emb: torch.Tensor, y: list[int], t: float) -> float:
    unit = torch.nn.functional.normalize(emb.double(), dim=1)
    per_anchor = []
    for i in range(len(y)):
        others = [j for j in range(len(y)) if j != i]
        positives = [j for j in others if y[j] == y[i]]
        if not positives:
            continue
        log_denominator = torch.logsumexp(torch.stack([unit[i] @ unit[j] / t for j in others]), 0)
        per_anchor.append(sum(float(unit[i] @ unit[j] / t - log_denominator) for j in positives)
                          / len(positives))  # fmt: skip
    return -sum(per_anchor) / len(per_anchor)


def test_supcon_matches_a_per_anchor_loop_and_skips_anchors_without_a_same_class_text():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(7, 5, generator=gen) * 3
    y = [0, 1, 0, 2, 1, 0, 3]  # classes 2 and 3 have one text each: no positive to pull to
    got = float(supcon_loss(emb, torch.tensor(y), temperature=0.2))
    assert got == pytest.approx(_naive_supcon(emb, y, 0.2), rel=1e-5)
    assert math.isfinite(got)


def test_supcon_prefers_separated_classes_and_ignores_scale():
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.1], [0.1, 1.0]])  # classes interleaved
    assert float(supcon_loss(PERFECT, Y4, temperature=T)) < float(
        supcon_loss(mixed, Y4, temperature=T)
    )
    assert float(supcon_loss(PERFECT * 7, Y4, temperature=T)) == pytest.approx(
        float(supcon_loss(PERFECT, Y4, temperature=T))
    )


def test_supcon_without_any_same_class_pair_is_zero_with_finite_gradients():
    emb = torch.randn(3, 4, requires_grad=True)
    loss = supcon_loss(emb, torch.tensor([0, 1, 2]), temperature=T)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(emb.grad, torch.zeros(3, 4))


def test_both_losses_pull_same_class_texts_together():
    for name, loss_fn in PAIR_LOSSES.items():
        emb = torch.tensor([[1.0, 0.2], [0.2, 1.0], [1.0, -0.2], [-0.2, 1.0]], requires_grad=True)
        y = torch.tensor([0, 0, 1, 1])  # texts 0 and 1 share a class but point apart
        loss_fn(emb, y, **({"temperature": T} if name == "supcon" else {})).backward()
        step = emb.detach() - 0.1 * emb.grad
        unit = torch.nn.functional.normalize(step, dim=1)
        before = torch.nn.functional.normalize(emb.detach(), dim=1)
        assert float(unit[0] @ unit[1]) > float(before[0] @ before[1]), name
