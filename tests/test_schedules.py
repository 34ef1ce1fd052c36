"""Schedules: closed forms, boundaries, torch's schedulers step by step, properties, the text
spec, serialization, the torch adapter (resume at step N) and the ``schedule`` command."""

from __future__ import annotations

import doctest
import io
import json
import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim import lr_scheduler as L
from typer.testing import CliRunner

from lrpilot import schedules as S
from lrpilot.cli import app
from lrpilot.errors import ConfigError, SpecError

RTOL = 1e-10  # LRs span decades: relative tolerance only
FAST = settings(max_examples=60, deadline=None)


def lrs_of(schedule: S.Schedule, steps: int) -> np.ndarray:
    return np.array(S.values(schedule, steps))


# --------------------------------------------------------------------------------------------
# Closed forms, written independently of the implementation, over the run and past its end
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Step by step against torch's own schedulers, through the adapter
# --------------------------------------------------------------------------------------------


def _torch_lrs(make, steps: int, lr: float = 0.1) -> list[float]:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _our_lrs(schedule: S.Schedule, steps: int, lr: float = 0.1) -> list[float]:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    sched = S.attach(opt, schedule)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def _cyclic_torch(mode: str):
    return lambda o: L.CyclicLR(
        o,
        0.01,
        0.1,
        step_size_up=10,
        step_size_down=15,
        mode=mode,
        gamma=0.99,
        cycle_momentum=False,
    )


def _onecycle_torch(**kw):
    return lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=100, cycle_momentum=False, **kw)


TORCH_PAIRS = {
    "StepLR": (
        lambda o: L.StepLR(o, step_size=7, gamma=0.5),
        S.step_decay(every=7, gamma=0.5),
        60,
    ),
    "MultiStepLR": (
        lambda o: L.MultiStepLR(o, milestones=[10, 25, 60], gamma=0.3),
        S.multi_step(milestones=[10, 25, 60], gamma=0.3),
        80,
    ),
    "ExponentialLR": (lambda o: L.ExponentialLR(o, gamma=0.97), S.exponential(gamma=0.97), 150),
    "CosineAnnealingLR": (
        lambda o: L.CosineAnnealingLR(o, T_max=100, eta_min=0.001),
        S.cosine(steps=100, min=0.01),
        101,
    ),
    "CosineAnnealingWarmRestarts": (
        lambda o: L.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001),
        S.cosine_restarts(period=10, mult=2, min=0.01),
        150,
    ),
    "CyclicLR-triangular": (
        _cyclic_torch("triangular"),
        S.cyclic(period=25, min=0.1, up=0.4),
        120,
    ),
    "CyclicLR-triangular2": (
        _cyclic_torch("triangular2"),
        S.cyclic(period=25, min=0.1, up=0.4, mode="triangular2"),
        120,
    ),
    "CyclicLR-exp_range": (
        _cyclic_torch("exp_range"),
        S.cyclic(period=25, min=0.1, up=0.4, mode="exp_range", gamma=0.99),
        120,
    ),
    "OneCycleLR-cos": (_onecycle_torch(pct_start=0.3), S.onecycle(steps=100, pct=0.3), 100),
    "OneCycleLR-linear": (
        _onecycle_torch(pct_start=0.25, anneal_strategy="linear", div_factor=10.0),
        S.onecycle(steps=100, pct=0.25, anneal="linear", div=10),
        100,
    ),
    "OneCycleLR-three-phase": (
        _onecycle_torch(pct_start=0.3, three_phase=True, final_div_factor=100.0),
        S.onecycle(steps=100, pct=0.3, three_phase=True, final_div=100),
        100,
    ),
    "PolynomialLR": (
        lambda o: L.PolynomialLR(o, total_iters=50, power=2.0),
        S.polynomial(steps=50, power=2.0),
        70,
    ),
    "LinearLR-up": (
        lambda o: L.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=20),
        S.linear(steps=20, start=0.25, end=1.0),
        40,
    ),
    "LinearLR-down": (
        lambda o: L.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=30),
        S.linear(steps=30, start=1.0, end=0.1),
        40,
    ),
}


@pytest.mark.parametrize("name", TORCH_PAIRS)
def test_equals_torch_step_by_step(name: str) -> None:
    make, schedule, steps = TORCH_PAIRS[name]
    theirs, ours = _torch_lrs(make, steps), _our_lrs(schedule, steps)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

