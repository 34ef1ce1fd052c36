"""Combinators and lengths: warmup (both ramps, ``inclusive``), join, scale, floor,
by_fraction, epochs and fraction."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrpilot import schedules as S
from lrpilot.errors import ConfigError
from test_schedules_support import FAST, RTOL, lrs_of, unit


@FAST
@given(
    st.integers(1, 500),
    st.floats(0.0, 1.0),
    st.sampled_from(["linear", "exp"]),
    st.floats(0.01, 1.0),
)
def test_warmup_is_monotone_and_meets_the_schedule(
    steps: int, start: float, mode: str, target: float
) -> None:
    start = max(start, 1e-3) if mode == "exp" else start
    s = S.warmup(S.cosine(steps=100, min=0.1), steps=steps, start=start, mode=mode)
    ramp = lrs_of(s, steps + 1)
    assert np.all(np.diff(ramp) >= 0)
    assert ramp[0] == pytest.approx(start, rel=1e-12, abs=1e-300)
    assert ramp[steps] == 1.0
    c = S.warmup(S.constant(target), steps=steps, start=start, mode=mode)
    assert c(steps - 1) <= c(steps) == target


@FAST
@given(
    st.integers(20, 3000),
    st.floats(0.0, 0.3),
    st.floats(0.05, 0.5),
    unit,
    st.sampled_from(["linear", "cosine"]),
)
def test_wsd_and_warmup_joins_are_continuous(
    steps: int, warm: float, cool: float, lo: float, shape: str
) -> None:
    w, d = S.fraction(warm, total_steps=steps), S.fraction(cool, total_steps=steps)
    values = lrs_of(S.wsd(steps=steps, warmup=w, decay=d, min=lo, shape=shape), steps + 5)
    bound = max(1 / w if w else 0.0, (1 - lo) * math.pi / (2 * d))
    assert np.max(np.abs(np.diff(values))) <= bound * (1 + 1e-9) + 1e-12
    # a spec join of pieces that meet is continuous at the boundary
    joined = S.parse_schedule("constant(steps=0.5)+cosine(min=0.1)", total_steps=steps)
    b = S.fraction(0.5, total_steps=steps)
    assert joined(b) == joined(b - 1) == 1.0


def test_join_gives_each_piece_its_local_step() -> None:
    s = S.join([S.constant(0.5), S.linear(steps=10), S.step_decay(every=2)], [5, 15])
    got = [s(t) for t in (0, 4, 5, 7, 14, 15, 16, 17)]
    assert got == pytest.approx([0.5, 0.5, 1.0, 0.8, 0.1, 1.0, 1.0, 0.1], rel=1e-12)
    with pytest.raises(ConfigError, match="boundaries"):
        S.join([S.constant(), S.constant()], [5, 6])
    with pytest.raises(ConfigError, match="boundaries"):
        S.join([S.constant(), S.constant(), S.constant()], [5, 5])


def test_scale_floor_and_by_fraction() -> None:
    assert S.scale(S.cosine(steps=10), 2.0)(0) == 2.0
    floored = S.floor(S.exponential(gamma=0.5), 0.1)
    assert floored(1) == 0.5 and floored(100) == 0.1
    s = S.by_fraction(math.sqrt, total_steps=100)
    assert s(25) == 0.5 and s(100) == s(10**6) == 1.0
    assert pickle.loads(pickle.dumps(s))(49) == pytest.approx(0.7, rel=1e-12)
    with pytest.raises(ConfigError, match="to_dict"):
        S.to_dict(s)


def test_length_helpers() -> None:
    assert S.epochs(3, steps_per_epoch=390) == 1170
    assert S.epochs(0.5, steps_per_epoch=391) == 196
    assert S.fraction(0.05, total_steps=1000) == 50
    assert S.fraction(1e-6, total_steps=10) == 1  # a positive fraction is at least one step
    assert S.fraction(0, total_steps=10) == 0
    with pytest.raises(ConfigError, match="steps_per_epoch=0"):
        S.epochs(1, steps_per_epoch=0)


@pytest.mark.parametrize("mode", ["linear", "exp"])
@pytest.mark.parametrize("steps", [1, 7, 100])
def test_inclusive_warmup_counts_the_ramp_from_step_one(mode: str, steps: int) -> None:
    """``inclusive``: step ``t < W`` is ``(t + 1)/W`` of the way up, so the first step is not
    at ``start`` and step ``W - 1`` is already at the schedule's first value."""
    start = 0.0 if mode == "linear" else 1e-3
    inner = S.cosine(steps=50, min=0.1)
    s = S.warmup(inner, steps=steps, start=start, mode=mode, inclusive=True)
    t = np.arange(steps + 60)
    u = np.minimum(t + 1, steps) / steps
    ramp = start + (1 - start) * u if mode == "linear" else start ** (1 - u)
    tail = 0.1 + 0.9 * (1 + np.cos(np.pi * np.minimum(t - steps, 50) / 50)) / 2
    expected = np.where(t < steps, ramp, tail)
    np.testing.assert_allclose(lrs_of(s, len(t)), expected, rtol=RTOL, atol=0)
    assert s(steps - 1) == pytest.approx(1.0, rel=1e-12)
    exclusive = S.warmup(inner, steps=steps, start=start, mode=mode)
    assert [exclusive(k + 1) for k in range(steps)] == pytest.approx(
        [s(k) for k in range(steps)], rel=1e-12
    )  # the inclusive ramp is the default one a step earlier


@FAST
@given(st.integers(1, 500), unit)
def test_inclusive_warmup_is_monotone_and_never_zero(steps: int, target: float) -> None:
    s = S.warmup(S.constant(max(target, 1e-3)), steps=steps, inclusive=True)
    ramp = lrs_of(s, steps + 2)
    assert ramp[0] > 0 and np.all(np.diff(ramp) >= 0)
    assert ramp[steps - 1] == ramp[steps]
