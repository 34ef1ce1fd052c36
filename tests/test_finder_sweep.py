"""The sweep itself: which LRs it sets, what it records, when it stops, what it reads."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from conftest import CountingLoader, RecordingSGD, batches_of, make_classification, mlp

CE = nn.functional.cross_entropy


def _sgd(model: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr)


def _ema(values: list[float], beta: float) -> list[float]:
    """The bias-corrected EMA, written out: sum_k beta^(n-k) (1-beta) v_k / (1 - beta^n)."""
    out = []
    for n in range(1, len(values) + 1):
        total = sum(beta ** (n - k) * (1 - beta) * values[k - 1] for k in range(1, n + 1))
        out.append(total / (1 - beta**n))
    return out


def _scripted_loss(script: list[float]):
    """A loss_fn that returns ``script[k]`` at its k-th call (and still carries a gradient)."""
    calls = []

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return (out * 0.0).sum() + script[len(calls) - 1]

    return loss_fn


# ----------------------------------------------------------------------------- LR schedule


def test_exponential_lrs_are_log_evenly_spaced(loader):
    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, CE, start_lr=1e-6, end_lr=1e-2, num_steps=25, progress=False
    )
    expected = [1e-6 * (1e4) ** (i / 24) for i in range(25)]
    assert not res.diverged and res.num_steps_run == 25
    np.testing.assert_allclose(res.lrs, expected, rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.log(res.lrs)), math.log(1e4) / 24, rtol=1e-9)


def test_linear_lrs_are_evenly_spaced(loader):
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        loader,
        CE,
        start_lr=1e-3,
        end_lr=0.1,
        num_steps=12,
        mode="linear",
        progress=False,
    )
    np.testing.assert_allclose(res.lrs, np.linspace(1e-3, 0.1, 12), rtol=1e-12)


def test_param_groups_swept_together_keeping_their_ratios(loader):
    model = mlp()
    first, second = list(model[0].parameters()), list(model[2].parameters())
    opt = RecordingSGD([{"params": first, "lr": 0.01}, {"params": second, "lr": 0.001}], lr=0.01)

    res = lrpilot.find_lr(
        model, opt, loader, CE, start_lr=1e-5, end_lr=0.1, num_steps=20, progress=False
    )

    lrs = np.array(opt.group_lrs)
    assert len(lrs) == res.num_steps_run == 20
    np.testing.assert_allclose(lrs[:, 0], res.lrs, rtol=1e-12)  # the largest group is the sweep
    np.testing.assert_allclose(lrs[:, 1], 0.1 * np.array(res.lrs), rtol=1e-12)
    assert res.group_ratios == pytest.approx([1.0, 0.1])
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.001]  # given back
    res.apply(opt, lr=0.02)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.02, 0.002])
    assert res.group_lrs() == pytest.approx([res.lr, 0.1 * res.lr])


# ----------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_stops_when_the_loss_is_not_finite(loader, bad):
    model = mlp()
    opt = _sgd(model)
    threshold = 1.1e-3

    def loss_fn(out, y):
        loss = CE(out, y)
        return loss * bad if opt.param_groups[0]["lr"] > threshold else loss

    res = lrpilot.find_lr(
        model, opt, loader, loss_fn, start_lr=1e-6, end_lr=1.0, num_steps=31, progress=False
    )

    schedule = [1e-6 * 10 ** (6 * i / 30) for i in range(31)]
    below = [lr for lr in schedule if lr <= threshold]
    assert res.diverged and res.num_steps_run == len(below) == 16
    np.testing.assert_allclose(res.lrs, below, rtol=1e-12)
    assert all(math.isfinite(v) for v in res.losses)


def test_stops_when_the_smoothed_loss_exceeds_threshold_times_best(loader):
    script = [2.0 - 0.15 * i for i in range(10)] + [0.5 * 1.6**i for i in range(1, 21)]
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        loader,
        _scripted_loss(script),
        num_steps=30,
        diverge_threshold=4.0,
        progress=False,
    )

    smoothed = _ema(script, 0.9)
    stop = next(i for i, s in enumerate(smoothed) if s > 4.0 * min(smoothed[: i + 1]))
    assert 10 < stop < 29
    assert res.diverged and res.num_steps_run == stop + 1
    assert res.losses == pytest.approx(script[: stop + 1], rel=1e-6)
    np.testing.assert_allclose(res.ema_losses, smoothed[: stop + 1], rtol=1e-6)  # f32
    np.testing.assert_allclose(res.ema_losses, _ema(res.losses, 0.9), rtol=1e-12)

    model = mlp()
    loose = lrpilot.find_lr(
        model,
        _sgd(model),
        loader,
        _scripted_loss(script),
        num_steps=30,
        diverge_threshold=1e6,
        progress=False,
    )
    assert not loose.diverged and loose.num_steps_run == 30


def test_divergence_check_works_for_negative_losses(loader):
    """A loss that goes below zero (a log-likelihood, say) is not 'above 4x its best' at once."""
    script = [1.0 - 0.3 * i for i in range(12)] + [-2.3 + 2.0 * i for i in range(1, 19)]
    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, _scripted_loss(script), num_steps=30, progress=False
    )
    assert res.diverged and 12 < res.num_steps_run < 30


# ----------------------------------------------------------------------------- what it reads


def test_short_loader_is_cycled():
    x, y = make_classification(n=48)
    counting = CountingLoader(batches_of(x, y, 16))  # three batches
    model = mlp()
    lrpilot.find_lr(
        model, _sgd(model), counting, CE, start_lr=1e-5, end_lr=1e-2, num_steps=20, progress=False
    )
    assert counting.drawn == 20 and counting.epochs == 7

    counting = CountingLoader(batches_of(x, y, 16))
    lrpilot.find_lr(
        model,
        _sgd(model),
        counting,
        CE,
        start_lr=1e-5,
        end_lr=1e-2,
        num_steps=20,
        accumulation_steps=2,
        progress=False,
    )
    assert counting.drawn == 40


def test_dict_batches_with_a_custom_loss_step(loader):
    dict_loader = [{"x": x, "y": y} for x, y in loader]
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        dict_loader,
        loss_step=lambda m, b: CE(m(b["x"]), b["y"]),
        start_lr=1e-4,
        end_lr=1.0,
        num_steps=20,
        progress=False,
    )
    plain = lrpilot.find_lr(
        model, _sgd(model), loader, CE, start_lr=1e-4, end_lr=1.0, num_steps=20, progress=False
    )
    assert res.effective_batch_size == 16
    assert res.losses == plain.losses and res.lrs == plain.lrs


def test_losses_are_the_losses_of_a_plain_loop(loader):
    """A reference loop that sets each LR, records the loss and steps gives the same curve."""
    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, CE, start_lr=1e-4, end_lr=3.0, num_steps=24, progress=False
    )
    model = mlp()
    opt = _sgd(model)
    expected = []
    for i, lr in enumerate(res.lrs):
        x, y = loader[i % len(loader)]
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        loss = CE(model(x), y)
        expected.append(loss.item())
        loss.backward()
        opt.step()
    np.testing.assert_allclose(res.losses, expected, rtol=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_smoothed_is_the_bias_corrected_ema_of_raw(loader, beta):
    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, CE, smoothing=beta, num_steps=30, progress=False
    )
    np.testing.assert_allclose(res.ema_losses, _ema(res.losses, beta), rtol=1e-9)
    if beta == 0.0:
        assert res.ema_losses == res.losses


def test_validation_mode_records_validation_loss():
    """With a val_loader the curve is the mean loss on its first val_batches batches, in eval
    mode, after each step: checked against a reference loop on a dropout model."""
    torch.manual_seed(0)
    x, y = make_classification(n=64, seed=1)
    train, val = batches_of(x[:32], y[:32], 8), batches_of(x[32:], y[32:], 8)
    val[-1] = (val[-1][0] * 100.0, val[-1][1])  # a batch beyond val_batches: must not count

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))

    model = build()
    torch.manual_seed(3)
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        train,
        CE,
        val_loader=val,
        val_batches=2,
        start_lr=1e-3,
        end_lr=1.0,
        num_steps=16,
        progress=False,
    )

    ref, expected = build(), []
    opt = _sgd(ref)
    torch.manual_seed(3)
    for i, lr in enumerate(res.lrs):
        ref.train()
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        CE(ref(train[i % 4][0]), train[i % 4][1]).backward()
        opt.step()
        ref.eval()
        with torch.no_grad():
            expected.append(np.mean([CE(ref(vx), vy).item() for vx, vy in val[:2]]))
    np.testing.assert_allclose(res.losses, expected, rtol=1e-6)


def test_grad_clipping_clips(loader):
    clip = 0.05
    model = mlp()
    free = RecordingSGD(model.parameters(), lr=1e-3)
    lrpilot.find_lr(model, free, loader, CE, num_steps=20, progress=False)
    assert max(free.grad_norms) > 2 * clip  # clipping has something to do

    clipped = RecordingSGD(model.parameters(), lr=1e-3)
    lrpilot.find_lr(model, clipped, loader, CE, num_steps=20, grad_clip=clip, progress=False)
    assert max(clipped.grad_norms) <= clip * (1 + 1e-5)
    assert len(clipped.grad_norms) == 20


@pytest.mark.parametrize("k,b", [(2, 8), (4, 4)])
def test_gradient_accumulation_matches_one_big_batch(k, b):
    x, y = make_classification(n=96)
    model = mlp()
    big = lrpilot.find_lr(
        model,
        _sgd(model),
        batches_of(x, y, k * b),
        CE,
        start_lr=1e-4,
        end_lr=1.0,
        num_steps=20,
        progress=False,
    )
    small = lrpilot.find_lr(
        model,
        _sgd(model),
        batches_of(x, y, b),
        CE,
        start_lr=1e-4,
        end_lr=1.0,
        num_steps=20,
        accumulation_steps=k,
        progress=False,
    )
    assert small.lrs == big.lrs and small.num_steps_run == big.num_steps_run == 20
    np.testing.assert_allclose(small.losses, big.losses, rtol=1e-5)
    assert small.effective_batch_size == big.effective_batch_size == k * b


def test_amp_is_a_no_op_on_cpu(loader):
    model = mlp()
    plain = lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, progress=False)
    with pytest.warns(RuntimeWarning, match="amp=True needs a CUDA model"):
        amp = lrpilot.find_lr(
            model, _sgd(model), loader, CE, num_steps=20, amp=True, progress=False
        )
    assert amp.losses == plain.losses


# ----------------------------------------------------------------------------- the result


def test_longer_runs_get_smaller_or_equal_pilot_lr(loader):
    picks, others = [], []
    for steps in [None, 100, 1_000, 10_000, 100_000]:
        model = mlp()
        res = lrpilot.find_lr(
            model, _sgd(model), loader, CE, steps=steps, num_steps=40, progress=False
        )
        assert res.steps == steps and res.rule == "pilot" and res.lr == res.candidates["pilot"]
        picks.append(res.lr)
        others.append({k: v for k, v in res.candidates.items() if k != "pilot"})
    assert all(a >= b for a, b in itertools.pairwise(picks)), picks
    assert picks[-1] < picks[0]
    assert all(o == others[0] for o in others)  # only pilot reads the run's length


def test_rule_choice_and_custom_rule(loader):
    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, CE, rule="valley", num_steps=30, progress=False
    )
    assert res.rule == "valley" and res.lr == res.candidates["valley"]
    assert res.band[0] <= res.band[1]

    def halfway(lrs, losses):
        return math.sqrt(lrs[0] * lrs[-1])

    res = lrpilot.find_lr(
        model, _sgd(model), loader, CE, rule=halfway, num_steps=30, progress=False
    )
    assert res.rule == "halfway" and res.lr == pytest.approx(math.sqrt(res.lrs[0] * res.lrs[-1]))
    assert set(res.candidates) == {"pilot", "steepest", "valley", "minimum", "halfway"}


def test_to_dict_is_json(loader):
    model = mlp()
    res = lrpilot.find_lr(model, _sgd(model), loader, CE, steps=500, num_steps=20, progress=False)
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["lr"] == res.lr and d["lrs"] == res.lrs and d["losses"] == res.losses
    assert d["steps"] == 500 and d["effective_batch_size"] == 16
    assert set(d["candidates"]) == {"pilot", "steepest", "valley", "minimum"}


def test_plot_writes_one_png_and_nothing_else(loader, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(cwd)
    model = mlp()
    res = lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, progress=False)
    assert os.listdir(cwd) == []  # the sweep writes nothing

    res.plot(out / "lr.png")
    assert os.listdir(out) == ["lr.png"]
    assert (out / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(cwd) == []


def test_find_lr_for_task_sweeps_the_tasks_whole_recipe(data):
    """The task's run length, schedule, clipping, accumulation and seed all reach the sweep."""
    built: list[RecordingSGD] = []

    def optimizer_fn(params, lr):
        built.append(RecordingSGD(params, lr=lr))
        return built[-1]

    clip = 0.05
    task = lrpilot.Task(
        model_fn=mlp,
        optimizer_fn=optimizer_fn,
        train_loader=batches_of(*data, size=8),
        loss_fn=CE,
        steps=2_000,
        schedule="warmup(0.05)+cosine",
        grad_clip=clip,
        accumulation_steps=2,
    )
    res = lrpilot.find_lr_for_task(task, num_steps=20, seed=3, progress=False)
    assert res.steps == 2_000
    assert res.schedule == lrpilot.schedules.to_dict(task.schedule_for(2_000))
    assert res.effective_batch_size == 16  # two micro-batches of 8
    swept = built[-1]
    assert len(swept.grad_norms) == res.num_steps_run
    assert max(swept.grad_norms) <= clip * (1 + 1e-5)  # the swept model saw clipped gradients

    again = lrpilot.find_lr_for_task(task, num_steps=20, seed=3, progress=False)
    assert again.losses == res.losses and again.lr == res.lr  # same seed, same curve bitwise
    lrpilot.find_lr_for_task(task, num_steps=20, seed=3, grad_clip=None, progress=False)
    assert max(built[-1].grad_norms) > 2 * clip  # clipping had work to do


