"""Linear warm-up then cosine decay to a floor, per global step, for every param group."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from transferkit.errors import BadInputError


def _check(total_steps: int, warmup_steps: int, floor: float) -> None:
    if total_steps < 1:
        raise BadInputError(f"total_steps must be >= 1; got {total_steps}.")
    if not 0 <= warmup_steps <= total_steps:
        raise BadInputError(
            f"warmup_steps must be between 0 and total_steps ({total_steps}); got {warmup_steps}."
        )
    if not 0 <= floor <= 1:
        raise BadInputError(f"floor must be in [0, 1] (a fraction of the base lr); got {floor}.")


def lr_factor(step: int, total_steps: int, warmup_steps: int, floor: float = 0.0) -> float:
    """Multiplier of the base learning rate at global ``step`` (0-based).

    Rises linearly over ``warmup_steps`` to 1 (reached at step ``warmup_steps``), then follows a
    half cosine down to ``floor`` at ``total_steps``, and stays at ``floor`` after it.
    """
    _check(total_steps, warmup_steps, floor)
    if step < warmup_steps:
        # start above zero so the very first step already moves the weights
        return (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return floor
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _group_factor(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    floor: float,
    start: int = 0,
    group_warmup_steps: int = 0,
) -> float:
    """``lr_factor``, times a linear ramp over ``group_warmup_steps`` from the group's ``start``."""
    factor = lr_factor(step, total_steps, warmup_steps, floor)
    if start > 0 and group_warmup_steps > 0 and step - start < group_warmup_steps:
        factor *= (step - start + 1) / (group_warmup_steps + 1)
    return factor


class GroupAwareLambdaLR(LambdaLR):
    """``LambdaLR`` with one factor for all groups that also scales groups added later.

    A group added after construction (an unfrozen layer group) keeps its own ``lr`` as its base
    (``initial_lr``) and joins the schedule where it stands; with ``group_warmup_steps`` it
    also ramps up linearly over that many steps, because Adam's first updates on freshly
    unfrozen pretrained weights are as large as the learning rate itself. ``state_dict`` holds
    only JSON-able values, including the schedule's settings and when each group joined, so a
    resumed run follows the schedule it started with.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        total_steps: int,
        warmup_steps: int,
        floor: float,
        group_warmup_steps: int = 0,
    ) -> None:
        _check(total_steps, warmup_steps, floor)
        if group_warmup_steps < 0:
            raise BadInputError(f"group_warmup_steps must be >= 0; got {group_warmup_steps}.")
        self.schedule = {"total_steps": total_steps, "warmup_steps": warmup_steps, "floor": floor}
        self.group_warmup_steps = int(group_warmup_steps)
        self.group_starts = [0] * len(optimizer.param_groups)
        super().__init__(optimizer, self._factor_fn())

    def _factor_fn(self, start: int = 0) -> partial[float]:
        return partial(
            _group_factor,
            **self.schedule,
            start=start,
            group_warmup_steps=self.group_warmup_steps,
        )

    def _adopt_new_groups(self) -> int:
        """Register groups added since the last step; return the index of the first new one."""
        first_new = len(self.base_lrs)
        for group in self.optimizer.param_groups[first_new:]:
            group.setdefault("initial_lr", group["lr"])
            self.base_lrs.append(group["initial_lr"])
            start = max(0, int(self.last_epoch))
            self.group_starts.append(start)
            self.lr_lambdas.append(self._factor_fn(start))
        return first_new

    def get_lr(self) -> list[Any]:
        """Base lr of every group, new ones included, times the factor at ``last_epoch``."""
        self._adopt_new_groups()
        return super().get_lr()

    def sync_new_groups(self) -> None:
        """Put newly added groups at the current point of the schedule right away."""
        first_new = self._adopt_new_groups()
        for index, group in enumerate(self.optimizer.param_groups[first_new:], first_new):
            group["lr"] = group["initial_lr"] * self.lr_lambdas[index](self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: counters, base and last learning rates, and the schedule settings."""
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the state written by ``state_dict``."""
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        self.schedule = dict(self.schedule)
        self.group_warmup_steps = int(state_dict.get("group_warmup_steps", 0))
        self.group_starts = list(state_dict.get("group_starts", [0] * len(self.base_lrs)))
        self.lr_lambdas = [self._factor_fn(start) for start in self.group_starts]


def warmup_cosine_scheduler(
    optimizer: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    floor: float = 0.0,
    group_warmup_steps: int = 0,
) -> GroupAwareLambdaLR:
    """A scheduler stepped once per optimizer step: linear warm-up then cosine to ``floor``.

    ``group_warmup_steps``: param groups added later (unfrozen layers) ramp up over that many
    steps from when they join.
    """
    return GroupAwareLambdaLR(
        optimizer,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        floor=floor,
        group_warmup_steps=group_warmup_steps,
    )
