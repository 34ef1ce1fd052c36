"""The torch adapter: equality with torch's own schedulers step by step, attach, peaks, scale,
tensor LRs, state_dict through ``torch.save``, exact resume, resume from ``initial_lr`` (D3)
and ``set_peak_lr`` (U3)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrpilot import schedules as S
from lrpilot.errors import ConfigError
from test_schedules_support import RTOL


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
# D3: resuming with start_step reads the peak from initial_lr
# --------------------------------------------------------------------------------------------

SPEC = "warmup(0.05)+cosine(min=0.01)"


def _expected_lr(t: int, peak: float = 0.1, total: int = 1000) -> float:
    """``warmup(0.05)+cosine(min=0.01)`` in closed form: W = 50, then 950 cosine steps."""
    w = 50
    if t < w:
        return peak * t / w
    done = min(t - w, total - w) / (total - w)
    return peak * (0.01 + 0.99 * (1 + math.cos(math.pi * done)) / 2)


def _optimizer(groups: int = 1, lr: float = 0.1) -> torch.optim.Optimizer:
    params = [{"params": [torch.zeros(1, requires_grad=True)]} for _ in range(groups)]
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _run(opt: torch.optim.Optimizer, sched: S.ScheduleLR, steps: int) -> None:
    for _ in range(steps):
        opt.step()
        sched.step()


def test_resume_with_start_step_after_load_state_dict_keeps_the_peak() -> None:
    """The DEFECTS repro: the resumed LR at step 300 is 0.08403, not 0.08403 * f(300)."""
    o1 = _optimizer()
    s1 = S.attach(o1, SPEC, total_steps=1000)
    _run(o1, s1, 300)
    assert o1.param_groups[0]["initial_lr"] == 0.1  # the peak, recorded in the group
    o2 = _optimizer(lr=0.5)  # its own lr is irrelevant once the state is loaded
    o2.load_state_dict(o1.state_dict())
    s2 = S.attach(o2, SPEC, total_steps=1000, start_step=300)
    assert s2.peak_lrs == [0.1]
    assert o2.param_groups[0]["lr"] == pytest.approx(_expected_lr(300), rel=1e-12)
    assert round(_expected_lr(300), 5) == 0.08403
    for t in range(301, 1000):
        _run(o1, s1, 1)
        _run(o2, s2, 1)
        assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]
        assert o2.param_groups[0]["lr"] == pytest.approx(_expected_lr(t), rel=1e-12)


def test_resume_reads_each_groups_peak_and_survives_torch_schedulers() -> None:
    o1 = _optimizer(groups=2)
    o1.param_groups[1]["lr"] = 0.01
    _run(o1, S.attach(o1, SPEC, total_steps=1000), 120)
    o2 = _optimizer(groups=2)
    o2.load_state_dict(o1.state_dict())
    s2 = S.attach(o2, SPEC, total_steps=1000, start_step=120)
    assert s2.peak_lrs == [0.1, 0.01]
    # torch's own schedulers record initial_lr the same way
    o3 = _optimizer()
    _run(o3, L.LambdaLR(o3, lambda t: 0.5**t), 3)  # type: ignore[arg-type]
    assert S.attach(o3, S.constant(), start_step=3).peak_lrs == [0.1]


def test_resume_without_a_recorded_peak_asks_for_peak_lr() -> None:
    opt = _optimizer()
    with pytest.raises(ConfigError, match="pass peak_lr=, or load the scheduler's state_dict"):
        S.attach(opt, SPEC, total_steps=1000, start_step=300)
    sched = S.attach(opt, SPEC, total_steps=1000, start_step=300, peak_lr=0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(_expected_lr(300), rel=1e-12)
    assert opt.param_groups[0]["initial_lr"] == 0.1 and sched.peak_lrs == [0.1]


def test_initial_lr_travels_with_the_schedulers_state_dict_too() -> None:
    o1 = _optimizer()
    s1 = S.attach(o1, SPEC, total_steps=1000)
    _run(o1, s1, 10)
    s1.set_peak_lr(0.2)
    o2 = _optimizer(lr=0.7)
    s2 = S.attach(o2, S.constant())
    s2.load_state_dict(s1.state_dict())
    assert o2.param_groups[0]["initial_lr"] == 0.2 == s2.peak_lrs[0]
    assert o2.param_groups[0]["lr"] == o1.param_groups[0]["lr"]


# --------------------------------------------------------------------------------------------
# U3: set_peak_lr reaches a scheduler built before the new LR
# --------------------------------------------------------------------------------------------


def test_set_peak_lr_survives_the_next_step() -> None:
    opt = _optimizer(groups=2)
    sched = S.attach(opt, SPEC, total_steps=1000)
    _run(opt, sched, 100)
    sched.set_peak_lr(0.3)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([_expected_lr(100, 0.3)] * 2)
    _run(opt, sched, 1)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([_expected_lr(101, 0.3)] * 2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.3, 0.3]
    sched.set_peak_lr([0.2, 0.02])
    assert sched.peak_lrs == [0.2, 0.02] and sched.last_epoch == 101
    assert opt.param_groups[1]["lr"] == pytest.approx(_expected_lr(101, 0.02), rel=1e-12)
    sched.scale = 0.5
    sched.set_peak_lr(0.2)  # scale is kept
    assert opt.param_groups[1]["lr"] == pytest.approx(0.5 * _expected_lr(101, 0.2), rel=1e-12)


@pytest.mark.parametrize(
    ("peak", "match"),
    [
        (0.0, "peak_lr="),
        (-1.0, "peak_lr="),
        ([0.1], "one value per param group"),
        ("x", "peak_lr="),
    ],
)
def test_set_peak_lr_checks_its_argument(peak: object, match: str) -> None:
    opt = _optimizer(groups=2)
    sched = S.attach(opt, S.constant())
    with pytest.raises(ConfigError, match=match):
        sched.set_peak_lr(peak)  # type: ignore[arg-type]
    assert sched.peak_lrs == [0.1, 0.1]
