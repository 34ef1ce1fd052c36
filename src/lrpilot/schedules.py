"""Learning-rate schedules as pure functions of the optimizer step.

A schedule maps the optimizer step ``t = 0, 1, 2, ...`` to a multiplier of the peak learning rate:
optimizer step ``t`` runs at ``peak_lr * schedule(t)``. Schedules are small frozen dataclasses, so
they compare, hash, pickle and turn into plain dicts (:func:`to_dict`); they compose with
:func:`warmup`, :func:`join`, :func:`scale` and :func:`floor`; :func:`attach` drives any torch
optimizer with one; :func:`parse_schedule` reads a short text spec such as
``"warmup(0.05)+cosine(min=0.01)"``.

Conventions shared by every schedule here:

* time is counted in optimizer steps; :func:`epochs` and :func:`fraction` convert other units once;
* multipliers lie in ``[0, 1]`` (``1`` is the peak); :func:`scale` is the one way above it;
* past its end a finite schedule holds its final value; a step below 0 raises ``ConfigError``;
* out-of-range arguments raise :class:`~lrpilot.errors.ConfigError` naming the argument and value.

Example:
    >>> from lrpilot import schedules as S
    >>> s = S.warmup(S.cosine(steps=900, min=0.1), steps=100)
    >>> [round(s(t), 3) for t in (0, 50, 100, 550, 1000, 10**9)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    >>> s == S.parse_schedule("warmup(0.1)+cosine(min=0.1)", total_steps=1000)
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import operator
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrpilot._validate import ArgError as _ArgError
from lrpilot._validate import choice as _choice
from lrpilot._validate import is_real as _is_real
from lrpilot._validate import real as _real
from lrpilot._validate import whole as _whole
from lrpilot.errors import ConfigError, SpecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "Schedule",
    "BaseSchedule",
    # schedules
    "constant",
    "step_decay",
    "multi_step",
    "exponential",
    "polynomial",
    "linear",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "onecycle",
    "inverse_sqrt",
    "wsd",
    # combinators
    "warmup",
    "join",
    "scale",
    "floor",
    "by_fraction",
    # lengths
    "epochs",
    "fraction",
    # text spec, serialization, sampling
    "parse_schedule",
    "to_dict",
    "from_dict",
    "values",
    "plot",
    # torch
    "attach",
    "ScheduleLR",
    # the dataclasses the factories return
    "Constant",
    "StepDecay",
    "MultiStep",
    "Exponential",
    "Polynomial",
    "Linear",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "OneCycle",
    "InverseSqrt",
    "SqrtDecay",
    "Warmup",
    "Join",
    "Scaled",
    "Floored",
    "ByFraction",
]

Schedule: TypeAlias = Callable[[int], float]
"""Any callable from an optimizer step (``int >= 0``) to a multiplier of the peak LR."""


# --------------------------------------------------------------------------------------------
# Validation: one policy, ConfigError naming the argument and its value.
# --------------------------------------------------------------------------------------------


def _schedule_arg(arg: str, value: Any) -> Schedule:
    if callable(value):
        return value
    raise _ArgError(arg, value, "a schedule (a callable from step to multiplier)")


def _check_step(step: Any) -> int:
    try:
        t = operator.index(step)
    except TypeError:
        raise ConfigError(f"step must be an int, got step={step!r}") from None
    if t < 0:
        raise ConfigError(f"step must be >= 0, got step={t}")
    return t


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses normalise fields this way


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------


class BaseSchedule:
    """Base class of lrpilot's schedules.

    A subclass is a frozen dataclass that sets ``kind`` (its ``"type"`` in :func:`to_dict`),
    validates and normalises its fields in ``__post_init__`` and implements ``_at(step)``. Any
    plain callable ``step -> multiplier`` is a schedule too; subclassing only adds step checking
    and :func:`to_dict` support.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[BaseSchedule]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            BaseSchedule._kinds[cls.kind] = cls

    def __call__(self, step: int) -> float:
        """Return the multiplier of the peak LR at optimizer step ``step`` (an int ``>= 0``)."""
        return self._at(_check_step(step))

    def _at(self, step: int) -> float:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant(BaseSchedule):
    """The same multiplier at every step; see :func:`constant`."""

    kind: ClassVar[str] = "constant"
    value: float = 1.0

    def __post_init__(self) -> None:
        _set(self, "value", _real("value", self.value, 0.0, 1.0))

    def _at(self, step: int) -> float:
        return self.value


def constant(value: float = 1.0) -> Constant:
    r"""A constant multiplier.

    .. math:: f(t) = v

    Args:
        value: The multiplier ``v`` in ``[0, 1]``; ``1`` runs at the peak LR throughout.
    """
    return Constant(value)


