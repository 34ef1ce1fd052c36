"""The range test under careless and unlucky input: non-finite losses, loaders that hold
state, wrapped optimizers, custom rules that misbehave, in-place restore, saving results."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from conftest import RecordingSGD, make_classification, mlp

CE = nn.functional.cross_entropy


def _sgd(model: nn.Module, lr: float = 0.1, **kw) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr, **kw)


def _bad_at(index: int, value: float):
    """cross_entropy, times ``value`` at its ``index``-th call (0-based): one bad batch."""
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        loss = CE(out, y)
        return loss * value if len(calls) - 1 == index else loss

    return loss_fn


def _quiet(**kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("steps", 1_000)
    return kwargs


# ----------------------------------------------------------------------------- D1


@pytest.mark.parametrize("bad", [math.nan, math.inf])
@pytest.mark.parametrize("index", [29, 59])
def test_one_non_finite_loss_is_skipped_not_divergence(loader, index, bad):
    """The DEFECTS repro: one NaN (or inf) at step 30 or 60 of 100. The pick stays within the
    clean sweep's band, the step is skipped (weights untouched), the LR moves on, and the
    result says so."""
    model = mlp()
    clean = lrpilot.find_lr(model, _sgd(model), loader, CE, **_quiet())
    opt = RecordingSGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match="1 non-finite loss skipped at lr") as record:
        res = lrpilot.find_lr(model, opt, loader, _bad_at(index, bad), **_quiet())

    assert not res.diverged and res.num_steps_run == 99
    assert clean.band[0] <= res.lr <= clean.band[1]
    assert res.skipped_lrs == [clean.lrs[index]]
    assert res.lrs == clean.lrs[:index] + clean.lrs[index + 1 :]  # the LR advanced past it
    assert [lrs[0] for lrs in opt.group_lrs] == res.lrs  # no optimizer step at the bad one
    assert all(math.isfinite(v) for v in res.losses + res.ema_losses)
    assert any(f"{clean.lrs[index]:.3g}" in n for n in res.warnings)
    assert all(w.filename == __file__ for w in record)  # points at the caller


def test_a_non_finite_gradient_norm_with_a_finite_loss_is_skipped(loader):
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        loss = CE(out, y)
        if len(calls) == 40:  # finite value, NaN gradient: 0 * d sqrt(x)/dx at x = 0
            loss = loss + 0.0 * torch.sqrt(out.sum() * 0.0)
        return loss

    model = mlp()
    opt = RecordingSGD(model.parameters(), lr=0.1)
    res = lrpilot.find_lr(model, opt, loader, loss_fn, **_quiet())
    assert len(res.skipped_lrs) == 1 and res.num_steps_run == 99
    assert any("non-finite gradient norm skipped" in n for n in res.warnings)
    assert all(math.isfinite(n) for n in opt.grad_norms)  # the optimizer never saw it


def test_a_streak_of_non_finite_losses_is_divergence(loader):
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        return CE(out, y) * (math.nan if len(calls) > 50 else 1.0)

    model = mlp()
    res = lrpilot.find_lr(model, _sgd(model), loader, loss_fn, **_quiet())
    assert res.diverged and res.num_steps_run == 50 and res.skipped_lrs == []
    assert not any("skipped" in n for n in res.warnings)


def test_diverge_threshold_none_turns_the_growth_rule_off(loader):
    script = [2.0 - 0.15 * i for i in range(10)] + [0.5 * 1.6**i for i in range(1, 21)]
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        return (out * 0.0).sum() + script[len(calls) - 1]

    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, loss_fn, num_steps=30, diverge_threshold=None, **_quiet()
    )
    assert not res.diverged and res.num_steps_run == 30


# ----------------------------------------------------------------------------- D4, D5


class NoisyDataset(torch.utils.data.Dataset):
    """Worker-side augmentation: every item gets noise from the worker's torch RNG."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i] + 0.1 * torch.randn(self.x.shape[1]), self.y[i]


def _persistent_loader(data) -> DataLoader:
    return DataLoader(
        NoisyDataset(*data),
        batch_size=8,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        generator=torch.Generator().manual_seed(0),
    )


def _same_batches(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b, strict=True)
    )


