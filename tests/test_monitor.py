"""The training monitor on real small models: with lrpilot.train and in a plain loop."""

from __future__ import annotations

import gc
import json
import math
import os
import random
import stat
import statistics

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from conftest import assert_state_dicts_equal
from lrpilot.control.callbacks import Action, Callback
from lrpilot.control.monitor import Answer, Monitor

CE = nn.functional.cross_entropy


def _data(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return x, (x @ torch.randn(8, 3, generator=g)).argmax(1)


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3))


def _task(steps: int = 300, **overrides) -> lrpilot.Task:
    x, y = _data()
    options = dict(
        model_fn=_model,
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9),
        train_loader=DataLoader(
            TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator()
        ),
        val_loader=DataLoader(TensorDataset(x, y), batch_size=256),
        loss_fn=CE,
        steps=steps,
    )
    options.update(overrides)
    return lrpilot.Task(**options)


class MultiplyLR(Callback):
    """Multiplies the LR by ``factor`` once, at step ``at`` (an injected divergence)."""

    def __init__(self, at: int, factor: float = 100.0) -> None:
        self.at, self.factor, self.done = at, factor, False

    def on_step(self, info):
        if info.step == self.at and not self.done:
            self.done = True
            return Action(lr_factor=self.factor, reason="injected LR x100")
        return None


def _quiet(**options) -> Monitor:
    return Monitor(quiet=True, **options)


def test_injected_divergence_is_caught_rolled_back_and_the_run_ends_near_the_clean_one():
    task = _task()
    clean = lrpilot.train(task, 0.1, progress=False)
    wrecked = lrpilot.train(task, 0.1, progress=False, callbacks=[MultiplyLR(110)])
    assert wrecked.diverged  # without the monitor the injection kills the run

    monitor = _quiet()
    run = lrpilot.train(task, 0.1, progress=False, callbacks=[MultiplyLR(110), monitor])
    assert not run.diverged and run.stopped == ""
    first = next(e for e in monitor.events if e["acted"])
    assert first["kind"] == "spike" and 110 < first["step"] <= 113  # within a few steps
    assert "rolled back to step 100" in first["message"] and "LR" in first["message"]
    assert monitor.to_dict()["rollbacks"] >= 1
    rolled = [e for e in run.events if "rolled back to step" in e["message"]]
    assert rolled and rolled[0]["message"].startswith(f"step {first['step']}: loss ")
    assert math.isfinite(run.losses[-1])
    assert run.metric == pytest.approx(clean.metric, abs=0.05)  # -val loss, ~0.02 clean


def test_a_nan_batch_is_skipped_and_the_run_goes_on():
    calls = []

    def unlucky(out, y):
        calls.append(1)
        loss = CE(out, y)
        return loss * math.nan if len(calls) == 40 else loss

    monitor = _quiet()
    run = lrpilot.train(_task(steps=80, loss_fn=unlucky), 0.1, progress=False, callbacks=[monitor])
    assert run.skipped == 1 and not run.diverged and len(run.losses) == 80
    assert math.isnan(run.losses[39]) and math.isfinite(run.losses[-1])
    nan = [e for e in monitor.events if e["kind"] == "nan"]
    assert len(nan) == 1 and nan[0]["step"] == 40 and not nan[0]["acted"]
    assert any(e["kind"] == "monitor" and "not finite" in e["message"] for e in run.events)
    assert monitor.to_dict()["rollbacks"] == 0


def test_nan_in_a_row_rolls_back_in_a_plain_loop_and_the_weights_never_see_it():
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = _quiet(snapshot_every=5).watch(model, opt)
    x, y = _data(64)
    answers = []
    for i in range(30):
        loss = CE(model(x), y) * (math.nan if i in (20, 21) else 1.0)
        loss.backward()
        answer = monitor.step(loss)
        answers.append(answer)
        if answer.apply:
            opt.step()
        opt.zero_grad()
        assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not answers[20].apply and not answers[20].rolled_back  # one alone: skipped
    assert answers[21].rolled_back and not answers[21].apply  # two in a row: rolled back
    assert answers[21].lr_factor == 0.5 and opt.param_groups[0]["lr"] == pytest.approx(0.025)
    assert all(a == Answer() for a in answers[:20])