@dataclass(frozen=True)
class StepDecay(BaseSchedule):
    """Multiply by ``gamma`` every ``every`` steps; see :func:`step_decay`."""

    kind: ClassVar[str] = "step_decay"
    every: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        _set(self, "every", _whole("every", self.every, 1))
        _set(self, "gamma", _real("gamma", self.gamma, 0.0, 1.0, open_low=True))

    def _at(self, step: int) -> float:
        return self.gamma ** (step // self.every)


def step_decay(*, every: int, gamma: float = 0.1) -> StepDecay:
    r"""Step decay: multiply by ``gamma`` every ``every`` steps (torch's ``StepLR``).

    .. math:: f(t) = \gamma^{\lfloor t / e \rfloor}

    Args:
        every: Steps between decays ``e``; "every 30 epochs" is ``epochs(30, steps_per_epoch=n)``.
        gamma: Factor ``γ`` in ``(0, 1]`` applied at each decay.
    """
    return StepDecay(every, gamma)


@dataclass(frozen=True)
class MultiStep(BaseSchedule):
    """Multiply by ``gamma`` at each milestone; see :func:`multi_step`."""

    kind: ClassVar[str] = "multi_step"
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        raw = self.milestones
        items = tuple(raw) if isinstance(raw, Sequence) and not isinstance(raw, str) else None
        if not items:
            raise _ArgError("milestones", raw, "a non-empty sequence of steps")
        ms = tuple(_whole("milestones", m, 1) for m in items)
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            raise _ArgError("milestones", raw, "strictly increasing")
        _set(self, "milestones", ms)
        _set(self, "gamma", _real("gamma", self.gamma, 0.0, 1.0, open_low=True))

    def _at(self, step: int) -> float:
        return self.gamma ** bisect_right(self.milestones, step)


def multi_step(*, milestones: Sequence[int], gamma: float = 0.1) -> MultiStep:
    r"""Multi-step decay: multiply by ``gamma`` at each milestone (torch's ``MultiStepLR``).

    .. math:: f(t) = \gamma^{\#\{m_i \le t\}}

    Args:
        milestones: Strictly increasing steps ``m_i >= 1`` at which the decay applies.
        gamma: Factor ``γ`` in ``(0, 1]`` applied at each milestone.
    """
    return MultiStep(tuple(milestones), gamma)


@dataclass(frozen=True)
class Exponential(BaseSchedule):
    """Smooth exponential decay; see :func:`exponential`."""

    kind: ClassVar[str] = "exponential"
    gamma: float
    every: int = 1

    def __post_init__(self) -> None:
        _set(self, "gamma", _real("gamma", self.gamma, 0.0, 1.0, open_low=True))
        _set(self, "every", _whole("every", self.every, 1))

    def _at(self, step: int) -> float:
        return self.gamma ** (step / self.every)


def exponential(*, gamma: float, every: int = 1) -> Exponential:
    r"""Exponential decay by ``gamma`` per ``every`` steps, smooth in between (``ExponentialLR``).

    .. math:: f(t) = \gamma^{t / e}

    "×0.95 per epoch" is ``exponential(gamma=0.95, every=steps_per_epoch)``; for a staircase use
    :func:`step_decay`.

    Args:
        gamma: Factor ``γ`` in ``(0, 1]`` per ``every`` steps.
        every: Steps ``e`` over which the factor ``γ`` applies.
    """
    return Exponential(gamma, every)


@dataclass(frozen=True)
class _Anneal(BaseSchedule):
    """A fall from 1 to the floor ``min`` over ``steps`` steps, then the floor: subclasses give
    the shape ``g`` of the fall, ``f(t) = min + (1 - min) g(min(t, steps) / steps)``."""

    steps: int
    min: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "steps", _whole("steps", self.steps, 1))
        _set(self, "min", _real("min", self.min, 0.0, 1.0))

    def _at(self, step: int) -> float:
        done = step if step < self.steps else self.steps
        return self.min + (1.0 - self.min) * self._shape(done / self.steps)

    def _shape(self, fraction: float) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Polynomial(_Anneal):
    """Polynomial decay to a floor; see :func:`polynomial`."""

    kind: ClassVar[str] = "polynomial"
    power: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "power", _real("power", self.power, 0.0, open_low=True))

    def _shape(self, fraction: float) -> float:
        return (1.0 - fraction) ** self.power


def polynomial(*, steps: int, power: float = 1.0, min: float = 0.0) -> Polynomial:
    r"""Polynomial decay from 1 to ``min`` over ``steps`` (torch's ``PolynomialLR`` for min=0).

    .. math:: f(t) = m + (1 - m)\,\bigl(1 - \min(t, T)/T\bigr)^{p}

    Args:
        steps: Length ``T`` of the decay; the multiplier holds at ``m`` after it.
        power: Exponent ``p > 0``; ``1`` is a linear decay, ``2`` a quadratic one.
        min: Final multiplier ``m`` in ``[0, 1]``.
    """
    return Polynomial(steps=steps, min=min, power=power)


@dataclass(frozen=True)
class Linear(BaseSchedule):
    """Linear ramp from ``start`` to ``end``; see :func:`linear`."""

    kind: ClassVar[str] = "linear"
    steps: int
    start: float = 1.0
    end: float = 0.0

    def __post_init__(self) -> None:
        _set(self, "steps", _whole("steps", self.steps, 1))
        _set(self, "start", _real("start", self.start, 0.0, 1.0))
        _set(self, "end", _real("end", self.end, 0.0, 1.0))

    def _at(self, step: int) -> float:
        if step >= self.steps:
            return self.end  # exactly: the formula can miss it by an ulp
        return self.start + (self.end - self.start) * step / self.steps


def linear(*, steps: int, start: float = 1.0, end: float = 0.0) -> Linear:
    r"""Linear ramp from ``start`` to ``end`` over ``steps`` (torch's ``LinearLR``).

    .. math:: f(t) = s + (e - s)\,\min(t, T)/T

    The default is a linear decay to zero; with ``start < end`` it ramps up.

    Args:
        steps: Length ``T`` of the ramp; the multiplier holds at ``e`` after it.
        start: Multiplier ``s`` in ``[0, 1]`` at step 0.
        end: Multiplier ``e`` in ``[0, 1]`` from step ``T`` on.
    """
    return Linear(steps, start, end)


def _cos_mix(low: float, high: float, done: float) -> float:
    """Half a cosine from ``high`` (``done=0``) to ``low`` (``done=1``)."""
    return low + (high - low) * (1.0 + math.cos(math.pi * done)) / 2.0


@dataclass(frozen=True)
class Cosine(_Anneal):
    """Cosine annealing to a floor; see :func:`cosine`."""

    kind: ClassVar[str] = "cosine"

    def _shape(self, fraction: float) -> float:
        return _cos_mix(0.0, 1.0, fraction)


def cosine(*, steps: int, min: float = 0.0) -> Cosine:
    r"""Cosine annealing from 1 to ``min`` over ``steps`` (``CosineAnnealingLR``'s closed form).

    .. math:: f(t) = m + (1 - m)\,\frac{1 + \cos(\pi \min(t, T) / T)}{2}

    Unlike torch's ``CosineAnnealingLR``, the multiplier holds at ``m`` after ``T`` instead of
    rising again; for restarts use :func:`cosine_restarts`.

    Args:
        steps: Length ``T`` of the anneal.
        min: Floor ``m`` in ``[0, 1]``, as a fraction of the peak (``eta_min / lr`` in torch).
    """
    return Cosine(steps, min)


@dataclass(frozen=True)
class CosineRestarts(BaseSchedule):
    """Cosine annealing with warm restarts (SGDR); see :func:`cosine_restarts`."""

    kind: ClassVar[str] = "cosine_restarts"
    period: int
    mult: int = 1
    min: float = 0.0
    decay: float = 1.0

    def __post_init__(self) -> None:
        _set(self, "period", _whole("period", self.period, 1))
        _set(self, "mult", _whole("mult", self.mult, 1))
        _set(self, "min", _real("min", self.min, 0.0, 1.0))
        _set(self, "decay", _real("decay", self.decay, 0.0, 1.0, open_low=True))

    def _cycle(self, step: int) -> tuple[int, int, int]:
        """(cycle index, step inside the cycle, cycle length) at ``step``."""
        if self.mult == 1:
            cycle, inside = divmod(step, self.period)
            return cycle, inside, self.period
        cycle, inside, length = 0, step, self.period
        while inside >= length:
            inside -= length
            length *= self.mult
            cycle += 1
        return cycle, inside, length

    def _at(self, step: int) -> float:
        cycle, inside, length = self._cycle(step)
        return _cos_mix(self.min, self.min + (1.0 - self.min) * self.decay**cycle, inside / length)