# ----------------------------------------------------------------------------- diagnostics

DIAG_LRS = np.logspace(-7, 1, 100)
DIAG_X = np.log10(DIAG_LRS)


def _diagnose(curve: np.ndarray, diverged: bool) -> list[str]:
    marks = lrpilot.suggest.landmarks(DIAG_LRS, curve)
    return lrpilot.finder.diagnose(marks, list(DIAG_LRS), diverged=diverged)


def test_diagnose_flags_a_curve_that_is_only_noise():
    noise = 2.0 + np.random.default_rng(0).normal(0, 0.3, DIAG_X.size)
    notes = _diagnose(noise, diverged=False)
    assert any("barely fell" in n for n in notes)


def test_diagnose_flags_a_sweep_that_never_saw_the_edge():
    falling = 2.0 - 1.5 / (1 + np.exp(-(DIAG_X + 1) / 0.3))  # still going down at lr 10
    notes = _diagnose(falling, diverged=False)
    assert any("still falling" in n and "end_lr" in n for n in notes)
    assert not any("barely fell" in n for n in notes)


def test_diagnose_is_quiet_on_a_clean_valley():
    valley = (
        2.0
        - 1.5 / (1 + np.exp(-(DIAG_X + 3) / 0.3))
        + np.where(DIAG_X > -1, 5 * (DIAG_X + 1) ** 2, 0)
    )
    assert _diagnose(valley, diverged=True) == []


