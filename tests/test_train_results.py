"""What a run records and how it is called: an event's step is where it happened (a
rollback's message says where it went back to), ``callbacks`` takes one callback or a list of
them and refuses what is not one, ``Monitor.step`` refuses per-sample losses, and a diverged
run's result is strict JSON (``null``, not ``NaN``) that reads back as NaN."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot import ConfigError
from lrpilot.control.callbacks import Action, Callback
from lrpilot.lint import LintWarning

pytestmark = pytest.mark.filterwarnings("ignore", category=LintWarning)  # LRs hot on purpose


def _task(**overrides) -> lrpilot.Task:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x.sum(1) > 0).long()
    options = dict(
        model_fn=lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr),
        train_loader=DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=g),
        val_loader=DataLoader(TensorDataset(x, y), batch_size=32),
        loss_fn=nn.functional.cross_entropy,
        steps=30,
    )
    options.update(overrides)
    return lrpilot.Task(**options)


# ---- events carry the step where they happened (#5) ----------------------------------------


class _Guard(Callback):
    """Snapshot at step 20, roll back (and halve the LR) once at step 25."""

    fired = False

    def on_step(self, info):
        if info.step == 20:
            return Action(snapshot=True)
        if info.step == 25 and not self.fired:
            self.fired = True
            return Action(rollback=True, lr_factor=0.5, reason="loss spike")
        return None


def test_a_rollback_event_is_at_the_step_it_fired_and_says_where_it_went_back_to():
    run = lrpilot.train(_task(steps=40), 0.05, callbacks=[_Guard()], progress=False)
    (event,) = run.events
    assert event["step"] == 25
    assert "rolled back to step 20 (5 steps discarded)" in event["message"]
    assert len(run.losses) == 40  # the kept curve: the 5 discarded steps are redone


def test_a_rescued_divergence_is_logged_at_its_step_by_the_run_and_the_monitor():
    monitor = lrpilot.Monitor(quiet=True)
    run = lrpilot.train(_task(), 30.0, callbacks=[monitor], progress=False)
    rescued = [e for e in run.events if e["kind"] == "diverged"]
    assert rescued and "rolled back instead of stopping" in rescued[0]["message"]
    (acted,) = [e for e in monitor.events if e["acted"]][:1]
    action = next(e for e in run.events if e["kind"] == "action")
    said = int(acted["message"].split("step ")[1].split(":")[0])  # "step 3: the smoothed..."
    assert rescued[0]["step"] == action["step"] == acted["step"] == said > 0
    assert "rolled back to step 0" in action["message"]


# ---- callbacks= (#9) -----------------------------------------------------------------------


def test_a_single_callback_needs_no_list():
    monitor = lrpilot.Monitor(quiet=True, clip="zscore")
    run = lrpilot.train(_task(steps=5), 0.05, callbacks=monitor, progress=False)
    assert any(e["kind"] == "monitor" for e in run.events)  # the monitor's clipping note
    assert lrpilot.train(_task(steps=5), 0.05, callbacks=None, progress=False).steps_done == 5


@pytest.mark.parametrize(
    ("callbacks", "expected"),
    [
        ([object()], r"callbacks\[0\] is not a callback: object has none of the hook methods"),
        ([lrpilot.Monitor], r"callbacks\[0\] is the class Monitor, not an instance"),
        ("monitor", "callbacks must be a callback or a list of callbacks"),
        (3, "callbacks must be a callback or a list of callbacks"),
    ],
)
def test_what_is_not_a_callback_is_refused_before_the_run(callbacks, expected):
    calls = []
    task = _task(model_fn=lambda: calls.append(1) or nn.Linear(4, 2))
    with pytest.raises(ConfigError, match=expected):
        lrpilot.train(task, 0.05, callbacks=callbacks, progress=False)
    assert not calls  # refused before a model was built


def test_an_object_with_only_some_hooks_is_a_callback():
    class Ender:
        def __init__(self):
            self.result = None

        def on_run_end(self, result):
            self.result = result

    ender = Ender()
    run = lrpilot.train(_task(steps=3), 0.05, callbacks=[ender], progress=False)
    assert ender.result is run


# ---- Monitor.step with per-sample losses (#9) -----------------------------------------------


def test_monitor_step_refuses_per_sample_losses_and_says_to_reduce_them():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = lrpilot.Monitor(quiet=True).watch(model, optimizer)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    losses = nn.functional.cross_entropy(model(x), y, reduction="none")
    losses.mean().backward()
    with pytest.raises(ConfigError, match=r"shape \(8,\): reduce it to a scalar with \.mean\(\)"):
        monitor.step(losses)
    assert monitor.step(losses.mean()).apply  # the scalar is fine, and a one-element tensor
    assert monitor.step(losses.mean().reshape(1)).apply


# ---- a diverged run's JSON (#10) -----------------------------------------------------------


def _strict(text: str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_run_saves_strict_json_and_reads_back_nan(tmp_path):
    run = lrpilot.train(_task(), 100.0, progress=False)
    assert run.diverged and math.isnan(run.metric)
    path = tmp_path / "run.json"
    run.save(path)
    data = _strict(path.read_text())
    assert data["metric"] is None and math.isnan(run.to_dict()["metric"])  # floats in memory
    back = lrpilot.RunResult.load(path)
    assert math.isnan(back.metric) and back.diverged
    pairs = zip(back.losses, run.losses, strict=True)
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in pairs)
    assert back.events == run.events and back.lrs == run.lrs


def test_nan_in_every_float_field_round_trips(tmp_path):
    run = lrpilot.RunResult(
        lr=0.1,
        steps=3,
        seed=0,
        metric=math.nan,
        lrs=[0.1, 0.1],
        losses=[1.0, math.nan],
        grad_norms=[math.nan, 2.0],
        evals=[(1, 0.5), (2, math.nan)],
    )
    path = tmp_path / "run.json"
    run.save(path)
    data = _strict(path.read_text())
    assert data["losses"] == [1.0, None] and data["evals"] == [[1, 0.5], [2, None]]
    back = lrpilot.RunResult.from_dict(data)
    assert back.losses[0] == 1.0 and math.isnan(back.losses[1])
    assert math.isnan(back.grad_norms[0]) and back.grad_norms[1] == 2.0
    assert back.evals[0] == (1, 0.5) and math.isnan(back.evals[1][1])
    assert all(isinstance(v, float) for v in back.losses + back.grad_norms)
