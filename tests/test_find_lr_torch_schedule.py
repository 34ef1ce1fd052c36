"""``find_lr(schedule=<live torch scheduler>)``: the run's multipliers are read off a copy of
the scheduler (the same as the equivalent spec's), the user's scheduler and optimizer are left
bitwise as they were, and the pick is the one the spec would give."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as L

import lrpilot
from conftest import mlp
from lrpilot import schedules as S
from lrpilot._facts import schedule_mean

CE = torch.nn.functional.cross_entropy
STEPS = 120

Build = Callable[[torch.optim.Optimizer], Any]

EQUIVALENT: dict[str, tuple[Build, str]] = {
    "onecycle": (lambda o: L.OneCycleLR(o, max_lr=1e-3, total_steps=STEPS), "onecycle"),
    "lambda cosine": (
        lambda o: L.LambdaLR(o, lambda t: 0.5 * (1 + math.cos(math.pi * t / STEPS))),
        "cosine",
    ),
    "cosine": (lambda o: L.CosineAnnealingLR(o, STEPS), "cosine"),
    "warmup + cosine": (
        lambda o: L.SequentialLR(
            o,
            [L.LinearLR(o, 1e-12, 1.0, total_iters=12), L.CosineAnnealingLR(o, STEPS - 12)],
            milestones=[12],
        ),
        "warmup(12)+cosine",
    ),
    "step": (lambda o: L.StepLR(o, 30, 0.5), "step(30, gamma=0.5)"),
}


def _loader() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]


def _setup() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = mlp()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def _find(model: torch.nn.Module, optimizer: Any, schedule: Any) -> lrpilot.LRFinderResult:
    return lrpilot.find_lr(
        model,
        optimizer,
        _loader(),
        CE,
        steps=STEPS,
        schedule=schedule,
        num_steps=20,
        seed=0,
        progress=False,
    )


def _groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return copy.deepcopy(
        [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    )


@pytest.mark.parametrize("name", sorted(EQUIVALENT))
def test_a_live_scheduler_gives_the_multipliers_of_its_spec(name):
    build, spec = EQUIVALENT[name]
    _, opt = _setup()
    table = S.from_scheduler(build(opt), STEPS)
    expected = S.parse_schedule(spec, total_steps=STEPS)
    assert [table(t) for t in range(STEPS)] == pytest.approx(
        [expected(t) for t in range(STEPS)], abs=1e-9
    )


@pytest.mark.parametrize("name", ["onecycle", "warmup + cosine"])
def test_find_lr_takes_a_live_scheduler_picks_as_for_its_spec_and_leaves_it_alone(name):
    build, spec = EQUIVALENT[name]
    model, opt = _setup()
    sched = build(opt)
    state, groups = copy.deepcopy(sched.state_dict()), _groups(opt)
    res = _find(model, opt, sched)
    assert sched.state_dict() == state and _groups(opt) == groups  # bitwise as they were
    assert "schedule" not in res.assumed
    assert res.schedule["type"] == "tabulated" and res.schedule["source"] == type(sched).__name__
    read = schedule_mean(S.from_dict(res.schedule), STEPS)
    assert read == pytest.approx(schedule_mean(spec, STEPS), rel=1e-9) and read < 0.7
    model, opt = _setup()
    build(opt)  # the same optimizer hyperparameters (OneCycleLR sets AdamW's beta1)
    by_spec = _find(model, opt, spec)
    assert res.lr == pytest.approx(by_spec.lr, rel=1e-9)
    assert by_spec.candidates == pytest.approx(res.candidates, rel=1e-9)


def test_the_user_scheduler_then_runs_as_before():
    model, opt = _setup()
    sched = EQUIVALENT["onecycle"][0](opt)
    _find(model, opt, sched)
    twin_opt = torch.optim.AdamW(mlp().parameters(), lr=1e-3)
    twin = EQUIVALENT["onecycle"][0](twin_opt)
    for _ in range(10):
        opt.step(), sched.step(), twin_opt.step(), twin.step()
        assert opt.param_groups[0]["lr"] == twin_opt.param_groups[0]["lr"]


def test_a_stepped_scheduler_gives_the_steps_still_to_come():
    _, opt = _setup()
    sched = L.LambdaLR(opt, lambda t: 1.0 - t / 100)
    for _ in range(40):
        opt.step()
        sched.step()
    table = S.from_scheduler(sched, 30)
    assert table(0) == 1.0 and table(29) == pytest.approx(31 / 60)
    assert sched.last_epoch == 40 and opt.param_groups[0]["lr"] == pytest.approx(0.6e-3)


def test_a_long_run_keeps_a_short_table_that_interpolates():
    _, opt = _setup()
    table = S.from_scheduler(L.CosineAnnealingLR(opt, 50_000), 50_000)
    cosine = S.cosine(steps=50_000)
    assert len(table.values) <= 1000 and table.every > 1
    assert max(abs(table(t) - cosine(t)) for t in range(0, 50_000, 997)) < 1e-4


def test_the_head_group_gives_the_multipliers():
    model = mlp()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 1e-3},
            {"params": model[2].parameters(), "lr": 1e-2},
        ]
    )
    table = S.from_scheduler(L.OneCycleLR(opt, max_lr=[1e-3, 1e-2], total_steps=50), 50)
    assert table == S.from_scheduler(L.OneCycleLR(opt, max_lr=1e-2, total_steps=50), 50)
    assert max(table.values) == 1.0


def test_reduce_on_plateau_is_refused_with_what_to_do():
    model, opt = _setup()
    sched = L.ReduceLROnPlateau(opt)
    with pytest.raises(lrpilot.ConfigError, match="ReduceLROnPlateau.*leave schedule= out"):
        _find(model, opt, sched)


def test_a_spec_that_needs_the_run_length_names_steps():
    model, opt = _setup()
    with pytest.raises(lrpilot.SpecError, match=r"pass steps=") as err:
        lrpilot.find_lr(model, opt, _loader(), CE, schedule="warmup(0.05)+cosine", progress=False)
    assert "total_steps" not in str(err.value)


def test_tabulated_round_trips_as_data():
    _, opt = _setup()
    table = S.from_scheduler(EQUIVALENT["warmup + cosine"][0](opt), STEPS)
    again = S.from_dict(S.to_dict(table))
    assert again == table and again.source == "SequentialLR"
    assert "SequentialLR" in repr(table) and str(STEPS) in repr(table)
