"""Combinators (warmup, join, scale, floor, by_fraction) and the length helpers (epochs,
fraction): schedules built from other schedules, and step counts built from other units."""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from lrpilot._validate import ArgError, boolean, choice, real, whole

from ._base import (
    OMIT_AT_DEFAULT,
    BaseSchedule,
    Length,
    Schedule,
    in_spec,
    schedule_arg,
    set_field,
)

_WARMUP_MODES = ("linear", "exp")


@dataclass(frozen=True, kw_only=True)
class Warmup(BaseSchedule):
    """A warmup ramp before a schedule; see :func:`warmup`."""

    kind: ClassVar[str] = "warmup"
    schedule: Schedule
    steps: int
    start: float = 0.0
    mode: str = "linear"
    inclusive: bool = dataclasses.field(default=False, metadata=OMIT_AT_DEFAULT)

    def __post_init__(self) -> None:
        set_field(self, "schedule", schedule_arg("schedule", self.schedule))
        set_field(self, "steps", whole("steps", self.steps, 1))
        set_field(self, "mode", choice("mode", self.mode, _WARMUP_MODES))
        linear_mode = self.mode == "linear"
        set_field(self, "start", real("start", self.start, 0.0, 1.0, open_low=not linear_mode))
        set_field(self, "inclusive", boolean("inclusive", self.inclusive))

    def _at(self, step: int) -> float:
        if step >= self.steps:
            return self.schedule(step - self.steps)
        done = (step + 1 if self.inclusive else step) / self.steps
        target = self.schedule(0)
        if self.mode == "linear":
            return target * (self.start + (1.0 - self.start) * done)
        return target * self.start ** (1.0 - done)


@in_spec("warmup", positional="steps", wraps=True)
def warmup(
    schedule: Schedule,
    *,
    steps: Length,
    start: float | None = None,
    mode: str = "linear",
    inclusive: bool = False,
) -> Schedule:
    r"""Put a warmup of ``steps`` steps before ``schedule``, which then sees step ``t - W``.

    The ramp ends at the schedule's first value ``f_0 = schedule(0)``, so the join is continuous.
    With ``u = t/W`` (``u = (t + 1)/W`` when ``inclusive``):

    .. math:: g(t) = \begin{cases} f_0\,\bigl(s + (1 - s)\,u\bigr) & t < W \text{ (linear)} \\
        f_0\, s^{\,1 - u} & t < W \text{ (exp)} \\ f(t - W) & t \ge W \end{cases}

    Args:
        schedule: The schedule that follows the warmup.
        steps: Length ``W`` of the warmup; ``0`` returns ``schedule`` itself.
        start: Multiplier ``s`` of ``f_0`` at ``u = 0``; default ``0`` for ``"linear"`` and
            ``0.01`` for ``"exp"`` (which needs ``s > 0``).
        mode: ``"linear"`` or ``"exp"`` (geometric ramp).
        inclusive: Count the ramp from step 1: the first step runs at ``1/W`` of the way up
            (not at ``s``, which for the default linear ramp is LR 0) and step ``W - 1`` already
            at ``f_0``, as schedule-free's reference and many recipes do (``(t + 1)/W``).
            Default ``False``: step ``t`` is ``t/W`` of the way up, as in ``transformers``.
    """
    mode = choice("mode", mode, _WARMUP_MODES)
    if start is None:
        start = 0.0 if mode == "linear" else 0.01
    if whole("steps", steps, 0) == 0:
        return schedule_arg("schedule", schedule)
    return Warmup(schedule=schedule, steps=steps, start=start, mode=mode, inclusive=inclusive)


@dataclass(frozen=True, kw_only=True)
class Join(BaseSchedule):
    """Schedules one after another; see :func:`join`."""

    kind: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        scheds = tuple(schedule_arg("schedules", s) for s in self.schedules)
        bounds = tuple(whole("boundaries", b, 1) for b in self.boundaries)
        if not scheds or len(bounds) != len(scheds) - 1:
            raise ArgError("boundaries", self.boundaries, "one fewer than the schedules")
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ArgError("boundaries", self.boundaries, "strictly increasing")
        set_field(self, "schedules", scheds)
        set_field(self, "boundaries", bounds)

    def _at(self, step: int) -> float:
        i = bisect_right(self.boundaries, step)
        return self.schedules[i](step - (self.boundaries[i - 1] if i else 0))


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Join:
    r"""Run ``schedules`` one after another, switching at ``boundaries``.

    Piece ``i`` runs on ``[b_{i-1}, b_i)`` and sees its local step:

    .. math:: f(t) = f_i(t - b_{i-1}), \qquad b_{i-1} \le t < b_i, \quad b_{-1} = 0

    A join is continuous only where piece ``i`` ends where piece ``i+1`` starts; use
    :func:`warmup` for a ramp that meets the next piece.

    Args:
        schedules: The pieces, in order.
        boundaries: Strictly increasing steps ``b_i >= 1``, one fewer than ``schedules``.
    """
    return Join(schedules=tuple(schedules), boundaries=tuple(boundaries))