def test_persistent_worker_loader_comes_back_unchanged(data, state_of):
    untouched = list(_persistent_loader(data))  # the first epoch of a loader no sweep saw
    loader = _persistent_loader(data)
    model = mlp()
    opt = _sgd(model)
    record = state_of(model, opt)
    first = lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())
    second = lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())
    record.assert_unchanged()
    assert first.losses == second.losses  # two calls in a row agree
    assert loader._iterator is None  # the sweep's workers are gone
    assert _same_batches(list(loader), untouched)  # the real run sees the same data


class LoaderWrapper:
    """A framework-style loader: the DataLoader one attribute (or two) down."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __iter__(self):
        return iter(self.inner)


@pytest.mark.parametrize("depth", [1, 2])
def test_generators_inside_loader_wrappers_are_given_back(data, depth):
    def make():
        inner = DataLoader(
            TensorDataset(*data),
            batch_size=8,
            shuffle=True,
            generator=torch.Generator().manual_seed(7),
        )
        wrapped = inner
        for _ in range(depth):
            wrapped = LoaderWrapper(wrapped)
        return wrapped

    untouched = list(make())
    loader = make()
    model = mlp()
    lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=12, **_quiet())
    assert _same_batches(list(loader), untouched)


# ----------------------------------------------------------------------------- D9


def test_restore_is_in_place(loader):
    """The same momentum buffers, param-group dicts and tensor ``lr`` objects come back,
    holding the old values, and the buffers keep tracking the optimizer's steps."""
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.25), momentum=0.9)
    x, y = loader[0]
    CE(model(x), y).backward()
    opt.step()
    param = next(iter(model.parameters()))
    buffer = opt.state[param]["momentum_buffer"]
    saved = buffer.clone()
    group, lr = opt.param_groups[0], opt.param_groups[0]["lr"]

    lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())

    assert opt.param_groups[0] is group and group["lr"] is lr and float(lr) == 0.25
    assert opt.state[param]["momentum_buffer"] is buffer and torch.equal(buffer, saved)
    opt.step()
    assert not torch.equal(buffer, saved)  # still the live buffer


def test_state_the_sweep_created_is_removed(loader, state_of):
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    record = state_of(model, opt)
    lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())
    assert len(opt.state) == 0
    record.assert_unchanged()


# ----------------------------------------------------------------------------- D8


def test_zero_lrs_take_their_ratios_from_initial_lr(loader):
    """Right after a scheduler's warmup has set every LR to 0, torch's initial_lr holds the
    groups' ratios."""
    model = mlp()
    opt = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.01}, {"params": model[2].parameters()}],
        lr=0.1,
    )
    torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.0]
    res = lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())
    assert res.group_ratios == pytest.approx([0.1, 1.0])


def test_zero_lrs_without_initial_lr_warn_that_ratios_are_unknown(loader):
    model = mlp()
    opt = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=0.0
    )
    with pytest.warns(RuntimeWarning, match="ratios are unknown"):
        res = lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())
    assert res.group_ratios == [1.0, 1.0]


# ----------------------------------------------------------------------------- D23


@pytest.mark.parametrize("mode", ["exp", "linear"])
@pytest.mark.parametrize("end_lr", [1.0, 10.0])
def test_last_lr_never_overshoots_end_lr(loader, end_lr, mode):
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        loader,
        CE,
        start_lr=1e-8,
        end_lr=end_lr,
        mode=mode,
        diverge_threshold=None,
        **_quiet(),
    )
    assert res.lrs[-1] == end_lr and max(res.lrs) <= end_lr
    assert all(a < b for a, b in zip(res.lrs, res.lrs[1:], strict=False))


# ----------------------------------------------------------------------------- D6


@pytest.mark.parametrize("value", [math.nan, None, -1.0, 0.0, math.inf, "0.01"], ids=repr)
def test_a_custom_rule_returning_no_lr_keeps_the_curve(loader, value):
    model = mlp()
    with pytest.raises(lrpilot.ConfigError, match="must return a positive, finite LR") as info:
        lrpilot.find_lr(
            model,
            _sgd(model),
            loader,
            CE,
            rule=lambda lrs, losses: value,
            num_steps=20,
            **_quiet(),
        )
    kept = info.value.result
    assert kept.rule == "pilot" and kept.num_steps_run == 20 and len(kept.losses) == 20
    assert ".result" in str(info.value)


