"""Exact snapshot and restore of training state: model, optimizer, RNGs and loader generators.

The range test is a transaction built on this: :meth:`TrainingSnapshot.take` before the first
step, :meth:`TrainingSnapshot.restore` in a ``finally`` block. The monitor's rollback will use
the same snapshot.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["TrainingSnapshot", "loader_generators", "loader_parts", "inner_optimizer"]


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
    optimizer_groups: list[tuple[dict[str, Any], dict[str, tuple[Any, Any]]]]
    optimizer_state: dict[Any, tuple[dict[str, Any], dict[str, tuple[Any, Any]]]]
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
        inner = inner_optimizer(optimizer)
        return cls(
            model_state={k: _clone(v, device) for k, v in _model_tensors(model).items()},
            grads=[None if p.grad is None else _clone(p.grad, device) for p in model.parameters()],
            training_flags=[m.training for m in model.modules()],
            optimizer_groups=[(g, _saved_entries(g, device)) for g in inner.param_groups],
            optimizer_state={p: (s, _saved_entries(s, device)) for p, s in inner.state.items()},
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
        self._restore_optimizer(inner_optimizer(optimizer))
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        for generator, state in self.generator_states:
            generator.set_state(state)

    def _restore_optimizer(self, optimizer: Any) -> None:
        """Copy the saved values into the live objects: the same param-group dicts, the same
        state dicts and state tensors (momentum buffers, a tensor ``lr``), since a captured CUDA
        graph, a cached ``param_groups[i]`` or a tensor-lr holder keeps pointing at them.
        (``load_state_dict`` would bring in new ones.) What the sweep added is removed."""
        groups = optimizer.param_groups
        if [id(g) for g in groups] != [id(g) for g, _ in self.optimizer_groups]:
            groups[:] = [g for g, _ in self.optimizer_groups]
        for group, saved in self.optimizer_groups:
            _put_back(group, saved)
        state = optimizer.state
        for param in [p for p in state if p not in self.optimizer_state]:
            del state[param]
        for param, (entry, saved) in self.optimizer_state.items():
            state[param] = entry
            _put_back(entry, saved)


def inner_optimizer(optimizer: Any) -> Any:
    """The torch optimizer inside a wrapper (Accelerate's ``AcceleratedOptimizer``,
    Lightning's ``LightningOptimizer``: anything whose ``.optimizer`` is the real one)."""
    for _ in range(5):
        if isinstance(optimizer, torch.optim.Optimizer) or not hasattr(optimizer, "optimizer"):
            break
        optimizer = optimizer.optimizer
    return optimizer


def _saved_entries(entries: dict[str, Any], device: Any) -> dict[str, tuple[Any, Any]]:
    """``key -> (the live value, a copy of it)`` for a param group or a parameter's state;
    a group's ``params`` list is kept as it is (the sweep never changes it)."""
    return {k: (v, v if k == "params" else _copy_tree(v, device)) for k, v in entries.items()}


def _put_back(entries: dict[str, Any], saved: dict[str, tuple[Any, Any]]) -> None:
    for key in [k for k in entries if k not in saved]:
        del entries[key]
    with torch.no_grad():
        for key, (obj, value) in saved.items():
            if key == "params":
                entries[key] = obj
            elif isinstance(obj, torch.Tensor) and obj.shape == value.shape:
                obj.copy_(value)  # into the same tensor, wherever the copy lives
                entries[key] = obj
            elif isinstance(obj, torch.Tensor):
                entries[key] = value.to(obj.device, copy=True)
            else:
                entries[key] = copy.deepcopy(value)


SEARCH_DEPTH = 3
"""How many attribute levels deep a loader wrapper is searched for DataLoaders, samplers and
generators (a framework's loader wraps a DataLoader one or two levels down)."""

_NOT_SEARCHED = (str, bytes, int, float, bool, torch.Tensor, np.ndarray, nn.Module)


def loader_parts(loader: Any) -> tuple[list[Any], list[torch.Generator]]:
    """The DataLoaders and the private ``torch.Generator`` objects inside ``loader``.

    Looks at ``loader`` itself, its sampler and batch sampler, and, for a wrapper (any
    object with attributes), at what it holds, :data:`SEARCH_DEPTH` levels deep.
    """
    loaders: dict[int, Any] = {}
    generators: dict[int, torch.Generator] = {}
    seen: set[int] = set()

    def visit(obj: Any, level: int) -> None:
        if obj is None or id(obj) in seen or level > SEARCH_DEPTH:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            generators[id(obj)] = obj
            return
        if isinstance(obj, _NOT_SEARCHED) or type(obj).__module__.startswith("multiprocessing"):
            return
        if isinstance(obj, torch.utils.data.DataLoader):
            loaders[id(obj)] = obj
            children: Iterable[Any] = (obj.generator, obj.sampler, obj.batch_sampler)
        elif isinstance(obj, dict):
            children = list(obj.values())[:16]
        elif isinstance(obj, (list, tuple)):
            children = obj[:16]
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            children = [v for k, v in vars(obj).items() if k != "_iterator"]
        else:
            return
        for child in children:
            visit(child, level + 1)

    visit(loader, 0)
    return list(loaders.values()), list(generators.values())


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The private ``torch.Generator`` objects a loader (or a wrapper around one) shuffles,
    samples or augments with."""
    return loader_parts(loader)[1]


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
