"""A schedule read off a live torch LR scheduler: :class:`Tabulated` and :func:`from_scheduler`.

A torch scheduler is a state machine, not a function of the step, so the only way to know its
LR at step ``t`` is to step it ``t`` times. :func:`from_scheduler` steps a *copy* of it, whose
optimizer is a stand-in holding one zero tensor per param group with the same hyperparameters,
and records the multipliers in a :class:`Tabulated` schedule: the user's scheduler, optimizer
and model are never touched, and the result is plain data like every other schedule.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from lrpilot._validate import ArgError, whole
from lrpilot.errors import ConfigError

from ._base import BaseSchedule, set_field

MAX_STEPPED = 200_000
"""A scheduler is stepped at most this many times (about 3 µs each); past them the table holds
its last value."""

MAX_POINTS = 1_000
"""At most this many multipliers are kept; longer runs keep one every ``every`` steps and
interpolate linearly in between (so a result's JSON stays small)."""

DEFAULT_STEPS = 1_000
"""Steps tabulated when the run's length is not known."""


@dataclass(frozen=True, kw_only=True, repr=False)
class Tabulated(BaseSchedule):
    """Multipliers given as a table: ``values[i]`` at step ``i * every``, linear in between,
    the last value past the end.

    Attributes:
        values: The multipliers (each in ``[0, 1]``; the largest is usually 1).
        every: Steps between two values (1: one value per step, exact).
        source: Where the table comes from (the torch scheduler's class name), for people.
    """

    kind: ClassVar[str] = "tabulated"
    values: tuple[float, ...]
    every: int = 1
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        raw = self.values
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
            raise ArgError("values", raw, "a non-empty sequence of multipliers in [0, 1]")
        values = tuple(float(v) for v in raw)
        if not values or not all(0.0 <= v <= 1.0 for v in values):
            raise ArgError("values", raw, "a non-empty sequence of multipliers in [0, 1]")
        set_field(self, "values", values)
        set_field(self, "every", whole("every", self.every, 1))
        if not isinstance(self.source, str):
            raise ArgError("source", self.source, "a string")

    def __repr__(self) -> str:
        source = f"{self.source!r}, " if self.source else ""
        return f"Tabulated({source}{len(self.values)} values, every={self.every})"

    def _at(self, step: int) -> float:
        i, into = divmod(step, self.every)
        if i >= len(self.values) - 1:
            return self.values[-1]
        a, b = self.values[i], self.values[i + 1]
        return a + (b - a) * into / self.every


def from_scheduler(scheduler: Any, steps: int | None, *, every: int = 1) -> Tabulated:
    """The multipliers ``scheduler`` will give over the next ``steps`` optimizer steps.

    A copy of the scheduler is stepped, on a stand-in optimizer with the same param-group
    hyperparameters: ``scheduler``, its optimizer and the model are left exactly as they are.
    The multipliers are those of the param group that reaches the highest LR, over that
    highest LR. A scheduler already stepped gives the steps still to come: its current LR is
    step 0 of the table.

    Args:
        scheduler: A torch ``LRScheduler`` (lrpilot's ``ScheduleLR``, ``SequentialLR`` and
            ``ChainedScheduler`` included).
        steps: The run's length in optimizer steps; ``None``: :data:`DEFAULT_STEPS`. At most
            :data:`MAX_STEPPED` are stepped, after which the last multiplier holds.
        every: Optimizer steps per scheduler step (a scheduler stepped once an epoch:
            the optimizer steps in an epoch).

    Raises:
        ConfigError: For ``ReduceLROnPlateau`` (it follows a metric: nothing to read before
            the run), something that is not a torch scheduler, a scheduler that cannot be
            copied, or one whose LR never rises above 0.
    """
    _check_scheduler(scheduler)
    length = min(whole("steps", steps, 1) if steps is not None else DEFAULT_STEPS, MAX_STEPPED)
    per_step = whole("every", every, 1)
    stride = max(1, math.ceil((length - 1) / (MAX_POINTS - 1)))
    points = math.ceil((length - 1) / stride) + 1
    lrs = _stepped_lrs(scheduler, (points - 1) * stride + 1, per_step)
    head = max(range(len(lrs[0])), key=lambda g: max(row[g] for row in lrs))
    column = [row[head] for row in lrs[::stride]]
    peak = max(column)
    if not (math.isfinite(peak) and peak > 0):
        raise ConfigError(
            f"schedule: the {type(scheduler).__name__}'s LR never rises above 0 over "
            f"{length} steps: give the run's schedule as a spec instead"
        )
    values = tuple(min(1.0, max(0.0, v / peak)) for v in column)
    return Tabulated(values=values, every=stride, source=type(scheduler).__name__)


def _check_scheduler(scheduler: Any) -> None:
    """Refuse what cannot be read ahead of the run, before anything is copied."""
    if isinstance(scheduler, ReduceLROnPlateau):
        raise ConfigError(
            "schedule: ReduceLROnPlateau lowers the LR when a metric stalls, so its schedule "
            "is not known before the run: leave schedule= out (a constant LR is assumed) or "
            "give the spec of the schedule it will roughly follow"
        )
    if not isinstance(scheduler, LRScheduler):
        raise ArgError("schedule", scheduler, "a torch LRScheduler")


def stand_in(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """An optimizer with the same param groups' hyperparameters (copied), each over one zero
    tensor: what a scheduler's copy steps instead of the real one."""
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    groups = [{**copy.deepcopy(h), "params": [torch.zeros(1)]} for h in hyper]
    return torch.optim.Optimizer(groups, {})


def _stepped_lrs(scheduler: LRScheduler, count: int, every: int) -> list[list[float]]:
    """Every group's LR at optimizer steps ``0 .. count - 1``, read from a stepped copy."""
    proxy = stand_in(scheduler.optimizer)
    try:
        twin = copy.deepcopy(scheduler, memo={id(scheduler.optimizer): proxy})
    except Exception as err:
        raise ConfigError(
            f"schedule: the {type(scheduler).__name__} cannot be copied to read its LRs "
            f"({err}): give the run's schedule as a spec instead"
        ) from None
    rows = [_group_lrs(proxy)]
    with warnings.catch_warnings():
        # "lr_scheduler.step() before optimizer.step()": the stand-in is never stepped
        warnings.simplefilter("ignore", UserWarning)
        for t in range(1, count):
            if t % every == 0:
                twin.step()
            rows.append(_group_lrs(proxy))
    return rows


def _group_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    return [float(g["lr"]) for g in optimizer.param_groups]