@pytest.mark.parametrize("place", ["memory", "disk"])
def test_rollback_restores_model_optimizer_and_scheduler_exactly(tmp_path, place):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + 0.01 * s))
    folder = tmp_path / "snapshots"
    monitor = _quiet(snapshot_every=10, window=10, clip=None, snapshots=place, snapshot_dir=folder)
    monitor.watch(model, opt, sched)
    x, y = _data(64)
    saved = {}
    for i in range(1, 26):
        saved[i] = (
            {k: v.clone() for k, v in model.state_dict().items()},
            _clone(opt.state_dict()),
            sched.state_dict(),
        )
        loss = CE(model(x), y) * (1000.0 if i >= 24 else 1.0)
        loss.backward()
        answer = monitor.step(loss)
        if i == 24:
            assert not answer.apply and not answer.rolled_back  # one spike: not applied
        if answer.apply:
            opt.step()
            sched.step()
        opt.zero_grad()
    assert answer.rolled_back  # the second in a row
    assert answer.lr_factor == 0.1  # the loss went back above its start: a divergence's cut
    back_to = int(monitor.events[-1]["message"].split("rolled back to step ")[1].split(",")[0])
    model_state, opt_state, sched_state = saved[back_to]
    assert_state_dicts_equal(model.state_dict(), model_state)
    cut = _clone(opt_state)
    for group in cut["param_groups"]:
        group["lr"] *= 0.1
        group["initial_lr"] *= 0.1
    assert_state_dicts_equal(opt.state_dict(), cut)  # the state, with the LR cut on top
    assert sched.base_lrs == [b * 0.1 for b in sched_state["base_lrs"]]
    assert sched.last_epoch == sched_state["last_epoch"]
    sched.step()  # the scheduler keeps the cut (DEFECTS U3)
    expected = 0.1 * sched_state["base_lrs"][0] / (1 + 0.01 * (sched_state["last_epoch"] + 1))
    assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
    if place == "disk":  # a plain loop's snapshot file goes with its monitor
        assert back_to > 1 and len(list(folder.iterdir())) == 1
        del monitor
        gc.collect()
        assert not list(folder.iterdir())


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


