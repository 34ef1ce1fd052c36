"""``lrpilot.train``: the one training loop, checked against a hand-written reference loop,
closed-form schedules, callbacks that stop, change the LR and roll back, and its result data."""

from __future__ import annotations

import json
import math
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot import schedules as S
from lrpilot.control.callbacks import Action, Callback


def _data(n: int = 96, features: int = 8, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    return x, (x @ torch.randn(features, classes, generator=g)).argmax(1)


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 3))


def _sgd(params, lr):
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def _task(**overrides) -> lrpilot.Task:
    x, y = _data()
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=16,
        shuffle=True,
        generator=torch.Generator().manual_seed(123),
    )
    options = dict(
        model_fn=_model,
        optimizer_fn=_sgd,
        train_loader=loader,
        val_loader=DataLoader(TensorDataset(x, y), batch_size=48),
        loss_fn=nn.functional.cross_entropy,
        steps=30,
    )
    options.update(overrides)
    return lrpilot.Task(**options)


def _reference(task: lrpilot.Task, lr: float, seed: int, steps: int) -> tuple[nn.Module, list]:
    """The recipe written out by hand: what ``train`` must do, float op for float op."""
    loader = task.train_loader
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    loader.generator.manual_seed(seed)
    model = task.model_fn()
    opt = task.optimizer_fn(model.parameters(), lr)
    schedule = S.parse_schedule(task.schedule, total_steps=steps)
    batches = (b for _ in range(10**6) for b in loader)
    losses = []
    model.train()
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * float(schedule(t))
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for _ in range(task.accumulation_steps):
            x, y = next(batches)
            loss = nn.functional.cross_entropy(model(x), y)
            (loss / task.accumulation_steps).backward()
            total += float(loss.detach())
        nn.utils.clip_grad_norm_(model.parameters(), task.grad_clip)
        opt.step()
        losses.append(total / task.accumulation_steps)
    return model, losses


def test_train_matches_a_hand_written_loop_bitwise():
    task = _task(grad_clip=0.5, accumulation_steps=2, schedule="warmup(0.2)+cosine(min=0.1)")
    captured = {}

    class Keep(Callback):
        def on_run_end(self, result):
            captured["done"] = True

        def on_step(self, info):
            captured["model"] = info.model

    run = lrpilot.train(task, 0.2, seed=7, callbacks=[Keep()], progress=False)
    model, losses = _reference(task, 0.2, seed=7, steps=30)
    assert run.losses == losses  # exact floats, every step
    for mine, ref in zip(captured["model"].parameters(), model.parameters(), strict=True):
        assert torch.equal(mine, ref)
    assert run.clipped > 0 and run.skipped == 0 and captured["done"]


def test_same_seed_same_run_and_callers_rng_untouched():
    task = _task(schedule="cosine")
    torch.manual_seed(99)
    before = (torch.get_rng_state(), random.getstate(), task.train_loader.generator.get_state())
    a = lrpilot.train(task, 0.1, seed=3, progress=False)
    after = (torch.get_rng_state(), random.getstate(), task.train_loader.generator.get_state())
    assert torch.equal(before[0], after[0]) and before[1] == after[1]
    assert torch.equal(before[2], after[2])
    b = lrpilot.train(task, 0.1, seed=3, progress=False)
    c = lrpilot.train(task, 0.1, seed=4, progress=False)
    assert a.losses == b.losses and a.grad_norms == b.grad_norms and a.metric == b.metric
    assert a.losses != c.losses


@pytest.mark.parametrize("steps", [10, 37, 200])
def test_schedule_is_resolved_for_the_run_length(steps):
    task = _task(schedule="warmup(0.1)+cosine(min=0.1)", steps=1000)
    run = lrpilot.train(task, 0.5, steps=steps, progress=False, divergence=None)
    w = max(1, math.floor(0.1 * steps + 0.5))

    def closed_form(t: int) -> float:
        if t < w:
            return t / w
        return 0.1 + 0.9 * (1 + math.cos(math.pi * min(t - w, steps - w) / (steps - w))) / 2

    np.testing.assert_allclose(run.lrs, [0.5 * closed_form(t) for t in range(steps)], rtol=1e-12)
    assert len(run.losses) == len(run.grad_norms) == steps


def test_a_schedule_object_or_factory_is_fitted_to_the_run():
    factory = _task(schedule=lambda n: S.linear(steps=n), steps=100)
    run = lrpilot.train(factory, 1.0, steps=20, progress=False, divergence=None)
    np.testing.assert_allclose(run.lrs, [1 - t / 20 for t in range(20)], rtol=1e-12)
    fixed = _task(schedule=S.linear(steps=100), steps=100)  # written for 100 steps: stretched
    run = lrpilot.train(fixed, 1.0, steps=20, progress=False, divergence=None)
    np.testing.assert_allclose(run.lrs, [1 - (5 * t) / 100 for t in range(20)], rtol=1e-12)