def cosine_restarts(
    *, period: int, mult: int = 1, min: float = 0.0, decay: float = 1.0
) -> CosineRestarts:
    r"""Cosine annealing with warm restarts, SGDR (torch's ``CosineAnnealingWarmRestarts``).

    Cycle ``i`` lasts ``T_i = T_0 \cdot k^i`` steps; inside it, at step ``τ``:

    .. math:: f = m + (1 - m)\, d^{i}\, \frac{1 + \cos(\pi \tau / T_i)}{2}

    Args:
        period: Length ``T_0`` of the first cycle.
        mult: Integer factor ``k >= 1`` by which each cycle is longer than the previous one.
        min: Floor ``m`` in ``[0, 1]``.
        decay: Factor ``d`` in ``(0, 1]`` on the height above the floor at each restart
            (``1``: every restart returns to the peak, as in torch).
    """
    return CosineRestarts(period, mult, min, decay)


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@dataclass(frozen=True)
class Cyclic(BaseSchedule):
    """Cyclical learning rate; see :func:`cyclic`."""

    kind: ClassVar[str] = "cyclic"
    period: int
    min: float = 0.1
    mode: str = "triangular"
    gamma: float = 1.0
    up: float = 0.5

    def __post_init__(self) -> None:
        _set(self, "period", _whole("period", self.period, 1))
        _set(self, "min", _real("min", self.min, 0.0, 1.0))
        _set(self, "mode", _choice("mode", self.mode, _CYCLIC_MODES))
        _set(self, "gamma", _real("gamma", self.gamma, 0.0, 1.0, open_low=True))
        _set(self, "up", _real("up", self.up, 0.0, 1.0, open_low=True, open_high=True))

    def _at(self, step: int) -> float:
        cycle = math.floor(1 + step / self.period)
        x = 1.0 + step / self.period - cycle
        height = x / self.up if x <= self.up else (x - 1) / (self.up - 1)
        if self.mode == "triangular":
            amplitude = 1.0
        elif self.mode == "triangular2":
            amplitude = 0.5 ** (cycle - 1)  # not 1 / 2**(c - 1), which overflows
        else:
            amplitude = self.gamma**step
        return self.min + (1.0 - self.min) * height * amplitude


def cyclic(
    *,
    period: int,
    min: float = 0.1,
    mode: str = "triangular",
    gamma: float = 1.0,
    up: float = 0.5,
) -> Cyclic:
    r"""Cyclical learning rate (Smith, 2017; torch's ``CyclicLR``), starting at the floor.

    With ``x`` the position in the current cycle (cycle ``c = 1, 2, ...``) and ``h(x)`` the
    triangle that rises over the first ``u`` of the period and falls over the rest:

    .. math:: f(t) = m + (1 - m)\, h(x)\, a, \qquad
        a = 1 \;(\text{triangular}),\; 2^{1-c} \;(\text{triangular2}),\; \gamma^{t}
        \;(\text{exp\_range})

    Args:
        period: Steps in one full cycle (torch's ``step_size_up + step_size_down``).
        min: Floor ``m`` in ``[0, 1]`` (torch's ``base_lr / max_lr``).
        mode: ``"triangular"``, ``"triangular2"`` (height halves each cycle) or ``"exp_range"``.
        gamma: Per-step factor ``γ`` in ``(0, 1]`` on the height, for ``"exp_range"`` only.
        up: Fraction ``u`` in ``(0, 1)`` of the period spent rising.
    """
    return Cyclic(period, min, mode, gamma, up)


def _anneal(anneal: str, start: float, end: float, done: float) -> float:
    if anneal == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * done) + 1)
    return (end - start) * done + start


@dataclass(frozen=True)
class OneCycle(BaseSchedule):
    """The one-cycle policy; see :func:`onecycle`."""

    kind: ClassVar[str] = "onecycle"
    steps: int
    pct: float = 0.3
    div: float = 25.0
    final_div: float = 1e4
    anneal: str = "cos"
    three_phase: bool = False

    def __post_init__(self) -> None:
        steps = _whole("steps", self.steps, 2)
        pct = _real("pct", self.pct, 0.0, 1.0, open_low=True, open_high=True)
        _set(self, "steps", steps)
        _set(self, "pct", pct)
        _set(self, "div", _real("div", self.div, 1.0))
        _set(self, "final_div", _real("final_div", self.final_div, 1.0))
        _set(self, "anneal", _choice("anneal", self.anneal, ("cos", "linear")))
        if not isinstance(self.three_phase, bool):
            raise _ArgError("three_phase", self.three_phase, "True or False")
        rise = pct * steps
        if rise <= 1:
            raise _ArgError("pct", pct, f"large enough that pct * steps > 1 (steps={steps})")
        if self.three_phase and 2 * rise - 2 >= steps - 1:
            raise _ArgError("pct", pct, f"small enough for three phases in steps={steps}")

    def _phases(self) -> tuple[tuple[float, float, float], ...]:
        """(last step, start multiplier, end multiplier) of each phase, as torch computes them."""
        low, end, rise = 1.0 / self.div, 1.0 / (self.div * self.final_div), self.pct * self.steps
        if self.three_phase:
            return ((rise - 1, low, 1.0), (2 * rise - 2, 1.0, low), (self.steps - 1, low, end))
        return ((rise - 1, low, 1.0), (self.steps - 1, 1.0, end))

    def _at(self, step: int) -> float:
        begin = 0.0
        for last, a, b in self._phases():
            if step <= last:
                return _anneal(self.anneal, a, b, (step - begin) / (last - begin))
            begin = last
        return 1.0 / (self.div * self.final_div)  # past the end: hold the final value


def onecycle(
    *,
    steps: int,
    pct: float = 0.3,
    div: float = 25.0,
    final_div: float = 1e4,
    anneal: str = "cos",
    three_phase: bool = False,
) -> OneCycle:
    r"""The one-cycle policy (Smith & Topin, 2018), step for step as torch's ``OneCycleLR``.

    Rises from ``1/div`` to 1 over the first ``pct`` of ``steps``, then anneals to
    ``1/(div·final_div)`` at step ``steps - 1``. With ``three_phase`` it comes back down to
    ``1/div`` symmetrically, then anneals to the end. Each phase anneals from ``a`` to ``b``:

    .. math:: \text{cos: } b + \frac{a - b}{2}\,(1 + \cos \pi p), \qquad
        \text{linear: } a + (b - a)\,p

    with ``p`` the position in the phase, ``p = (t - t_0)/(t_1 - t_0)``.

    Args:
        steps: Length of the cycle (``total_steps`` in torch), at least 2.
        pct: Fraction of ``steps`` spent rising, with ``pct * steps > 1``.
        div: The cycle starts at ``1/div`` (torch's ``div_factor``), ``div >= 1``.
        final_div: It ends at ``1/(div * final_div)`` (torch's ``final_div_factor``).
        anneal: ``"cos"`` or ``"linear"``.
        three_phase: Come back down to ``1/div`` before the final anneal.
    """
    return OneCycle(steps, pct, div, final_div, anneal, three_phase)