class Scripted:
    """A metric_fn giving scripted values, one per evaluation."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self, model, loader):
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return value


class RecordAtEval(Callback):
    def __init__(self):
        self.states = {}
        self.model = None

    def on_run_start(self, info):
        self.model = info.model

    def on_eval(self, info):
        state = {k: v.clone() for k, v in info.model.state_dict().items()}
        self.states.setdefault(info.step, state)  # the final evaluation repeats the last step


@pytest.mark.parametrize(
    ("options", "kind"),
    [
        (dict(stop_patience=2, overfit_patience=None, plateau_patience=None), "early stop"),
        (dict(overfit_patience=2, plateau_patience=None), "overfitting"),
    ],
)
def test_early_stop_restores_the_best_weights_bitwise(options, kind):
    metric = Scripted([0.1, 0.3, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1])
    task = _task(steps=200, eval_every=20, metric_fn=metric)
    record, monitor = RecordAtEval(), _quiet(**options)
    run = lrpilot.train(task, 0.05, progress=False, callbacks=[record, monitor])
    assert run.stopped.startswith("step 100: ")
    assert [e["step"] for e in monitor.events if e["kind"] == kind] == [100]
    assert "restored the best weights (step 60" in run.stopped
    final = record.model.state_dict()
    for name, value in record.states[60].items():
        assert torch.equal(final[name], value), name
    assert not torch.equal(final["0.weight"], record.states[100]["0.weight"])


def test_a_plateau_of_the_metric_cuts_the_lr_through_reduce_on_plateau():
    metric = Scripted([0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2])
    task = _task(steps=180, eval_every=20, metric_fn=metric)
    monitor = _quiet(plateau_patience=2, overfit_patience=None)
    run = lrpilot.train(task, 0.05, progress=False, callbacks=[monitor])
    cuts = [e for e in monitor.events if e["kind"] == "plateau"]
    assert [e["step"] for e in cuts] == [100, 160]  # patience 2: the third flat evaluation
    assert "LR 0.05 -> 0.025" in cuts[0]["message"]
    assert run.lrs[100] == pytest.approx(0.025) and run.lrs[-1] == pytest.approx(0.0125)


def test_adaptive_clipping_clips_reports_the_share_and_calls_most_clipped_too_high():
    monitor = _quiet(clip="percentile", clip_percentile=1.0, clip_warmup=5)  # ~all clipped
    run = lrpilot.train(_task(steps=150), 0.05, progress=False, callbacks=[monitor])
    assert monitor.clipped_share > 0.5
    high = [e for e in monitor.events if e["kind"] == "clipping" and e["acted"]]
    assert high and "the LR is likely too high" in high[0]["message"]
    assert run.lrs[-1] == pytest.approx(0.025)  # cut once per 100 steps
    summary = [e for e in run.events if "clipped" in e["message"] and "of 150" in e["message"]]
    assert summary


def test_clipping_changes_the_update_only_when_it_clips():
    plain = lrpilot.train(_task(steps=40), 0.05, progress=False)
    off = lrpilot.train(
        _task(steps=40),
        0.05,
        progress=False,
        callbacks=[_quiet(clip_warmup=1000, oscillation_window=0, slow_after=None)],
    )
    assert off.losses == plain.losses  # watched but never acting: the very same run


def test_too_slow_progress_says_the_lr_is_likely_too_low():
    monitor = _quiet()
    run = lrpilot.train(_task(steps=200), 1e-6, progress=False, callbacks=[monitor])
    slow = [e for e in monitor.events if e["kind"] == "slow"]
    assert len(slow) == 1 and "the LR is likely too low" in slow[0]["message"]
    assert any("likely too low" in e["message"] for e in run.events)
    assert not [e for e in monitor.events if e["acted"]]  # flat, but the weights barely move


def test_a_loss_that_rose_is_never_called_an_lr_too_low():
    """The slow-progress note reads the drop from the first steps to the last; a loss that
    went up instead is the sign of an LR too high, and the note says so."""
    calls = []

    def climbing(out, y):  # a slow, steady climb: no spike, no divergence
        calls.append(1)
        return CE(out, y) * 0.0 + 2.0 + 0.002 * len(calls)

    monitor = _quiet(oscillation_window=0, clip=None)
    # an LR so low the weights all but stand still: not a stall either
    lrpilot.train(_task(steps=200, loss_fn=climbing), 1e-7, progress=False, callbacks=[monitor])
    (slow,) = [e for e in monitor.events if e["kind"] == "slow"]
    assert "the loss rose" in slow["message"] and "not the LR" in slow["message"]
    assert "too low" not in slow["message"] and not slow["acted"]


def test_a_loss_that_rose_while_the_weights_move_is_an_lr_too_high_and_is_cut():
    """A loss that climbs from its start over the run's first quarter, too noisy for the
    stall's test against the one-batch first loss but clearly higher in its last steps than in
    its first: with the weights moving, the LR is too high: roll back and cut it by 10. The
    same losses with the weights still are only a note (not the LR)."""
    rng = random.Random(0)
    losses = [2.0 + 0.6 * max(0, i - 50) / 50 + rng.uniform(-0.5, 0.5) for i in range(110)]
    for moving, acted in ((True, True), (False, False)):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        monitor = _quiet(oscillation_window=0).watch(model, opt, steps=400)
        for loss in losses:
            if moving:
                with torch.no_grad():
                    for p in model.parameters():
                        p.mul_(1.01)
            if monitor.step(loss, grad_norm=1.0).rolled_back:
                break
        (rose,) = [e for e in monitor.events if "the loss rose" in e["message"]]
        assert rose["acted"] is acted and rose["step"] in range(100, 110)
        if acted:
            assert "the LR is likely too high" in rose["message"] and rose["kind"] == "rose"
            assert "rolled back to step" in rose["message"]
            assert monitor.lr_scale == pytest.approx(0.1)
        else:
            assert "not the LR" in rose["message"] and monitor.lr_scale == 1.0


def test_a_rise_within_the_batches_noise_is_not_called_an_lr_too_high():
    # batch MSEs of 16 noisy targets swing by a third: at an LR 1000x too low, the median of
    # steps 113-150 lands 20 % above that of steps 1-37 by chance alone (seed 0)
    monitor = _quiet()
    lrpilot.train(_noisy_regression(), 1e-4, progress=False, callbacks=[monitor], seed=0)
    assert not [e for e in monitor.events if "rose" in e["message"]]


def test_events_go_to_a_private_json_lines_log_and_are_printed(tmp_path, capsys):
    path = tmp_path / "events.jsonl"
    monitor = Monitor(log=path)
    lrpilot.train(_task(), 0.1, progress=False, callbacks=[MultiplyLR(110), monitor])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == monitor.events and any(e["kind"] == "spike" for e in lines)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "rolled back to step 100" in capsys.readouterr().err


def test_bounded_attempts_stop_the_run_at_its_last_good_state():
    class Sabotage(Callback):  # LR x100 each time the run reaches step 60, also after rollbacks
        def on_step(self, info):
            return Action(lr_factor=100.0, reason="sabotage") if info.step == 60 else None

    monitor = _quiet(max_rollbacks=2, spike_patience=2)  # every spike acted on at once
    run = lrpilot.train(
        _task(steps=200), 0.1, progress=False, callbacks=[Sabotage(), monitor], divergence=None
    )
    assert "gave up after 2 rollbacks" in run.stopped
    assert [e["kind"] for e in monitor.events if e["acted"]] == ["spike"] * 3
    assert math.isfinite(run.metric) and run.metric > -0.5  # the last good state, not the wreck


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(lr_factor=1.5), "lr_factor"),
        (dict(clip="always"), "clip"),
        (dict(window=1), "window"),
        (dict(stop_patience=0), "stop_patience"),
        (dict(loss_plateau_patience=0), "loss_plateau_patience"),  # None turns it off
    ],
)
def test_bad_settings_are_refused(options, match):
    with pytest.raises(lrpilot.ConfigError, match=match):
        Monitor(**options)


def test_a_plain_loop_must_be_watched_first():
    with pytest.raises(lrpilot.ConfigError, match="watch"):
        Monitor().step(1.0)


@pytest.mark.parametrize(
    ("losses", "move", "stalled_at"),
    [
        ([2.3, 7.0] + [2.3] * 60, 0.01, 56),  # knocked out: at chance (5 steps: the weights move)
        ([2.3, 7.0] + [2.3 - 0.01 * i for i in range(60)], 0.01, None),  # recovers below it
        ([2.3] * 62, 0.01, 55),  # flat at its start at full LR, weights moving: too high
        ([2.3] * 62, 1e-6, None),  # flat, the weights all but still: an LR far too low
        ([2.3 * (1 - 0.0003 * i) for i in range(62)], 0.01, None),  # slow, real descent
        ([2.3] + [2.45 - 0.05 * (-1) ** i for i in range(61)], 0.01, 60),  # bounces above it
        # a loss noisier than it falls (MovieLens at its best LR), after a low first batch:
        # a flat median within the batches' noise of the start is no evidence of a stall
        ([1.04] + [1.1 + 0.12 * ((7 * i) % 11 - 5) / 5 for i in range(61)], 0.01, None),
    ],
)
def test_a_loss_that_never_falls_below_its_start_means_the_lr_is_too_high(
    losses, move, stalled_at
):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = _quiet(slow_after=None, oscillation_window=0).watch(model, opt)
    answers = []
    for loss in losses:
        answers.append(monitor.step(loss, grad_norm=1.0))
        with torch.no_grad():  # the update the LR makes: relative size ~ move per step
            for p in model.parameters():
                p.add_(torch.randn_like(p) * move * p.abs().mean())
    rolled = [i for i, a in enumerate(answers, 1) if a.rolled_back]
    assert rolled == ([] if stalled_at is None else [stalled_at])
    if stalled_at is not None:
        assert "the LR is likely too high" in answers[stalled_at - 1].reason
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # a divergence's cut: / 10


@pytest.mark.parametrize("shift", [0.0, -5.0])
def test_the_monitor_rolls_back_on_the_step_the_runs_own_divergence_stop_fires(shift):
    """``shift`` moves the loss below zero (a negative log-likelihood): the run's detector
    reads growth by the curve's own scale there, and the monitor's mirror of it must too."""
    task = _task(steps=200, loss_fn=lambda out, y: CE(out, y) + shift)
    alone = lrpilot.train(task, 0.1, progress=False, callbacks=[MultiplyLR(60, 300.0)])
    assert alone.diverged  # the run's divergence stop ends it
    # the monitor's own rules silenced: only its mirror of train's detector can act
    monitor = _quiet(patience=10_000, explode_ratio=None, oscillation_window=0)
    run = lrpilot.train(task, 0.1, progress=False, callbacks=[MultiplyLR(60, 300.0), monitor])
    assert not run.diverged and math.isfinite(run.metric)
    acted = [e for e in monitor.events if e["acted"]]
    assert acted[0]["kind"] == "diverged" and "divergence stop would end it" in acted[0]["message"]
    stop = next(e for e in run.events if e["kind"] == "diverged")
    assert "rolled back instead of stopping" in stop["message"]
    assert monitor.lr_scale == pytest.approx(0.1)  # past the edge: cut by 10, not halved


def _scripted(monitor: Monitor, losses, norm: float = 1.0) -> list[Answer]:
    return [monitor.step(loss, grad_norm=norm) for loss in losses]


def test_a_divergence_cuts_by_ten_then_by_its_root_and_a_spike_in_a_healthy_run_halves():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    monitor = _quiet(slow_after=None, oscillation_window=0, clip=None).watch(model, opt)
    healthy = [2.3 - 0.04 * i for i in range(30)] + [1.1] * 30  # progress, then snapshots
    answers = _scripted(monitor, healthy + [5.0, 5.0])  # back above the start: divergence
    assert answers[-1].rolled_back and answers[-1].lr_factor == pytest.approx(0.1)
    answers = _scripted(monitor, [1.1] * 30 + [5.0, 5.0])  # again: the square root
    assert answers[-1].rolled_back and answers[-1].lr_factor == pytest.approx(0.1**0.5)
    answers = _scripted(monitor, [1.1] * 30 + [2.0] * 12)  # a spike below the start, 12 long
    assert [a.apply for a in answers[-12:]] == [True] * 11 + [False]  # waited on, applied
    assert not any(a.rolled_back for a in answers[:-1])
    assert answers[-1].rolled_back and answers[-1].lr_factor == pytest.approx(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1**0.5 * 0.5)


def test_a_spike_that_settles_by_itself_in_a_learning_run_is_left_alone():
    """A catapult: the loss of a run that was learning jumps to 10-25x its median for a few
    steps, below the run's first loss, and comes back lower. Leaving it alone is the
    undisturbed run; rolling back on it (``spike_patience=2``, the rule before) is not."""
    settles = [2.3 - 0.04 * i for i in range(30)] + [1.1] * 30 + [2.0, 2.2, 1.8, 1.5, 2.0, 1.2]
    settles += [1.0] * 20
    for patience, rollbacks in ((12, 0), (2, 1)):
        model = _model()
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        monitor = _quiet(slow_after=None, oscillation_window=0, spike_patience=patience)
        answers = _scripted(monitor.watch(model, opt), settles)
        assert sum(a.rolled_back for a in answers) == rollbacks
        assert all(a.apply for a in answers) is (rollbacks == 0)
    assert not [e for e in monitor.events if e["acted"] and e["kind"] != "spike"]


def _moving(monitor: Monitor, model: nn.Module, losses) -> list[Answer]:
    """Feed ``losses`` to a plain-loop ``monitor`` while the weights move 1 % a step."""
    answers = []
    for loss in losses:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.01)
        answers.append(monitor.step(loss, grad_norm=1.0))
    return answers


def test_the_rise_is_read_on_the_steps_since_the_last_rollback():
    """A run that learnt fast, blew up, and restarted at a tenth of its LR falls steadily from
    its start again: no rise, though the restart's losses lie above the discarded attempt's."""
    rng = random.Random(0)
    before = [2.3 - 0.2 * i for i in range(10)] + [0.3 + rng.uniform(-0.02, 0.02)] * 20
    restart = [2.3 - 0.008 * i + rng.uniform(-0.05, 0.05) for i in range(110)]
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = _quiet(oscillation_window=0).watch(model, opt, steps=400)
    answers = _moving(monitor, model, [*before, 5.0, 5.0, *restart])
    assert sum(a.rolled_back for a in answers) == 1  # the blow-up's
    assert not [e for e in monitor.events if e["kind"] == "rose"]


def test_a_rise_rolls_back_past_the_steps_it_blames():
    """No snapshot is taken while a rise found at slow_after awaits its judgement: the
    rollback goes back to a snapshot taken before the rise was found, not 5 steps."""
    rng = random.Random(1)
    losses = [2.3 - 0.26 * i for i in range(5)]
    losses += [1.0 + 0.008 * i + rng.uniform(-0.03, 0.03) for i in range(115)]
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = _quiet(oscillation_window=0).watch(model, opt, steps=400)
    _moving(monitor, model, losses)
    (rose,) = [e for e in monitor.events if e["kind"] == "rose"]
    back_to = int(rose["message"].split("rolled back to step ")[1].split(",")[0])
    assert back_to < 100 <= rose["step"] - 5  # found at step 100, judged 5 steps later


def test_a_rollback_at_the_lrs_floor_says_so():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    monitor = _quiet(slow_after=None, oscillation_window=0, min_lr_factor=0.1)
    monitor.watch(model, opt)
    healthy = [2.3 - 0.04 * i for i in range(30)] + [1.1] * 30
    first = _scripted(monitor, healthy + [5.0, 5.0])[-1]  # cut by 10: down to the floor
    assert first.rolled_back and first.lr_factor == pytest.approx(0.1)
    again = _scripted(monitor, [1.1] * 30 + [5.0, 5.0])[-1]
    assert again.rolled_back and again.lr_factor is None
    assert "the LR is already at its floor; rolled back to step" in again.reason
    assert " -> " not in again.reason  # no "LR 0.1 -> 0.1"
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_a_spike_back_above_the_start_is_still_acted_on_at_the_second_step():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    monitor = _quiet(slow_after=None, oscillation_window=0).watch(model, opt)
    answers = _scripted(monitor, [2.3 - 0.04 * i for i in range(30)] + [1.1] * 30 + [3.0, 3.0])
    assert [a.apply for a in answers[-2:]] == [False, False]  # the first skipped, then rolled
    assert answers[-1].rolled_back and answers[-1].lr_factor == pytest.approx(0.1)


class RecordLR(Callback):
    """Records the LR of each step the first time it is taken (before any rollback)."""

    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def on_step(self, info):
        self.lrs.setdefault(info.step, info.lr)  # the first pass, before any rollback


def test_a_divergence_during_warmup_cuts_the_peak_to_a_tenth_of_the_lr_that_failed():
    # a 40-step warmup to an LR far too high: the run blows up while the LR still climbs
    task = _task(steps=200, schedule="warmup(0.2)+constant")
    seen, monitor = RecordLR(), _quiet()
    lrpilot.train(task, 30.0, progress=False, callbacks=[seen, monitor])
    first = next(e for e in monitor.events if e["acted"])
    failed = seen.lrs[first["step"]]
    assert failed < 0.5 * 30.0  # caught in the warmup, well below the peak
    # the new peak lies a tenth below the LR that failed, not a tenth below the old peak
    assert 30.0 * monitor.to_dict()["lr_scale"] == pytest.approx(0.1 * failed)
    # at (or past) the peak, a divergence cuts the peak by ten as before
    constant, monitor = _task(steps=200), _quiet()
    lrpilot.train(constant, 0.1, progress=False, callbacks=[MultiplyLR(60, 300.0), monitor])
    assert monitor.lr_scale == pytest.approx(0.1)


def _noisy_regression(schedule: str = "constant") -> lrpilot.Task:
    """Linear regression on noisy targets with small batches: at a constant LR the loss
    settles on a floor that the gradient noise sets, and only a lower LR gets under it."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.5 * torch.randn(2048, 1, generator=g)
    return lrpilot.Task(
        model_fn=lambda: nn.Linear(8, 1),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr),
        train_loader=DataLoader(
            TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator()
        ),
        loss_fn=nn.functional.mse_loss,
        steps=600,
        schedule=schedule,
    )


