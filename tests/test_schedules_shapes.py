"""Schedule shapes: closed forms written independently of the implementation (over the run and
past its end), boundaries, the step check, argument checks and the [floor, 1] invariant."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrpilot import schedules as S
from lrpilot.errors import ConfigError
from test_schedules_support import FAST, RTOL, lrs_of, schedules

T = np.arange(1200)


def _restarts(t: np.ndarray, period: int, mult: int, lo: float, decay: float) -> np.ndarray:
    cycle = np.floor(np.log2(t / period + 1)).astype(int)  # mult = 2: T_i = period * 2**i
    begin, length = period * (2**cycle - 1), period * 2**cycle
    return lo + (1 - lo) * decay**cycle * (1 + np.cos(np.pi * (t - begin) / length)) / 2


def _triangle(t: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Smith's formula: (cycle, height) for a symmetric cycle of 2 * half steps."""
    cycle = np.floor(1 + t / (2 * half))
    return cycle, np.maximum(0, 1 - np.abs(t / half - 2 * cycle + 1))


def _onecycle(t: np.ndarray) -> np.ndarray:
    """steps=1000, pct=0.3, div=25, final_div=1e4, cos: rise over 0..299, fall over 299..999."""
    lo, end = 1 / 25, 1 / 25 / 1e4
    rise = lo + (1 - lo) * (1 - np.cos(np.pi * t / 299)) / 2
    fall = end + (1 - end) * (1 + np.cos(np.pi * (np.minimum(t, 999) - 299) / 700)) / 2
    return np.where(t <= 299, rise, fall)


