"""What the suggestion is told about the run: the schedule's mean multiplier (closed forms, live
torch schedulers put back exactly), the optimizer family and what was assumed."""

from __future__ import annotations

import math

import pytest
import torch

import lrpilot
from conftest import mlp
from lrpilot import schedules
from lrpilot._facts import run_facts, schedule_mean
from lrpilot.lint import lint
from lrpilot.schedules._tabulated import MAX_STEPPED


def _sgd(lr: float = 0.1, momentum: float = 0.9) -> torch.optim.SGD:
    return torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=lr, momentum=momentum)


def test_a_constant_schedule_has_mean_one_with_or_without_a_length() -> None:
    assert schedule_mean(schedules.constant(), 500) == 1.0
    assert schedule_mean(schedules.constant(), None) == 1.0
    assert schedule_mean("constant", 50) == 1.0


@pytest.mark.parametrize("n", [7, 200, 1000])
def test_cosine_to_zero_has_the_closed_form_mean(n: int) -> None:
    # mean over t < n of (1 + cos(pi t / n)) / 2 = 1/2 + 1/(2n): the cosines sum to 1
    assert schedule_mean("cosine", n) == pytest.approx(0.5 + 0.5 / n, rel=1e-12)


def test_a_long_run_is_read_at_sampled_steps_close_to_the_exact_mean() -> None:
    # 10^5 steps: read at 1,000 steps spread over the run, the mean of a linear decay to 0
    assert schedule_mean("linear", 100_000) == pytest.approx(0.5, abs=1e-3)


def test_a_plain_function_is_a_schedule_and_its_mean_is_over_its_largest_value() -> None:
    assert schedule_mean(lambda t: 2.0 if t < 50 else 1.0, 100) == pytest.approx(0.75)


def test_a_decaying_schedule_without_a_run_length_has_no_mean() -> None:
    assert schedule_mean(lambda t: 0.99**t, None) is None
    assert schedule_mean(None, 1000) is None


def test_a_live_torch_scheduler_is_read_and_put_back_exactly() -> None:
    opt = _sgd()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for _ in range(3):
        opt.step()
        sched.step()
    before_state, before_lr = sched.state_dict(), opt.param_groups[0]["lr"]
    mean = schedule_mean(sched, 100)
    # from step 3 on, 100 steps of the cosine and its restart (T_max=100): the recurrence
    # torch runs, so compare with the closed form loosely and the restore exactly
    assert 0.4 < mean < 0.6
    assert sched.state_dict() == before_state
    assert opt.param_groups[0]["lr"] == before_lr
    opt.step()
    sched.step()  # the scheduler goes on where it was
    assert sched.last_epoch == 4


def test_onecycle_momentum_is_put_back_too() -> None:
    opt = _sgd(momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=50)
    group = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    mean = schedule_mean(sched, 50)
    assert mean is not None and 0.2 < mean < 0.8
    assert {k: v for k, v in opt.param_groups[0].items() if k != "params"} == group


def test_a_very_long_run_is_read_up_to_the_cap() -> None:
    opt = _sgd()
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 1.0 if t < MAX_STEPPED + 1000 else 0.0
    )
    assert (
        schedule_mean(sched, 10 * MAX_STEPPED) == 1.0
    )  # read only up to the cap (200,000 and a stride)


class _Counting(torch.optim.lr_scheduler.CosineAnnealingLR):
    stepped: list[object] = []

    def step(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        _Counting.stepped.append(self)
        return super().step(*args, **kwargs)


def test_a_live_scheduler_is_never_stepped_to_be_read() -> None:
    sched = _Counting(_sgd(), T_max=100)
    _Counting.stepped.clear()  # its constructor's own first step
    assert 0.4 < schedule_mean(sched, 100) < 0.6
    lint(schedule=sched, steps=100)
    assert len(_Counting.stepped) >= 2 * 99  # copies were stepped, for the fact and the lint
    assert all(s is not sched for s in _Counting.stepped)  # the user's run never moved


def test_run_facts_say_what_was_assumed_and_only_that() -> None:
    adam = torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    told = run_facts(adam, 2_000, "warmup(0.05)+cosine", 1.0)
    assert told.assumed == {}
    assert told.family == "adam" and told.prior_lr == 1e-3 and told.grad_clip == 1.0
    assert told.schedule_mean == pytest.approx(0.5, abs=0.03)
    untold = run_facts(_sgd(), None, None, None)
    assert set(untold.assumed) == {"steps", "schedule"}
    assert untold.family == "sgd" and untold.prior_lr == 1e-2
    assert untold.schedule_mean is None and "constant" in untold.assumed["schedule"]


def test_find_lr_records_assumptions_and_gradient_norms(loader: list) -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ce = torch.nn.functional.cross_entropy
    with pytest.warns(UserWarning, match="Assumed steps"):
        res = lrpilot.find_lr(model, opt, loader, ce, num_steps=30, progress=False)
    assert set(res.assumed) == {"steps", "schedule"}
    assert any(w.startswith("Assumed schedule") for w in res.warnings)
    assert len(res.grad_norms) == len(res.lrs)
    assert all(math.isfinite(g) and g > 0 for g in res.grad_norms)
    reference = mlp()  # the same initial weights: the first step's norm, by hand
    x, y = loader[0]
    ce(reference(x), y).backward()
    by_hand = torch.nn.utils.get_total_norm([p.grad for p in reference.parameters()])
    assert res.grad_norms[0] == pytest.approx(float(by_hand), rel=1e-6)
    told = lrpilot.find_lr(
        model, opt, loader, ce, num_steps=30, steps=1_000, schedule="cosine", progress=False
    )
    assert told.assumed == {} and not any(w.startswith("Assumed") for w in told.warnings)
