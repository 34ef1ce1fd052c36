"""Shared by the schedule tests (no tests here): tolerances, sampling and Hypothesis strategies.

``KIND_STRATEGIES`` has one strategy per schedule ``kind``; ``test_schedules_io`` checks that it
covers every kind in ``BaseSchedule._kinds``, so a new schedule without a strategy fails.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from lrpilot import schedules as S

RTOL = 1e-10  # LRs span decades: relative tolerance only
FAST = settings(max_examples=60, deadline=None)

unit = st.floats(0.0, 1.0)
decay_factor = st.floats(0.01, 1.0)
length = st.integers(1, 2000)

Drawn = tuple[S.Schedule, float]
"""A schedule and the floor its values must stay above (they stay at or below 1)."""


def lrs_of(schedule: S.Schedule, steps: int) -> np.ndarray:
    """The multipliers at steps ``0 .. steps - 1``."""
    return np.array(S.values(schedule, steps))


def _constant(draw: st.DrawFn) -> Drawn:
    value = draw(unit)
    return S.constant(value), value


def _step(draw: st.DrawFn) -> Drawn:
    return S.step_decay(every=draw(length), gamma=draw(decay_factor)), 0.0


def _multi(draw: st.DrawFn) -> Drawn:
    ms = sorted(draw(st.sets(st.integers(1, 5000), min_size=1, max_size=5)))
    return S.multi_step(milestones=ms, gamma=draw(decay_factor)), 0.0


def _exp(draw: st.DrawFn) -> Drawn:
    return S.exponential(gamma=draw(decay_factor), every=draw(length)), 0.0


def _poly(draw: st.DrawFn) -> Drawn:
    lo = draw(unit)
    return S.polynomial(steps=draw(length), power=draw(st.floats(0.1, 5)), min=lo), lo


def _linear(draw: st.DrawFn) -> Drawn:
    a, b = draw(unit), draw(unit)
    return S.linear(steps=draw(length), start=a, end=b), min(a, b)


def _cos(draw: st.DrawFn) -> Drawn:
    lo = draw(unit)
    return S.cosine(steps=draw(length), min=lo), lo


def _sgdr(draw: st.DrawFn) -> Drawn:
    lo = draw(unit)
    period, mult = draw(length), draw(st.integers(1, 3))
    return S.cosine_restarts(period=period, mult=mult, min=lo, decay=draw(decay_factor)), lo


def _cyclic(draw: st.DrawFn) -> Drawn:
    lo = draw(unit)
    mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
    gamma, up = draw(decay_factor), draw(st.floats(0.05, 0.95))
    return S.cyclic(period=draw(length), min=lo, mode=mode, gamma=gamma, up=up), lo


def _onecycle(draw: st.DrawFn) -> Drawn:
    steps = draw(st.integers(10, 2000))
    pct, div = draw(st.floats(0.15, 0.45)), draw(st.floats(1, 100))
    return S.onecycle(steps=steps, pct=pct, div=div, three_phase=draw(st.booleans())), 0.0


def _invsqrt(draw: st.DrawFn) -> Drawn:
    return S.inverse_sqrt(timescale=draw(length)), 0.0


def _sqrt_decay(draw: st.DrawFn) -> Drawn:
    """wsd with the sqrt cooldown: the one way to a SqrtDecay."""
    lo = draw(unit)
    steps = draw(st.integers(3, 3000))
    w = draw(st.integers(0, steps // 3))
    d = draw(st.integers(1, steps - w))
    return S.wsd(steps=steps, warmup=w, decay=d, min=lo, shape="sqrt"), 0.0 if w else lo


def _wsd(draw: st.DrawFn) -> Drawn:
    lo = draw(unit)
    steps = draw(st.integers(3, 3000))
    w = draw(st.integers(0, steps // 3))
    shape = draw(st.sampled_from(["linear", "cosine", "sqrt"]))
    d = draw(st.integers(1, steps - w))
    return S.wsd(steps=steps, warmup=w, decay=d, min=lo, shape=shape), 0.0 if w else lo


def _warmup(draw: st.DrawFn) -> Drawn:
    inner, _ = draw(schedules())
    mode = draw(st.sampled_from(["linear", "exp"]))
    inclusive = draw(st.booleans())
    return S.warmup(inner, steps=draw(length), mode=mode, inclusive=inclusive), 0.0


def _join(draw: st.DrawFn) -> Drawn:
    inner, _ = draw(schedules())
    first = S.cosine(steps=draw(length), min=draw(unit))
    return S.join([first, inner], [first.steps]), 0.0


def _scaled(draw: st.DrawFn) -> Drawn:
    inner, lo = draw(schedules())
    factor = draw(st.floats(0.01, 1.0))
    return S.scale(inner, factor), lo * factor


def _floored(draw: st.DrawFn) -> Drawn:
    inner, lo = draw(schedules())
    floor = draw(unit)
    return S.floor(inner, floor), max(lo, floor)


def _tabulated(draw: st.DrawFn) -> Drawn:
    values = draw(st.lists(unit, min_size=1, max_size=40))
    return S.Tabulated(values=values, every=draw(st.integers(1, 20))), min(values)


KIND_STRATEGIES: dict[str, Callable[[st.DrawFn], Drawn]] = {
    "constant": _constant,
    "step_decay": _step,
    "multi_step": _multi,
    "exponential": _exp,
    "polynomial": _poly,
    "linear": _linear,
    "cosine": _cos,
    "cosine_restarts": _sgdr,
    "cyclic": _cyclic,
    "onecycle": _onecycle,
    "inverse_sqrt": _invsqrt,
    "sqrt_decay": _sqrt_decay,
    "warmup": _warmup,
    "join": _join,
    "scaled": _scaled,
    "floored": _floored,
    "tabulated": _tabulated,
}
"""Schedule kind -> a strategy whose schedules contain that kind."""

EXTRA_STRATEGIES: dict[str, Callable[[st.DrawFn], Drawn]] = {"wsd": _wsd}
"""Factories that build from other kinds, drawn too."""

ALL_STRATEGIES = {**KIND_STRATEGIES, **EXTRA_STRATEGIES}


@st.composite
def schedules(draw: st.DrawFn) -> Drawn:
    """A schedule of any kind and the floor its values must stay above."""
    return ALL_STRATEGIES[draw(st.sampled_from(list(ALL_STRATEGIES)))](draw)


@st.composite
def schedules_of_kind(draw: st.DrawFn, kind: str) -> Drawn:
    """A schedule from the strategy of ``kind``."""
    return KIND_STRATEGIES[kind](draw)


def kinds_in(data: object) -> set[str]:
    """Every ``"type"`` in a :func:`~lrpilot.schedules.to_dict` tree."""
    if isinstance(data, dict):
        own = {data["type"]} if "type" in data else set()
        return own.union(*(kinds_in(v) for v in data.values()))
    if isinstance(data, list):
        return set().union(*(kinds_in(v) for v in data))
    return set()
