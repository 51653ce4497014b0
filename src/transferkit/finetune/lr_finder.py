"""Learning-rate range test (Leslie Smith; fastai's ``lr_find``) with a suggestion and a plot.

The learning rate grows exponentially from ``start_lr`` to ``end_lr`` over ``num_steps``
training steps while the (EMA-smoothed) loss is recorded; the run stops early once the loss
diverges. Afterwards the model is put back exactly as it was: parameters, buffers (BatchNorm
running statistics), gradients, ``requires_grad`` flags, train/eval modes, and the global torch
random generator state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from transferkit.atomic import write_bytes_atomic
from transferkit.errors import BadInputError
from transferkit.finetune.freezing import train_mode

#: fastai's trimming before picking the steepest point: the first tenth of the steps (the EMA
#: is still warming up) and the last five points (the blow-up) are left out.
_SKIP_START_FRACTION = 10
_SKIP_END = 5


@dataclass
class LRFindResult:
    """Outcome of ``lr_find``.

    ``lrs`` are the reference learning rates tried (the head's, or whatever the optimizer was
    built for), ``losses`` the EMA-smoothed, bias-corrected training losses at those steps.
    ``rule`` is ``"steep"`` or ``"min/10"`` (see ``suggest_lr``); ``reason`` says in words how
    ``suggestion`` was picked; ``diverged`` is true when the run stopped early.
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float
    reason: str
    rule: str = "steep"
    diverged: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (floats, strings, bools and lists only)."""
        out = asdict(self)
        out["lrs"] = [float(v) for v in self.lrs]
        out["losses"] = [float(v) for v in self.losses]
        out["suggestion"] = float(self.suggestion)
        return out

    def plot_png(self, path: str | Path) -> Path:
        """Write a smoothed-loss-vs-learning-rate plot (log x axis, suggestion marked) as PNG.

        Rendered with matplotlib's Agg canvas (no pyplot, no global backend change) into
        memory and written atomically; returns the path.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.4, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(self.lrs, self.losses, color="tab:blue", label="smoothed training loss")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("loss")
        ax.axvline(
            self.suggestion,
            color="tab:red",
            linestyle="--",
            label=f"suggested lr = {self.suggestion:.3g} ({self.rule})",
        )
        if self.lrs:
            nearest = min(
                range(len(self.lrs)),
                key=lambda i: abs(math.log(self.lrs[i]) - math.log(self.suggestion)),
            )
            ax.plot([self.suggestion], [self.losses[nearest]], "o", color="tab:red")
        title = "Learning-rate range test" + (" (stopped early: loss diverged)" * self.diverged)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return write_bytes_atomic(path, buffer.getvalue())


SUGGESTION_RULES = ("steep", "minimum")


def suggest_lr(
    lrs: Sequence[float], losses: Sequence[float], rule: str = "steep"
) -> tuple[float, str, str]:
    """Pick a learning rate from a range test; return ``(lr, rule, reason)``.

    ``steep`` (fastai's "steep", with its "minimum / 10" as fallback): drop the first tenth of
    the points and the last five when at least three remain, take the slope of the smoothed loss
    against log(lr) between neighbouring points, and suggest the lr at the start of the steepest
    falling stretch. If the loss never falls, suggest one tenth of the lr at the minimum loss.

    ``minimum`` (fastai's ``lr_min``): one tenth of the lr at the minimum smoothed loss. The
    robust choice when the loss curve is mostly flat — e.g. a network whose head is already
    trained, where the steepest stretch of a flat, noisy curve is an accident.
    """
    n = len(lrs)
    if n == 0:
        raise ValueError("suggest_lr needs at least one recorded point.")
    if rule not in SUGGESTION_RULES:
        raise ValueError(f"rule must be one of {SUGGESTION_RULES}; got {rule!r}")
    if rule == "minimum":
        lr, at = _tenth_of_minimum(lrs, losses)
        return (
            lr,
            "min/10",
            f"one tenth of the lr at the minimum smoothed loss ({at:.3g}): {lr:.3g}.",
        )
    lo, hi = n // _SKIP_START_FRACTION, n - _SKIP_END
    if hi - lo < 3:
        lo, hi = 0, n
    xs = [math.log(v) for v in lrs[lo:hi]]
    ys = list(losses[lo:hi])
    slopes = [(ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1)]
    span = f"points {lo}..{hi - 1} of {n}"
    if slopes and min(slopes) < 0:
        best = min(range(len(slopes)), key=slopes.__getitem__)
        lr = float(lrs[lo + best])
        reason = (
            f"steepest descent: the smoothed loss falls fastest against log(lr) at lr={lr:.3g} "
            f"(slope {slopes[best]:.3g} per log unit; {span} considered)."
        )
        return lr, "steep", reason
    lr, at = _tenth_of_minimum(lrs, losses)
    reason = (
        f"the smoothed loss never falls ({span} considered), so one tenth of the lr at its "
        f"minimum ({at:.3g}) is suggested: {lr:.3g}."
    )
    return lr, "min/10", reason