def test_a_custom_rule_that_raises_keeps_the_curve(loader):
    def broken(lrs, losses):
        raise ZeroDivisionError("oops")

    model = mlp()
    with pytest.raises(lrpilot.ConfigError, match="oops") as info:
        lrpilot.find_lr(model, _sgd(model), loader, CE, rule=broken, num_steps=20, **_quiet())
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert len(info.value.result.lrs) == 20


def test_a_custom_rule_may_return_a_numpy_or_tensor_scalar(loader):
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        loader,
        CE,
        num_steps=20,
        rule=lambda lrs, losses: np.float32(0.01),
        **_quiet(),
    )
    assert res.lr == pytest.approx(0.01) and type(res.lr) is float


# ----------------------------------------------------------------------------- U2


class WrappedOptimizer:
    """What Accelerate's AcceleratedOptimizer looks like to find_lr."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def step(self, closure=None):
        return self.optimizer.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return self.optimizer.state_dict()


def _flat_loss():
    rng = np.random.default_rng(0)
    return lambda out, y: (out * 0.0).sum() + 1.0 + 0.01 * float(rng.normal())


def test_a_wrapped_adam_keeps_its_prior_on_a_flat_curve(loader, state_of):
    model = mlp()
    inner = torch.optim.AdamW(model.parameters(), lr=1e-3)
    record = state_of(model, inner)
    res = lrpilot.find_lr(model, WrappedOptimizer(inner), loader, _flat_loss(), **_quiet())
    record.assert_unchanged()
    assert 5e-4 < res.lr < 5e-3 and res.band[1] > res.band[0]
    assert any("leans on the prior" in n and "0.001" in n for n in res.warnings)
    assert not any("still falling" in n for n in res.warnings)  # noise has no trend


@pytest.mark.parametrize("wrap", [False, True])
def test_no_pick_is_the_sweeps_first_lr(loader, wrap):
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    res = lrpilot.find_lr(
        model,
        WrappedOptimizer(opt) if wrap else opt,
        loader,
        _flat_loss(),
        rule=lambda lrs, losses: lrs[0],
        **_quiet(),
    )
    assert res.lr == pytest.approx(1e-3) and res.lr > res.lrs[0]
    assert res.band[0] <= res.lr <= res.band[1] and res.band[1] > res.band[0]
    assert any("picked the sweep's first LR" in n and "prior" in n for n in res.warnings)

    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, _flat_loss(), rule=lambda lrs, losses: lrs[0], **_quiet()
    )
    assert res.lr == pytest.approx(1e-2)  # SGD's prior
    assert any("picked the sweep's first LR" in n for n in res.warnings)


def test_without_a_prior_a_first_lr_pick_falls_back_on_the_floor_the_default_rule_reads(loader):
    """Adagrad has no family prior: a rule that picked the sweep's first LR falls back on the
    centre of the valley's floor, read at the default rule's floor fraction (the one
    ``pilot`` anchors on), not the narrow floor of :func:`suggest.landmarks`' default."""
    model = mlp()
    opt = torch.optim.Adagrad(model.parameters(), lr=0.01)
    res = lrpilot.find_lr(
        model, opt, loader, nn.CrossEntropyLoss(), rule=lambda lrs, losses: lrs[0], **_quiet()
    )
    fraction = lrpilot.suggest.DEFAULT_CONSTANTS.floor_fraction
    wide = lrpilot.suggest.landmarks(res.lrs, res.losses, floor_fraction=fraction)
    narrow = lrpilot.suggest.landmarks(res.lrs, res.losses)
    assert any("the centre of the valley's floor" in n for n in res.warnings)
    assert res.lr == pytest.approx(wide.floor_centre, rel=1e-9)
    assert res.lr != pytest.approx(narrow.floor_centre, rel=0.05)


# ----------------------------------------------------------------------------- U4


