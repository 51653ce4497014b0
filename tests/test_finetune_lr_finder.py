"""Learning-rate range test: suggestion, exact model restore, early stop, plot, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from finetune_models import TinyNet, tiny_groups

from transferkit.errors import BadInputError
from transferkit.finetune.freezing import freeze
from transferkit.finetune.lr_finder import LRFindResult, lr_find, suggest_lr
from transferkit.finetune.param_groups import discriminative_param_groups


def _batches(n_batches: int = 6, batch: int = 24, seed: int = 0) -> list[tuple]:
    """Three separable classes on 8x8 RGB: the class's channel is brighter."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, 3, (batch,), generator=g)
        x = 0.5 * torch.randn(batch, 3, 8, 8, generator=g)
        x[torch.arange(batch), y] += 1.0
        out.append((x, y))
    return out


def _model(seed: int = 0, **kwargs) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(**kwargs)


def _adamw(model):
    return lambda lr: torch.optim.AdamW(model.parameters(), lr=lr)


def test_suggestion_on_a_separable_task_is_sane():
    model = _model()
    result = lr_find(
        model, _batches(), loss_fn=F.cross_entropy, build_optimizer=_adamw(model), seed=0
    )
    assert 1e-7 < result.suggestion < 10
    assert 1e-4 <= result.suggestion <= 1, result.reason
    assert result.rule == "steep" and "steepest" in result.reason
    assert result.lrs[0] == pytest.approx(1e-7)
    assert all(a < b for a, b in zip(result.lrs, result.lrs[1:]))
    assert len(result.lrs) == len(result.losses)
    # the loss did fall somewhere in the sweep before it blew up
    assert min(result.losses) < result.losses[0]


def test_model_is_restored_bit_identically():
    model = _model(dropout=0.2)
    freeze(model.stem)  # stem frozen: its BN stays in eval mode, the flags must come back
    model.head.eval()  # an odd mix of modes must come back too
    model.block1[0].weight.grad = torch.full_like(model.block1[0].weight, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    grad = model.block1[0].weight.grad.clone()
    rng = torch.get_rng_state()

    params = [p for p in model.parameters() if p.requires_grad]
    result = lr_find(
        model,
        _batches(),
        loss_fn=F.cross_entropy,
        build_optimizer=lambda lr: torch.optim.AdamW(params, lr=lr),
        num_steps=30,
        seed=3,
    )
    assert len(result.lrs) > 5  # it did train (and so changed the model) along the way
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key].dtype == value.dtype
        assert torch.equal(after[key], value), key
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert torch.equal(model.block1[0].weight.grad, grad)
    assert model.block2[0].weight.grad is None
    assert torch.equal(torch.get_rng_state(), rng)


def test_divergence_stops_early():
    model = _model()
    result = lr_find(
        model,
        _batches(),
        loss_fn=F.cross_entropy,
        build_optimizer=_adamw(model),
        start_lr=1e-3,
        end_lr=1e6,
        num_steps=100,
        seed=0,
    )
    assert result.diverged
    assert len(result.lrs) < 100
    assert "Stopped early" in result.reason
    assert result.losses[-1] > 4 * min(result.losses) or not math.isfinite(result.losses[-1])


def test_no_early_stop_when_the_loss_stays_put():
    model = _model()
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        return F.cross_entropy(out, y)

    result = lr_find(
        model,
        _batches(n_batches=3),
        loss_fn=loss_fn,
        build_optimizer=_adamw(model),
        start_lr=1e-7,
        end_lr=1e-5,
        num_steps=20,
    )
    assert not result.diverged
    assert len(result.lrs) == 20 == len(calls)  # 3 batches, cycled through
    assert result.lrs[-1] == pytest.approx(1e-5)


def test_one_shot_iterator_is_replayed():
    model = _model()
    data = _batches(n_batches=2)
    seen = []

    def loss_fn(out, y):
        seen.append(y)
        return F.cross_entropy(out, y)

    lr_find(
        model,
        iter(data),
        loss_fn=loss_fn,
        build_optimizer=_adamw(model),
        end_lr=1e-6,
        num_steps=5,
    )
    assert len(seen) == 5
    for i, y in enumerate(seen):
        assert torch.equal(y, data[i % 2][1])


def test_group_lr_ratios_are_kept():
    model = _model()
    groups = tiny_groups(model)
    built = []

    def build(lr):
        opt = torch.optim.AdamW(
            discriminative_param_groups(model, groups, head_lr=lr, decay=0.5, unfrozen_groups=2)
        )
        built.append(opt)
        return opt

    result = lr_find(
        model, _batches(), loss_fn=F.cross_entropy, build_optimizer=build, num_steps=10
    )
    by_name = {g["group_name"]: g["lr"] for g in built[0].param_groups}
    head = by_name["head/decay"]
    assert head == pytest.approx(result.lrs[-1])
    assert by_name["group2/decay"] == pytest.approx(head * 0.5)
    assert by_name["group1/decay"] == pytest.approx(head * 0.25)


