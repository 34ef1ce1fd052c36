"""Shared fixtures: tiny data, tiny models and an exact record of training state.

Everything here is small enough that a whole range test runs in milliseconds on one CPU core.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "lrpilot-mplcfg"))
# The history store goes to a folder of this session, never the user's ~/.lrpilot; nothing
# reaches the Hugging Face hub.
os.environ["LRPILOT_HOME"] = tempfile.mkdtemp(prefix="lrpilot-home-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

torch.set_num_threads(1)

from _postgres import postgres_url  # noqa: E402, F401  (a fixture: PostgreSQL for real)


def make_classification(
    n: int = 64, features: int = 8, classes: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable classification problem: labels from a fixed random linear map."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    return x, (x @ w).argmax(1)


def batches_of(
    x: torch.Tensor, y: torch.Tensor, size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(inputs, targets)`` batches in order, no shuffle."""
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def mlp(features: int = 8, classes: int = 3, hidden: int = 16, seed: int = 0) -> nn.Module:
    """A deterministic two-layer MLP (no dropout, no batch norm)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes))


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return make_classification()


@pytest.fixture
def loader(data: tuple[torch.Tensor, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Four batches of 16."""
    return batches_of(*data, size=16)


@dataclass
class StateRecord:
    """A deep copy of everything a range test must leave as it found it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    tensors: dict[str, torch.Tensor]
    objects: dict[str, torch.Tensor]
    grads: list[torch.Tensor | None]
    flags: list[bool]
    optimizer_state: dict[str, Any]
    group_objects: list[list[torch.Tensor]]
    state_keys: list[int]

    def assert_unchanged(self) -> None:
        """Bitwise: every parameter and buffer (the same tensor objects), every gradient,
        every module's train/eval flag, and the optimizer's state and param groups."""
        live = _named_tensors(self.model)
        assert live.keys() == self.tensors.keys()
        for name, _ in self.model.named_parameters():  # the optimizer holds these objects
            assert live[name] is self.objects[name], f"{name} was replaced, not restored in place"
        for name, saved in self.tensors.items():
            assert live[name].dtype == saved.dtype and live[name].shape == saved.shape, name
            assert torch.equal(live[name], saved), f"{name} differs after the call"
        for (name, p), saved in zip(self.model.named_parameters(), self.grads, strict=True):
            if saved is None:
                assert p.grad is None, f"{name}.grad appeared"
            else:
                assert p.grad is not None and torch.equal(p.grad, saved), f"{name}.grad differs"
        assert [m.training for m in self.model.modules()] == self.flags
        assert_state_dicts_equal(self.optimizer.state_dict(), self.optimizer_state)
        groups = [list(g["params"]) for g in self.optimizer.param_groups]
        assert all(
            a is b
            for live_g, saved_g in zip(groups, self.group_objects, strict=True)
            for a, b in zip(live_g, saved_g, strict=True)
        )
        assert sorted(id(p) for p in self.optimizer.state) == self.state_keys


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    named = dict(model.named_parameters())
    named.update(model.named_buffers())  # persistent or not
    return named


def assert_state_dicts_equal(a: Any, b: Any, path: str = "") -> None:
    """Recursive equality with tensors compared bitwise (dtype and shape included)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(a, b), f"tensor at {path} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"keys differ at {path}"
        for k in a:
            assert_state_dicts_equal(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_state_dicts_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def record_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> StateRecord:
    live = _named_tensors(model)
    return StateRecord(
        model=model,
        optimizer=optimizer,
        tensors={k: v.detach().clone() for k, v in live.items()},
        objects=dict(live),
        grads=[None if p.grad is None else p.grad.clone() for p in model.parameters()],
        flags=[m.training for m in model.modules()],
        optimizer_state=copy.deepcopy(optimizer.state_dict()),
        group_objects=[list(g["params"]) for g in optimizer.param_groups],
        state_keys=sorted(id(p) for p in optimizer.state),
    )


@pytest.fixture
def state_of() -> Callable[[nn.Module, torch.optim.Optimizer], StateRecord]:
    """``state_of(model, optimizer)`` records their state; ``.assert_unchanged()`` checks it."""
    return record_state


class CountingLoader:
    """A re-iterable loader that counts how often it is iterated and how many batches it gave."""

    def __init__(self, batches: list[Any]) -> None:
        self.batches = batches
        self.epochs = 0
        self.drawn = 0

    def __iter__(self):
        self.epochs += 1
        for batch in self.batches:
            self.drawn += 1
            yield batch

    def __len__(self) -> int:
        return len(self.batches)


class RecordingSGD(torch.optim.SGD):
    """Plain SGD that records, at every step, each group's LR and the global gradient norm."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_lrs: list[list[float]] = []
        self.grad_norms: list[float] = []

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        self.group_lrs.append([float(g["lr"]) for g in self.param_groups])
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.grad_norms.append(
            float(
                torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(gr) for gr in grads])
                )
            )
        )
        return super().step(closure)
