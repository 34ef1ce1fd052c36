"""A Task's recipe is checked where it is given: a model_fn that returns the same model twice
or a model instead of a function, an optimizer_fn that ignores its ``lr`` or takes the model
under another name, functions of the wrong shape and a device this machine lacks each raise
a ConfigError that says what to pass, instead of a raw Python error mid-run or, worse, runs
that silently warm-start from each other or train at an LR they do not report."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot import ConfigError


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    y = (x.sum(1) > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=g)


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))


def _sgd(params, lr):
    return torch.optim.SGD(params, lr=lr)


def _task(**overrides) -> lrpilot.Task:
    options = dict(
        model_fn=_net,
        optimizer_fn=_sgd,
        train_loader=_loader(),
        val_loader=_loader(),
        loss_fn=nn.functional.cross_entropy,
        steps=4,
    )
    options.update(overrides)
    return lrpilot.Task(**options)


# ---- model_fn returning the same model (#7) ------------------------------------------------


def test_model_fn_returning_the_same_instance_is_refused_on_the_second_run():
    model = _net()
    task = _task(model_fn=lambda: model)
    lrpilot.train(task, 0.1, progress=False)  # the first run is a fresh model: fine
    with pytest.raises(ConfigError, match="same Sequential instance") as info:
        lrpilot.train(task, 0.1, progress=False)
    assert "model_fn=Net" in str(info.value)


def test_model_fn_returning_the_same_instance_is_refused_by_impact():
    model = _net()
    with pytest.raises(ConfigError, match="fresh model each call"):
        lrpilot.impact(_task(model_fn=lambda: model), lrs=[0.1, 0.1], progress=False)


def test_fresh_models_train_bitwise_the_same_and_are_not_kept_alive():
    task = _task()
    a = lrpilot.train(task, 0.1, progress=False)
    b = lrpilot.train(task, 0.1, progress=False)
    assert a.losses == b.losses
    model, _ = task.build(0.1)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None  # the check holds weak references only


def test_a_model_instance_as_model_fn_says_to_pass_the_class():
    with pytest.raises(ConfigError, match="pass the class or a function, not an instance"):
        _task(model_fn=_net())


# ---- optimizer_fn ignoring its lr (#8) -----------------------------------------------------


def test_optimizer_fn_ignoring_its_lr_is_refused_by_train():
    task = _task(optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=0.1))
    with pytest.raises(ConfigError, match="must pass its lr argument on") as info:
        lrpilot.train(task, 1e-4, progress=False)
    assert "lr=0.0001" in str(info.value) and "0.1" in str(info.value)


def test_optimizer_fn_ignoring_its_lr_is_refused_by_find_lr_for_task_and_impact():
    task = _task(optimizer_fn=lambda p, lr: torch.optim.AdamW(p, lr=3e-4))
    with pytest.raises(ConfigError, match="must pass its lr argument on"):
        lrpilot.find_lr_for_task(task, num_steps=10, progress=False)
    with pytest.raises(ConfigError, match="must pass its lr argument on"):
        lrpilot.impact(task, lrs=[1e-2], progress=False)


def test_optimizer_fn_ignoring_its_lr_is_refused_by_search_and_tune():
    task = _task(optimizer_fn=lambda p, lr: torch.optim.SGD(p, lr=0.1))
    with pytest.raises(ConfigError, match="must pass its lr argument on"):
        lrpilot.search(task, method="grid", trials=2, progress=False)
    with pytest.raises(ConfigError, match="must pass its lr argument on"):
        lrpilot.tune(task, progress=False)


def test_optimizer_fn_with_lower_groups_passes_and_one_above_the_peak_does_not():
    def backbone_low(model, lr):
        return torch.optim.SGD(
            [{"params": model[0].parameters(), "lr": lr / 10}, {"params": model[2].parameters()}],
            lr=lr,
        )

    def head_high(model, lr):
        return torch.optim.SGD(
            [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 10 * lr}],
            lr=lr,
        )

    run = lrpilot.train(_task(optimizer_fn=backbone_low), 0.5, progress=False)
    assert run.lrs[0] == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="highest param-group LR of 5"):
        lrpilot.train(_task(optimizer_fn=head_high), 0.5, progress=False)


def test_a_tensor_lr_passed_on_is_accepted():
    task = _task(optimizer_fn=lambda p, lr: torch.optim.Adam(p, lr=torch.tensor(lr)))
    assert lrpilot.train(task, 1e-3, progress=False).lr == 1e-3


# ---- optimizer_fn, metric_fn and device misuse (#9) ----------------------------------------


def test_optimizer_fn_using_the_model_under_another_name_says_to_name_it_model():
    task = _task(optimizer_fn=lambda m, lr: torch.optim.SGD(m.parameters(), lr=lr))
    with pytest.raises(ConfigError, match="first parameter is named `model`") as info:
        lrpilot.train(task, 0.1, progress=False)
    assert isinstance(info.value.__cause__, AttributeError)
    renamed = _task(optimizer_fn=lambda model, lr: torch.optim.SGD(model.parameters(), lr=lr))
    assert lrpilot.train(renamed, 0.1, progress=False).steps_done == 4


def test_an_unrelated_attribute_error_in_optimizer_fn_is_not_rewritten():
    def broken(params, lr):
        return torch.optim.SGD(params, lr=lr).no_such_thing

    with pytest.raises(AttributeError, match="no_such_thing"):
        lrpilot.train(_task(optimizer_fn=broken), 0.1, progress=False)


@pytest.mark.parametrize(
    ("arg", "fn", "expected"),
    [
        ("metric_fn", lambda model: 0.5, r"metric_fn must be a function \(model, val_loader\)"),
        ("model_fn", lambda size: _net(), r"model_fn must be a function \(\) -> nn.Module"),
        ("optimizer_fn", lambda params: None, r"optimizer_fn must be a function \(params, lr\)"),
        ("loss_fn", lambda out: out.sum(), r"loss_fn must be a function \(outputs, targets\)"),
    ],
)
def test_functions_of_the_wrong_shape_are_refused_when_the_task_is_made(arg, fn, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        _task(**{arg: fn})
    assert "Change its parameters" in str(info.value)


def test_functions_with_defaults_or_varargs_and_classes_pass():
    def metric(model, loader, extra=1):
        return 0.0

    task = _task(model_fn=nn.Identity, metric_fn=metric, loss_fn=nn.CrossEntropyLoss())
    assert task.model_fn is nn.Identity
    _task(metric_fn=lambda *args: 0.0, optimizer_fn=lambda *a, **k: torch.optim.SGD(*a))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_a_cuda_device_without_cuda_is_refused_when_the_task_is_made():
    with pytest.raises(ConfigError, match="CUDA is not available") as info:
        _task(device="cuda")
    assert "device='cpu'" in str(info.value)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_index_past_the_visible_devices_is_refused():
    with pytest.raises(ConfigError, match="CUDA device"):
        _task(device=f"cuda:{torch.cuda.device_count()}")