def _tenth_of_minimum(lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, float]:
    """(one tenth of the lr at the lowest loss, that lr): fastai's ``lr_min``."""
    at_min = min(range(len(lrs)), key=lambda i: losses[i])
    return float(lrs[at_min]) / 10, float(lrs[at_min])


def _check_args(
    start_lr: float, end_lr: float, num_steps: int, smooth: float, diverge_factor: float
) -> None:
    if not start_lr > 0 or math.isinf(start_lr):
        raise BadInputError(f"start_lr must be a positive number; got {start_lr}.")
    if not end_lr > start_lr or math.isinf(end_lr):
        raise BadInputError(
            f"end_lr must be a finite number larger than start_lr ({start_lr}); got {end_lr}."
        )
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        raise BadInputError(f"num_steps must be an integer >= 2; got {num_steps!r}.")
    if not 0 < smooth <= 1:
        raise BadInputError(
            f"smooth (the EMA weight of each new loss) must be in (0, 1]; got {smooth}."
        )
    if not diverge_factor > 1 or math.isinf(diverge_factor):
        raise BadInputError(f"diverge_factor must be a finite number > 1; got {diverge_factor}.")


def _make_optimizer(
    start_lr: float,
    build_optimizer: Callable[[float], Optimizer] | None,
    param_groups: Sequence[dict[str, Any]] | None,
    base_lr: float | None,
) -> Optimizer:
    if (build_optimizer is None) == (param_groups is None):
        raise BadInputError("Give exactly one of build_optimizer or param_groups to lr_find.")
    if build_optimizer is not None:
        if base_lr is not None:
            raise BadInputError("base_lr goes with param_groups; build_optimizer gets the lr.")
        return build_optimizer(start_lr)
    groups = [dict(g) for g in param_groups or []]
    if not groups:
        raise BadInputError("param_groups is empty: there is nothing to train.")
    if any("lr" not in g for g in groups) and base_lr is None:
        raise BadInputError("Every param group needs an 'lr' unless base_lr is given.")
    reference = base_lr if base_lr is not None else max(g["lr"] for g in groups)
    if not reference > 0:
        raise BadInputError(f"base_lr must be > 0; got {reference}.")
    for group in groups:
        group["lr"] = start_lr * group.get("lr", reference) / reference
    return torch.optim.AdamW(groups)


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    """Endless batches: iterate again when exhausted (cache them if ``batches`` is one-shot)."""
    one_shot = iter(batches) is batches
    cache: list[Any] = []
    while True:
        seen = 0
        for batch in cache if (one_shot and cache) else batches:
            seen += 1
            if one_shot and len(cache) < seen:
                cache.append(batch)
            yield batch
        if seen == 0:
            raise BadInputError("lr_find got no batches: the data iterable is empty.")


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


@dataclass
class _Snapshot:
    tensors: list[tuple[torch.Tensor, torch.Tensor]]
    grads: list[tuple[nn.Parameter, torch.Tensor | None]]
    requires_grad: list[tuple[nn.Parameter, bool]]
    modes: list[tuple[nn.Module, bool]]

    @classmethod
    def take(cls, model: nn.Module) -> _Snapshot:
        params = list(model.parameters())
        with torch.no_grad():
            tensors = [(t, t.detach().clone()) for t in [*params, *model.buffers()]]
            grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in params]
        return cls(
            tensors=tensors,
            grads=grads,
            requires_grad=[(p, p.requires_grad) for p in params],
            modes=[(m, m.training) for m in model.modules()],
        )

    def restore(self) -> None:
        with torch.no_grad():
            for live, saved in self.tensors:
                live.copy_(saved)
        for param, grad in self.grads:
            param.grad = grad
        for param, flag in self.requires_grad:
            param.requires_grad_(flag)
        for module, training in self.modes:
            module.train(training)


