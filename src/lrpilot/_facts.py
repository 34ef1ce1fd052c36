"""What the suggestion knows about the run it is for: its length, how its schedule spends the
peak LR, the optimizer family and clipping, as plain values the rules read (they stay pure
functions of the curve and these facts); and, in words, what it had to assume."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from .advice import optimizer_family, prior_lr_for

__all__ = ["RunFacts", "run_facts", "schedule_mean"]

MEAN_SAMPLES = 1_000
"""A schedule given as a function is read at this many steps spread over the run."""


@dataclass(frozen=True)
class RunFacts:
    """The run a suggestion is for.

    Attributes:
        steps: optimizer steps in the run, or ``None`` if not told.
        schedule_mean: the schedule's mean multiplier over the run, as a fraction of its
            largest (1 for a constant LR, about 0.5 for warmup + cosine); ``None`` if unknown.
        family: the optimizer family (``"adam"``, ``"sgd"``, ...).
        prior_lr: the family's safe default LR, where it has one.
        grad_clip: the run's gradient-clipping norm, if any.
        assumed: what was assumed where nothing was said, by fact, in words.
    """

    steps: int | None
    schedule_mean: float | None
    family: str
    prior_lr: float | None
    grad_clip: float | None = None
    assumed: dict[str, str] = field(default_factory=dict)


def run_facts(
    optimizer: Any, steps: int | None, schedule: Any, grad_clip: float | None
) -> RunFacts:
    """The facts the rules read, from what :func:`lrpilot.find_lr` was given."""
    assumed = {}
    if steps is None:
        assumed["steps"] = (
            "a short run (at most a few hundred steps): longer runs want lower LRs; pass steps=N"
        )
    mean = schedule_mean(schedule, steps)
    if schedule is None:
        assumed["schedule"] = (
            "a constant LR (the safe side): a decaying schedule can take a higher peak; "
            "pass schedule= (a spec such as 'warmup(0.05)+cosine', a schedule or a torch "
            "scheduler)"
        )
    return RunFacts(
        steps=steps,
        schedule_mean=mean,
        family=optimizer_family(optimizer),
        prior_lr=prior_lr_for(optimizer),
        grad_clip=grad_clip,
        assumed=assumed,
    )


def schedule_mean(schedule: Any, steps: int | None) -> float | None:
    """The mean of ``schedule``'s multiplier over a run of ``steps`` steps, over its largest.

    ``schedule`` is a text spec, a schedule (step -> multiplier) or a live torch
    ``LRScheduler`` (read from a copy: :func:`lrpilot.schedules.from_scheduler`); ``None``
    where the schedule or, for a schedule that is not constant, the run's length is unknown.
    """
    if schedule is None:
        return None
    if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
        from .schedules import from_scheduler

        schedule = from_scheduler(schedule, steps)  # a copy is stepped: the live one stays
    elif isinstance(schedule, str):
        from .schedules import parse_schedule

        schedule = parse_schedule(schedule, total_steps=steps)
    length = steps if steps is not None else 1
    count = min(length, MEAN_SAMPLES)
    at = sorted({round(i * (length - 1) / max(count - 1, 1)) for i in range(count)})
    values = [float(schedule(i)) for i in at]
    if steps is None and not _constant(schedule):
        return None
    peak = max(values, default=0.0)
    if not values or not math.isfinite(peak) or peak <= 0:
        return None
    return statistics.fmean(values) / peak


def _constant(schedule: Any) -> bool:
    """Whether a schedule's multiplier is the same at the start and far into a run."""
    try:
        return float(schedule(0)) == float(schedule(10**6))
    except Exception:  # a schedule defined only over its own length
        return False