@dataclass(frozen=True)
class InverseSqrt(BaseSchedule):
    """Inverse square-root decay; see :func:`inverse_sqrt`."""

    kind: ClassVar[str] = "inverse_sqrt"
    timescale: int = 1

    def __post_init__(self) -> None:
        _set(self, "timescale", _whole("timescale", self.timescale, 1))

    def _at(self, step: int) -> float:
        return 1.0 / math.sqrt(1.0 + step / self.timescale)


def inverse_sqrt(*, timescale: int = 1) -> InverseSqrt:
    r"""Inverse square-root decay, as in the Transformer ("Noam") schedule.

    .. math:: f(t) = \frac{1}{\sqrt{1 + t/\tau}}

    ``warmup(inverse_sqrt(timescale=W), steps=W)`` is the Transformer ("Noam") schedule
    normalised to peak 1: ``t/W`` during the warmup, then ``sqrt(W/t)``.

    Args:
        timescale: Steps ``τ >= 1`` over which the multiplier falls to ``1/\sqrt{2}``.
    """
    return InverseSqrt(timescale)


@dataclass(frozen=True)
class SqrtDecay(_Anneal):
    """The "1 - sqrt" cooldown of warmup-stable-decay; see :func:`wsd`."""

    kind: ClassVar[str] = "sqrt_decay"

    def _shape(self, fraction: float) -> float:
        return 1.0 - math.sqrt(fraction)


_WSD_SHAPES = ("linear", "cosine", "sqrt")


def wsd(
    *, steps: int, decay: int, warmup: int = 0, min: float = 0.0, shape: str = "linear"
) -> Schedule:
    r"""Warmup-stable-decay ("trapezoid"): linear warmup, a long plateau at 1, a short cooldown.

    .. math:: f(t) = \begin{cases} t/W & t < W \\ 1 & W \le t < T - D \\
        m + (1 - m)\, g\bigl((t - T + D)/D\bigr) & t \ge T - D \end{cases}

    with ``g(x) = 1 - x`` (linear), ``(1 + \cos \pi x)/2`` (cosine) or ``1 - \sqrt{x}`` (sqrt,
    the best cooldown in Hägele et al., 2024). Built from :func:`warmup` and :func:`join`.

    Args:
        steps: Whole length ``T`` of the run.
        decay: Length ``D >= 1`` of the cooldown at the end (often 10–20% of ``steps``).
        warmup: Length ``W`` of the warmup at the start.
        min: Final multiplier ``m`` in ``[0, 1]``.
        shape: Cooldown shape: ``"linear"``, ``"cosine"`` or ``"sqrt"``.
    """
    steps = _whole("steps", steps, 1)
    decay = _whole("decay", decay, 1)
    rise = _whole("warmup", warmup, 0)
    shape = _choice("shape", shape, _WSD_SHAPES)
    floor_ = _real("min", min, 0.0, 1.0)
    stable = steps - rise - decay
    if stable < 0:
        raise _ArgError("decay", decay, f"at most steps - warmup = {steps - rise}")
    if shape == "linear":
        tail: Schedule = Linear(decay, 1.0, floor_)
    elif shape == "cosine":
        tail = Cosine(decay, floor_)
    else:
        tail = SqrtDecay(decay, floor_)
    body = tail if stable == 0 else Join((Constant(1.0), tail), (stable,))
    return body if rise == 0 else Warmup(body, rise)


# --------------------------------------------------------------------------------------------
# Combinators
# --------------------------------------------------------------------------------------------

_WARMUP_MODES = ("linear", "exp")


@dataclass(frozen=True)
class Warmup(BaseSchedule):
    """A warmup ramp before a schedule; see :func:`warmup`."""

    kind: ClassVar[str] = "warmup"
    schedule: Schedule
    steps: int
    start: float = 0.0
    mode: str = "linear"

    def __post_init__(self) -> None:
        _set(self, "schedule", _schedule_arg("schedule", self.schedule))
        _set(self, "steps", _whole("steps", self.steps, 1))
        _set(self, "mode", _choice("mode", self.mode, _WARMUP_MODES))
        linear_mode = self.mode == "linear"
        _set(self, "start", _real("start", self.start, 0.0, 1.0, open_low=not linear_mode))

    def _at(self, step: int) -> float:
        if step >= self.steps:
            return self.schedule(step - self.steps)
        done, target = step / self.steps, self.schedule(0)
        if self.mode == "linear":
            return target * (self.start + (1.0 - self.start) * done)
        return target * self.start ** (1.0 - done)


def warmup(
    schedule: Schedule, *, steps: int, start: float | None = None, mode: str = "linear"
) -> Schedule:
    r"""Put a warmup of ``steps`` steps before ``schedule``, which then sees step ``t - W``.

    The ramp ends at the schedule's first value ``f_0 = schedule(0)``, so the join is continuous:

    .. math:: g(t) = \begin{cases} f_0\,\bigl(s + (1 - s)\,t/W\bigr) & t < W \text{ (linear)} \\
        f_0\, s^{\,1 - t/W} & t < W \text{ (exp)} \\ f(t - W) & t \ge W \end{cases}

    Args:
        schedule: The schedule that follows the warmup.
        steps: Length ``W`` of the warmup; ``0`` returns ``schedule`` itself.
        start: Multiplier ``s`` of ``f_0`` at step 0; default ``0`` for ``"linear"`` (the first
            step then runs at LR 0) and ``0.01`` for ``"exp"`` (which needs ``s > 0``).
        mode: ``"linear"`` or ``"exp"`` (geometric ramp).
    """
    mode = _choice("mode", mode, _WARMUP_MODES)
    if start is None:
        start = 0.0 if mode == "linear" else 0.01
    if _whole("steps", steps, 0) == 0:
        return _schedule_arg("schedule", schedule)
    return Warmup(schedule, steps, start, mode)