def test_diagnose_says_when_the_pick_lies_nearer_the_prior_than_the_curve():
    """A valley whose drop is clear of pure noise (over 8 standard errors) but under the
    half-weight drop: the default rule's pick sits nearer the prior, and the note says so,
    only where the rule reads a prior (a prior and a half weight given)."""
    valley = (
        2.0
        - 1.0 / (1 + np.exp(-(DIAG_X + 3) / 0.3))
        + np.where(DIAG_X > -1, 5 * (DIAG_X + 1) ** 2, 0)
    )
    noisy = valley + np.random.default_rng(1).normal(0, 0.3, DIAG_X.size)  # 16 std errors
    marks = lrpilot.suggest.landmarks(DIAG_LRS, noisy)
    half = lrpilot.suggest.DEFAULT_CONSTANTS.evidence_half_weight_z
    assert lrpilot.finder.NOISE_LEVEL_Z <= marks.signal_to_noise < half

    def notes(**kw: float | None) -> list[str]:
        return lrpilot.finder.diagnose(marks, list(DIAG_LRS), diverged=True, **kw)

    nearer = [n for n in notes(prior_lr=1e-3, half_weight_z=half) if "nearer the prior" in n]
    assert len(nearer) == 1 and "lr 0.001" in nearer[0]
    assert not any("nearer the prior" in n for n in notes(prior_lr=None, half_weight_z=half))
    assert not any("nearer the prior" in n for n in notes(prior_lr=1e-3, half_weight_z=None))
    assert not any("barely fell" in n for n in notes(prior_lr=1e-3, half_weight_z=half))