unit = st.floats(0.0, 1.0)
decay_factor = st.floats(0.01, 1.0)
length = st.integers(1, 2000)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[S.Schedule, float]:
    """A schedule of any kind and the floor its values must stay above."""
    lo = draw(unit)
    kind = draw(
        st.sampled_from(
            [
                "step",
                "multi",
                "exp",
                "poly",
                "linear",
                "cos",
                "sgdr",
                "cyclic",
                "onecycle",
                "invsqrt",
                "wsd",
                "warmup",
                "join",
            ]
        )
    )
    if kind == "step":
        return S.step_decay(every=draw(length), gamma=draw(decay_factor)), 0.0
    if kind == "multi":
        ms = sorted(draw(st.sets(st.integers(1, 5000), min_size=1, max_size=5)))
        return S.multi_step(milestones=ms, gamma=draw(decay_factor)), 0.0
    if kind == "exp":
        return S.exponential(gamma=draw(decay_factor), every=draw(length)), 0.0
    if kind == "poly":
        return S.polynomial(steps=draw(length), power=draw(st.floats(0.1, 5)), min=lo), lo
    if kind == "linear":
        a, b = draw(unit), draw(unit)
        return S.linear(steps=draw(length), start=a, end=b), min(a, b)
    if kind == "cos":
        return S.cosine(steps=draw(length), min=lo), lo
    if kind == "sgdr":
        return S.cosine_restarts(
            period=draw(length), mult=draw(st.integers(1, 3)), min=lo, decay=draw(decay_factor)
        ), lo
    if kind == "cyclic":
        mode = draw(st.sampled_from(["triangular", "triangular2", "exp_range"]))
        return S.cyclic(
            period=draw(length),
            min=lo,
            mode=mode,
            gamma=draw(decay_factor),
            up=draw(st.floats(0.05, 0.95)),
        ), lo
    if kind == "onecycle":
        steps = draw(st.integers(10, 2000))
        return S.onecycle(
            steps=steps,
            pct=draw(st.floats(0.15, 0.45)),
            div=draw(st.floats(1, 100)),
            three_phase=draw(st.booleans()),
        ), 0.0
    if kind == "invsqrt":
        return S.inverse_sqrt(timescale=draw(length)), 0.0
    if kind == "wsd":
        steps = draw(st.integers(3, 3000))
        w = draw(st.integers(0, steps // 3))
        shape = draw(st.sampled_from(["linear", "cosine", "sqrt"]))
        d = draw(st.integers(1, steps - w))
        return S.wsd(steps=steps, warmup=w, decay=d, min=lo, shape=shape), 0.0 if w else lo
    inner, _ = draw(schedules())
    if kind == "warmup":
        return S.warmup(
            inner, steps=draw(length), mode=draw(st.sampled_from(["linear", "exp"]))
        ), 0.0
    first = S.cosine(steps=draw(length), min=lo)
    return S.join([first, inner], [first.steps]), 0.0


@FAST
@given(schedules(), st.lists(st.integers(0, 10**7), min_size=1, max_size=20))
def test_values_within_bounds(pair: tuple[S.Schedule, float], steps: list[int]) -> None:
    schedule, lo = pair
    for t in steps:
        assert lo * (1 - 1e-12) <= schedule(t) <= 1.0 + 1e-12


@FAST
@given(schedules())
def test_pickle_and_dict_round_trips(pair: tuple[S.Schedule, float]) -> None:
    schedule = pair[0]
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    data = json.loads(json.dumps(S.to_dict(schedule)))
    again = S.from_dict(data)
    assert again == schedule and hash(again) == hash(schedule)
    assert [again(t) for t in (0, 7, 1234)] == [schedule(t) for t in (0, 7, 1234)]


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
    ],
)
def test_out_of_range_arguments_name_the_argument(make, arg: str) -> None:
    with pytest.raises(ConfigError, match=f"{arg}="):
        make()


# --------------------------------------------------------------------------------------------
# The text spec
# --------------------------------------------------------------------------------------------