def test_the_peak_is_read_from_the_group_the_steps_report_with_the_backbone_listed_first():
    # the steps report the first group's LR (a backbone at a tenth of the head's): read
    # against the head's peak, a run at its full LR would look short of its peak, and a
    # divergence there would be cut 100x instead of 10x
    def backbone_first(model, lr):
        return torch.optim.SGD(
            [{"params": model[0].parameters(), "lr": 0.1 * lr}, {"params": model[2].parameters()}],
            lr=lr,
            momentum=0.9,
        )

    calls = []

    def blows_up_once(out, y):  # batches 80 and 81 blow the loss up, as a divergence would
        calls.append(1)
        return CE(out, y) * (100.0 if 80 <= len(calls) < 82 else 1.0)

    monitor = _quiet()
    task = _task(steps=200, optimizer_fn=backbone_first, loss_fn=blows_up_once)
    lrpilot.train(task, 0.1, progress=False, callbacks=[monitor])
    (first,) = [e for e in monitor.events if e["acted"]]
    assert "above the run's first loss" in first["message"]
    assert "LR 0.01 -> 0.001" in first["message"]  # the backbone's LR, cut by ten
    assert monitor.lr_scale == pytest.approx(0.1)


def test_a_plateau_of_the_training_loss_at_a_constant_lr_cuts_it_and_the_loss_gets_lower():
    bare = lrpilot.train(_noisy_regression(), 0.2, progress=False)
    monitor = _quiet()
    run = lrpilot.train(_noisy_regression(), 0.2, progress=False, callbacks=[monitor])
    cuts = [e for e in monitor.events if e["kind"] == "loss plateau"]
    assert len(cuts) == 1 and "at a steady LR" in cuts[0]["message"]
    assert cuts[0]["step"] % 50 == 0  # judged at the end of a block (a twentieth, >= window)
    assert monitor.lr_scale == pytest.approx(0.5)  # plateau_factor
    floor = statistics.median(run.losses[-60:])
    assert floor < 0.95 * statistics.median(bare.losses[-60:])
    off = _quiet(loss_plateau_patience=None)
    lrpilot.train(_noisy_regression(), 0.2, progress=False, callbacks=[off])
    assert off.lr_scale == 1.0 and not any(e["acted"] for e in off.events)


