"""The Task: one training recipe, whole, whose peak learning rate is the free variable.

Everything that trains (the range test of a task file, :func:`lrpilot.train`, search, the race)
reads the recipe from here: model, optimizer, data, loss, metric, the run's length and
schedule, gradient clipping, accumulation, mixed precision and device. The schedule is kept as
the user gave it (a text spec, a Schedule, or a function of the run length) and resolved for
whatever length is asked, so a short race runs the same recipe compressed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import numbers
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import _validate as check
from ._rng import generators_of, isolated_rng
from ._step import LossStep, default_loss_step, evaluate_loss
from .advice import optimizer_family
from .errors import ConfigError

__all__ = ["Task", "load_task_file", "ScheduleLike"]

ScheduleLike = Any
"""A text spec (``"warmup(0.05)+cosine"``), a schedule (``step -> multiplier``), or a
function ``(steps) -> schedule`` of the run's length; ``None`` is a constant LR."""


@dataclass
class Task:
    """One training recipe whose peak learning rate is what lrpilot chooses.

    Args:
        model_fn: ``() -> nn.Module``, a fresh model each call (the class, or a function that
            builds it; a model it returned before is refused: runs would warm-start).
        optimizer_fn: ``(params, lr) -> torch.optim.Optimizer``; or ``(model, lr)`` when its
            first parameter is named ``model``, to build named param groups (a backbone at a
            tenth of the head's LR, say). Its highest param-group LR must be ``lr``.
        train_loader: iterable of training batches (re-iterable: it is cycled).
        val_loader: iterable of validation batches, or ``None``.
        loss_fn: ``(outputs, targets) -> scalar loss``, batches being ``(inputs, targets)``.
        metric_fn: ``(model, val_loader) -> float``, higher is better; by default minus the
            mean validation loss.
        steps: the training budget in optimizer steps: the length of the run the LR is for.
        schedule: the run's schedule: a text spec, a schedule, or ``(steps) -> schedule``;
            resolved for any run length by :meth:`schedule_for`. ``None``: a constant LR.
        loss_step: optional ``(model, batch) -> loss`` for batches that are not
            ``(inputs, targets)`` (dict batches of Hugging Face models, for example).
        grad_clip: clip the global gradient norm to this before every step (``None``: off).
        accumulation_steps: micro-batches per optimizer step.
        amp: mixed precision (autocast and a gradient scaler) when the device is CUDA.
        device: where the model and batches go (``None``: where ``model_fn`` puts the model).
        eval_every: also measure the validation metric every this many steps in a run.
        name: a short name for reports and the history.
    """

    model_fn: Callable[[], nn.Module]
    optimizer_fn: Callable[[Any, float], torch.optim.Optimizer]
    train_loader: Iterable[Any]
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    val_loader: Iterable[Any] | None = None
    metric_fn: Callable[[nn.Module, Iterable[Any]], float] | None = None
    steps: int | None = None
    schedule: ScheduleLike = None
    loss_step: LossStep | None = None
    grad_clip: float | None = None
    accumulation_steps: int = 1
    amp: bool = False
    device: str | torch.device | None = None
    eval_every: int | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.loss_fn is None and self.loss_step is None:
            raise ConfigError("Task needs loss_fn (outputs, targets) -> loss, or loss_step.")
        _check_functions(self)
        if isinstance(self.train_loader, (str, bytes)) or not hasattr(
            self.train_loader, "__iter__"
        ):
            raise check.ArgError("train_loader", self.train_loader, "an iterable of batches")
        if self.steps is not None:
            self.steps = check.whole("steps", self.steps, 1)
        self.grad_clip = check.optional_real("grad_clip", self.grad_clip, 0.0, open_low=True)
        self.accumulation_steps = check.whole("accumulation_steps", self.accumulation_steps, 1)
        self.amp = check.boolean("amp", self.amp)
        if self.eval_every is not None:
            self.eval_every = check.whole("eval_every", self.eval_every, 1)
        if self.device is not None:
            self.device = _as_device(self.device)
        if isinstance(self.schedule, str):
            self.schedule_for(self.steps or 1000)  # a malformed spec fails here, not mid-run

    def build(self, lr: float = 1e-3) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A fresh model (on the task's device) and its optimizer at peak ``lr``."""
        model = self.model_fn()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model_fn must return an nn.Module, got {type(model).__name__}.")
        _check_fresh(model)
        if self.device is not None:
            model = model.to(self.device)
        return model, self.make_optimizer(model, lr)

    def make_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        """The recipe's optimizer for ``model`` at peak ``lr``.

        Every path that builds a task's optimizer (training, the range test, search, impact,
        tune) comes here, so the checks that the recipe obeys the LR it is given live here:
        an optimizer_fn that ignores ``lr`` would make every result's ``lr`` a fiction.
        """
        takes_model = _first_parameter(self.optimizer_fn) == "model"
        given = model if takes_model else model.parameters()
        try:
            optimizer = self.optimizer_fn(given, lr)
        except AttributeError as err:
            if not takes_model and getattr(err, "obj", None) is given:
                raise _took_params_for_model(err) from err
            raise
        if not isinstance(optimizer, torch.optim.Optimizer):
            got = type(optimizer).__name__
            raise ConfigError(f"optimizer_fn must return a torch.optim.Optimizer, got {got}.")
        _check_peak_lr(optimizer, lr)
        return optimizer

    def schedule_for(self, steps: int | None = None) -> Any:
        """The schedule resolved for a run of ``steps`` steps (default: the task's own).

        A text spec is parsed for that length; a function of the run length is called with
        it; a schedule written for the task's own ``steps`` is stretched in time to fit, so a
        race of 300 steps runs the whole shape of a 3,000-step recipe.
        """
        from . import schedules

        target = steps if steps is not None else self.steps
        length = None if target is None else check.whole("steps", target, 1)
        spec = self.schedule
        if spec is None:
            return schedules.constant()
        if isinstance(spec, str):
            return schedules.parse_schedule(spec, total_steps=length)
        if not callable(spec):
            raise check.ArgError(
                "schedule", spec, "a text spec, a schedule, or a function (steps) -> schedule"
            )
        if isinstance(spec, schedules.BaseSchedule):
            return _stretch(spec, self.steps, length)
        probe = spec(length if length is not None else 1)
        if callable(probe):  # a function of the run's length
            return probe
        return _stretch(spec, self.steps, length)

    def metric(self, model: nn.Module) -> float:
        """The task's validation metric (higher is better) for ``model``, measured in eval
        mode without gradients; the model's train/eval flags are put back afterwards."""
        if self.val_loader is None:
            raise ConfigError("Task.metric needs a val_loader.")
        if self.metric_fn is None:
            step = self.loss_step or default_loss_step(self.loss_fn)
            return -evaluate_loss(model, self.val_loader, step)
        flags = [m.training for m in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                return _metric_value(self.metric_fn(model, self.val_loader))
        finally:
            for module, flag in zip(model.modules(), flags, strict=True):
                module.training = flag

    def fingerprint(
        self, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None
    ) -> dict[str, Any]:
        """What identifies this recipe, as plain data, the same in every process.

        Model kind and size (class, parameter count, trainable count), optimizer family and
        hyperparameters, batch size and dataset size when known, steps, schedule, clipping,
        accumulation and AMP; ``"id"`` is a hash of the rest. Builds one model with the RNGs
        put back afterwards, so calling it changes nothing; a run that has built its model and
        optimizer already passes them instead.
        """
        if model is None or optimizer is None:
            with isolated_rng(generators_of([self.train_loader])):
                torch.manual_seed(0)
                model = self.model_fn()
                optimizer = self.make_optimizer(model, 1.0)
        data = {
            **recipe_of(model, optimizer, self.train_loader),
            "steps": self.steps,
            "schedule": _describe_schedule(self),
            "grad_clip": self.grad_clip,
            "accumulation_steps": self.accumulation_steps,
            "amp": self.amp,
        }
        text = json.dumps(data, sort_keys=True, default=str)
        data["id"] = hashlib.sha256(text.encode()).hexdigest()[:16]
        # derived, so left out of the id (a recipe's id stays what earlier versions stored)
        data["optimizer_family"] = optimizer_family(optimizer)
        return data


def recipe_of(model: nn.Module, optimizer: Any, loader: Any) -> dict[str, Any]:
    """What live objects say of a recipe, as plain data: the model's class and size, the
    optimizer's class, hyperparameters (the LR left out) and groups, the loader's batch and
    dataset size. The core of :meth:`Task.fingerprint` and of the history's fingerprint of
    live objects."""
    return {
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "optimizer": type(optimizer).__name__,
        "hyperparameters": _hyperparameters(optimizer),
        "param_groups": len(optimizer.param_groups),
        "batch_size": loader_batch_size(loader),
        "dataset_size": _dataset_size(loader),
    }


def load_task_file(path: str | Path) -> Task:
    """Import a task file (a Python file defining ``task()``) and return its :class:`Task`.

    A task file is Python and runs as such, as pytest runs conftest files: load only files
    you trust. Its folder goes on ``sys.path`` (first, as ``python task.py`` puts it), so that
    it can import the modules beside it.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder: give a task file (a .py file defining task()).")
    if not path.is_file():
        raise ConfigError(f"Task file not found: {path}")
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as `python task.py` would: its neighbours import
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(f"lrpilot_task_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot import {path} as a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # lets pickling and dataclasses inside the file work
    spec.loader.exec_module(module)
    factory = getattr(module, "task", None)
    if not callable(factory):
        raise ConfigError(f"{path} must define a function task() returning lrpilot.Task.")
    result = factory()
    if not isinstance(result, Task):
        raise ConfigError(f"{path}: task() returned {type(result).__name__}, not lrpilot.Task.")
    return result


@dataclass(frozen=True)
class _Stretched:
    """A schedule written for ``native`` steps, run over ``length`` steps: step ``t`` reads
    the schedule at ``floor(t * native / length)``. Picklable, unlike a closure."""

    schedule: Callable[[int], float]
    native: int
    length: int

    def __call__(self, step: int) -> float:
        return float(self.schedule(step * self.native // self.length))


def _stretch(schedule: Any, native: int | None, length: int | None) -> Any:
    if native is None or length is None or native == length:
        return schedule
    return _Stretched(schedule, native, length)


_BUILT: weakref.WeakValueDictionary[int, nn.Module] = weakref.WeakValueDictionary()
"""Every model a task's ``model_fn`` returned to :meth:`Task.build` and still alive: weak
references only, so no model is kept in memory for the check."""


def _check_fresh(model: nn.Module) -> None:
    """Raise when ``model_fn`` returned a model it returned before (``lambda: model``): every
    run would then warm-start from the previous run's weights, and runs said to be the same
    recipe at the same seed would differ."""
    if _BUILT.get(id(model)) is model:
        raise ConfigError(
            f"model_fn returned the same {type(model).__name__} instance it returned before, so "
            "every run would continue from the previous run's weights. model_fn must build a "
            "fresh model each call: pass the class (model_fn=Net) or a function that "
            "constructs it (model_fn=lambda: Net(...)), not lambda: model."
        )
    _BUILT[id(model)] = model


def _check_functions(task: Task) -> None:
    """Each of the task's functions is callable with the arguments lrpilot gives it, checked
    when the task is made rather than as a TypeError in the middle of a run."""
    if isinstance(task.model_fn, nn.Module):
        raise ConfigError(
            f"model_fn is a {type(task.model_fn).__name__} instance, not a function that builds "
            "one: pass the class or a function, not an instance (model_fn=Net, or "
            "model_fn=lambda: Net(...)), so that every run starts from a fresh model."
        )
    check.function("model_fn", task.model_fn, "a function () -> nn.Module")
    check.function("optimizer_fn", task.optimizer_fn, "a function (params, lr) -> Optimizer")
    check.arity("model_fn", task.model_fn, 0, "() -> nn.Module")
    check.arity("optimizer_fn", task.optimizer_fn, 2, "(params, lr) -> Optimizer")
    if task.loss_fn is not None:
        check.arity("loss_fn", task.loss_fn, 2, "(outputs, targets) -> scalar loss")
    if task.metric_fn is not None:
        check.arity("metric_fn", task.metric_fn, 2, "(model, val_loader) -> float")
    if task.loss_step is not None:
        check.arity("loss_step", task.loss_step, 2, "(model, batch) -> scalar loss")


def _took_params_for_model(err: AttributeError) -> ConfigError:
    """The error for an optimizer_fn that used its first argument as the model while it was
    given the parameters (its first parameter is not named ``model``)."""
    return ConfigError(
        f"optimizer_fn asked its first argument for .{err.name}, but got the model's "
        "parameters (a generator): optimizer_fn receives the model itself only when its first "
        "parameter is named `model`. Name it so (def optimizer_fn(model, lr): ...), or take "
        "the parameters (lambda params, lr: torch.optim.SGD(params, lr=lr))."
    )


def _check_peak_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Raise unless the optimizer's highest param-group LR is the peak ``lr`` asked for.

    Groups below it are fine (discriminative LRs: a backbone at a tenth of the head); an
    optimizer_fn that ignores its ``lr`` (``lambda p, lr: SGD(p, lr=0.1)``) is not: every run
    would train at one LR while reporting another.
    """
    lrs = [float(g["lr"]) for g in optimizer.param_groups if _is_lr(g.get("lr"))]
    if not lrs:
        return  # an optimizer without per-group LRs: nothing to check
    top = max(lrs)
    if not math.isclose(top, lr, rel_tol=1e-6):
        raise ConfigError(
            f"optimizer_fn was asked for lr={lr:g} but built {type(optimizer).__name__} with a "
            f"highest param-group LR of {top:g}: optimizer_fn must pass its lr argument on "
            "(lambda params, lr: torch.optim.AdamW(params, lr=lr)). Other param groups may "
            "sit below it (a backbone at lr / 10), but the highest must be lr itself."
        )


def _is_lr(value: Any) -> bool:
    """Whether a param group's ``lr`` is a number (a float, or a one-element tensor)."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return check.is_real(value)


def _first_parameter(fn: Callable[..., Any]) -> str | None:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        return None
    return params[0].name if params else None


def _as_device(device: Any) -> torch.device:
    """``device`` as a torch device that this machine has (checked now, not at the first
    batch, where torch's own error is an AssertionError deep inside ``.to()``)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise check.ArgError(
            "device", device, "a torch device ('cpu', 'cuda', 'cuda:1', ...)"
        ) from None
    _check_available(parsed)
    return parsed


def _check_available(device: torch.device) -> None:
    """Raise a ConfigError for a CUDA or MPS device this torch and machine do not have."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(
                f"device={str(device)!r}, but CUDA is not available here (torch "
                f"{torch.__version__}: {why}): use device='cpu' or leave device=None, or "
                "install a CUDA build of torch on a machine with a GPU."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={str(device)!r}, but only {count} CUDA device(s) are visible: "
                f"use an index below {count} (check CUDA_VISIBLE_DEVICES)."
            )
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise ConfigError(
            f"device={str(device)!r}, but MPS (Apple GPU) is not available here: use "
            "device='cpu' or leave device=None."
        )


def _hyperparameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's defaults that are plain data (lr excluded: it is the free variable)."""
    out: dict[str, Any] = {}
    for key, value in sorted(optimizer.defaults.items()):
        if key == "lr" or key == "params":
            continue
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        if isinstance(value, (bool, int, float, str, type(None))):
            out[key] = None if isinstance(value, float) and not math.isfinite(value) else value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, (int, float)) for v in value):
            out[key] = list(value)
    return out


