"""Tasks, the standard training step, and exact snapshot/restore of training state.

A :class:`Task` describes one training recipe whose peak learning rate is the free variable.
The helpers here are shared by everything that runs steps on a user's model (the range test
today; search, race and monitor later): how a batch becomes a loss, how batches reach the
model's device, and how model, optimizer and RNG state are saved and put back bit for bit.
"""

from __future__ import annotations

import copy
import importlib.util
import numbers
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConfigError, DataError, LossError, ModelError

__all__ = [
    "Task",
    "LossStep",
    "load_task_file",
    "default_loss_step",
    "move_to_device",
    "model_device",
    "cycle",
    "evaluate_loss",
    "TrainingSnapshot",
    "is_count",
    "loader_generators",
]

LossStep = Callable[[nn.Module, Any], torch.Tensor]
"""``(model, batch) -> scalar loss``: one batch (already on the model's device) to its loss."""


@dataclass
class Task:
    """One training recipe whose peak learning rate is what lrpilot chooses.

    Args:
        model_fn: ``() -> nn.Module``, a fresh model each call.
        optimizer_fn: ``(params, lr) -> torch.optim.Optimizer``.
        train_loader: iterable of training batches.
        val_loader: iterable of validation batches, or ``None``.
        loss_fn: ``(outputs, targets) -> scalar loss``, batches being ``(inputs, targets)``.
        metric_fn: ``(model, val_loader) -> float``, higher is better; by default minus the
            mean validation loss.
        steps: the training budget in optimizer steps: the length of the run the LR is for.
        schedule: the schedule the real run will use (``step -> multiplier`` of the peak LR).
        loss_step: optional ``(model, batch) -> loss`` for batches that are not
            ``(inputs, targets)`` (dict batches of Hugging Face models, for example).
    """

    model_fn: Callable[[], nn.Module]
    optimizer_fn: Callable[[Any, float], torch.optim.Optimizer]
    train_loader: Iterable[Any]
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    val_loader: Iterable[Any] | None = None
    metric_fn: Callable[[nn.Module, Iterable[Any]], float] | None = None
    steps: int | None = None
    schedule: Callable[[int], float] | None = None
    loss_step: LossStep | None = None

    def __post_init__(self) -> None:
        if self.loss_fn is None and self.loss_step is None:
            raise ConfigError("Task needs loss_fn (outputs, targets) -> loss, or loss_step.")
        if self.steps is not None and (not is_count(self.steps) or self.steps < 1):
            raise ConfigError(f"Task.steps must be a positive int, got {self.steps=}")

    def build(self, lr: float = 1e-3) -> tuple[nn.Module, torch.optim.Optimizer]:
        """A fresh model and its optimizer at ``lr``."""
        model = self.model_fn()
        return model, self.optimizer_fn(model.parameters(), lr)

    def metric(self, model: nn.Module) -> float:
        """The task's validation metric (higher is better) for ``model``."""
        if self.val_loader is None:
            raise ConfigError("Task.metric needs a val_loader.")
        if self.metric_fn is not None:
            return float(self.metric_fn(model, self.val_loader))
        step = self.loss_step or default_loss_step(self.loss_fn)
        return -evaluate_loss(model, self.val_loader, step)