@dataclass(frozen=True, kw_only=True)
class Scaled(BaseSchedule):
    """A schedule times a constant; see :func:`scale`."""

    kind: ClassVar[str] = "scaled"
    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        set_field(self, "schedule", schedule_arg("schedule", self.schedule))
        set_field(self, "factor", real("factor", self.factor, 0.0, open_low=True))

    def _at(self, step: int) -> float:
        return self.factor * self.schedule(step)


def scale(schedule: Schedule, factor: float) -> Scaled:
    r"""Multiply a schedule by a constant ``c > 0``: :math:`g(t) = c\,f(t)`.

    Args:
        schedule: The schedule to scale.
        factor: The constant ``c``; above 1 the schedule exceeds the peak LR.
    """
    return Scaled(schedule=schedule, factor=factor)


@dataclass(frozen=True, kw_only=True)
class Floored(BaseSchedule):
    """A schedule held above a floor; see :func:`floor`."""

    kind: ClassVar[str] = "floored"
    schedule: Schedule
    min: float

    def __post_init__(self) -> None:
        set_field(self, "schedule", schedule_arg("schedule", self.schedule))
        set_field(self, "min", real("min", self.min, 0.0, 1.0))

    def _at(self, step: int) -> float:
        value = self.schedule(step)
        return value if value > self.min else self.min


def floor(schedule: Schedule, min: float) -> Floored:
    r"""Hold a schedule above a floor: :math:`g(t) = \max(m, f(t))`.

    Args:
        schedule: The schedule to floor.
        min: The floor ``m`` in ``[0, 1]``.
    """
    return Floored(schedule=schedule, min=min)


@dataclass(frozen=True, kw_only=True)
class ByFraction(BaseSchedule):
    """A function of the fraction of the run as a schedule; see :func:`by_fraction`."""

    fn: Callable[[float], float]
    total_steps: int

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ArgError("fn", self.fn, "a callable from fraction of the run to multiplier")
        set_field(self, "total_steps", whole("total_steps", self.total_steps, 1))

    def _at(self, step: int) -> float:
        return float(self.fn(step / self.total_steps if step < self.total_steps else 1.0))


def by_fraction(fn: Callable[[float], float], *, total_steps: int) -> ByFraction:
    r"""Turn ``fn(p)``, ``p ∈ [0, 1]`` the fraction of the run done, into a step schedule.

    .. math:: g(t) = \text{fn}\bigl(\min(t / N, 1)\bigr)

    For pickling and checkpoints ``fn`` must be picklable (a module-level function, not a
    lambda); :func:`to_dict` does not cover it.

    Args:
        fn: Function of the fraction of the run done, returning a multiplier.
        total_steps: Steps ``N`` in the run.
    """
    return ByFraction(fn=fn, total_steps=total_steps)


def epochs(n: float, *, steps_per_epoch: int) -> int:
    """Steps in ``n`` epochs (``n`` may be fractional), rounded to the nearest step.

    Args:
        n: Number of epochs, ``>= 0``.
        steps_per_epoch: Optimizer steps per epoch (batches per epoch / gradient accumulation).
    """
    per = whole("steps_per_epoch", steps_per_epoch, 1)
    return math.floor(real("n", n, 0.0) * per + 0.5)


def fraction(p: float, *, total_steps: int) -> int:
    """Steps in a fraction ``p`` of a run of ``total_steps``, rounded, at least 1 when ``p > 0``.

    The text spec is stricter: there a fraction that rounds to 0 steps is an error.

    Args:
        p: Fraction of the run in ``[0, 1]``.
        total_steps: Steps in the whole run.
    """
    p = real("p", p, 0.0, 1.0)
    steps = math.floor(p * whole("total_steps", total_steps, 1) + 0.5)
    return max(steps, 1) if p > 0 else 0