CLOSED_FORMS = {
    "constant": (S.constant(0.3), lambda t: np.full(t.shape, 0.3)),
    "step": (S.step_decay(every=30, gamma=0.5), lambda t: 0.5 ** (t // 30)),
    "multistep": (
        S.multi_step(milestones=[100, 300, 700], gamma=0.1),
        lambda t: 0.1 ** ((t >= 100).astype(int) + (t >= 300) + (t >= 700)),
    ),
    "exp": (S.exponential(gamma=0.95, every=10), lambda t: 0.95 ** (t / 10)),
    "poly": (
        S.polynomial(steps=1000, power=2, min=0.01),
        lambda t: 0.01 + 0.99 * (1 - np.minimum(t, 1000) / 1000) ** 2,
    ),
    "linear": (
        S.linear(steps=500, start=1.0, end=0.1),
        lambda t: 1 - 0.9 * np.minimum(t, 500) / 500,
    ),
    "cosine": (
        S.cosine(steps=1000, min=1e-3),
        lambda t: 1e-3 + (1 - 1e-3) * (1 + np.cos(np.pi * np.minimum(t, 1000) / 1000)) / 2,
    ),
    "restarts": (
        S.cosine_restarts(period=100, mult=2, min=0.01, decay=0.5),
        lambda t: _restarts(t, 100, 2, 0.01, 0.5),
    ),
    "triangular": (
        S.cyclic(period=200, min=0.1),
        lambda t: 0.1 + 0.9 * _triangle(t, 100)[1],
    ),
    "triangular2": (
        S.cyclic(period=200, min=0.1, mode="triangular2"),
        lambda t: 0.1 + 0.9 * _triangle(t, 100)[1] / 2 ** (_triangle(t, 100)[0] - 1),
    ),
    "exp_range": (
        S.cyclic(period=200, min=0.1, mode="exp_range", gamma=0.999),
        lambda t: 0.1 + 0.9 * _triangle(t, 100)[1] * 0.999**t,
    ),
    "onecycle": (S.onecycle(steps=1000, pct=0.3), _onecycle),
    "invsqrt": (S.inverse_sqrt(timescale=100), lambda t: np.sqrt(100 / (100 + t))),
    "wsd": (
        S.wsd(steps=1000, warmup=50, decay=200),
        lambda t: np.where(
            t < 50, t / 50, np.where(t < 800, 1.0, 1 - (np.minimum(t, 1000) - 800) / 200)
        ),
    ),
    "wsd_sqrt": (
        S.wsd(steps=1000, decay=100, min=0.1, shape="sqrt"),
        lambda t: np.where(
            t < 900, 1.0, 0.1 + 0.9 * (1 - np.sqrt(np.clip(t - 900, 0, 100) / 100))
        ),
    ),
    "warmup_cosine": (
        S.warmup(S.cosine(steps=900, min=0.1), steps=100),
        lambda t: np.where(
            t < 100, t / 100, 0.1 + 0.9 * (1 + np.cos(np.pi * np.minimum(t - 100, 900) / 900)) / 2
        ),
    ),
    "exp_warmup": (
        S.warmup(S.constant(0.5), steps=100, mode="exp", start=1e-3),
        lambda t: 0.5 * np.where(t < 100, 1e-3 ** (1 - t / 100), 1.0),
    ),
}


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_closed_form(name: str) -> None:
    schedule, formula = CLOSED_FORMS[name]
    np.testing.assert_allclose(lrs_of(schedule, len(T)), formula(T), rtol=RTOL, atol=0)


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        # warmup: step 0, last warmup step, end of warmup, last step, past the end
        (S.warmup(S.cosine(steps=900, min=0.1), steps=100), 0, 0.0),
        (S.warmup(S.cosine(steps=900, min=0.1), steps=100), 99, 0.99),
        (S.warmup(S.cosine(steps=900, min=0.1), steps=100), 100, 1.0),
        (S.warmup(S.cosine(steps=900, min=0.1), steps=100), 1000, 0.1),
        (S.warmup(S.cosine(steps=900, min=0.1), steps=100), 10**12, 0.1),
        (S.warmup(S.constant(), steps=10, start=0.1), 0, 0.1),
        (S.cosine(steps=100, min=0.1), 0, 1.0),
        (S.cosine(steps=100, min=0.1), 50, 0.55),
        (S.cosine(steps=100, min=0.1), 100, 0.1),
        (S.cosine(steps=100, min=0.1), 101, 0.1),
        (S.step_decay(every=10), 9, 1.0),
        (S.step_decay(every=10), 10, 0.1),
        (S.multi_step(milestones=[100, 200]), 99, 1.0),
        (S.multi_step(milestones=[100, 200]), 100, 0.1),
        (S.multi_step(milestones=[100, 200]), 10**12, 0.01),
        (S.exponential(gamma=0.5), 3, 0.125),
        (S.exponential(gamma=0.5), 10**12, 0.0),  # underflows quietly
        (S.linear(steps=10, start=0.5, end=1.0), 10, 1.0),
        (S.polynomial(steps=10), 10, 0.0),
        (S.cosine_restarts(period=100, min=0.2), 100, 1.0),  # a restart returns to the peak
        (S.cosine_restarts(period=100, mult=2), 300, 1.0),  # cycles of 100, 200: restart at 300
        (S.cosine_restarts(period=100, mult=2), 10**12, None),
        (S.cyclic(period=100, min=0.2), 0, 0.2),
        (S.cyclic(period=100, min=0.2), 50, 1.0),
        (S.cyclic(period=100, min=0.2), 100, 0.2),
        (S.cyclic(period=100, min=0.2, up=0.2), 20, 1.0),
        (S.onecycle(steps=100), 0, 1 / 25),
        (S.onecycle(steps=100), 29, 1.0),  # the end of the rise
        (S.onecycle(steps=100), 99, 1 / 25 / 1e4),
        (S.onecycle(steps=100), 10**9, 1 / 25 / 1e4),
        (S.onecycle(steps=100, pct=0.25, three_phase=True), 48, 1 / 25),
        (S.inverse_sqrt(timescale=100), 300, 0.5),
        (S.wsd(steps=1000, warmup=50, decay=200, min=0.1), 50, 1.0),
        (S.wsd(steps=1000, warmup=50, decay=200, min=0.1), 800, 1.0),
        (S.wsd(steps=1000, warmup=50, decay=200, min=0.1), 900, 0.55),
        (S.wsd(steps=1000, warmup=50, decay=200, min=0.1), 1000, 0.1),
        (S.wsd(steps=1000, warmup=50, decay=200, min=0.1), 5000, 0.1),
    ],
)
def test_boundaries(schedule: S.Schedule, step: int, expected: float | None) -> None:
    value = schedule(step)
    assert 0.0 <= value <= 1.0
    if expected is not None:
        assert value == pytest.approx(expected, rel=1e-9, abs=0 if expected else 1e-300)