def test_no_plateau_cut_where_the_schedule_moves_the_lr_or_the_loss_never_fell():
    decaying = _quiet()
    lrpilot.train(_noisy_regression("cosine"), 0.2, progress=False, callbacks=[decaying])
    assert not [e for e in decaying.events if e["kind"] == "loss plateau"]
    # an LR far too low (a plain loop): the loss creeps down, flat block after block, but
    # it never fell by slow_drop from its first block: no floor after a fall, no cut
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = _quiet(window=10, clip=None, oscillation_window=0).watch(model, opt)
    answers = _scripted(monitor, [2.3 - 0.0001 * i for i in range(200)])
    assert not any(a.lr_factor for a in answers) and opt.param_groups[0]["lr"] == 0.1
    # the same creep in a negative loss (a continuous negative log-likelihood) never fell
    # either: "fell by slow_drop" is relative to |first|, as torch's relative threshold is
    negative = _quiet(window=10, clip=None, oscillation_window=0).watch(model, opt)
    answers = _scripted(negative, [-2.3 - 0.0001 * i for i in range(200)])
    assert not [e for e in negative.events if e["kind"] == "loss plateau"]
    # the same creep after a fall is a floor: cut
    fell = _quiet(window=10, clip=None, oscillation_window=0).watch(model, opt)
    answers = _scripted(fell, [2.3 - 0.02 * i for i in range(40)] + [1.5] * 80)
    assert [e["kind"] for e in fell.events if e["acted"]] == ["loss plateau"]