def test_diagnostics_agree_with_each_other():
    lrs = np.logspace(-7, 1, 30)
    noise = 2.0 + np.random.default_rng(0).normal(0, 0.3, lrs.size)
    marks = lrpilot.suggest.landmarks(lrs, noise)
    sgd = lrpilot.finder.diagnose(marks, list(lrs), diverged=True)
    assert any("barely fell" in n for n in sgd)
    assert not any("prior" in n and "leans" in n for n in sgd)  # no prior given
    assert not any("end_lr" in n for n in sgd)  # it diverged: end_lr was high enough
    adam = lrpilot.finder.diagnose(marks, list(lrs), diverged=False, prior_lr=1e-3)
    assert any("leans on the prior" in n and "Raise end_lr" in n for n in adam)


def test_each_warning_is_emitted_once_and_recorded(loader):
    model = mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lrpilot.find_lr(
            model, _sgd(model), loader, CE, end_lr=1e-4, num_steps=20, progress=False
        )
    messages = [str(w.message) for w in caught]
    assert sorted(messages) == sorted(res.warnings) and len(set(messages)) == len(messages)
    assert all(w.filename == __file__ for w in caught)


# ----------------------------------------------------------------------------- U5 seeds


def _dropout_sweep(seed: int | None):
    x, y = make_classification(n=64)
    dl = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    return lrpilot.find_lr(model, _sgd(model), dl, CE, num_steps=20, seed=seed, **_quiet())


def test_the_same_seed_gives_the_same_curve_bitwise():
    a, b = _dropout_sweep(3), _dropout_sweep(3)
    assert a.losses == b.losses and a.lrs == b.lrs and a.lr == b.lr
    assert _dropout_sweep(4).losses != a.losses


def test_a_seeded_sweep_leaves_the_callers_rngs_alone():
    x, y = make_classification(n=64)
    dl = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 3), nn.Dropout(0.3))
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    lrpilot.find_lr(model, _sgd(model), dl, CE, num_steps=12, seed=5, **_quiet())
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


# ----------------------------------------------------------------------------- U6, U7


def test_repr_is_short(loader):
    model = mlp()
    res = lrpilot.find_lr(model, _sgd(model), loader, CE, **_quiet())
    text = repr(res)
    assert len(text) < 160 and "points=" in text and "rule='pilot'" in text
    assert f"{res.lrs[1]}" not in text


def test_progress_in_a_notebook_is_plain_text(loader, monkeypatch, capsys):
    import rich.progress

    def no_rich(*args, **kwargs):
        raise AssertionError("rich's live display asks a notebook for ipywidgets")

    import lrpilot._progress

    monkeypatch.setattr(lrpilot._progress, "in_notebook", lambda: True)
    monkeypatch.setattr(rich.progress, "Progress", no_rich)
    model = mlp()
    lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, steps=1_000)
    assert "range test 20/20" in capsys.readouterr().err
    task = lrpilot.Task(
        model_fn=mlp,
        optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=lr),
        train_loader=loader,
        loss_fn=CE,
        steps=10,
    )
    lrpilot.train(task, 0.1)  # the training loop's progress too
    assert "train 10/10" in capsys.readouterr().err


_SWEEP_SCRIPT = """
import torch, lrpilot
from torch import nn
torch.manual_seed(0)
x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
model = nn.Linear(4, 2)
res = lrpilot.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), [(x, y)] * 4,
                      nn.functional.cross_entropy, num_steps=20, steps=100)
print("lr", res.lr)
"""


