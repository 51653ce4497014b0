"""The deep domain adaptation losses against their references, on the same fixed tensors.

tllib's formulas (thuml/Transfer-Learning-Library: ``tllib/modules/grl.py``,
``alignment/dann.py``, ``alignment/cdan.py``, ``alignment/dan.py``, ``modules/kernels.py``,
``modules/entropy.py``) are transcribed below as they are written there, with a sigmoid
discriminator and ``F.binary_cross_entropy``; ours put the sigmoid into the loss
(``binary_cross_entropy_with_logits``). pytorch-adapt's own functions are compared directly
when it is importable (it is not a dependency: its layers need torchmetrics 0.9.3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transferkit.finetune.domain import (
    ConditionalDomainAdversarialLoss,
    DomainAdversarialLoss,
    DomainDiscriminator,
    GaussianKernels,
    GradientReverseLayer,
    MultiLinearMap,
    MultipleKernelMMD,
    RandomizedMultiLinearMap,
    entropy,
    warm_up_coefficient,
)


def _tensors(n_s=12, n_t=12, dim=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    f_s = torch.randn(n_s, dim, generator=g)
    f_t = torch.randn(n_t, dim, generator=g) * 1.5 + 0.7
    g_s = torch.randn(n_s, classes, generator=g) * 2
    g_t = torch.randn(n_t, classes, generator=g)
    return f_s, f_t, g_s, g_t


def _discriminator(in_features: int, seed: int = 1) -> DomainDiscriminator:
    torch.manual_seed(seed)
    d = DomainDiscriminator(in_features, hidden=32)
    return d.train()


# -- tllib, transcribed -----------------------------------------------------------------------
def tllib_dann(discriminator, f_s, f_t):
    """tllib DomainAdversarialLoss.forward, sigmoid=True, no instance weights."""
    f = torch.cat((f_s, f_t), dim=0)
    d = torch.sigmoid(discriminator(f))
    d_s, d_t = d.chunk(2, dim=0)
    d_label_s = torch.ones((f_s.size(0), 1))
    d_label_t = torch.zeros((f_t.size(0), 1))
    return 0.5 * (
        F.binary_cross_entropy(d_s, d_label_s, weight=torch.ones_like(d_label_s))
        + F.binary_cross_entropy(d_t, d_label_t, weight=torch.ones_like(d_label_t))
    )


def tllib_entropy(predictions):
    return (-predictions * torch.log(predictions + 1e-5)).sum(dim=1)


def tllib_cdan(discriminator, conditioning, entropy_conditioning, g_s, f_s, g_t, f_t):
    """tllib ConditionalDomainAdversarialLoss.forward, sigmoid=True."""
    f = torch.cat((f_s, f_t), dim=0)
    g = torch.cat((g_s, g_t), dim=0)
    g = F.softmax(g, dim=1).detach()
    h = conditioning(f, g)
    d = torch.sigmoid(discriminator(h))
    weight = 1.0 + torch.exp(-tllib_entropy(g))
    batch_size = f.size(0)
    weight = weight / torch.sum(weight) * batch_size
    d_label = torch.cat((torch.ones((g_s.size(0), 1)), torch.zeros((g_t.size(0), 1))))
    if entropy_conditioning:
        return F.binary_cross_entropy(d, d_label, weight.view_as(d))
    return F.binary_cross_entropy(d, d_label)


def tllib_multilinear(f, g):
    return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).view(f.size(0), -1)


def tllib_randomized(f, g, Rf, Rg):
    output_dim = Rf.shape[1]
    return torch.mul(torch.mm(f, Rf), torch.mm(g, Rg)) / np.sqrt(float(output_dim))


def tllib_gaussian_kernel(X, alpha):
    """tllib GaussianKernel.forward with track_running_stats=True."""
    l2_distance_square = ((X.unsqueeze(0) - X.unsqueeze(1)) ** 2).sum(2)
    sigma_square = alpha * torch.mean(l2_distance_square.detach())
    return torch.exp(-l2_distance_square / (2 * sigma_square))


def tllib_mkmmd(z_s, z_t, alphas):
    """tllib MultipleKernelMaximumMeanDiscrepancy.forward, linear=False (equal batch sizes)."""
    features = torch.cat([z_s, z_t], dim=0)
    batch_size = int(z_s.size(0))
    index_matrix = torch.zeros(2 * batch_size, 2 * batch_size)
    for i in range(batch_size):
        for j in range(batch_size):
            if i != j:
                index_matrix[i][j] = 1.0 / float(batch_size * (batch_size - 1))
                index_matrix[i + batch_size][j + batch_size] = 1.0 / float(
                    batch_size * (batch_size - 1)
                )
    for i in range(batch_size):
        for j in range(batch_size):
            index_matrix[i][j + batch_size] = -1.0 / float(batch_size * batch_size)
            index_matrix[i + batch_size][j] = -1.0 / float(batch_size * batch_size)
    kernel_matrix = sum(tllib_gaussian_kernel(features, a) for a in alphas)
    return (kernel_matrix * index_matrix).sum() + 2.0 / float(batch_size - 1)


# -- gradient reversal ------------------------------------------------------------------------
def test_warm_up_coefficient_is_the_papers_schedule():
    for p in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        assert warm_up_coefficient(p) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1, abs=1e-15)
    assert warm_up_coefficient(0.0) == 0.0
    assert warm_up_coefficient(1.0) > 0.9999
    values = [warm_up_coefficient(p) for p in np.linspace(0, 1, 50)]
    assert all(b > a for a, b in zip(values, values[1:]))
    # tllib's WarmStartGradientReverseLayer(alpha, lo, hi, max_iters) at iter_num = p·max_iters
    assert warm_up_coefficient(0.3, gamma=10, low=0.2, high=0.8) == pytest.approx(
        2.0 * (0.8 - 0.2) / (1.0 + np.exp(-10 * 0.3)) - (0.8 - 0.2) + 0.2
    )


def test_gradient_reverse_layer_is_identity_forward_and_negates_backward():
    x = torch.randn(5, 4, requires_grad=True)
    upstream = torch.randn(5, 4)
    grl = GradientReverseLayer(0.37)
    y = grl(x)
    assert torch.equal(y, x)
    y.backward(upstream)
    torch.testing.assert_close(x.grad, -0.37 * upstream)


def test_dann_reverses_the_discriminators_gradient_on_the_features():
    """The features' gradient is the discriminator's own gradient, sign flipped and scaled by
    the coefficient; the discriminator's parameters get it unreversed (they learn to tell the
    domains apart). Without the reversal this test fails."""
    f_s, f_t, _, _ = _tensors()
    disc = _discriminator(f_s.shape[1])
    plain_s, plain_t = f_s.clone().requires_grad_(), f_t.clone().requires_grad_()
    tllib_dann(disc, plain_s, plain_t).backward()
    plain_disc_grad = [p.grad.clone() for p in disc.parameters()]
    disc.zero_grad()

    rev_s, rev_t = f_s.clone().requires_grad_(), f_t.clone().requires_grad_()
    loss = DomainAdversarialLoss(disc, GradientReverseLayer(0.5))
    loss(rev_s, rev_t).backward()
    torch.testing.assert_close(rev_s.grad, -0.5 * plain_s.grad)
    torch.testing.assert_close(rev_t.grad, -0.5 * plain_t.grad)
    assert plain_s.grad.abs().sum() > 0
    for ours, plain in zip(disc.parameters(), plain_disc_grad):
        torch.testing.assert_close(ours.grad, plain)


# -- DANN and CDAN ----------------------------------------------------------------------------
@pytest.mark.parametrize(("n_s", "n_t"), [(12, 12), (9, 9)])
def test_dann_equals_tllib(n_s, n_t):
    f_s, f_t, _, _ = _tensors(n_s, n_t)
    disc = _discriminator(f_s.shape[1])
    ours = DomainAdversarialLoss(disc)(f_s, f_t)
    torch.testing.assert_close(ours, tllib_dann(disc, f_s, f_t))


def test_dann_with_unequal_batches_is_the_mean_of_each_domains_cross_entropy():
    f_s, f_t, _, _ = _tensors(10, 6)
    disc = _discriminator(f_s.shape[1])
    loss = DomainAdversarialLoss(disc)
    value = loss(f_s, f_t)
    d = torch.sigmoid(disc(torch.cat([f_s, f_t])))
    expected = 0.5 * (-torch.log(d[:10]).mean() - torch.log(1 - d[10:]).mean())
    torch.testing.assert_close(value, expected)
    accuracy = 0.5 * ((d[:10] >= 0.5).float().mean() + (d[10:] < 0.5).float().mean())
    assert loss.discriminator_accuracy == pytest.approx(float(accuracy))


@pytest.mark.parametrize("entropy_conditioning", [False, True])
def test_cdan_with_the_multilinear_map_equals_tllib(entropy_conditioning):
    f_s, f_t, g_s, g_t = _tensors()
    disc = _discriminator(f_s.shape[1] * g_s.shape[1])
    loss = ConditionalDomainAdversarialLoss(disc, entropy_conditioning=entropy_conditioning)
    expected = tllib_cdan(disc, tllib_multilinear, entropy_conditioning, g_s, f_s, g_t, f_t)
    torch.testing.assert_close(loss(g_s, f_s, g_t, f_t), expected)


def test_cdan_with_the_randomized_map_equals_tllib():
    f_s, f_t, g_s, g_t = _tensors(dim=40, classes=5)
    conditioning = RandomizedMultiLinearMap(40, 5, 64, generator=torch.Generator().manual_seed(3))
    disc = _discriminator(64)
    loss = ConditionalDomainAdversarialLoss(disc, conditioning=conditioning)

    def reference_map(f, g):
        return tllib_randomized(f, g, conditioning.Rf, conditioning.Rg)

    expected = tllib_cdan(disc, reference_map, True, g_s, f_s, g_t, f_t)
    torch.testing.assert_close(loss(g_s, f_s, g_t, f_t), expected)
    # the random matrices are buffers: a checkpoint of the module keeps them
    assert {"Rf", "Rg"} <= set(conditioning.state_dict())


def test_the_randomized_map_estimates_the_multilinear_maps_inner_products():
    f, _, g, _ = _tensors(n_s=4, dim=8, classes=3)
    g = F.softmax(g, dim=1)
    exact = MultiLinearMap()(f, g)
    approx = RandomizedMultiLinearMap(8, 3, 200_000, generator=torch.Generator().manual_seed(0))(
        f, g
    )
    torch.testing.assert_close(approx @ approx.T, exact @ exact.T, rtol=0.05, atol=0.05)


def test_entropy_equals_tllib():
    p = F.softmax(torch.randn(7, 4) * 3, dim=1)
    torch.testing.assert_close(entropy(p), tllib_entropy(p))


# -- MK-MMD -----------------------------------------------------------------------------------
def test_mkmmd_equals_tllib_up_to_its_constant():
    f_s, f_t, _, _ = _tensors(16, 16, dim=5)
    alphas = (0.125, 0.25, 0.5, 1.0, 2.0)
    ours = MultipleKernelMMD(GaussianKernels(alphas))(f_s, f_t)
    # tllib adds 2/(n-1) "to ensure the loss is positive"; the estimate itself is without it
    torch.testing.assert_close(ours + 2.0 / 15, tllib_mkmmd(f_s, f_t, alphas))


def test_mkmmd_is_near_zero_for_one_distribution_and_grows_with_the_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 3, generator=g), torch.randn(400, 3, generator=g)
    mmd = MultipleKernelMMD()
    same = float(mmd(a, b))
    assert abs(same) < 0.01
    shifted = [float(mmd(a, b + shift)) for shift in (0.5, 1.0, 2.0)]
    assert same < shifted[0] < shifted[1] < shifted[2]


def test_linear_mkmmd_is_an_unbiased_estimate_of_the_quadratic_one():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4000, 2, generator=g), torch.randn(4000, 2, generator=g) + 0.8
    quadratic = float(MultipleKernelMMD()(a[:800], b[:800]))
    linear = float(MultipleKernelMMD(estimate="linear")(a, b))
    assert linear == pytest.approx(quadratic, rel=0.15)
    with pytest.raises(ValueError, match="as many source as target rows"):
        MultipleKernelMMD(estimate="linear")(a[:10], b[:12])


# -- pytorch-adapt, when installed --------------------------------------------------------------
def _pytorch_adapt():
    try:
        from pytorch_adapt.layers import GradientReversal, RandomizedDotProduct
        from pytorch_adapt.layers.utils import get_mmd_linear, get_mmd_quadratic
    except Exception:  # not installed, or its torchmetrics does not import here
        pytest.skip("pytorch-adapt is not importable (it is not a transferkit dependency)")
    return GradientReversal, RandomizedDotProduct, get_mmd_quadratic, get_mmd_linear


def test_against_pytorch_adapt():
    GradientReversal, RandomizedDotProduct, get_mmd_quadratic, get_mmd_linear = _pytorch_adapt()
    x = torch.randn(6, 5, requires_grad=True)
    up = torch.randn(6, 5)
    GradientReversal(0.3)(x).backward(up)
    theirs, x.grad = x.grad.clone(), None
    GradientReverseLayer(0.3)(x).backward(up)
    torch.testing.assert_close(x.grad, theirs)

    f_s, f_t, g_s, _ = _tensors(dim=9, classes=4)
    g = F.softmax(g_s, dim=1)
    rdp = RandomizedDotProduct([9, 4], 32)
    ours = RandomizedMultiLinearMap(9, 4, 32)
    ours.Rf.copy_(rdp.rand_mat0)
    ours.Rg.copy_(rdp.rand_mat1)
    torch.testing.assert_close(ours(f_s, g), rdp(f_s, g))

    # their kernel is exp(d · scale) averaged over kernels, ours exp(-d / 2σ²) summed
    kernels = GaussianKernels()
    sigma2 = torch.stack(kernels.bandwidths(torch.cat([f_s, f_t])))
    scale = -1.0 / (2.0 * sigma2)

    def d2(a, b):
        return ((a.unsqueeze(1) - b.unsqueeze(0)) ** 2).sum(-1)

    m = len(kernels.alphas)
    quadratic = get_mmd_quadratic(d2(f_s, f_s), d2(f_t, f_t), d2(f_s, f_t), scale)
    torch.testing.assert_close(MultipleKernelMMD(kernels)(f_s, f_t) / m, quadratic)
    linear = get_mmd_linear(d2(f_s, f_s), d2(f_t, f_t), d2(f_s, f_t), scale)
    torch.testing.assert_close(MultipleKernelMMD(kernels, estimate="linear")(f_s, f_t) / m, linear)