def lr_find(
    model: nn.Module,
    batches: Iterable[tuple[Any, Any]],
    *,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    build_optimizer: Callable[[float], Optimizer] | None = None,
    param_groups: Sequence[dict[str, Any]] | None = None,
    base_lr: float | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    smooth: float = 0.05,
    diverge_factor: float = 4.0,
    seed: int | None = None,
    rule: str = "steep",
) -> LRFindResult:
    """Learning-rate range test; the model is restored bit for bit afterwards.

    The optimizer comes either from ``build_optimizer(start_lr)`` or, as AdamW, from
    ``param_groups`` (e.g. ``discriminative_param_groups(..., head_lr=base_lr)``) whose lrs are
    rescaled so that ``base_lr`` (default: the largest group lr) maps to ``start_lr``. At step
    ``i`` every group's lr is its starting lr times ``(end_lr / start_lr) ** (i / (num_steps -
    1))``, so the ratios between groups (discriminative learning rates) are kept; ``lrs``
    records the reference lr (``start_lr`` times that factor).

    ``batches`` yields ``(x, y)`` and is iterated again (or replayed, if it is a one-shot
    iterator) when it has fewer than ``num_steps`` batches; each step computes
    ``loss_fn(model(x), y)``. The model trains with frozen BatchNorm layers in eval mode
    (``train_mode``). The smoothed loss is an EMA with weight ``smooth`` on each new loss,
    bias-corrected as in fastai; the run stops once it exceeds ``diverge_factor`` times the best
    so far, or when the loss is not finite. The suggestion follows ``suggest_lr`` with ``rule``.

    ``seed`` seeds torch's generator for the run (dropout, a shuffling DataLoader); with or
    without it the caller's global torch RNG state is left as it was.
    """
    _check_args(start_lr, end_lr, num_steps, smooth, diverge_factor)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    cuda = [device.index or 0] if device.type == "cuda" else []
    snapshot = _Snapshot.take(model)
    lrs: list[float] = []
    losses: list[float] = []
    diverged = False
    try:
        with torch.random.fork_rng(devices=cuda):
            if seed is not None:
                torch.manual_seed(seed)
            for p in params:
                p.grad = None
            optimizer = _make_optimizer(start_lr, build_optimizer, param_groups, base_lr)
            initial = [group["lr"] for group in optimizer.param_groups]
            train_mode(model)
            stream = _cycle(batches)
            avg, best = 0.0, math.inf
            for step in range(num_steps):
                factor = (end_lr / start_lr) ** (step / (num_steps - 1))
                for group, lr0 in zip(optimizer.param_groups, initial):
                    group["lr"] = lr0 * factor
                x, y = next(stream)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(_to(x, device)), _to(y, device))
                value = float(loss.detach())
                if not math.isfinite(value):
                    diverged = True
                    break
                loss.backward()
                optimizer.step()
                avg = (1 - smooth) * avg + smooth * value
                smoothed = avg / (1 - (1 - smooth) ** (step + 1))
                lrs.append(start_lr * factor)
                losses.append(smoothed)
                best = min(best, smoothed)
                if smoothed > diverge_factor * best:
                    diverged = True
                    break
    finally:
        snapshot.restore()
    if not lrs:
        raise BadInputError(
            f"The loss was not finite at the first step (lr={start_lr:g}); check the model, "
            "loss function and data before searching for a learning rate."
        )
    suggestion, rule, reason = suggest_lr(lrs, losses, rule)
    if diverged:
        reason += f" Stopped early after {len(lrs)} of {num_steps} steps: the loss diverged."
    return LRFindResult(
        lrs=lrs, losses=losses, suggestion=suggestion, reason=reason, rule=rule, diverged=diverged
    )