@pytest.mark.parametrize("terminal", [False, True])
def test_the_progress_bar_keeps_off_stdout_and_out_of_logs(terminal, tmp_path):
    """stdout carries only the program's own output (``--json``, a log); the bar goes to
    stderr in a terminal (rich's ``FORCE_COLOR`` stands in for one) and is not drawn where
    stderr is a file, where a live display leaves only blank lines."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env |= {"LRPILOT_HISTORY": "0", "PYTHONWARNINGS": "ignore"}
    if terminal:
        env["FORCE_COLOR"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _SWEEP_SCRIPT], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("lr ") and done.stdout.count("\n") == 1
    assert ("range test" in done.stderr) is terminal


def _equal_fields(a: lrpilot.LRFinderResult, b: lrpilot.LRFinderResult) -> None:
    for f in dataclasses.fields(lrpilot.LRFinderResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert type(x) is type(y) and x == y, f.name


def test_save_and_load_round_trip_every_field(loader, tmp_path):
    model = mlp()
    res = lrpilot.find_lr(
        model,
        _sgd(model),
        loader,
        _bad_at(30, math.nan),
        schedule="warmup(0.05)+cosine",
        **_quiet(),
    )
    for f in dataclasses.fields(res):  # every field holds something worth round-tripping
        if f.name != "assumed":  # steps and schedule were given: nothing assumed
            assert getattr(res, f.name) not in (None, [], {}, ""), f.name
    assert res.assumed == {}

    _equal_fields(lrpilot.LRFinderResult.from_dict(res.to_dict()), res)
    path = res.save(tmp_path / "result.json")
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left
    data = json.loads(path.read_text())
    assert data["version"] == 1 and set(data) == {"version"} | {
        f.name for f in dataclasses.fields(res)
    }
    _equal_fields(lrpilot.LRFinderResult.load(path), res)


def test_from_dict_reads_old_files_and_refuses_unknown_ones(loader):
    model = mlp()
    data = lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=12, **_quiet()).to_dict()
    old = {k: v for k, v in data.items() if k != "version"}
    old["smoothed_losses"] = old.pop("ema_losses")
    assert lrpilot.LRFinderResult.from_dict(old).ema_losses == data["ema_losses"]
    with pytest.raises(lrpilot.ConfigError, match="version 2"):
        lrpilot.LRFinderResult.from_dict({**data, "version": 2})
    with pytest.raises(lrpilot.ConfigError, match="unknown keys \\['extra'\\]"):
        lrpilot.LRFinderResult.from_dict({**data, "extra": 1})
    with pytest.raises(lrpilot.ConfigError, match="missing keys \\['lr'\\]"):
        lrpilot.LRFinderResult.from_dict({k: v for k, v in data.items() if k != "lr"})


# ----------------------------------------------------------------------------- D7, U3


def _result_for(optimizer_groups: int, loader) -> lrpilot.LRFinderResult:
    model = mlp()
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.01}]
    opt = torch.optim.SGD(
        groups[:optimizer_groups] if optimizer_groups > 1 else model.parameters(), lr=0.1
    )
    return lrpilot.find_lr(model, opt, loader, CE, num_steps=12, **_quiet())


@pytest.mark.parametrize("lr", [-1.0, 0.0, math.nan, math.inf, "0.1", True])
def test_apply_checks_the_lr(loader, lr):
    res = _result_for(1, loader)
    model = mlp()
    opt = _sgd(model)
    with pytest.raises(lrpilot.ConfigError, match="lr must be a number in \\(0, inf\\)"):
        res.apply(opt, lr=lr)
    assert opt.param_groups[0]["lr"] == 0.1


def test_apply_checks_the_number_of_groups(loader):
    res = _result_for(1, loader)
    model = mlp()
    two = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[2].parameters()}], lr=0.1
    )
    with pytest.raises(lrpilot.ConfigError, match="2 param groups but the sweep measured 1"):
        res.apply(two)


def test_apply_reaches_a_torch_scheduler_built_before(loader):
    res = _result_for(1, loader)
    model = mlp()
    opt = _sgd(model, lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    res.apply(opt, lr=0.02, scheduler=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)  # the new peak, where it is now
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)  # not 0.025: no old LR back
    assert sched.get_last_lr() == pytest.approx([0.005])


def test_apply_calls_set_peak_lr_where_a_scheduler_has_it(loader):
    res = _result_for(1, loader)

    class Peaked:
        def set_peak_lr(self, lrs):
            self.peaks = lrs

    model = mlp()
    sched = Peaked()
    res.apply(_sgd(model), lr=0.03, scheduler=sched)
    assert sched.peaks == pytest.approx([0.03])
    with pytest.raises(lrpilot.ConfigError, match="scheduler must be"):
        res.apply(_sgd(model), scheduler=object())


# ----------------------------------------------------------------------------- P9: AMP


class FakeScaler:
    """A GradScaler that skips the optimizer steps numbered in ``skips`` (1-based, counting
    every ``step`` call) and halves its scale after each, as the real one does on inf grads."""

    def __init__(self, skips) -> None:
        self.skips = skips
        self.calls = 0
        self.value = 2.0**16
        self.skipped = False

    def scale(self, loss):
        return loss

    def unscale_(self, optimizer) -> None:
        pass

    def get_scale(self) -> float:
        return self.value

    def step(self, optimizer) -> None:
        self.calls += 1
        self.skipped = self.skips(self.calls)
        if not self.skipped:
            optimizer.step()

    def update(self) -> None:
        if self.skipped:
            self.value /= 2


def _with_scaler(monkeypatch, skips) -> FakeScaler:
    scaler = FakeScaler(skips)
    monkeypatch.setattr(
        lrpilot.finder, "_grad_scaler", lambda amp, device, notes: scaler if amp else None
    )
    return scaler


def test_steps_the_scaler_skips_are_retried_at_the_same_lr(loader, monkeypatch):
    scaler = _with_scaler(monkeypatch, lambda call: call in (3, 4, 10))
    model = mlp()
    opt = RecordingSGD(model.parameters(), lr=0.1)
    res = lrpilot.find_lr(model, opt, loader, CE, num_steps=20, amp=True, **_quiet())
    model = mlp()
    plain = lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, **_quiet())
    assert scaler.calls == 23 and res.num_steps_run == 20 and not res.diverged
    assert res.lrs == plain.lrs and [g[0] for g in opt.group_lrs] == res.lrs
    assert res.skipped_lrs == []  # the scaler's skips are not non-finite losses


def test_a_scaler_that_keeps_skipping_is_divergence(loader, monkeypatch):
    _with_scaler(monkeypatch, lambda call: call > 10)
    model = mlp()
    res = lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, amp=True, **_quiet())
    assert res.diverged and res.num_steps_run == 10

    _with_scaler(monkeypatch, lambda call: True)
    with pytest.raises(lrpilot.LossError, match="grad scaler skipped 20 steps in a row"):
        lrpilot.find_lr(model, _sgd(model), loader, CE, num_steps=20, amp=True, **_quiet())


def test_a_non_finite_loss_under_amp_never_reaches_the_scaler(loader, monkeypatch):
    scaler = _with_scaler(monkeypatch, lambda call: False)
    model = mlp()
    res = lrpilot.find_lr(
        model, _sgd(model), loader, _bad_at(5, math.inf), num_steps=20, amp=True, **_quiet()
    )
    assert scaler.calls == 19 and len(res.skipped_lrs) == 1 and scaler.value == 2.0**16


# ----------------------------------------------------------------------------- D20, D24


def test_a_one_shot_iterator_shorter_than_the_sweep(loader):
    model = mlp()
    with pytest.raises(lrpilot.DataError, match="one-shot iterator: it yielded 4 batches"):
        lrpilot.find_lr(model, _sgd(model), (b for b in loader), CE, num_steps=12, **_quiet())


def test_an_integer_loss(loader):
    model = mlp()
    with pytest.raises(lrpilot.LossError, match="floating-point tensor, got dtype torch.int64"):
        lrpilot.find_lr(
            model, _sgd(model), loader, lambda out, y: torch.tensor(3), num_steps=12, **_quiet()
        )


def test_two_fresh_persistent_loaders_agree(data):
    """What the persistent-worker test compares against is deterministic."""
    assert _same_batches(list(_persistent_loader(data)), list(_persistent_loader(data)))


def test_a_sweep_that_starts_too_hot_to_learn_falls_back_below_it_and_says_lower_start_lr():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g)
    y = (x @ torch.randn(16, 4, generator=g)).argmax(1)
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = lrpilot.find_lr(
        model, optimizer, loader, CE,
        start_lr=1.0, end_lr=1e4, num_steps=30, steps=100, progress=False,
    )  # fmt: skip
    assert result.diverged
    # not the flat start's "valley" above 1, where SGD sits at chance: SGD's prior, below it
    assert result.lr == pytest.approx(0.01) and result.band == (pytest.approx(0.01), 1.0)
    assert any("lower start_lr" in w for w in result.warnings)
