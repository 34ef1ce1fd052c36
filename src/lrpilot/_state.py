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

__all__ = ["TrainingSnapshot", "loader_generators"]


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


