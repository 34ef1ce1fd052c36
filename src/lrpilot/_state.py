"""Exact snapshot and restore of training state: model, optimizer, RNGs and loader generators.

The range test is a transaction built on this: :meth:`TrainingSnapshot.take` before the first
step, :meth:`TrainingSnapshot.restore` in a ``finally`` block. The monitor's rollback will use
the same snapshot, kept in memory beside the tensors, in host memory, or in a file
(:class:`SpilledSnapshot`) for a model too big to hold twice.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "SpilledSnapshot",
    "take_snapshot",
    "TrainingSnapshot",
    "loader_generators",
    "loader_parts",
    "inner_optimizer",
]


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


@dataclass
class SpilledSnapshot:
    """A :class:`TrainingSnapshot` whose tensor copies live in a file, not in memory.

    For a model too big to hold twice: only the snapshot's skeleton stays in memory (which
    live tensors, groups and generators the copies belong to, the Python and NumPy RNG
    states); the copies are written once with ``torch.save`` and read back, memory-mapped,
    by :meth:`restore`. The file is created readable by the user only, written under a
    temporary name and renamed, so no half-written file is ever found under its name.
    """

    skeleton: TrainingSnapshot
    path: Path

    @classmethod
    def write(cls, snapshot: TrainingSnapshot, path: str | os.PathLike[str]) -> SpilledSnapshot:
        """Write ``snapshot``'s tensor copies to the file ``path`` (its folder is created,
        readable by the user only, when missing). ``snapshot`` itself is not changed: drop it
        to free the memory its copies take."""
        path = Path(path)
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        tensors: list[torch.Tensor] = []
        skeleton = _map_copies(snapshot, lambda t: _park(t, tensors))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(tensors, f)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return cls(skeleton, path)

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Read the copies back and put every saved value back, as
        :meth:`TrainingSnapshot.restore` does (bitwise)."""
        tensors = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        _map_copies(self.skeleton, lambda slot: tensors[slot.index]).restore(model, optimizer)

    def delete(self) -> None:
        """Remove the file (nothing happens when it is already gone)."""
        self.path.unlink(missing_ok=True)


def take_snapshot(
    model: nn.Module, optimizer: torch.optim.Optimizer, place: str | os.PathLike[str] | None
) -> TrainingSnapshot | SpilledSnapshot:
    """A snapshot of ``model`` and ``optimizer`` kept where ``place`` says: ``None``, beside
    the tensors; ``"cpu"``, in host memory; a :class:`~pathlib.Path`, in that file.

    A file that cannot be written (a full disk, a folder that cannot be made) does not end the
    run: the snapshot stays in host memory, and a ``RuntimeWarning`` says why."""
    state = TrainingSnapshot.take(model, optimizer, device=None if place is None else "cpu")
    if not isinstance(place, Path):
        return state
    try:
        return SpilledSnapshot.write(state, place)
    except OSError as err:
        warnings.warn(
            f"lrpilot could not write a snapshot to {place} ({err}): it is kept in host "
            "memory instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return state


@dataclass(frozen=True)
class _Slot:
    """Where a spilled tensor copy sits in its snapshot's file."""

    index: int


def _park(tensor: torch.Tensor, tensors: list[torch.Tensor]) -> _Slot:
    tensors.append(tensor)
    return _Slot(len(tensors) - 1)


def _map_copies(snap: TrainingSnapshot, swap: Callable[[Any], Any]) -> TrainingSnapshot:
    """A copy of ``snap`` with ``swap`` applied to every tensor copy it holds (a tensor on the
    way to a file, a :class:`_Slot` on the way back); the live objects it points at (param
    groups, state entries, parameters, generators) are kept as they are."""

    def tree(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor | _Slot):
            return swap(obj)
        if isinstance(obj, dict):
            return {k: tree(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(tree(v) for v in obj)
        return obj

    def entries(saved: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
        return {k: (live, live if k == "params" else tree(c)) for k, (live, c) in saved.items()}

    return dataclasses.replace(
        snap,
        model_state=tree(snap.model_state),
        grads=tree(snap.grads),
        optimizer_groups=[(g, entries(saved)) for g, saved in snap.optimizer_groups],
        optimizer_state={p: (e, entries(saved)) for p, (e, saved) in snap.optimizer_state.items()},
        torch_rng=swap(snap.torch_rng),
        cuda_rng=None if snap.cuda_rng is None else tree(snap.cuda_rng),
        generator_states=[(g, swap(state)) for g, state in snap.generator_states],
    )


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
