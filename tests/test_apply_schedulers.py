"""``LRFinderResult.apply(optimizer, scheduler=...)`` on every torch scheduler: after it, the
scheduler runs the same schedule scaled to the new peak (OneCycleLR, CyclicLR, SequentialLR and
ChainedScheduler included), and what it cannot retarget raises ConfigError before anything
changes."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as L

import lrpilot
from conftest import mlp
from lrpilot import schedules as S

CE = torch.nn.functional.cross_entropy
OLD = [0.01, 0.1]  # each group's LR when the scheduler was built: the body at 1/10 the head
NEW_PEAK = 0.01  # the head's new peak: every LR of the schedule at a tenth
STEPS = 24

Build = Callable[[torch.optim.Optimizer], Any]

SCHEDULERS: dict[str, Build] = {
    "onecycle": lambda o: L.OneCycleLR(o, max_lr=OLD, total_steps=STEPS),
    "onecycle3": lambda o: L.OneCycleLR(o, max_lr=OLD, total_steps=STEPS, three_phase=True),
    "cyclic": lambda o: L.CyclicLR(o, base_lr=[1e-3, 1e-2], max_lr=OLD, step_size_up=3),
    "cyclic_exp": lambda o: L.CyclicLR(
        o, base_lr=[1e-3, 1e-2], max_lr=OLD, step_size_up=2, mode="exp_range", gamma=0.9
    ),
    "sequential": lambda o: L.SequentialLR(
        o,
        [L.LinearLR(o, 0.1, 1.0, total_iters=3), L.CosineAnnealingLR(o, STEPS - 3)],
        milestones=[3],
    ),
    "chained": lambda o: L.ChainedScheduler(
        [L.LinearLR(o, 0.1, 1.0, total_iters=3), L.ExponentialLR(o, 0.9)]
    ),
    "cosine_eta_min": lambda o: L.CosineAnnealingLR(o, 6, eta_min=1e-3),
    "warm_restarts": lambda o: L.CosineAnnealingWarmRestarts(o, 5, eta_min=1e-3),
    "lambda": lambda o: L.LambdaLR(o, lambda t: 1.0 - t / 50),
    "multiplicative": lambda o: L.MultiplicativeLR(o, lambda t: 0.95),
    "step": lambda o: L.StepLR(o, 4, 0.5),
    "multistep": lambda o: L.MultiStepLR(o, [3, 7], 0.5),
    "constant": lambda o: L.ConstantLR(o, 0.5, total_iters=4),
    "linear": lambda o: L.LinearLR(o, 0.2, 1.0, total_iters=6),
    "exponential": lambda o: L.ExponentialLR(o, 0.9),
    "polynomial": lambda o: L.PolynomialLR(o, 10, 2.0),
    "schedule_lr": lambda o: S.attach(o, "warmup(0.2)+cosine", total_steps=STEPS),
}


@pytest.fixture(scope="module")
def result() -> lrpilot.LRFinderResult:
    """A real range test on a tiny MLP with two param groups, the head at 10x the body."""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    y = (x @ torch.randn(8, 3, generator=torch.Generator().manual_seed(1))).argmax(1)
    loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _optimizer(model),
        loader,
        CE,
        steps=STEPS,
        schedule="constant",
        num_steps=12,
        progress=False,
    )
    assert res.group_ratios == pytest.approx([0.1, 1.0])
    return res


def _optimizer(model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    model = model or mlp()
    return torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": OLD[0]},
            {"params": model[2].parameters(), "lr": OLD[1]},
        ],
        momentum=0.9,
    )


def _run(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[list[float]]:
    """Each group's LR before each of ``steps`` optimizer steps."""
    lrs = []
    for _ in range(steps):
        lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        optimizer.step()
        if isinstance(scheduler, L.ReduceLROnPlateau):
            scheduler.step(1.0)  # a metric that never improves: cut after `patience`
        else:
            scheduler.step()
    return lrs