def test_a_plain_loop_told_its_length_judges_the_loss_plateau_in_twentieths_of_it():
    fall_then_flat = [2.3 - 0.02 * i for i in range(40)] + [1.5] * 80
    model = _model()
    for steps, cuts in ((None, 1), (2000, 0)):  # blocks of 2 * window; of 2000 / 20 steps
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        monitor = _quiet(window=10, clip=None, oscillation_window=0)
        monitor.watch(model, opt, steps=steps)
        answers = _scripted(monitor, fall_then_flat)
        assert sum(a.lr_factor is not None for a in answers) == cuts
    with pytest.raises(lrpilot.ConfigError, match="steps"):
        _quiet().watch(model, opt, steps=0)


def test_a_restart_forgets_the_discarded_steps_statistics():
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = _quiet(slow_after=None, oscillation_window=0).watch(model, opt)
    answers = []
    for i in range(120):
        stalled = not any(a.rolled_back for a in answers)
        loss = 2.3 if stalled else 2.3 - 0.01 * i  # knocked out at chance, then learning
        norm = 0.01 if stalled else 1.0  # a dead network's tiny gradients, then healthy ones
        answers.append(monitor.step(loss, grad_norm=norm))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01 * p.abs().mean())
    rolled = [i for i, a in enumerate(answers, 1) if a.rolled_back]
    assert len(rolled) == 1  # the stall; the restart's 100x larger norms are not "exploding"
    assert [e["kind"] for e in monitor.events if e["acted"]] == ["stalled"]


