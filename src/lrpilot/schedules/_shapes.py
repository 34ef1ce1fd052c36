"""The schedule shapes, constant to warmup-stable-decay: one frozen dataclass and one factory
(declared in the text spec with :func:`~._base.in_spec`) each."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from lrpilot._validate import ArgError, boolean, choice, real, whole

from ._base import BaseSchedule, Length, Lengths, Schedule, in_spec, set_field
from ._combinators import Join, Warmup


@dataclass(frozen=True, kw_only=True)
class Constant(BaseSchedule):
    """The same multiplier at every step; see :func:`constant`."""

    kind: ClassVar[str] = "constant"
    value: float = 1.0

    def __post_init__(self) -> None:
        set_field(self, "value", real("value", self.value, 0.0, 1.0))

    def _at(self, step: int) -> float:
        return self.value


@in_spec("constant", positional="value")
def constant(value: float = 1.0) -> Constant:
    r"""A constant multiplier.

    .. math:: f(t) = v

    Args:
        value: The multiplier ``v`` in ``[0, 1]``; ``1`` runs at the peak LR throughout.
    """
    return Constant(value=value)


@dataclass(frozen=True, kw_only=True)
class StepDecay(BaseSchedule):
    """Multiply by ``gamma`` every ``every`` steps; see :func:`step_decay`."""

    kind: ClassVar[str] = "step_decay"
    every: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        set_field(self, "every", whole("every", self.every, 1))
        set_field(self, "gamma", real("gamma", self.gamma, 0.0, 1.0, open_low=True))

    def _at(self, step: int) -> float:
        return self.gamma ** (step // self.every)


@in_spec("step", positional="every")
def step_decay(*, every: Length, gamma: float = 0.1) -> StepDecay:
    r"""Step decay: multiply by ``gamma`` every ``every`` steps (torch's ``StepLR``).

    .. math:: f(t) = \gamma^{\lfloor t / e \rfloor}

    Args:
        every: Steps between decays ``e``; "every 30 epochs" is ``epochs(30, steps_per_epoch=n)``.
        gamma: Factor ``γ`` in ``(0, 1]`` applied at each decay.
    """
    return StepDecay(every=every, gamma=gamma)


@dataclass(frozen=True, kw_only=True)
class MultiStep(BaseSchedule):
    """Multiply by ``gamma`` at each milestone; see :func:`multi_step`."""

    kind: ClassVar[str] = "multi_step"
    milestones: tuple[int, ...]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        raw = self.milestones
        items = tuple(raw) if isinstance(raw, Sequence) and not isinstance(raw, str) else None
        if not items:
            raise ArgError("milestones", raw, "a non-empty sequence of steps")
        ms = tuple(whole("milestones", m, 1) for m in items)
        if any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            raise ArgError("milestones", raw, "strictly increasing")
        set_field(self, "milestones", ms)
        set_field(self, "gamma", real("gamma", self.gamma, 0.0, 1.0, open_low=True))

    def _at(self, step: int) -> float:
        return self.gamma ** bisect_right(self.milestones, step)


@in_spec("multistep", positional="milestones")
def multi_step(*, milestones: Lengths, gamma: float = 0.1) -> MultiStep:
    r"""Multi-step decay: multiply by ``gamma`` at each milestone (torch's ``MultiStepLR``).

    .. math:: f(t) = \gamma^{\#\{m_i \le t\}}

    Args:
        milestones: Strictly increasing steps ``m_i >= 1`` at which the decay applies.
        gamma: Factor ``γ`` in ``(0, 1]`` applied at each milestone.
    """
    return MultiStep(milestones=tuple(milestones), gamma=gamma)


@dataclass(frozen=True, kw_only=True)
class Exponential(BaseSchedule):
    """Smooth exponential decay; see :func:`exponential`."""

    kind: ClassVar[str] = "exponential"
    gamma: float
    every: int = 1

    def __post_init__(self) -> None:
        set_field(self, "gamma", real("gamma", self.gamma, 0.0, 1.0, open_low=True))
        set_field(self, "every", whole("every", self.every, 1))

    def _at(self, step: int) -> float:
        return self.gamma ** (step / self.every)


@in_spec("exp", positional="gamma")
def exponential(*, gamma: float, every: Length = 1) -> Exponential:
    r"""Exponential decay by ``gamma`` per ``every`` steps, smooth in between (``ExponentialLR``).

    .. math:: f(t) = \gamma^{t / e}

    "×0.95 per epoch" is ``exponential(gamma=0.95, every=steps_per_epoch)``; for a staircase use
    :func:`step_decay`.

    Args:
        gamma: Factor ``γ`` in ``(0, 1]`` per ``every`` steps.
        every: Steps ``e`` over which the factor ``γ`` applies.
    """
    return Exponential(gamma=gamma, every=every)


@dataclass(frozen=True, kw_only=True)
class _Anneal(BaseSchedule):
    """A fall from 1 to the floor ``min`` over ``steps`` steps, then the floor: subclasses give
    the shape ``g`` of the fall, ``f(t) = min + (1 - min) g(min(t, steps) / steps)``."""

    steps: int
    min: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "steps", whole("steps", self.steps, 1))
        set_field(self, "min", real("min", self.min, 0.0, 1.0))

    def _at(self, step: int) -> float:
        done = step if step < self.steps else self.steps
        return self.min + (1.0 - self.min) * self._shape(done / self.steps)

    def _shape(self, fraction: float) -> float:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Polynomial(_Anneal):
    """Polynomial decay to a floor; see :func:`polynomial`."""

    kind: ClassVar[str] = "polynomial"
    power: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        set_field(self, "power", real("power", self.power, 0.0, open_low=True))

    def _shape(self, fraction: float) -> float:
        return (1.0 - fraction) ** self.power


@in_spec("poly", finite=True)
def polynomial(*, steps: Length, power: float = 1.0, min: float = 0.0) -> Polynomial:
    r"""Polynomial decay from 1 to ``min`` over ``steps`` (torch's ``PolynomialLR`` for min=0).

    .. math:: f(t) = m + (1 - m)\,\bigl(1 - \min(t, T)/T\bigr)^{p}

    Args:
        steps: Length ``T`` of the decay; the multiplier holds at ``m`` after it.
        power: Exponent ``p > 0``; ``1`` is a linear decay, ``2`` a quadratic one.
        min: Final multiplier ``m`` in ``[0, 1]``.
    """
    return Polynomial(steps=steps, min=min, power=power)


@dataclass(frozen=True, kw_only=True)
class Linear(BaseSchedule):
    """Linear ramp from ``start`` to ``end``; see :func:`linear`."""

    kind: ClassVar[str] = "linear"
    steps: int
    start: float = 1.0
    end: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "steps", whole("steps", self.steps, 1))
        set_field(self, "start", real("start", self.start, 0.0, 1.0))
        set_field(self, "end", real("end", self.end, 0.0, 1.0))

    def _at(self, step: int) -> float:
        if step >= self.steps:
            return self.end  # exactly: the formula can miss it by an ulp
        return self.start + (self.end - self.start) * step / self.steps


@in_spec("linear", finite=True)
def linear(*, steps: Length, start: float = 1.0, end: float = 0.0) -> Linear:
    r"""Linear ramp from ``start`` to ``end`` over ``steps`` (torch's ``LinearLR``).

    .. math:: f(t) = s + (e - s)\,\min(t, T)/T

    The default is a linear decay to zero; with ``start < end`` it ramps up.

    Args:
        steps: Length ``T`` of the ramp; the multiplier holds at ``e`` after it.
        start: Multiplier ``s`` in ``[0, 1]`` at step 0.
        end: Multiplier ``e`` in ``[0, 1]`` from step ``T`` on.
    """
    return Linear(steps=steps, start=start, end=end)


def _half_cosine(start: float, end: float, done: float) -> float:
    """Half a cosine from ``start`` (``done=0``) to ``end`` (``done=1``): the one cosine
    interpolation of cosine annealing, SGDR and one-cycle's ``"cos"`` phases."""
    return end + (start - end) * (1.0 + math.cos(math.pi * done)) / 2.0


@dataclass(frozen=True, kw_only=True)
class Cosine(_Anneal):
    """Cosine annealing to a floor; see :func:`cosine`."""

    kind: ClassVar[str] = "cosine"

    def _shape(self, fraction: float) -> float:
        return _half_cosine(1.0, 0.0, fraction)


@in_spec("cosine", finite=True)
def cosine(*, steps: Length, min: float = 0.0) -> Cosine:
    r"""Cosine annealing from 1 to ``min`` over ``steps`` (``CosineAnnealingLR``'s closed form).

    .. math:: f(t) = m + (1 - m)\,\frac{1 + \cos(\pi \min(t, T) / T)}{2}

    Unlike torch's ``CosineAnnealingLR``, the multiplier holds at ``m`` after ``T`` instead of
    rising again; for restarts use :func:`cosine_restarts`.

    Args:
        steps: Length ``T`` of the anneal.
        min: Floor ``m`` in ``[0, 1]``, as a fraction of the peak (``eta_min / lr`` in torch).
    """
    return Cosine(steps=steps, min=min)


@dataclass(frozen=True, kw_only=True)
class CosineRestarts(BaseSchedule):
    """Cosine annealing with warm restarts (SGDR); see :func:`cosine_restarts`."""

    kind: ClassVar[str] = "cosine_restarts"
    period: int
    mult: int = 1
    min: float = 0.0
    decay: float = 1.0

    def __post_init__(self) -> None:
        set_field(self, "period", whole("period", self.period, 1))
        set_field(self, "mult", whole("mult", self.mult, 1))
        set_field(self, "min", real("min", self.min, 0.0, 1.0))
        set_field(self, "decay", real("decay", self.decay, 0.0, 1.0, open_low=True))

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
        height = self.min + (1.0 - self.min) * self.decay**cycle
        return _half_cosine(height, self.min, inside / length)


@in_spec("restarts", aliases=("sgdr",), positional="period")
def cosine_restarts(
    *, period: Length, mult: int = 1, min: float = 0.0, decay: float = 1.0
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
    return CosineRestarts(period=period, mult=mult, min=min, decay=decay)


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@dataclass(frozen=True, kw_only=True)
class Cyclic(BaseSchedule):
    """Cyclical learning rate; see :func:`cyclic`."""

    kind: ClassVar[str] = "cyclic"
    period: int
    min: float = 0.1
    mode: str = "triangular"
    gamma: float = 1.0
    up: float = 0.5

    def __post_init__(self) -> None:
        set_field(self, "period", whole("period", self.period, 1))
        set_field(self, "min", real("min", self.min, 0.0, 1.0))
        set_field(self, "mode", choice("mode", self.mode, _CYCLIC_MODES))
        set_field(self, "gamma", real("gamma", self.gamma, 0.0, 1.0, open_low=True))
        set_field(self, "up", real("up", self.up, 0.0, 1.0, open_low=True, open_high=True))

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


@in_spec("cyclic", positional="period")
def cyclic(
    *,
    period: Length,
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
    return Cyclic(period=period, min=min, mode=mode, gamma=gamma, up=up)


def _interpolate(how: str, start: float, end: float, done: float) -> float:
    """From ``start`` (``done=0``) to ``end`` (``done=1``) by half a cosine or a line."""
    if how == "cos":
        return _half_cosine(start, end, done)
    return (end - start) * done + start


@dataclass(frozen=True, kw_only=True)
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
        steps = whole("steps", self.steps, 2)
        pct = real("pct", self.pct, 0.0, 1.0, open_low=True, open_high=True)
        set_field(self, "steps", steps)
        set_field(self, "pct", pct)
        set_field(self, "div", real("div", self.div, 1.0))
        set_field(self, "final_div", real("final_div", self.final_div, 1.0))
        set_field(self, "anneal", choice("anneal", self.anneal, ("cos", "linear")))
        set_field(self, "three_phase", boolean("three_phase", self.three_phase))
        rise = pct * steps
        if rise <= 1:
            raise ArgError("pct", pct, f"large enough that pct * steps > 1 (steps={steps})")
        if self.three_phase and 2 * rise - 2 >= steps - 1:
            raise ArgError("pct", pct, f"small enough for three phases in steps={steps}")

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
                return _interpolate(self.anneal, a, b, (step - begin) / (last - begin))
            begin = last
        return 1.0 / (self.div * self.final_div)  # past the end: hold the final value


@in_spec("onecycle", aliases=("one_cycle",), finite=True)
def onecycle(
    *,
    steps: Length,
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
    return OneCycle(
        steps=steps, pct=pct, div=div, final_div=final_div, anneal=anneal, three_phase=three_phase
    )


@dataclass(frozen=True, kw_only=True)
class InverseSqrt(BaseSchedule):
    """Inverse square-root decay; see :func:`inverse_sqrt`."""

    kind: ClassVar[str] = "inverse_sqrt"
    timescale: int = 1

    def __post_init__(self) -> None:
        set_field(self, "timescale", whole("timescale", self.timescale, 1))

    def _at(self, step: int) -> float:
        return 1.0 / math.sqrt(1.0 + step / self.timescale)


@in_spec("invsqrt", positional="timescale", after_warmup="timescale")
def inverse_sqrt(*, timescale: Length = 1) -> InverseSqrt:
    r"""Inverse square-root decay, as in the Transformer ("Noam") schedule.

    .. math:: f(t) = \frac{1}{\sqrt{1 + t/\tau}}

    ``warmup(inverse_sqrt(timescale=W), steps=W)`` is the Transformer ("Noam") schedule
    normalised to peak 1: ``t/W`` during the warmup, then ``sqrt(W/t)``.

    Args:
        timescale: Steps ``τ >= 1`` over which the multiplier falls to ``1/\sqrt{2}``.
    """
    return InverseSqrt(timescale=timescale)


@dataclass(frozen=True, kw_only=True)
class SqrtDecay(_Anneal):
    """The "1 - sqrt" cooldown of warmup-stable-decay; see :func:`wsd`."""

    kind: ClassVar[str] = "sqrt_decay"

    def _shape(self, fraction: float) -> float:
        return 1.0 - math.sqrt(fraction)


_WSD_SHAPES = ("linear", "cosine", "sqrt")


@in_spec("wsd", finite=True)
def wsd(
    *, steps: Length, decay: Length, warmup: Length = 0, min: float = 0.0, shape: str = "linear"
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
    steps = whole("steps", steps, 1)
    decay = whole("decay", decay, 1)
    rise = whole("warmup", warmup, 0)
    shape = choice("shape", shape, _WSD_SHAPES)
    floor_ = real("min", min, 0.0, 1.0)
    stable = steps - rise - decay
    if stable < 0:
        raise ArgError("decay", decay, f"at most steps - warmup = {steps - rise}")
    if shape == "linear":
        tail: Schedule = Linear(steps=decay, start=1.0, end=floor_)
    elif shape == "cosine":
        tail = Cosine(steps=decay, min=floor_)
    else:
        tail = SqrtDecay(steps=decay, min=floor_)
    body = (
        tail if stable == 0 else Join(schedules=(Constant(value=1.0), tail), boundaries=(stable,))
    )
    return body if rise == 0 else Warmup(schedule=body, steps=rise)