def test_warnings_reach_the_result_and_the_caller(loader):
    model = mlp()
    with pytest.warns(RuntimeWarning, match="barely fell"):  # 1e-7 to 1e-4: nothing learnt
        res = lrpilot.find_lr(
            model, _sgd(model), loader, CE, end_lr=1e-4, num_steps=20, progress=False
        )
    assert any("barely fell" in n for n in res.warnings)
    assert res.to_dict()["warnings"] == res.warnings


def test_a_missing_run_length_is_pointed_out(loader):
    model = mlp()
    with pytest.warns(UserWarning, match="steps="):
        res = lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, progress=False)
    assert any("steps=N" in n for n in res.warnings)
    with_steps = lrpilot.find_lr(
        model, _sgd(model), loader, CE, num_steps=20, steps=2_000, progress=False
    )
    assert not any("steps=N" in n for n in with_steps.warnings)


def _noisy_regression(with_val: bool = True) -> lrpilot.Task:
    """Linear regression whose targets carry noise 4x the signal: every training batch of 16
    has its own noise, so the training loss jumps more from batch to batch than it falls over
    the sweep, while a fixed validation batch's loss moves only with the weights."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 4.0 * torch.randn(4096, 1, generator=g)
    shuffle = torch.Generator().manual_seed(1)
    val = DataLoader(TensorDataset(x[3584:], y[3584:]), batch_size=128)
    return lrpilot.Task(
        model_fn=lambda: nn.Linear(8, 1),
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr),
        train_loader=DataLoader(
            TensorDataset(x[:3584], y[:3584]), batch_size=16, shuffle=True, generator=shuffle
        ),
        val_loader=val if with_val else None,
        loss_fn=nn.functional.mse_loss,
        steps=200,
    )


NOISY_SWEEP = {"num_steps": 60, "start_lr": 1e-4, "end_lr": 10.0, "progress": False}


def test_a_training_loss_lost_in_its_noise_is_swept_again_on_validation_batches(recwarn):
    from lrpilot import suggest
    from lrpilot.finder import NOISE_LEVEL_Z

    kept = lrpilot.find_lr_for_task(_noisy_regression(), val_fallback=True, **NOISY_SWEEP)
    plain = lrpilot.find_lr_for_task(_noisy_regression(), **NOISY_SWEEP)  # off by default
    assert plain.loss_source == "train" and plain.cost_steps == plain.num_steps_run
    assert suggest.landmarks(plain.lrs, plain.losses).signal_to_noise < NOISE_LEVEL_Z
    assert kept.loss_source == "val"
    assert suggest.landmarks(kept.lrs, kept.losses).signal_to_noise > 10 * NOISE_LEVEL_Z
    assert kept.cost_steps == plain.num_steps_run + kept.num_steps_run  # both sweeps paid for
    assert kept.warnings[0].startswith("The training loss was too noisy to read")
    assert not any("barely fell" in w for w in kept.warnings)  # the kept curve is clear
    assert any("barely fell" in w for w in plain.warnings)
    assert any("val_fallback=True" in w for w in plain.warnings)  # the way out, named
    assert not any("val_fallback=True" in w for w in kept.warnings)
    # The second sweep started where the first did: the same curve as asking for it at once.
    task = _noisy_regression()
    direct = lrpilot.find_lr_for_task(task, val_loader=task.val_loader, **NOISY_SWEEP)
    assert direct.losses == kept.losses and direct.lr == kept.lr
    assert direct.cost_steps == direct.num_steps_run  # asked for: no first sweep
    messages = [str(w.message) for w in recwarn]
    assert sum(m.startswith("The training loss was too noisy") for m in messages) == 1


def test_without_validation_data_or_with_a_clear_curve_the_sweep_runs_once(data):
    noisy = lrpilot.find_lr_for_task(
        _noisy_regression(with_val=False), val_fallback=True, **NOISY_SWEEP
    )
    assert noisy.loss_source == "train" and noisy.cost_steps == noisy.num_steps_run
    assert not any("val_fallback=True" in w for w in noisy.warnings)  # no validation data
    x, y = data
    clear = lrpilot.Task(
        model_fn=mlp,
        optimizer_fn=_sgd,
        train_loader=batches_of(x, y, size=8),
        val_loader=batches_of(x, y, size=32),
        loss_fn=CE,
        steps=100,
    )
    res = lrpilot.find_lr_for_task(clear, num_steps=40, val_fallback=True, progress=False)
    assert res.loss_source == "train" and res.cost_steps == res.num_steps_run == 40


def test_only_the_kept_sweep_enters_the_history(tmp_path, monkeypatch):
    from lrpilot import history

    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    monkeypatch.delenv("LRPILOT_HISTORY", raising=False)
    kept = lrpilot.find_lr_for_task(_noisy_regression(), val_fallback=True, **NOISY_SWEEP)
    records = history.History().records(kind="range_test")
    assert len(records) == 1 and records[0].lr == kept.lr


def test_the_loss_source_and_cost_survive_a_round_trip():
    kept = lrpilot.find_lr_for_task(_noisy_regression(), val_fallback=True, **NOISY_SWEEP)
    again = lrpilot.LRFinderResult.from_dict(json.loads(json.dumps(kept.to_dict())))
    assert (again.loss_source, again.cost_steps) == ("val", kept.cost_steps)
    legacy = {k: v for k, v in kept.to_dict().items() if k not in ("loss_source", "cost_steps")}
    old = lrpilot.LRFinderResult.from_dict(legacy)  # written before these fields existed
    assert (old.loss_source, old.cost_steps) == ("train", old.num_steps_run)