def test_a_stall_withdraws_an_earlier_note_that_the_lr_was_too_low():
    """A flat loss first reads as slow progress (the note at a quarter of the run); when the
    stall rule then finds the weights moving, it says the LR is too high and that the note
    was wrong, so the events never leave two verdicts standing."""

    def flat(out, y):  # the value stays at 2.3; the gradient still moves the weights
        return 2.3 + 1e-2 * (out.sum() - out.sum().detach())

    monitor = _quiet(oscillation_window=0, clip=None)
    lrpilot.train(_task(steps=160, loss_fn=flat), 1.0, progress=False, callbacks=[monitor])
    kinds = [(e["kind"], e["step"]) for e in monitor.events]
    (slow,) = [e for e in monitor.events if e["kind"] == "slow"]
    stall = next(e for e in monitor.events if e["kind"] == "stalled")
    assert slow["step"] < stall["step"], kinds
    assert f"(not too low, as the note at step {slow['step']} said" in stall["message"]


@pytest.mark.parametrize("shift", [0.0, -4.6])
def test_a_lucky_stretch_of_a_stalled_run_is_not_the_snapshot_a_stall_goes_back_to(shift):
    """A too-hot run hovers at its start; ten steps dip below it, then it is back. The stall
    rule judges the run over ``window`` steps, and so does the snapshot rule: nothing in the
    stalled stretch counts as good, and the stall rolls back to the start. The same for a loss
    below zero (``shift``: a negative log-likelihood starting at -2.3), where "2 % below the
    start" is 2 % of its size below it, not 0.98 times it (above it: every step "progressed")."""
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = _quiet(slow_after=None, oscillation_window=0, clip=None).watch(model, opt)
    losses = [v + shift for v in [2.3] * 30 + [2.2] * 15 + [2.3] * 75]
    answers = []
    for loss in losses:
        answers.append(monitor.step(loss, grad_norm=1.0))
        if any(a.rolled_back for a in answers):
            break
        with torch.no_grad():  # the weights move: a real stall, not an LR far too low
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01 * p.abs().mean())
    assert answers[-1].rolled_back
    (stall,) = [e for e in monitor.events if e["acted"]]
    assert stall["kind"] == "stalled" and "rolled back to step 0" in answers[-1].reason