def _state(optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[Any, Any]:
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    return copy.deepcopy(groups), copy.deepcopy(scheduler.state_dict())


@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_the_schedule_runs_at_the_new_peak_scale(result, kind):
    build = SCHEDULERS[kind]
    opt, reference_opt = _optimizer(), _optimizer()
    sched, reference = build(opt), build(reference_opt)
    result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        new, old = _run(opt, sched, STEPS), _run(reference_opt, reference, STEPS)
    for t, (a, b) in enumerate(zip(new, old, strict=True)):
        assert a == pytest.approx([lr * NEW_PEAK / OLD[1] for lr in b], rel=1e-9), (kind, t)


def test_onecycle_peaks_at_the_pick_on_every_group(result):
    opt = _optimizer()
    sched = L.OneCycleLR(opt, max_lr=OLD, total_steps=STEPS)
    result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    wanted = result.group_lrs(NEW_PEAK)
    assert [g["max_lr"] for g in opt.param_groups] == pytest.approx(wanted)
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([w / 25 for w in wanted])
    assert [g["min_lr"] for g in opt.param_groups] == pytest.approx([w / 25e4 for w in wanted])
    lrs = _run(opt, sched, STEPS)
    assert [max(column) for column in zip(*lrs, strict=True)] == pytest.approx(wanted, rel=0.02)


def test_cyclic_peaks_at_the_pick_and_its_floor_keeps_its_ratio(result):
    opt = _optimizer()
    sched = L.CyclicLR(opt, base_lr=[1e-3, 1e-2], max_lr=OLD, step_size_up=3)
    result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    assert sched.max_lrs == pytest.approx([1e-3, 1e-2])
    assert sched.base_lrs == pytest.approx([1e-4, 1e-3])
    lrs = _run(opt, sched, 7)
    assert lrs[3] == pytest.approx([1e-3, 1e-2]) and lrs[6] == pytest.approx([1e-4, 1e-3])


def test_a_started_sequential_schedule_continues_where_it_is_at_the_new_peak(result):
    opt, reference_opt = _optimizer(), _optimizer()
    build = SCHEDULERS["sequential"]
    sched, reference = build(opt), build(reference_opt)
    _run(opt, sched, 5), _run(reference_opt, reference, 5)  # past the warmup's milestone
    result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    new, old = _run(opt, sched, 10), _run(reference_opt, reference, 10)
    for a, b in zip(new, old, strict=True):
        assert a == pytest.approx([lr / 10 for lr in b], rel=1e-9)


def test_reduce_on_plateau_starts_at_the_pick_and_cuts_from_it(result):
    opt = _optimizer()
    sched = L.ReduceLROnPlateau(opt, factor=0.5, patience=1, min_lr=1e-6)
    result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    lrs = _run(opt, sched, 4)
    assert lrs[0] == pytest.approx(result.group_lrs(NEW_PEAK))
    assert lrs[3] == pytest.approx([lr / 2 for lr in result.group_lrs(NEW_PEAK)])
    assert sched.min_lrs == [1e-6, 1e-6]  # floors, kept


def test_several_schedulers_on_one_optimizer_are_retargeted_together(result):
    opt, reference_opt = _optimizer(), _optimizer()

    def build(o: torch.optim.Optimizer) -> list[Any]:
        return [L.LinearLR(o, 0.1, 1.0, total_iters=3), L.ExponentialLR(o, 0.9)]

    scheds, references = build(opt), build(reference_opt)
    result.apply(opt, lr=NEW_PEAK, scheduler=scheds)
    new, old = (
        _run(opt, L.ChainedScheduler(scheds), 8),
        _run(reference_opt, L.ChainedScheduler(references), 8),
    )
    for a, b in zip(new, old, strict=True):
        assert a == pytest.approx([lr / 10 for lr in b], rel=1e-9)


class Manual(L.LRScheduler):
    """A user's scheduler that keeps no base_lrs: lrpilot cannot know what to scale."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.last_epoch = 0

    def step(self, epoch: int | None = None) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] *= 0.5


def _refusals() -> dict[str, Callable[[torch.optim.Optimizer], tuple[Any, str]]]:
    """Schedulers apply must refuse, and what the message must name."""
    return {
        "no base_lrs": lambda o: (Manual(o), "Manual"),
        "a child without base_lrs": lambda o: (
            L.ChainedScheduler([L.LinearLR(o, 0.1, 1.0, total_iters=3), Manual(o)], o),
            "Manual",
        ),
        "another optimizer": lambda o: (
            L.OneCycleLR(_optimizer(), OLD, total_steps=9),
            "OneCycleLR",
        ),
        "zero peak": lambda o: (_zero_body(o), "LambdaLR"),
        "not a scheduler": lambda o: ([L.StepLR(o, 3), object()], "scheduler must be"),
    }


def _zero_body(optimizer: torch.optim.Optimizer) -> Any:
    optimizer.param_groups[0]["lr"] = 0.0
    return L.LambdaLR(optimizer, lambda t: 1.0)


@pytest.mark.parametrize("case", sorted(_refusals()))
def test_what_cannot_be_retargeted_is_refused_before_anything_changes(result, case):
    opt = _optimizer()
    sched, name = _refusals()[case](opt)
    state = [_state(opt, s) for s in (sched if isinstance(sched, list) else [sched])[:1]]
    with pytest.raises(lrpilot.ConfigError, match=name):
        result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    first = sched[0] if isinstance(sched, list) else sched
    assert [_state(opt, first)] == state


def test_the_sequential_repro_no_longer_changes_the_groups_then_fails(result):
    """The report's case: SequentialLR raised AttributeError after the groups were set."""
    opt = _optimizer()
    sched = SCHEDULERS["sequential"](opt)
    result.apply(opt, lr=NEW_PEAK, scheduler=sched)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-3])  # warmup start
    assert math.isclose(sched._schedulers[1].base_lrs[1], NEW_PEAK)