def test_callback_sees_every_step_and_can_stop():
    seen = []

    class Stop(Callback):
        def on_step(self, info):
            seen.append((info.step, info.lr, info.loss))
            return Action(stop=True, reason="enough") if info.step == 12 else None

    run = lrpilot.train(_task(), 0.1, callbacks=[Stop()], progress=False)
    assert [s for s, _, _ in seen] == list(range(1, 13))
    assert [loss for _, _, loss in seen] == run.losses and len(run.lrs) == 12
    assert run.stopped == "enough" and not run.diverged and math.isfinite(run.metric)
    assert run.events[-1]["step"] == 12 and "stopped" in run.events[-1]["message"]


class _GradsSeen(Callback):
    """Records what ``on_before_optimizer_step`` is given; zeroes the gradients of step
    ``zero_at`` (so that step must leave plain SGD's weights as they were)."""

    def __init__(self, zero_at: int | None = None) -> None:
        self.norms: list[float | None] = []
        self.zero_at = zero_at
        self.steps: list[int] = []

    def on_before_optimizer_step(self, info):
        self.steps.append(info.step)
        self.norms.append(info.grad_norm)
        if info.step == self.zero_at:
            for g in info.grads:
                g.zero_()


def test_a_callback_sees_the_gradients_before_the_optimizer_and_their_norm_once_measured():
    seen = _GradsSeen()
    run = lrpilot.train(_task(steps=8), 0.1, callbacks=[seen], progress=False)
    assert seen.steps == list(range(1, 9)) and seen.norms == run.grad_norms  # not measured twice

    clipped = _GradsSeen()
    clip = sorted(run.grad_norms)[4]  # the task's clipping rescales about half the steps
    run = lrpilot.train(_task(steps=8, grad_clip=clip), 0.1, callbacks=[clipped], progress=False)
    for norm, seen_norm in zip(run.grad_norms, clipped.norms, strict=True):
        assert seen_norm is None if norm + 1e-6 > clip else seen_norm == norm


def test_a_callback_may_change_the_gradients_before_the_step():
    sgd = lambda params, lr: torch.optim.SGD(params, lr=lr)  # noqa: E731 (no momentum)
    seen = _GradsSeen(zero_at=3)

    class Weights(Callback):
        def __init__(self) -> None:
            self.after: dict[int, list[torch.Tensor]] = {}

        def on_step(self, info):
            self.after[info.step] = [p.detach().clone() for p in info.model.parameters()]

    weights = Weights()
    lrpilot.train(_task(steps=4, optimizer_fn=sgd), 0.1, callbacks=[seen, weights], progress=False)
    same = [
        all(torch.equal(a, b) for a, b in zip(weights.after[k], weights.after[k + 1], strict=True))
        for k in (2, 3)
    ]
    assert same == [True, False]  # step 3's zeroed gradient moved nothing; step 4's did


def test_callback_changes_the_lr():
    class Halve(Callback):
        def on_step(self, info):
            return Action(lr_factor=0.5, reason="cut") if info.step == 5 else None

    run = lrpilot.train(_task(), 0.1, callbacks=[Halve()], progress=False)
    assert run.lrs[:5] == [0.1] * 5 and run.lrs[5:] == [0.05] * 25
    assert "LR scale 1 -> 0.5" in run.events[0]["message"]


class _Counting:
    """A re-iterable loader that counts the batches drawn from it."""

    def __init__(self, batches: list) -> None:
        self.batches, self.drawn = batches, 0

    def __iter__(self):
        for batch in self.batches:
            self.drawn += 1
            yield batch


def test_rollback_restores_the_snapshot_and_does_not_rewind_the_data():
    states = {}

    class Back(Callback):
        def on_step(self, info):
            states[info.step] = [p.detach().clone() for p in info.model.parameters()]
            states["model"] = info.model
            if info.step == 5:
                return Action(snapshot=True)
            if info.step == 8:
                return Action(rollback=True, stop=True, reason="spike")
            return None

    x, y = _data()
    loader = _Counting([(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)])
    run = lrpilot.train(_task(train_loader=loader), 0.1, callbacks=[Back()], progress=False)
    assert run.steps_done == 8 and len(run.losses) == 5 and loader.drawn == 8
    for live, saved in zip(states["model"].parameters(), states[5], strict=True):
        assert torch.equal(live, saved)  # the weights are step 5's again
    assert "rolled back to step 5 (3 steps discarded)" in run.events[0]["message"]


def test_rollback_then_go_on_at_a_lower_lr_with_batches_skipped():
    class Back(Callback):
        def __init__(self) -> None:
            self.done = False

        def on_step(self, info):
            if info.step == 5:
                return Action(snapshot=True)
            if info.step == 8 and not self.done:
                self.done = True
                return Action(rollback=True, lr_factor=0.5, skip_batches=2, reason="spike")
            return None

    x, y = _data()
    loader = _Counting([(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)])
    run = lrpilot.train(
        _task(train_loader=loader, steps=12), 0.1, callbacks=[Back()], progress=False
    )
    assert run.steps_done == 15 and len(run.losses) == 12 and loader.drawn == 17
    assert run.lrs[:5] == [0.1] * 5 and run.lrs[5:] == [0.05] * 7
    message = run.events[0]["message"]
    assert message.startswith("spike; rolled back to step 5") and "skipped 2 batches" in message


