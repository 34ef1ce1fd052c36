"""Every misuse raises lrpilot's own exception with a message that says what to do, and leaves
the model and optimizer bitwise as they were."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

import lrpilot
from conftest import batches_of, make_classification

CE = nn.functional.cross_entropy


@pytest.fixture
def setup(state_of):
    """A stepped model and optimizer (with momentum buffers), their batches and a record."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = batches_of(*make_classification(n=48), size=16)
    CE(model(batches[0][0]), batches[0][1]).backward()
    opt.step()
    return model, opt, batches, state_of(model, opt)


def _raises(error, match, model, opt, loader, loss_fn=CE, **kwargs):
    kwargs.setdefault("num_steps", 20)
    with pytest.raises(error, match=match) as info:
        lrpilot.find_lr(model, opt, loader, loss_fn, progress=False, **kwargs)
    assert isinstance(info.value, lrpilot.LRPilotError)
    return info.value


def test_every_error_type_is_an_lrpilot_error():
    for error in (lrpilot.ConfigError, lrpilot.DataError, lrpilot.LossError, lrpilot.ModelError):
        assert issubclass(error, lrpilot.LRPilotError) and issubclass(error, ValueError)


@pytest.mark.parametrize("empty", [[], iter(())], ids=["list", "exhausted_iterator"])
def test_empty_loader(setup, empty):
    model, opt, _, record = setup
    _raises(lrpilot.DataError, "yielded no batch", model, opt, empty)
    record.assert_unchanged()


def test_empty_validation_loader(setup):
    model, opt, batches, record = setup
    _raises(
        lrpilot.DataError, "validation loader yielded no batch", model, opt, batches, val_loader=[]
    )
    record.assert_unchanged()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_loss_not_finite_at_the_first_step(setup, bad):
    model, opt, batches, record = setup
    err = _raises(
        lrpilot.LossError,
        "from the first step on",
        model,
        opt,
        batches,
        lambda out, y: CE(out, y) * bad,
    )
    assert "check the data" in str(err)
    record.assert_unchanged()


@pytest.mark.parametrize("start,end", [(1e-2, 1e-2), (1.0, 1e-3)])
def test_start_lr_not_below_end_lr(setup, start, end):
    model, opt, batches, record = setup
    _raises(
        lrpilot.ConfigError,
        "start_lr must be below end_lr",
        model,
        opt,
        batches,
        start_lr=start,
        end_lr=end,
    )
    record.assert_unchanged()


@pytest.mark.parametrize("start,end", [(0.0, 1.0), (-1e-3, 1.0), (1e-5, -1.0)])
def test_non_positive_bound(setup, start, end):
    model, opt, batches, record = setup
    _raises(
        lrpilot.ConfigError,
        r"(start|end)_lr must be a number in \(0, inf\)",
        model,
        opt,
        batches,
        start_lr=start,
        end_lr=end,
    )
    record.assert_unchanged()


def test_model_without_trainable_parameters(setup):
    model, opt, batches, record = setup
    for p in model.parameters():
        p.requires_grad_(False)
    _raises(lrpilot.ModelError, "no trainable parameters", model, opt, batches)
    for p in model.parameters():
        p.requires_grad_(True)
    record.assert_unchanged()


def test_non_scalar_loss(setup):
    model, opt, batches, record = setup
    err = _raises(
        lrpilot.LossError,
        "must be a scalar",
        model,
        opt,
        batches,
        nn.CrossEntropyLoss(reduction="none"),
    )
    assert "(16,)" in str(err) and "reduction='mean'" in str(err)
    record.assert_unchanged()


@pytest.mark.parametrize(
    ("loss_fn", "hint"),
    [
        (lambda out, y: None, "returns loss=None when its batch has no labels"),
        (lambda out, y: CE(out, y).item(), "not loss.item()"),
    ],
)
def test_a_loss_that_is_not_a_tensor_says_the_usual_cause(setup, loss_fn, hint):
    model, opt, batches, record = setup
    err = _raises(lrpilot.LossError, "must be a torch.Tensor", model, opt, batches, loss_fn)
    assert hint in str(err)
    record.assert_unchanged()


def test_detached_loss(setup):
    model, opt, batches, record = setup
    _raises(
        lrpilot.LossError,
        "does not require grad",
        model,
        opt,
        batches,
        lambda out, y: CE(out.detach(), y),
    )
    record.assert_unchanged()


def test_optimizer_of_another_model(setup):
    model, opt, batches, record = setup
    other = torch.optim.SGD(nn.Linear(8, 3).parameters(), lr=0.1)
    _raises(
        lrpilot.ModelError, "holds none of the model's trainable parameters", model, other, batches
    )
    record.assert_unchanged()


@pytest.mark.parametrize("num_steps", [0, 1, 7, "20", 20.5])
def test_too_few_sweep_steps(setup, num_steps):
    model, opt, batches, record = setup
    _raises(
        lrpilot.ConfigError,
        "num_steps must be a whole number >= 8",
        model,
        opt,
        batches,
        num_steps=num_steps,
    )
    record.assert_unchanged()


def test_sweep_that_diverges_too_early(setup):
    model, opt, batches, record = setup
    calls = []

    def loss_fn(out, y):
        calls.append(1)
        return CE(out, y) * (math.nan if len(calls) > 3 else 1.0)

    err = _raises(lrpilot.LossError, "diverged after 3 steps", model, opt, batches, loss_fn)
    assert "lower start_lr" in str(err)
    record.assert_unchanged()