@pytest.mark.parametrize("schedule", [None, "warmup(0.05)+cosine"])
def test_the_monitor_is_quiet_on_a_healthy_run(schedule):
    monitor = _quiet()
    run = lrpilot.train(
        _task(steps=300, schedule=schedule), 0.05, progress=False, callbacks=[monitor]
    )
    assert [e for e in monitor.events if e["acted"]] == []
    assert not run.diverged and monitor.lr_scale == 1.0


@pytest.mark.parametrize("clipped", [True, False])
def test_a_norm_the_recipe_clipped_is_not_an_explosion(clipped):
    """A noisy binary task (first loss ln 2, batches around 0.5): two batches in a row with
    gradient norms 30x the median and losses just above the first. Unclipped, that is a
    divergence: rolled back, the LR cut 10x. Where the recipe's own clipping bounded those
    steps (``StepInfo.clipped``), their updates were bounded: nothing is done."""
    from lrpilot.control.callbacks import RunInfo, StepInfo

    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = _quiet(oscillation_window=0)
    monitor.on_run_start(RunInfo(0.1, 200, 0, model, optimizer))
    noise = random.Random(0)
    actions = []
    for step in range(1, 101):
        loss, norm, bad = 0.5 + 0.1 * noise.uniform(-1, 1), 1.0 + 0.2 * noise.random(), False
        if step == 1:
            loss = math.log(2)
        if step in (70, 71):
            loss, norm, bad = 0.8, 30.0, True
        info = StepInfo(step, 200, 0.1, loss, norm, False, bad and clipped, loss, model, optimizer)
        action = monitor.on_step(info)
        if action is not None and (action.rollback or action.lr_factor):
            actions.append((step, action))
    if clipped:
        assert actions == []
    else:
        ((step, action),) = actions
        assert step == 71 and action.rollback and action.lr_factor == pytest.approx(0.1)