def load_task_file(path: str | Path) -> Task:
    """Import a task file (a Python file defining ``task()``) and return its :class:`Task`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Task file not found: {path}")
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


def default_loss_step(loss_fn: Callable[[Any, Any], torch.Tensor] | None) -> LossStep:
    """The standard step for ``(inputs, targets)`` batches: ``loss_fn(model(inputs), targets)``."""
    if loss_fn is None:
        raise ConfigError("loss_fn is required unless a custom loss_step is given.")

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DataError(
                f"Expected batches of (inputs, targets), got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                + ". Pass loss_step=(model, batch) -> loss for other batch shapes."
            )
        inputs, targets = batch
        return loss_fn(model(inputs), targets)

    return step


def move_to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts, nested) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches of ``loader`` forever, restarting it when it runs out.

    Raises:
        DataError: the loader yields no batch at all.
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise DataError("The loader yielded no batch: check the dataset and batch_size.")


def evaluate_loss(
    model: nn.Module,
    batches: Iterable[Any],
    loss_step: LossStep,
) -> float:
    """Mean loss of ``model`` over ``batches``, in eval mode and without gradients.

    The model's train/eval flags are put back afterwards.
    """
    flags = [m.training for m in model.modules()]
    device = model_device(model)
    total, count = 0.0, 0
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                total += float(loss_step(model, move_to_device(batch, device)))
                count += 1
    finally:
        for module, flag in zip(model.modules(), flags, strict=True):
            module.training = flag
    if count == 0:
        raise DataError("The validation loader yielded no batch.")
    return total / count


def check_scalar_loss(loss: Any) -> torch.Tensor:
    """``loss`` if it is a scalar tensor that carries a gradient, else a clear error."""
    if not isinstance(loss, torch.Tensor):
        raise LossError(f"The loss must be a torch.Tensor, got {type(loss).__name__}.")
    if loss.numel() != 1:
        raise LossError(
            f"The loss must be a scalar, got shape {tuple(loss.shape)}: reduce it with "
            "mean() or sum(), or use a loss_fn with reduction='mean'."
        )
    if not loss.requires_grad:
        raise LossError("The loss does not require grad: is the model's output detached?")
    return loss if loss.dim() == 0 else loss.reshape(())


@dataclass
class TrainingSnapshot:
    """An exact copy of everything a range test touches, to put back afterwards.

    Holds the model's parameters, buffers and gradients, each module's train/eval flag,
    the optimizer's state and param-group hyperparameters, and the RNG states of Python,
    NumPy and torch (CPU and every initialised CUDA device). ``restore`` is bitwise.
    """

    model_state: dict[str, torch.Tensor]
    grads: list[torch.Tensor | None]
    training_flags: list[bool]
    optimizer_state: dict[str, Any]
    python_rng: Any
    numpy_rng: Any
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    generator_states: list[tuple[torch.Generator, torch.Tensor]]

    @classmethod
    def take(
        cls,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device | str | None = None,
        generators: Iterable[torch.Generator] = (),
    ) -> TrainingSnapshot:
        """Copy the state of ``model``, ``optimizer`` and the RNGs.

        Args:
            device: where the copies live; ``"cpu"`` keeps a GPU model's snapshot off the GPU
                so its memory is not doubled. ``None`` copies on the tensors' own devices.
            generators: private RNGs to restore too (a loader's shuffling generator, so the
                real run sees the same data order as without the range test).
        """
        return cls(
            model_state={k: _clone(v, device) for k, v in _model_tensors(model).items()},
            grads=[None if p.grad is None else _clone(p.grad, device) for p in model.parameters()],
            training_flags=[m.training for m in model.modules()],
            optimizer_state=_copy_tree(optimizer.state_dict(), device),
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            generator_states=[(g, g.get_state()) for g in generators],
        )

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Put every saved value back, in place (the same tensors, the same objects)."""
        with torch.no_grad():
            live = _model_tensors(model)
            for name, saved in self.model_state.items():
                if live[name].shape == saved.shape and live[name].dtype == saved.dtype:
                    live[name].copy_(saved)
                else:  # a buffer the model reassigned (a cache that grew): put the old one back
                    owner, _, leaf = name.rpartition(".")
                    buffers = model.get_submodule(owner)._buffers
                    buffers[leaf] = saved.to(live[name].device, copy=True)
        for param, grad in zip(model.parameters(), self.grads, strict=True):
            param.grad = None if grad is None else grad.to(param.device, copy=True)
        for module, flag in zip(model.modules(), self.training_flags, strict=True):
            module.training = flag
        # load_state_dict casts each state tensor to its parameter's device and dtype.
        optimizer.load_state_dict(_copy_tree(self.optimizer_state, None))
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        for generator, state in self.generator_states:
            generator.set_state(state)


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The private ``torch.Generator`` objects a DataLoader shuffles or samples with."""
    if loader is None:
        return []
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    holders = (loader, sampler, batch_sampler, getattr(batch_sampler, "sampler", None))
    found: dict[int, torch.Generator] = {}
    for holder in holders:
        generator = getattr(holder, "generator", None)
        if isinstance(generator, torch.Generator):
            found[id(generator)] = generator
    return list(found.values())


def is_count(value: Any) -> bool:
    """Whether ``value`` is a whole number (int or NumPy integer), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``model`` by name, the live tensors themselves.

    Not ``state_dict()``: it leaves out non-persistent buffers (which a forward pass may
    change) and holds whatever ``get_extra_state`` returns, which need not be a tensor.
    """
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _clone(tensor: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    tensor = tensor.detach()
    return tensor.to(device, copy=True) if device is not None else tensor.clone()


def _copy_tree(obj: Any, device: torch.device | str | None) -> Any:
    """A deep copy of a state-dict tree, tensors cloned (to ``device`` when given)."""
    if isinstance(obj, torch.Tensor):
        return _clone(obj, device)
    if isinstance(obj, dict):
        return {k: _copy_tree(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy_tree(v, device) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_copy_tree(v, device) for v in obj)
    return copy.deepcopy(obj)


def check_optimizer_holds(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Raise unless the model has trainable parameters and the optimizer holds some of them."""
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if not trainable:
        raise ModelError(
            "The model has no trainable parameters (all have requires_grad=False): "
            "unfreeze some layers before the range test."
        )
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not trainable & held:
        raise ModelError(
            "The optimizer holds none of the model's trainable parameters: build it with "
            "optimizer = Opt(model.parameters(), ...) for this model instance."
        )