ISSUE_SPECS = {
    "constant": S.constant(),
    "cosine": S.cosine(steps=1000),
    "warmup(0.05)+cosine(min=0.01)": S.warmup(S.cosine(steps=950, min=0.01), steps=50),
    "step(every=0.3, gamma=0.1)": S.step_decay(every=300, gamma=0.1),
    "exp(gamma=0.999)": S.exponential(gamma=0.999),
    "onecycle(pct=0.3)": S.onecycle(steps=1000, pct=0.3),
    "cyclic(period=0.2, mode=triangular)": S.cyclic(period=200, mode="triangular"),
    "warmup(100)+invsqrt": S.warmup(S.inverse_sqrt(timescale=100), steps=100),
    "wsd(warmup=0.05, decay=0.2)": S.wsd(steps=1000, warmup=50, decay=200),
    # more of the grammar
    "multistep(milestones=[0.5, 0.75], gamma=0.2)": S.multi_step(milestones=[500, 750], gamma=0.2),
    " warmup( 10 , mode = exp ) + constant ": S.warmup(S.constant(), steps=10, mode="exp"),
    "warmup(100)": S.warmup(S.constant(), steps=100),
    "warmup(0)+cosine": S.cosine(steps=1000),
    "constant(steps=0.25)+linear(steps=250)+cosine(min=0.1)": S.join(
        [S.constant(), S.linear(steps=250), S.cosine(steps=500, min=0.1)], [250, 500]
    ),
    "sgdr(0.1, mult=2)": S.cosine_restarts(period=100, mult=2),
    "onecycle(pct=0.25, three_phase=true, anneal=linear)": S.onecycle(
        steps=1000, pct=0.25, three_phase=True, anneal="linear"
    ),
    "exponential(0.99)+poly(power=2)": None,  # exp has no length, so it cannot be followed
    "poly(power=2, min=1e-3)": S.polynomial(steps=1000, power=2, min=1e-3),
    "invsqrt(timescale=50)": S.inverse_sqrt(timescale=50),
}


@pytest.mark.parametrize("spec", [s for s, v in ISSUE_SPECS.items() if v is not None])
def test_specs_parse_to_step_schedules(spec: str) -> None:
    assert S.parse_schedule(spec, total_steps=1000) == ISSUE_SPECS[spec]


@pytest.mark.parametrize(
    ("spec", "message", "column", "width"),
    [
        ("", "expected a schedule name", 0, 1),
        ("cosin", "did you mean 'cosine'", 0, 5),
        ("cosine(min=0.01", "expected ',' or ')'", 15, 1),
        ("warmup(0.05)+", "expected a schedule name", 13, 1),
        ("warmup(0.05)+cosine(min=2)", "min must be a number in [0, 1], got min=2.0", 24, 1),
        ("cosine(0.5)", "named arguments only", 7, 3),
        ("step(every=1.5)", "neither a fraction below 1 nor a whole number", 11, 3),
        ("step(every=-3)", "every must be a number of steps", 11, 2),
        ("warmup(0.05)+cosine+constant", "cosine needs steps=", 13, 6),
        ("cyclic(period=0.2, mode=triangle)", "mode must be one of", 24, 8),
        ("exp(gamma=0.999) cosine", "expected '+' or the end", 17, 6),
        ("cosine(min=0.01,,)", "expected a number, a name or a [list]", 16, 1),
        ("warmup(2000)+cosine", "past total_steps=1000", 7, 4),
        ("cosine(minimum=0.1)", "did you mean 'min'", 7, 7),
        ("onecycle(three_phase=maybe)", "three_phase must be true or false", 21, 5),
        ("cosine(min=0.1, min=0.2)", "min is given twice", 16, 3),
        ("warmup(steps=10, 0.3)", "positional argument cannot follow", 17, 3),
        ("multistep(milestones=[0.5, 0.4])", "strictly increasing", 21, 10),
        ("cosine(min=0.01)*2", "unexpected character '*'", 16, 1),
        ("wsd(decay=0.9, warmup=0.2)", "decay must be at most", 10, 3),
        ("step", "step needs every=", 0, 4),
        ("warmup(mode=exp)+cosine", "warmup needs a length", 0, 6),
        ("constant(steps=0)+cosine", "needs at least one step", 15, 1),
        ("onecycle(pct=0.0005)", "pct * steps > 1", 13, 6),
        ("cosine(steps=abc)", "steps must be a number of steps", 13, 3),
        ("cosine(min=[0.1])", "min must be a number", 11, 5),
        ("exponential(0.99)+poly(power=2)", "exp needs steps=", 0, 11),
    ],
)
def test_malformed_specs_point_at_the_token(
    spec: str, message: str, column: int, width: int
) -> None:
    with pytest.raises(SpecError) as info:
        S.parse_schedule(spec, total_steps=1000)
    lines = str(info.value).split("\n")
    assert message in lines[0]
    assert lines[1] == "  " + spec
    assert lines[2] == "  " + " " * column + "^" * width