def test_param_groups_and_base_lr():
    model = _model()
    groups = discriminative_param_groups(
        model, tiny_groups(model), head_lr=1e-3, decay=0.1, unfrozen_groups=1
    )
    result = lr_find(
        model,
        _batches(),
        loss_fn=F.cross_entropy,
        param_groups=groups,
        base_lr=1e-3,
        num_steps=40,
        seed=0,
    )
    assert 1e-7 < result.suggestion < 10
    assert groups[0]["lr"] == 1e-3  # the caller's groups are not modified


def test_deterministic_given_a_seed():
    runs = []
    for _ in range(2):
        model = _model(dropout=0.3)
        runs.append(
            lr_find(
                model,
                _batches(),
                loss_fn=F.cross_entropy,
                build_optimizer=_adamw(model),
                num_steps=25,
                seed=7,
            )
        )
    assert runs[0].to_dict() == runs[1].to_dict()


def test_result_is_json_serialisable():
    model = _model()
    result = lr_find(
        model,
        _batches(),
        loss_fn=F.cross_entropy,
        build_optimizer=_adamw(model),
        num_steps=30,
        seed=0,
    )
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(data) >= {"lrs", "losses", "suggestion", "reason"}
    assert data["suggestion"] == result.suggestion
    assert LRFindResult(**data) == result


def test_plot_png(tmp_path):
    result = LRFindResult(
        lrs=[1e-5, 1e-4, 1e-3, 1e-2, 1e-1],
        losses=[1.1, 1.0, 0.6, 0.5, 2.0],
        suggestion=1e-4,
        reason="test",
    )
    path = result.plot_png(tmp_path / "plots" / "lr_find.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["lr_find.png"]  # no temp file left


def test_suggest_lr_rules():
    lrs = [10.0 ** (k / 2) for k in range(-12, 8)]  # 1e-6 .. ~3e3, 20 points
    losses = [2.0] * 6 + [1.9, 1.0, 0.9, 0.8, 0.7, 0.6] + [0.6] * 8
    lr, rule, reason = suggest_lr(lrs, losses)
    assert (lr, rule) == (lrs[6], "steep")
    # the steepest fall among the last five points (the blow-up region) is ignored
    _, rule, _ = suggest_lr(lrs, [2.0] * 16 + [1.0, 0.1, 0.05, 9.0])
    assert rule == "min/10"
    rising = [1.0 + 0.1 * i for i in range(20)]
    lr, rule, reason = suggest_lr(lrs, rising)
    assert rule == "min/10" and lr == pytest.approx(lrs[0] / 10)
    assert "one tenth" in reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": -1e-3}, "start_lr"),
        ({"start_lr": 1e-2, "end_lr": 1e-2}, "end_lr"),
        ({"start_lr": 1e-2, "end_lr": 1e-3}, "end_lr"),
        ({"num_steps": 1}, "num_steps"),
        ({"num_steps": 0}, "num_steps"),
        ({"smooth": 0.0}, "smooth"),
        ({"diverge_factor": 1.0}, "diverge_factor"),
    ],
)
def test_bad_arguments(kwargs, message):
    model = _model()
    with pytest.raises(BadInputError, match=message):
        lr_find(model, _batches(), loss_fn=F.cross_entropy, build_optimizer=_adamw(model), **kwargs)


@pytest.mark.parametrize("empty", [[], iter([])])
def test_no_batches(empty):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(BadInputError, match="no batches"):
        lr_find(model, empty, loss_fn=F.cross_entropy, build_optimizer=_adamw(model))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_optimizer_source_must_be_given_once():
    model = _model()
    with pytest.raises(BadInputError, match="exactly one"):
        lr_find(model, _batches(), loss_fn=F.cross_entropy)
    with pytest.raises(BadInputError, match="exactly one"):
        lr_find(
            model,
            _batches(),
            loss_fn=F.cross_entropy,
            build_optimizer=_adamw(model),
            param_groups=[{"params": list(model.parameters()), "lr": 1.0}],
        )


def test_non_finite_first_loss():
    model = _model()
    with pytest.raises(BadInputError, match="not finite"):
        lr_find(
            model,
            _batches(),
            loss_fn=lambda out, y: out.sum() * float("nan"),
            build_optimizer=_adamw(model),
        )
