"""The callback protocol of :func:`lrpilot.train`: what a callback sees and what it may ask.

The search's pruner, the race and the monitor all plug into the one training loop this way.
A callback is any object with some of these methods (subclass :class:`Callback` for no-op
defaults); each ``on_*`` may return an :class:`Action` or ``None``:

* ``on_run_start(info: RunInfo)`` once, before the first step;
* ``on_before_optimizer_step(info: GradInfo)`` right before the optimizer applies a step's
  gradients, which it may change in place (clip them); it returns nothing;
* ``on_step(info: StepInfo)`` after every optimizer step (a skipped step included);
* ``on_eval(info: EvalInfo)`` after every evaluation of the validation metric;
* ``on_run_end(result)`` once, with the finished :class:`~lrpilot.train.RunResult`.

An action can stop the run, multiply the LR, take a snapshot of the run's state (kept beside
the tensors, in host memory or in a private file: :attr:`Action.snapshot_to`), roll back to
the last snapshot (model, optimizer, schedule position, LR scale and RNGs; the data stream is
not rewound, so the batches that led into a spike are not seen again) and skip batches. The
loop applies the actions of every callback in order and records each as an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrpilot import _validate as check
from lrpilot.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Action", "Callback", "EvalInfo", "GradInfo", "RunInfo", "StepInfo"]

HOOKS = ("on_run_start", "on_before_optimizer_step", "on_step", "on_eval", "on_run_end")
"""The methods a callback may have; an object with none of them is not a callback."""


@dataclass(frozen=True)
class Action:
    """What a callback asks of the run; every field is off by default.

    Attributes:
        stop: End the run after this step (the final metric is still measured).
        lr_factor: Multiply the LR scale by this (``0.5`` halves every group's LR from the
            next step on, on top of the schedule).
        snapshot: Take a snapshot of the run's state now (the one :attr:`rollback` returns to).
            Asked from ``on_run_start``, it replaces the run's first snapshot (which is taken
            in memory otherwise).
        rollback: Go back to the last snapshot (the start of the run when none was taken).
        skip_batches: Draw and discard this many batches before the next step.
        reason: One sentence for the run's events ("loss 9.3x its running median").
        snapshot_to: Where the snapshot is kept: ``None``, in memory beside the tensors (the
            fastest); ``"cpu"``, in host memory (a GPU model's copy takes no GPU memory); a
            :class:`~pathlib.Path`, in that file (created readable by the user only, removed
            when the run ends), for a model too big to hold twice.
    """

    stop: bool = False
    lr_factor: float | None = None
    snapshot: bool = False
    rollback: bool = False
    skip_batches: int = 0
    reason: str = ""
    snapshot_to: str | Path | None = None

    def __post_init__(self) -> None:
        check.boolean("stop", self.stop)
        check.optional_real("lr_factor", self.lr_factor, 0.0, open_low=True)
        check.boolean("snapshot", self.snapshot)
        if self.snapshot_to is not None and not (
            self.snapshot_to == "cpu" or isinstance(self.snapshot_to, Path)
        ):
            raise check.ArgError(
                "snapshot_to", self.snapshot_to, 'None, "cpu" or a pathlib.Path (a file)'
            )
        check.boolean("rollback", self.rollback)
        check.whole("skip_batches", self.skip_batches, 0)


@dataclass(frozen=True)
class RunInfo:
    """What a run is, given to ``on_run_start``."""

    lr: float
    steps: int
    seed: int
    model: nn.Module
    optimizer: torch.optim.Optimizer


@dataclass(frozen=True)
class GradInfo:
    """A step's gradients right before the optimizer applies them (the task's clipping done),
    given to ``on_before_optimizer_step``; a callback may change them in place.

    Attributes:
        step: The step about to be taken (1 for the first).
        grads: The gradients the optimizer is about to apply.
        grad_norm: Their global 2-norm as they stand, computed once by the loop so that a
            callback need not compute it again; ``None`` when the task's clipping has just
            rescaled them (measure them yourself).
        model: The model.
        optimizer: The optimizer.
    """

    step: int
    grads: list[torch.Tensor]
    grad_norm: float | None
    model: nn.Module
    optimizer: torch.optim.Optimizer


@dataclass(frozen=True)
class StepInfo:
    """One optimizer step, given to ``on_step``.

    Attributes:
        step: Optimizer steps done, this one included (1 after the first).
        steps: The run's length.
        lr: The LR of the first param group during this step.
        loss: The training loss of this step (the mean over its micro-batches).
        grad_norm: The global gradient norm before clipping (NaN when not finite).
        skipped: The step was not applied (a non-finite loss or gradient, or AMP's scaler).
        clipped: The gradient norm was above the task's ``grad_clip``.
        smoothed: The divergence detector's smoothed loss.
        model: The model (read it; change it only through an :class:`Action`).
        optimizer: The optimizer.
    """

    step: int
    steps: int
    lr: float
    loss: float
    grad_norm: float
    skipped: bool
    clipped: bool
    smoothed: float
    model: nn.Module
    optimizer: torch.optim.Optimizer


@dataclass(frozen=True)
class EvalInfo:
    """One evaluation of the validation metric (higher is better), given to ``on_eval``."""

    step: int
    steps: int
    metric: float
    model: nn.Module
    optimizer: torch.optim.Optimizer


class Callback:
    """A base class with no-op hooks; override the ones you need."""

    def on_run_start(self, info: RunInfo) -> Action | None:
        """Called once before the first step."""
        return None

    def on_before_optimizer_step(self, info: GradInfo) -> None:
        """Called right before the optimizer applies a step's gradients."""
        return None

    def on_step(self, info: StepInfo) -> Action | None:
        """Called after every optimizer step."""
        return None

    def on_eval(self, info: EvalInfo) -> Action | None:
        """Called after every evaluation."""
        return None

    def on_run_end(self, result: Any) -> None:
        """Called once with the finished :class:`~lrpilot.train.RunResult`."""
        return None


def as_callbacks(value: Any) -> list[Any]:
    """``train``'s ``callbacks`` argument as a list, each checked to be a callback.

    A single callback (``callbacks=Monitor()``) is taken as a list of one, and ``None`` as
    none. An object with none of :data:`HOOKS`, or a callback class instead of an instance,
    raises a ConfigError now rather than being ignored (or failing) in the middle of a run.
    """
    if value is None:
        return []
    if _is_callback(value):
        return [value]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise check.ArgError("callbacks", value, "a callback or a list of callbacks")
    callbacks = list(value)
    for i, callback in enumerate(callbacks):
        _check_callback(f"callbacks[{i}]", callback)
    return callbacks


def _is_callback(obj: Any) -> bool:
    """Whether ``obj`` is a callback instance: it has at least one of :data:`HOOKS`."""
    return not isinstance(obj, type) and any(callable(getattr(obj, h, None)) for h in HOOKS)


def _check_callback(name: str, obj: Any) -> None:
    """Raise a ConfigError saying what to pass when ``obj`` is not a callback instance."""
    if _is_callback(obj):
        return
    if isinstance(obj, type) and any(callable(getattr(obj, h, None)) for h in HOOKS):
        raise ConfigError(
            f"{name} is the class {obj.__name__}, not an instance: pass {obj.__name__}(...)."
        )
    raise ConfigError(
        f"{name} is not a callback: {type(obj).__name__} has none of the hook methods "
        f"({', '.join(HOOKS)}). Subclass lrpilot.Callback and override the hooks you need."
    )