def loader_batch_size(loader: Any) -> int | None:
    """The loader's batch size, or its batch sampler's: a ``DataLoader`` built with
    ``batch_sampler=`` (bucketing by length, a custom shuffle), or with a ``BatchSampler`` as
    its ``sampler`` and ``batch_size=None`` (one indexing call a batch), reports ``None``."""
    holders = (loader, getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None))
    for holder in holders:
        size = getattr(holder, "batch_size", None)
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size
    return None


def _dataset_size(loader: Any) -> int | None:
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:
        return None


def _describe_schedule(task: Task) -> Any:
    """The schedule as plain data: the spec itself, or the resolved schedule's dict."""
    from . import schedules

    if task.schedule is None or isinstance(task.schedule, str):
        return task.schedule
    try:
        return schedules.to_dict(task.schedule_for(task.steps))
    except ConfigError:
        return type(task.schedule).__name__


def _metric_value(value: Any) -> float:
    """What ``metric_fn`` returned, as a float: a real number or a one-element tensor. Anything
    else (``None``, a string, a list) is a :class:`ConfigError` that names ``metric_fn``, not a
    ``TypeError`` from ``float()`` deep in a run (a string such as ``"0.5"`` was taken too)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()).item())
    if getattr(value, "size", None) == 1 and callable(getattr(value, "item", None)):
        value = value.item()  # a NumPy scalar or one-element array
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise ConfigError(
        f"metric_fn returned {shown} ({type(value).__name__}); it must return a number, "
        "higher is better (e.g. accuracy, or minus a loss)."
    )