def test_evaluation_every_n_steps_and_at_the_end():
    metrics = []

    class Watch(Callback):
        def on_eval(self, info):
            metrics.append((info.step, info.metric))

    run = lrpilot.train(_task(eval_every=10), 0.1, callbacks=[Watch()], progress=False)
    assert [s for s, _ in run.evals] == [10, 20, 30] and metrics == run.evals
    assert run.metric == run.evals[-1][1]


def test_a_nan_batch_is_skipped_not_taken_as_divergence():
    calls = iter(range(10**6))

    def loss_fn(out, y):
        loss = nn.functional.cross_entropy(out, y)
        return loss * float("nan") if next(calls) == 6 else loss

    run = lrpilot.train(_task(loss_fn=loss_fn), 0.1, progress=False)
    assert not run.diverged and run.skipped == 1 and math.isnan(run.losses[6])
    assert run.events[0]["kind"] == "skipped" and math.isfinite(run.metric)
    assert all(math.isfinite(v) for i, v in enumerate(run.losses) if i != 6)


def test_divergence_stops_the_run():
    run = lrpilot.train(_task(steps=200), 50.0, progress=False)
    assert run.diverged and len(run.losses) < 200 and math.isnan(run.metric)
    assert run.events[-1]["kind"] == "diverged"


def test_loss_step_only_task_and_dict_batches():
    x, y = _data()
    batches = [{"x": x[i : i + 16], "y": y[i : i + 16]} for i in range(0, 96, 16)]

    def loss_step(model, batch):
        return nn.functional.cross_entropy(model(batch["x"]), batch["y"])

    task = lrpilot.Task(
        model_fn=_model,
        optimizer_fn=_sgd,
        train_loader=batches,
        val_loader=batches[:2],
        loss_step=loss_step,
        steps=20,
    )
    run = lrpilot.train(task, 0.1, progress=False)
    assert len(run.losses) == 20 and run.metric < 0  # minus the mean validation loss


def test_run_result_round_trips_through_json(tmp_path):
    run = lrpilot.train(_task(eval_every=10, grad_clip=1.0), 0.1, progress=False)
    data = json.loads(json.dumps(run.to_dict()))
    again = lrpilot.RunResult.from_dict(data)
    assert again == run and again.to_dict() == run.to_dict()
    run.save(tmp_path / "run.json")
    assert lrpilot.RunResult.load(tmp_path / "run.json") == run
    assert "metric=" in repr(run) and len(repr(run)) < 120


def test_optimizer_modes_are_switched_around_evaluation():
    calls = []

    class ModeSGD(torch.optim.SGD):
        def train(self) -> None:
            calls.append("train")

        def eval(self) -> None:
            calls.append("eval")

    task = _task(optimizer_fn=lambda p, lr: ModeSGD(p, lr=lr), steps=5)
    lrpilot.train(task, 0.1, progress=False)
    assert calls == ["train", "eval", "train"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "lr must be"),
        ({"lr": math.nan}, "lr must be"),
        ({"lr": 0.1, "steps": 0}, "steps must be"),
        ({"lr": 0.1, "seed": -1}, "seed must be"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(lrpilot.ConfigError, match=match):
        lrpilot.train(_task(), progress=False, **kwargs)


def test_no_length_and_closure_optimizers_are_refused():
    with pytest.raises(lrpilot.ConfigError, match=r"Task\(steps=N\).*--steps N"):
        lrpilot.train(_task(steps=None), 0.1, progress=False)
    lbfgs = _task(optimizer_fn=lambda p, lr: torch.optim.LBFGS(p, lr=lr))
    with pytest.raises(lrpilot.ModelError, match="closure"):
        lrpilot.train(lbfgs, 0.1, progress=False)


def test_a_persistent_worker_loader_gives_every_run_the_same_data():
    x, y = _data()
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=16,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        generator=torch.Generator().manual_seed(0),
    )

    class Wrapper:  # a framework's loader holds the DataLoader one level down
        def __init__(self, inner: DataLoader) -> None:
            self.inner = inner

        def __iter__(self):
            return iter(self.inner)

    for given in (loader, Wrapper(loader)):
        task = _task(train_loader=given, val_loader=None, steps=9)
        first = lrpilot.train(task, 0.1, progress=False)
        second = lrpilot.train(task, 0.1, progress=False)
        assert first.losses == second.losses  # a worker pool left mid-epoch shifts the data
        assert loader._iterator is None  # the run's own workers were shut down


def test_a_serious_lint_finding_warns_once_per_task_at_the_callers_line():
    from lrpilot.lint import LintWarning

    task = _task(steps=5)
    with pytest.warns(LintWarning, match="above the usual range") as caught:
        lrpilot.train(task, 50.0, progress=False)  # SGD at 50: 500x its family's range
    assert all(w.filename == __file__ for w in caught if issubclass(w.category, LintWarning))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LintWarning)
        lrpilot.train(task, 50.0, progress=False)  # the same task again: already said
