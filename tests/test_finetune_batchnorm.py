"""AdaBN: BatchNorm statistics re-estimated on the target images, weights untouched."""

from __future__ import annotations

import torch
from torch import nn

from transferkit.finetune.batchnorm import reestimate_bn_statistics


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_statistics_become_the_average_over_the_batches():
    net = _net()
    weights = {
        k: v.clone()
        for k, v in net.state_dict().items()
        if "running" not in k and "tracked" not in k
    }
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(5, 3, 8, 8, generator=g) * 3 + 2, None) for _ in range(4)]
    seen = reestimate_bn_statistics(net, batches, torch.device("cpu"))
    assert seen == 20
    # the first BN sees the raw input: its mean is the per-channel mean of every batch (each
    # batch weighs the same: momentum=None is a cumulative average of batch means)
    expected = torch.stack([x.mean(dim=(0, 2, 3)) for x, _ in batches]).mean(0)
    assert torch.allclose(net[0].running_mean, expected, atol=1e-5)
    assert not net.training
    assert net[0].momentum == 0.1  # restored
    for k, v in net.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_no_batches_leaves_the_statistics_alone():
    net = _net()
    net[0].running_mean.fill_(0.5)
    assert reestimate_bn_statistics(net, [], torch.device("cpu")) == 0
    assert torch.all(net[0].running_mean == 0.5)