def test_spec_without_total_steps() -> None:
    assert S.parse_schedule("warmup(100)+invsqrt") == S.warmup(
        S.inverse_sqrt(timescale=100), steps=100
    )
    assert S.parse_schedule("exp(0.99)") == S.exponential(gamma=0.99)
    with pytest.raises(SpecError, match="give total_steps") as info:
        S.parse_schedule("warmup(0.1)+cosine")
    assert str(info.value).endswith("         ^^^")  # under 0.1
    with pytest.raises(SpecError, match="cosine runs to the end of the run"):
        S.parse_schedule("cosine")
    with pytest.raises(ConfigError, match="spec="):
        S.parse_schedule(42)  # type: ignore[arg-type]


SPEC_TOKENS = [
    *"()+,=[]",
    "-",
    " ",
    "cosine",
    "warmup",
    "step",
    "exp",
    "onecycle",
    "cyclic",
    "wsd",
    "invsqrt",
    "multistep",
    "restarts",
    "constant",
    "poly",
    "linear",
    "min",
    "steps",
    "every",
    "gamma",
    "pct",
    "period",
    "mode",
    "decay",
    "milestones",
    "three_phase",
    "true",
    "triangular",
    "0",
    "0.05",
    "1",
    "100",
    "1.5",
    "1e3",
    "-2",
    "1e999",
    "x",
    "é",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(SPEC_TOKENS), max_size=12), st.sampled_from([None, 1, 1000]))
def test_parser_fuzz_raises_only_spec_errors(tokens: list[str], total: int | None) -> None:
    spec = "".join(tokens)
    try:
        schedule = S.parse_schedule(spec, total_steps=total)
    except SpecError as err:
        caret = str(err).split("\n")[-1]
        assert caret.strip() and set(caret.strip()) == {"^"}
        assert len(caret) - 2 <= len(spec) + 1
    else:
        assert 0.0 <= schedule(0) <= 1.0 and 0.0 <= schedule(10**6) <= 1.0


# --------------------------------------------------------------------------------------------
# The torch adapter
# --------------------------------------------------------------------------------------------


def test_attach_sets_step_zero_and_takes_no_step() -> None:
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD(
        [{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.01}], lr=0.1
    )
    sched = S.attach(opt, S.warmup(S.cosine(steps=90), steps=10, start=0.5))
    assert isinstance(sched, L.LRScheduler)
    assert not hasattr(opt.step, "_wrapped_by_lr_sched")  # no monkeypatching
    assert sched.last_epoch == 0 and sched.peak_lrs == [0.1, 0.01]
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.005] == sched.get_last_lr()
    for _ in range(40):
        opt.step()
        sched.step()
        a, b = (g["lr"] for g in opt.param_groups)
        assert a == pytest.approx(10 * b, rel=1e-12)  # each group keeps its own peak
    with pytest.raises(ConfigError, match="epoch=3"):
        sched.step(3)


def test_attach_peaks_start_step_scale_and_tensor_lr() -> None:
    params = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    opt = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=1.0)
    sched = S.attach(opt, "cosine", total_steps=100, peak_lr=[0.2, 0.1], start_step=50)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1, 0.05], rel=1e-12)
    sched.scale = 0.5
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.05, 0.025], rel=1e-12)
    with pytest.raises(ConfigError, match="one value per param group"):
        S.attach(opt, S.constant(), peak_lr=[0.1])
    with pytest.raises(ConfigError, match="total_steps=10"):
        S.attach(opt, S.constant(), total_steps=10)
    with pytest.raises(ConfigError, match=r"param_groups\[0\] has lr=0.0"):
        S.attach(torch.optim.SGD([params[0]], lr=0.0), S.constant())
    p = torch.zeros(2, requires_grad=True)
    adam = torch.optim.Adam([p], lr=torch.tensor(0.01), foreach=False)
    tensor_sched = S.attach(adam, S.cosine(steps=10))
    for _ in range(5):
        p.grad = torch.ones(2)
        adam.step()
        tensor_sched.step()
    lr = adam.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and float(lr) == pytest.approx(0.005, rel=1e-6)