@dataclass(frozen=True)
class Join(BaseSchedule):
    """Schedules one after another; see :func:`join`."""

    kind: ClassVar[str] = "join"
    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        scheds = tuple(_schedule_arg("schedules", s) for s in self.schedules)
        bounds = tuple(_whole("boundaries", b, 1) for b in self.boundaries)
        if not scheds or len(bounds) != len(scheds) - 1:
            raise _ArgError("boundaries", self.boundaries, "one fewer than the schedules")
        if any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise _ArgError("boundaries", self.boundaries, "strictly increasing")
        _set(self, "schedules", scheds)
        _set(self, "boundaries", bounds)

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
    return Join(tuple(schedules), tuple(boundaries))


@dataclass(frozen=True)
class Scaled(BaseSchedule):
    """A schedule times a constant; see :func:`scale`."""

    kind: ClassVar[str] = "scaled"
    schedule: Schedule
    factor: float

    def __post_init__(self) -> None:
        _set(self, "schedule", _schedule_arg("schedule", self.schedule))
        _set(self, "factor", _real("factor", self.factor, 0.0, open_low=True))

    def _at(self, step: int) -> float:
        return self.factor * self.schedule(step)


def scale(schedule: Schedule, factor: float) -> Scaled:
    r"""Multiply a schedule by a constant ``c > 0``: :math:`g(t) = c\,f(t)`.

    Args:
        schedule: The schedule to scale.
        factor: The constant ``c``; above 1 the schedule exceeds the peak LR.
    """
    return Scaled(schedule, factor)


@dataclass(frozen=True)
class Floored(BaseSchedule):
    """A schedule held above a floor; see :func:`floor`."""

    kind: ClassVar[str] = "floored"
    schedule: Schedule
    min: float

    def __post_init__(self) -> None:
        _set(self, "schedule", _schedule_arg("schedule", self.schedule))
        _set(self, "min", _real("min", self.min, 0.0, 1.0))

    def _at(self, step: int) -> float:
        value = self.schedule(step)
        return value if value > self.min else self.min


def floor(schedule: Schedule, min: float) -> Floored:
    r"""Hold a schedule above a floor: :math:`g(t) = \max(m, f(t))`.

    Args:
        schedule: The schedule to floor.
        min: The floor ``m`` in ``[0, 1]``.
    """
    return Floored(schedule, min)


@dataclass(frozen=True)
class ByFraction(BaseSchedule):
    """A function of the fraction of the run as a schedule; see :func:`by_fraction`."""

    fn: Callable[[float], float]
    total_steps: int

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise _ArgError("fn", self.fn, "a callable from fraction of the run to multiplier")
        _set(self, "total_steps", _whole("total_steps", self.total_steps, 1))

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
    return ByFraction(fn, total_steps)


# --------------------------------------------------------------------------------------------
# Lengths
# --------------------------------------------------------------------------------------------


def epochs(n: float, *, steps_per_epoch: int) -> int:
    """Steps in ``n`` epochs (``n`` may be fractional), rounded to the nearest step.

    Args:
        n: Number of epochs, ``>= 0``.
        steps_per_epoch: Optimizer steps per epoch (batches per epoch / gradient accumulation).
    """
    per = _whole("steps_per_epoch", steps_per_epoch, 1)
    return math.floor(_real("n", n, 0.0) * per + 0.5)


def fraction(p: float, *, total_steps: int) -> int:
    """Steps in a fraction ``p`` of a run of ``total_steps``, rounded, at least 1 when ``p > 0``.

    Args:
        p: Fraction of the run in ``[0, 1]``.
        total_steps: Steps in the whole run.
    """
    p = _real("p", p, 0.0, 1.0)
    steps = math.floor(p * _whole("total_steps", total_steps, 1) + 0.5)
    return max(steps, 1) if p > 0 else 0


# --------------------------------------------------------------------------------------------
# Serialization and sampling
# --------------------------------------------------------------------------------------------


def to_dict(schedule: Schedule) -> dict[str, Any]:
    """A schedule as nested plain data (``{"type": ..., field: value}``), safe for JSON and
    ``torch.load(weights_only=True)``; :func:`from_dict` rebuilds it.

    Raises:
        ConfigError: For a schedule (or piece) that is not one of lrpilot's dataclasses.
    """
    if not isinstance(schedule, BaseSchedule) or not schedule.kind:
        raise ConfigError(
            f"to_dict covers lrpilot's schedules only, got schedule={schedule!r}; pickle it"
        )
    out: dict[str, Any] = {"type": schedule.kind}
    for field in dataclasses.fields(schedule):  # type: ignore[arg-type]
        out[field.name] = _encode(getattr(schedule, field.name))
    return out


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return to_dict(value) if callable(value) else value


def from_dict(data: Mapping[str, Any]) -> BaseSchedule:
    """Rebuild a schedule from :func:`to_dict`'s output (validating every field again)."""
    kind = data.get("type") if isinstance(data, Mapping) else None
    cls = BaseSchedule._kinds.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"not a schedule dict: unknown or missing 'type', got data={data!r}")
    kwargs = {k: _decode(v) for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad fields for a {kind!r} schedule: {err}") from None


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" in value:
        return from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def values(schedule: Schedule, steps: int, *, peak: float = 1.0) -> list[float]:
    """The learning rates ``peak * schedule(t)`` for ``t = 0 .. steps - 1``."""
    peak = _real("peak", peak, 0.0, open_low=True)
    return [peak * float(schedule(t)) for t in range(_whole("steps", steps, 0))]


def plot(
    schedule: Schedule,
    steps: int,
    path: str | None = None,
    *,
    peak: float = 1.0,
    title: str | None = None,
    log: bool = False,
    ax: Axes | None = None,
    dpi: int = 100,
) -> Figure:
    """Plot a schedule over ``steps`` steps; save it to ``path`` when given.

    The drawing is :func:`lrpilot.report.plot_schedule`'s, from the sampled LRs; see it for
    the arguments.
    """
    from lrpilot.report import plot_schedule

    lrs = values(schedule, steps, peak=peak)
    return plot_schedule(lrs, path, peak=peak, title=title, log=log, ax=ax, dpi=dpi)


# --------------------------------------------------------------------------------------------
# The text spec
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+(),=\[\]])"
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "name", "op" or "end"
    text: str
    pos: int
    width: int = 0

    def show(self) -> str:
        return "the end of the spec" if self.kind == "end" else repr(self.text)


@dataclass(frozen=True)
class _Arg:
    key: _Tok | None
    value: Any  # float, str or tuple of floats
    where: _Tok


@dataclass(frozen=True)
class _Term:
    name: _Tok
    args: tuple[_Arg, ...]


