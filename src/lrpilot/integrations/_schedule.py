"""What the framework callbacks (Hugging Face, Lightning) share about LR schedulers after the
monitor's rollback.

A rollback restores the snapshot's weights, optimizer and LR schedulers, so the schedulers go
back to the snapshot's position. ``lrpilot.train`` then redoes the discarded steps; a
framework does not: its step counter runs on and its run ends at its planned length. Left
behind, the schedule would never reach its end (a linear decay to 0 over 150 steps, rolled
back 8 steps, ended at 6e-06). :func:`catch_up` steps each scheduler forward again to the
position it had before the rollback, so the schedule stays on the framework's step; the
weights and the optimizer's state stay rolled back, and the monitor's LR cut stays (it scales
the schedulers' bases, which their steps read).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch


def positions(schedulers: Sequence[Any]) -> list[int | None]:
    """Each scheduler's position (``last_epoch``), ``None`` for one that has none or whose
    ``step()`` needs a metric (``ReduceLROnPlateau``: it has no position to keep)."""
    return [_position(s) for s in schedulers]


def _position(scheduler: Any) -> int | None:
    inner = getattr(scheduler, "scheduler", scheduler)  # Accelerate's wrapper
    if isinstance(inner, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return None
    position = getattr(inner, "last_epoch", None)
    return position if isinstance(position, int) else None


def catch_up(schedulers: Sequence[Any], before: Sequence[int | None]) -> None:
    """Step each scheduler forward to its position ``before`` a rollback (as measured by
    :func:`positions`). A scheduler already there, or ahead, is left alone."""
    for scheduler, target in zip(schedulers, before, strict=True):
        inner = getattr(scheduler, "scheduler", scheduler)
        now = _position(inner)
        if target is None or now is None or now >= target:
            continue
        with warnings.catch_warnings():  # "step() before optimizer.step()": not the case
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(target - now):
                inner.step()