def _custom(step: int) -> float:
    return 1.0 / (1 + step)


@pytest.mark.parametrize(
    "schedule", [S.parse_schedule("warmup(0.1)+cosine(min=0.01)", 200), _custom]
)
def test_state_dict_round_trips_through_torch_save(schedule: S.Schedule) -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = S.attach(opt, schedule)
    for _ in range(37):
        opt.step()
        sched.step()
    buffer = io.BytesIO()
    torch.save(sched.state_dict(), buffer)
    buffer.seek(0)
    safe = schedule is not _custom  # lrpilot's schedules are plain data: weights_only loads them
    state = torch.load(buffer, weights_only=safe)
    fresh_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    fresh = S.attach(fresh_opt, S.constant())
    fresh.load_state_dict(state)
    assert fresh.schedule == schedule and fresh.last_epoch == 37
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    with pytest.raises(ConfigError, match="missing"):
        fresh.load_state_dict({"step": 3})


def _train(steps: int, resume_at: int | None) -> tuple[list[float], list[torch.Tensor]]:
    """SGD with momentum on a tiny regression under a spec schedule; optionally checkpoint at
    ``resume_at`` (through bytes, weights_only) and go on with brand-new objects."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g)

    def build() -> tuple[torch.nn.Module, torch.optim.Optimizer, S.ScheduleLR]:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, S.attach(opt, "warmup(0.1)+cosine(min=0.01)", total_steps=steps)

    model, opt, sched = build()
    lrs = []
    for t in range(steps):
        if t == resume_at:
            buffer = io.BytesIO()
            torch.save(
                {
                    "model": model.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                },
                buffer,
            )
            buffer.seek(0)
            ckpt = torch.load(buffer, weights_only=True)
            model, opt, sched = build()
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["opt"])
            sched.load_state_dict(ckpt["sched"])
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        sched.step()
    return lrs, [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("resume_at", [1, 5, 23])
def test_resume_at_step_n_equals_an_uninterrupted_run(resume_at: int) -> None:
    lrs, params = _train(40, None)
    lrs2, params2 = _train(40, resume_at)
    assert lrs2 == lrs  # exactly
    assert all(torch.equal(a, b) for a, b in zip(params, params2, strict=True))


# --------------------------------------------------------------------------------------------
# Pictures, docs and the command line
# --------------------------------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path) -> None:
    path = tmp_path / "s.png"
    fig = S.plot(
        S.onecycle(steps=100), 100, str(path), peak=0.1, title="onecycle", log=True, dpi=40
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes[0].get_yscale() == "log"


def test_docstring_examples() -> None:
    from lrpilot.control import plateau

    for module in (S, plateau):
        assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


runner = CliRunner()


def test_cli_json_prints_only_the_lrs() -> None:
    result = runner.invoke(
        app, ["schedule", "warmup(0.05)+cosine(min=0.01)", "--steps", "200", "--json"]
    )
    assert result.exit_code == 0, result.output
    lrs = json.loads(result.stdout)["lr"]
    expected = S.values(S.parse_schedule("warmup(0.05)+cosine(min=0.01)", 200), 200)
    assert lrs == expected and lrs[0] == 0.0 and lrs[10] == 1.0
    with_lr = runner.invoke(app, ["schedule", "exp(0.9)", "--steps", "3", "--lr", "0.1", "--json"])
    assert json.loads(with_lr.stdout) == {"lr": pytest.approx([0.1, 0.09, 0.081], rel=1e-12)}


def test_cli_table_and_plot(tmp_path) -> None:
    path = tmp_path / "s.png"
    result = runner.invoke(
        app, ["schedule", "onecycle(pct=0.3)", "--steps", "100", "--plot", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "OneCycle(steps=100" in result.stdout and "max 1 at step 29" in result.stdout
    assert path.stat().st_size > 1000


def test_cli_malformed_spec_exits_2_with_a_caret() -> None:
    result = runner.invoke(app, ["schedule", "cosine(min=2)", "--steps", "10", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "min must be a number in [0, 1]" in result.stderr and "^" in result.stderr
    assert "Traceback" not in result.stderr