def _spec_error(spec: str, tok: _Tok, message: str) -> SpecError:
    line = spec.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    width = max(tok.width or len(tok.text), 1)
    return SpecError(f"{message}\n  {line}\n  {' ' * tok.pos}{'^' * width}")


def _tokenize(spec: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(spec):
        if spec[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(spec, pos)
        if m is None:
            bad = _Tok("op", spec[pos], pos)
            raise _spec_error(spec, bad, f"unexpected character {spec[pos]!r}")
        toks.append(_Tok(str(m.lastgroup), m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(spec)))
    return toks


class _Parser:
    """Recursive descent over ``term ('+' term)*``, ``term := NAME ['(' [arg (',' arg)*] ')']``."""

    def __init__(self, spec: str) -> None:
        self.spec, self.toks, self.i = spec, _tokenize(spec), 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, tok: _Tok, message: str) -> SpecError:
        return _spec_error(self.spec, tok, message)

    def take(self, kind: str, text: str | None, what: str) -> _Tok:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error(tok, f"expected {what}, found {tok.show()}")
        self.i += 1
        return tok

    def at(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def terms(self) -> list[_Term]:
        terms = [self.term()]
        while self.at("+"):
            self.i += 1
            terms.append(self.term())
        if self.tok.kind != "end":
            raise self.error(
                self.tok, f"expected '+' or the end of the spec, found {self.tok.show()}"
            )
        return terms

    def term(self) -> _Term:
        name = self.take("name", None, "a schedule name such as 'cosine'")
        args: list[_Arg] = []
        if self.at("("):
            self.i += 1
            if not self.at(")"):
                args.append(self.arg())
                while self.at(","):
                    self.i += 1
                    args.append(self.arg())
            self.take("op", ")", "',' or ')'")
        return _Term(name, tuple(args))

    def arg(self) -> _Arg:
        key = None
        if self.tok.kind == "name" and self.toks[self.i + 1].text == "=":
            key = self.tok
            self.i += 2
        value, where = self.value()
        return _Arg(key, value, where)

    def value(self) -> tuple[Any, _Tok]:
        tok = self.tok
        if tok.kind in ("num", "name"):
            self.i += 1
            return (float(tok.text) if tok.kind == "num" else tok.text), tok
        if not self.at("["):
            raise self.error(tok, f"expected a number, a name or a [list], found {tok.show()}")
        self.i += 1
        items = [float(self.take("num", None, "a number").text)]
        while self.at(","):
            self.i += 1
            items.append(float(self.take("num", None, "a number").text))
        close = self.take("op", "]", "',' or ']'")
        return tuple(items), _Tok("op", "[", tok.pos, close.pos + 1 - tok.pos)


@dataclass(frozen=True)
class _Sig:
    """How a spec name maps onto a factory: argument kinds, positional names, finiteness."""

    make: Callable[..., Schedule]
    params: Mapping[str, str]  # name -> "length", "lengths", "real", "name" or "bool"
    positional: tuple[str, ...] = ()
    finite: bool = False  # has its own length ``steps``, by default the rest of the run


_SIGS: dict[str, _Sig] = {
    "constant": _Sig(constant, {"value": "real"}, ("value",)),
    "step": _Sig(step_decay, {"every": "length", "gamma": "real"}, ("every",)),
    "multistep": _Sig(multi_step, {"milestones": "lengths", "gamma": "real"}, ("milestones",)),
    "exp": _Sig(exponential, {"gamma": "real", "every": "length"}, ("gamma",)),
    "poly": _Sig(polynomial, {"steps": "length", "power": "real", "min": "real"}, (), True),
    "linear": _Sig(linear, {"steps": "length", "start": "real", "end": "real"}, (), True),
    "cosine": _Sig(cosine, {"steps": "length", "min": "real"}, (), True),
    "restarts": _Sig(
        cosine_restarts,
        {"period": "length", "mult": "real", "min": "real", "decay": "real"},
        ("period",),
    ),
    "cyclic": _Sig(
        cyclic,
        {"period": "length", "min": "real", "mode": "name", "gamma": "real", "up": "real"},
        ("period",),
    ),
    "onecycle": _Sig(
        onecycle,
        {
            "steps": "length",
            "pct": "real",
            "div": "real",
            "final_div": "real",
            "anneal": "name",
            "three_phase": "bool",
        },
        (),
        True,
    ),
    "invsqrt": _Sig(inverse_sqrt, {"timescale": "length"}, ("timescale",)),
    "wsd": _Sig(
        wsd,
        {"steps": "length", "warmup": "length", "decay": "length", "min": "real", "shape": "name"},
        (),
        True,
    ),
    "warmup": _Sig(warmup, {"steps": "length", "start": "real", "mode": "name"}, ("steps",)),
}
_ALIASES = {
    "step_decay": "step",
    "multi_step": "multistep",
    "exponential": "exp",
    "polynomial": "poly",
    "cosine_restarts": "restarts",
    "sgdr": "restarts",
    "one_cycle": "onecycle",
    "inverse_sqrt": "invsqrt",
}
_BOOLS = {"true": True, "false": False, "yes": True, "no": False}


@dataclass
class _Piece:
    """One resolved term: its factory, keyword arguments and segment length."""

    term: _Term
    sig: _Sig
    kwargs: dict[str, Any]
    where: dict[str, _Tok]
    length: int | None


class _Builder:
    """Turn parsed terms into a schedule, resolving lengths against ``total``."""

    def __init__(self, spec: str, total: int | None) -> None:
        self.spec, self.total = spec, total

    def error(self, tok: _Tok, message: str) -> SpecError:
        return _spec_error(self.spec, tok, message)

    def build(self, terms: list[_Term]) -> Schedule:
        pieces, offset, after_warmup = [], 0, None
        for i, term in enumerate(terms):
            piece = self.piece(term, offset, last=i == len(terms) - 1, after_warmup=after_warmup)
            pieces.append(piece)
            offset += piece.length or 0
            after_warmup = piece.length if piece.sig.make is warmup else None
        if pieces[-1].sig.make is warmup:
            sched, rest = constant(), pieces
        else:
            sched, rest = self.make(pieces[-1]), pieces[:-1]
        for piece in reversed(rest):
            if piece.sig.make is warmup:
                sched = self.make(piece, sched)
            else:
                sched = _prepend(self.make(piece), sched, piece.length or 0)
        return sched

    def piece(self, term: _Term, offset: int, *, last: bool, after_warmup: int | None) -> _Piece:
        name = _ALIASES.get(term.name.text, term.name.text)
        sig = _SIGS.get(name)
        if sig is None:
            raise self.error(term.name, _unknown("schedule", term.name.text, [*_SIGS, *_ALIASES]))
        kwargs, where = self.arguments(term, name, sig)
        length = (
            kwargs.get("steps") if sig.finite or sig.make is warmup else kwargs.pop("steps", None)
        )
        if sig.make is warmup and length is None:
            raise self.error(term.name, "warmup needs a length: warmup(0.05) or warmup(100)")
        if length is None and not last:
            raise self.error(term.name, f"{name} needs steps=... because a schedule follows it")
        if length is None and sig.finite:
            kwargs["steps"] = length = self.remaining(term, offset)
        if length is not None:
            self.check_fits(term, where, offset, length, warmup_piece=sig.make is warmup)
        if sig.make is inverse_sqrt and "timescale" not in kwargs and after_warmup:
            kwargs["timescale"] = after_warmup
        missing = [p for p in _required(sig.make) if p not in kwargs and p != "schedule"]
        if missing:
            raise self.error(term.name, f"{name} needs {missing[0]}=... (no default)")
        return _Piece(term, sig, kwargs, where, length)

    def arguments(
        self, term: _Term, name: str, sig: _Sig
    ) -> tuple[dict[str, Any], dict[str, _Tok]]:
        kwargs: dict[str, Any] = {}
        where: dict[str, _Tok] = {}
        accepted = {**sig.params, "steps": "length"}
        for k, arg in enumerate(term.args):
            if arg.key is None:
                if any(a.key is not None for a in term.args[:k]):
                    raise self.error(arg.where, "a positional argument cannot follow a named one")
                if k >= len(sig.positional):
                    raise self.error(arg.where, _positional_hint(name, sig, accepted))
                key, key_tok = sig.positional[k], arg.where
            else:
                key, key_tok = arg.key.text, arg.key
                if key not in accepted:
                    raise self.error(key_tok, _unknown(f"argument of {name}", key, list(accepted)))
            if key in kwargs:
                raise self.error(key_tok, f"{key} is given twice")
            kwargs[key] = self.convert(accepted[key], key, arg)
            where[key] = arg.where
        return kwargs, where

    def convert(self, kind: str, key: str, arg: _Arg) -> Any:
        value = arg.value
        if kind == "length":
            return self.length(key, value, arg.where)
        if kind == "lengths":
            items = value if isinstance(value, tuple) else (value,)
            return tuple(self.length(key, v, arg.where) for v in items)
        if kind == "real" and isinstance(value, float):
            return value
        if kind == "name" and isinstance(value, str):
            return value
        if kind == "bool" and isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        want = {"real": "a number", "name": "a name", "bool": "true or false"}[kind]
        raise self.error(arg.where, f"{key} must be {want}, found {arg.where.text!r}")

    def length(self, key: str, value: Any, tok: _Tok) -> int:
        if not isinstance(value, float) or value < 0:
            raise self.error(tok, f"{key} must be a number of steps or a fraction of the run")
        if value >= 1:
            if not value.is_integer():
                raise self.error(
                    tok,
                    f"{key}={tok.text} is neither a fraction below 1 nor a whole number of steps",
                )
            return int(value)
        if self.total is None:
            raise self.error(tok, f"{key}={tok.text} is a fraction of the run: give total_steps")
        return fraction(value, total_steps=self.total)

    def remaining(self, term: _Term, offset: int) -> int:
        name = term.name.text
        if self.total is None:
            raise self.error(term.name, f"{name} runs to the end of the run: give total_steps")
        if self.total - offset < 1:
            raise self.error(
                term.name,
                f"no steps left for {name}: the schedules before it take {offset} of "
                f"total_steps={self.total}",
            )
        return self.total - offset

    def check_fits(
        self, term: _Term, where: dict[str, _Tok], offset: int, length: int, *, warmup_piece: bool
    ) -> None:
        tok = where.get("steps", term.name)
        if length < 1 and not warmup_piece:
            raise self.error(tok, f"{term.name.text} needs at least one step, got steps={length}")
        if self.total is not None and offset + length > self.total:
            raise self.error(
                tok,
                f"{term.name.text} ends at step {offset + length}, past total_steps={self.total}",
            )

    def make(self, piece: _Piece, *schedule: Schedule) -> Schedule:
        try:
            return piece.sig.make(*schedule, **piece.kwargs)
        except _ArgError as err:
            raise self.error(piece.where.get(err.arg, piece.term.name), str(err)) from None
        except ConfigError as err:
            raise self.error(piece.term.name, str(err)) from None


def _required(fn: Callable[..., Any]) -> list[str]:
    """Names of the arguments of ``fn`` that have no default."""
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.default is inspect.Parameter.empty]


def _prepend(first: Schedule, rest: Schedule, length: int) -> Join:
    """``join([first, rest], [length])``, flattening ``rest`` when it is a join."""
    if isinstance(rest, Join):
        return Join((first, *rest.schedules), (length, *(length + b for b in rest.boundaries)))
    return Join((first, rest), (length,))


def _unknown(what: str, got: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(got, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {got!r}{hint} (known: {', '.join(sorted(set(known)))})"


def _positional_hint(name: str, sig: _Sig, accepted: Mapping[str, str]) -> str:
    if not sig.positional:
        return f"{name} takes named arguments only: {', '.join(accepted)}"
    return f"{name} takes one positional argument ({sig.positional[0]}); name the others"


def parse_schedule(spec: str, total_steps: int | None = None) -> Schedule:
    """Parse a text spec into a schedule with every length resolved to steps.

    A spec is schedules joined by ``+``, each a name with optional arguments:
    ``warmup(0.05)+cosine(min=0.01)``, ``step(every=0.3, gamma=0.1)``, ``onecycle(pct=0.3)``,
    ``cyclic(period=0.2, mode=triangular)``, ``warmup(100)+invsqrt``,
    ``wsd(warmup=0.05, decay=0.2)``, ``multistep(milestones=[0.5, 0.75])``.

    * A length (``steps``, ``every``, ``period``, ``warmup``, ``decay``, ``milestones``,
      ``timescale``) below 1 is a fraction of the whole run (``total_steps``); a whole number
      ``>= 1`` is a count of steps. Other arguments are plain numbers or names.
    * Each schedule after the first starts at step 0 of its own segment. ``warmup(W)`` ramps into
      whatever follows it (alone, into ``constant``); every other non-final schedule needs
      ``steps=``; the final one runs to the end of the run (finite schedules: ``cosine``,
      ``linear``, ``poly``, ``onecycle``, ``wsd``) or forever (the others).
    * ``invsqrt`` right after ``warmup(W)`` defaults to ``timescale=W`` (the Transformer schedule).

    Args:
        spec: The text spec.
        total_steps: Steps in the run; needed for fractions and for finite final schedules.

    Raises:
        SpecError: For a malformed spec or a bad argument; the message shows the spec with
            carets under the offending token.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"spec must be a str, got spec={spec!r}")
    total = None if total_steps is None else _whole("total_steps", total_steps, 1)
    terms = _Parser(spec).terms()
    return _Builder(spec, total).build(terms)


# --------------------------------------------------------------------------------------------
# Torch adapter
# --------------------------------------------------------------------------------------------


def _peaks(optimizer: Optimizer, peak_lr: float | Sequence[float] | None) -> list[float]:
    groups = optimizer.param_groups
    if peak_lr is None:
        peaks = [float(g["lr"]) for g in groups]
        for i, p in enumerate(peaks):
            if not p > 0:
                raise ConfigError(
                    f"param_groups[{i}] has lr={p}: set the optimizer's lr or give peak_lr"
                )
        return peaks
    raw = [peak_lr] * len(groups) if _is_real(peak_lr) else list(peak_lr)  # type: ignore[arg-type]
    if len(raw) != len(groups):
        raise ConfigError(f"peak_lr needs one value per param group ({len(groups)}): {peak_lr=}")
    return [_real("peak_lr", p, 0.0, open_low=True) for p in raw]


def _set_lr(group: dict[str, Any], lr: float) -> None:
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


class ScheduleLR(LRScheduler):
    """A torch LR scheduler driven by a schedule: group ``i`` runs at ``peak_i * scale * f(t)``.

    Build it with :func:`attach`. Unlike torch's schedulers it takes no step in its constructor
    and does not wrap ``optimizer.step``; ``last_epoch`` is the current optimizer step ``t``
    (0 right after construction). ``state_dict()`` holds the step, the peaks, ``scale`` and the
    schedule as plain data (:func:`to_dict`; a schedule that is not lrpilot's is stored as the
    object itself, so it must be picklable), so ``torch.load(weights_only=True)`` reads it back
    and :meth:`load_state_dict` resumes at exactly the saved step.

    Attributes:
        schedule: The schedule; may be replaced between steps.
        peak_lrs: The peak LR of each param group (their ratios are kept).
        scale: An extra multiplier on every group, for controllers such as reduce-on-plateau;
            setting it applies the new LRs at once.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: Schedule,
        *,
        peak_lr: float | Sequence[float] | None = None,
        start_step: int = 0,
    ) -> None:
        # LRScheduler.__init__ is not called on purpose: it patches optimizer.step and takes a
        # step. Every attribute the base class reads is set here.
        if not isinstance(optimizer, Optimizer):
            raise ConfigError(f"optimizer must be a torch Optimizer, got optimizer={optimizer!r}")
        self.optimizer = optimizer
        self.schedule = _schedule_arg("schedule", schedule)
        self.peak_lrs = _peaks(optimizer, peak_lr)
        self.base_lrs: list[float | torch.Tensor] = list(self.peak_lrs)
        self.last_epoch = _whole("start_step", start_step, 0)
        self._scale = 1.0
        self._apply()

    @property
    def scale(self) -> float:
        """Extra multiplier on every group's LR (1.0 unless a controller changed it)."""
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        self._scale = _real("scale", value, 0.0)
        self._apply()

    def get_lr(self) -> list[float | torch.Tensor]:
        """The LR of each param group at the current step."""
        factor = self._scale * float(self.schedule(self.last_epoch))
        return [peak * factor for peak in self.peak_lrs]

    def step(self, epoch: int | None = None) -> None:
        """Advance one optimizer step and set the LRs (call after ``optimizer.step()``)."""
        if epoch is not None:
            raise ConfigError(
                f"ScheduleLR.step() takes no epoch, got {epoch=}; to resume, load a state_dict "
                "or attach with start_step"
            )
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        lrs = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            _set_lr(group, float(lr))
        self._last_lr = lrs

    def state_dict(self) -> dict[str, Any]:
        """Step, peaks, scale and schedule, as plain data where the schedule allows it."""
        try:
            schedule: Any = to_dict(self.schedule)
        except ConfigError:
            schedule = self.schedule
        return {
            "step": self.last_epoch,
            "peak_lrs": list(self.peak_lrs),
            "scale": self._scale,
            "schedule": schedule,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and set the LRs of the saved step at once."""
        missing = {"step", "peak_lrs", "scale", "schedule"} - set(state_dict)
        if missing:
            raise ConfigError(f"not a ScheduleLR state_dict: missing {sorted(missing)}")
        saved = state_dict["schedule"]
        peaks = [float(p) for p in state_dict["peak_lrs"]]
        if len(peaks) != len(self.optimizer.param_groups):
            raise ConfigError(
                f"state_dict has {len(peaks)} peak_lrs for "
                f"{len(self.optimizer.param_groups)} param groups"
            )
        self.schedule = from_dict(saved) if isinstance(saved, Mapping) else saved
        self.peak_lrs = peaks
        self.base_lrs = list(peaks)
        self.last_epoch = _whole("step", state_dict["step"], 0)
        self._scale = _real("scale", state_dict["scale"], 0.0)
        self._apply()


def attach(
    optimizer: Optimizer,
    schedule: Schedule | str,
    *,
    peak_lr: float | Sequence[float] | None = None,
    total_steps: int | None = None,
    start_step: int = 0,
) -> ScheduleLR:
    """Drive ``optimizer`` with a schedule; returns a torch LR scheduler.

    The LRs are set at once for step ``start_step``; call ``scheduler.step()`` after each
    ``optimizer.step()``.

    Args:
        optimizer: Any torch optimizer.
        schedule: A schedule, or a text spec for :func:`parse_schedule`.
        peak_lr: Peak LR, one for all groups or one per group; default: each group's current
            ``lr``, so the ratios between groups are kept.
        total_steps: Steps in the run, to resolve a text spec (only with a spec).
        start_step: The step to start at (to resume without a state_dict).

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = attach(opt, "warmup(0.1)+cosine", total_steps=100)
        >>> opt.param_groups[0]["lr"]
        0.0
        >>> for _ in range(10):
        ...     opt.step()
        ...     sched.step()
        >>> opt.param_groups[0]["lr"]
        0.1
    """
    if isinstance(schedule, str):
        schedule = parse_schedule(schedule, total_steps)
    elif total_steps is not None:
        raise ConfigError(f"total_steps is used only with a text spec, got {total_steps=}")
    return ScheduleLR(optimizer, schedule, peak_lr=peak_lr, start_step=start_step)