def test_unknown_rule(setup):
    model, opt, batches, record = setup
    err = _raises(lrpilot.ConfigError, "Unknown rule 'steep'", model, opt, batches, rule="steep")
    assert "valley" in str(err)  # names the choices
    record.assert_unchanged()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "cosine"}, "mode must be one of 'exp', 'linear', got mode='cosine'"),
        ({"steps": 0}, "steps"),
        ({"accumulation_steps": 0}, "accumulation_steps"),
        ({"diverge_threshold": 1.0}, "diverge_threshold"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"val_loader": [], "val_batches": 0}, "val_batches"),
    ],
)
def test_other_bad_options(setup, kwargs, match):
    model, opt, batches, record = setup
    _raises(lrpilot.ConfigError, match, model, opt, batches, **kwargs)
    record.assert_unchanged()


@pytest.mark.parametrize(
    "bad_batch,match",
    [
        (lambda x, y: (x, y, y), "of length 3"),
        (lambda x, y: x, "got Tensor"),
        (lambda x, y: {"inputs": x, "targets": y}, "got dict"),
    ],
    ids=["triple", "bare_tensor", "dict"],
)
def test_bad_batch_shape(setup, bad_batch, match):
    model, opt, batches, record = setup
    loader = [bad_batch(x, y) for x, y in batches]
    err = _raises(lrpilot.DataError, match, model, opt, loader)
    assert "loss_step" in str(err)  # says how to handle other batch shapes
    record.assert_unchanged()


def test_missing_loss_fn(setup):
    model, opt, batches, record = setup
    with pytest.raises(lrpilot.ConfigError, match="loss_fn is required"):
        lrpilot.find_lr(model, opt, batches, progress=False)
    record.assert_unchanged()


# ----------------------------------------------------------------------------- wrong types


class _NotAnOptimizer:
    param_groups = "no"


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"grad_clip": -1.0}, lrpilot.ConfigError, r"grad_clip must be a number in \(0, inf\]"),
        ({"grad_clip": 0.0}, lrpilot.ConfigError, "grad_clip must be"),
        ({"grad_clip": math.nan}, lrpilot.ConfigError, "grad_clip=nan"),
        ({"diverge_threshold": math.nan}, lrpilot.ConfigError, "diverge_threshold=nan"),
        ({"end_lr": math.inf}, lrpilot.ConfigError, "end_lr must be a number in \\(0, inf\\)"),
        ({"start_lr": "1e-7"}, lrpilot.ConfigError, "start_lr must be a number"),
        ({"num_steps": True}, lrpilot.ConfigError, "num_steps must be a whole number"),
        ({"seed": -1}, lrpilot.ConfigError, "seed must be a whole number >= 0"),
        ({"amp": 1}, lrpilot.ConfigError, "amp must be True or False"),
        ({"rule": 3}, lrpilot.ConfigError, "rule must be one of"),
        ({"snapshot_device": "gpu"}, lrpilot.ConfigError, "snapshot_device must be a torch"),
        ({"loss_step": 5}, lrpilot.ConfigError, "loss_step must be a function"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_bad_arguments_are_named(setup, kwargs, error, match):
    model, opt, batches, record = setup
    _raises(error, match, model, opt, batches, **kwargs)
    record.assert_unchanged()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without CUDA")
def test_a_cuda_snapshot_without_cuda(setup):
    model, opt, batches, record = setup
    _raises(
        lrpilot.ConfigError,
        "snapshot_device='cuda' is not available here",
        model,
        opt,
        batches,
        snapshot_device="cuda",
    )
    record.assert_unchanged()


def test_a_list_of_optimizers(setup):
    model, opt, batches, record = setup
    _raises(
        lrpilot.ConfigError,
        "optimizer must be one optimizer, got a list of 2",
        model,
        [opt, opt],
        batches,
    )
    _raises(
        lrpilot.ConfigError,
        "optimizer must be a torch.optim.Optimizer",
        model,
        _NotAnOptimizer(),
        batches,
    )
    record.assert_unchanged()


@pytest.mark.parametrize("bad", [42, "batches.pt", None])
def test_a_loader_that_is_not_iterable(setup, bad):
    model, opt, _, record = setup
    _raises(
        lrpilot.ConfigError,
        re.escape(
            f"train_loader must be an iterable of batches "
            f"(a DataLoader, a list, ...), got train_loader={bad!r}"
        ),
        model,
        opt,
        bad,
    )
    record.assert_unchanged()


def test_a_model_on_the_meta_device():
    model = nn.Linear(8, 3).to("meta")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _raises(lrpilot.ModelError, "meta device", model, opt, [(torch.zeros(2, 8), torch.zeros(2))])


def test_an_optimizer_that_needs_a_closure(setup):
    model, _, batches, record = setup
    lbfgs = torch.optim.LBFGS(model.parameters())
    _raises(lrpilot.ModelError, "LBFGS.step\\(\\) needs a closure", model, lbfgs, batches)
    record.assert_unchanged()


def test_not_a_model(setup):
    _, opt, batches, _ = setup
    _raises(
        lrpilot.ConfigError,
        "model must be a torch.nn.Module, got a function",
        lambda x: x,
        opt,
        batches,
    )