def test_steps_must_be_non_negative_ints() -> None:
    s = S.cosine(steps=10)
    assert s(np.int64(3)) == s(3)
    with pytest.raises(ConfigError, match=r"step=-1"):
        s(-1)
    with pytest.raises(ConfigError, match=r"step=2.5"):
        s(2.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "arg"),
    [
        (lambda: S.constant(1.5), "value"),
        (lambda: S.step_decay(every=0), "every"),
        (lambda: S.step_decay(every=10, gamma=0), "gamma"),
        (lambda: S.multi_step(milestones=[]), "milestones"),
        (lambda: S.multi_step(milestones=[5, 5]), "milestones"),
        (lambda: S.exponential(gamma=1.5), "gamma"),
        (lambda: S.polynomial(steps=10, power=0), "power"),
        (lambda: S.linear(steps=10.5), "steps"),
        (lambda: S.cosine(steps=100, min=float("nan")), "min"),
        (lambda: S.cosine_restarts(period=10, mult=1.5), "mult"),
        (lambda: S.cyclic(period=10, mode="sawtooth"), "mode"),
        (lambda: S.cyclic(period=10, up=1.0), "up"),
        (lambda: S.onecycle(steps=100, pct=0.005), "pct"),
        (lambda: S.onecycle(steps=100, pct=0.6, three_phase=True), "pct"),
        (lambda: S.onecycle(steps=100, anneal="tanh"), "anneal"),
        (lambda: S.inverse_sqrt(timescale=0), "timescale"),
        (lambda: S.wsd(steps=100, warmup=50, decay=60), "decay"),
        (lambda: S.wsd(steps=100, decay=10, shape="step"), "shape"),
        (lambda: S.warmup(S.constant(), steps=10, mode="exp", start=0.0), "start"),
        (lambda: S.warmup("cosine", steps=10), "schedule"),  # type: ignore[arg-type]
        (lambda: S.scale(S.constant(), 0), "factor"),
        (lambda: S.floor(S.constant(), 2), "min"),
        (lambda: S.onecycle(steps=100, three_phase=1), "three_phase"),
        (lambda: S.warmup(S.constant(), steps=10, inclusive="yes"), "inclusive"),
    ],
)
def test_out_of_range_arguments_name_the_argument(make, arg: str) -> None:
    with pytest.raises(ConfigError, match=f"{arg}="):
        make()


@pytest.mark.parametrize("kind", sorted(S.BaseSchedule._kinds))
def test_dataclasses_take_keywords_only(kind: str) -> None:
    """Factories call the dataclasses by keyword, and a positional call is refused, so
    reordering a field can never silently swap two arguments."""
    cls = S.BaseSchedule._kinds[kind]
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert fields and all(f.kw_only for f in fields), kind
    with pytest.raises(TypeError, match="positional"):
        cls(*[1] * len(fields))


@FAST
@given(schedules(), st.lists(st.integers(0, 10**7), min_size=1, max_size=20))
def test_values_within_bounds(pair: tuple[S.Schedule, float], steps: list[int]) -> None:
    schedule, lo = pair
    for t in steps:
        assert lo * (1 - 1e-12) <= schedule(t) <= 1.0 + 1e-12
