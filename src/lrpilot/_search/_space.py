"""The space a search samples: the peak LR on a log scale, and on request a choice of
schedule (text specs) and a weight-decay range.

The LR bounds come from the caller, or from a range test: one decade either side of its
suggestion, widened to hold its whole band, so the search looks where the sweep says the good
LRs are and a little beyond. The space is plain data: it is stored with the study, so a worker
that joins (or a rerun) samples the same space without running the range test again.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _validate as check
from ..errors import ConfigError
from ..task import Task

__all__ = ["SearchSpace", "log_grid", "space_around", "space_from", "space_from_range_test"]

RANGE_MARGIN = 10.0
"""How far beyond the range test's suggestion the default space reaches, each way (a factor)."""


@dataclass(frozen=True)
class SearchSpace:
    """What a search samples.

    Attributes:
        lr: ``(low, high)`` bounds of the peak LR, sampled log-uniformly.
        schedules: Schedule specs to choose from (``"cosine"``, ``"warmup(0.05)+cosine"``);
            empty: the task's own schedule.
        weight_decay: ``(low, high)`` bounds of the weight decay, log-uniform; ``None``: the
            optimizer's own.
    """

    lr: tuple[float, float]
    schedules: tuple[str, ...] = ()
    weight_decay: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _bounds("lr", self.lr))
        if self.weight_decay is not None:
            object.__setattr__(self, "weight_decay", _bounds("weight_decay", self.weight_decay))
        specs = tuple(self.schedules)
        if any(not isinstance(s, str) or not s.strip() for s in specs):
            raise check.ArgError("schedules", self.schedules, "a list of schedule spec strings")
        object.__setattr__(self, "schedules", specs)

    def to_dict(self) -> dict[str, Any]:
        """The space as JSON-ready data (what the study stores)."""
        return {
            "lr": list(self.lr),
            "schedules": list(self.schedules),
            "weight_decay": None if self.weight_decay is None else list(self.weight_decay),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        """Rebuild a space from :meth:`to_dict`'s output."""
        wd = data.get("weight_decay")
        return cls(
            lr=tuple(data["lr"]),
            schedules=tuple(data.get("schedules") or ()),
            weight_decay=None if wd is None else tuple(wd),
        )

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample this space in an Optuna trial: ``{"lr": ..., ...}``."""
        params: dict[str, Any] = {"lr": trial.suggest_float("lr", *self.lr, log=True)}
        if len(self.schedules) > 1:
            params["schedule"] = trial.suggest_categorical("schedule", list(self.schedules))
        elif self.schedules:
            params["schedule"] = self.schedules[0]
        if self.weight_decay is not None:
            params["weight_decay"] = trial.suggest_float(
                "weight_decay", *self.weight_decay, log=True
            )
        return params

    def grid(self, points: int) -> dict[str, list[Any]]:
        """The grid sampler's space: ``points`` LRs evenly spaced in log (see :func:`log_grid`),
        and every schedule; weight decay is not gridded (a grid is for the LR)."""
        if self.weight_decay is not None:
            raise ConfigError(
                "method='grid' searches the LR (and schedules) only: drop weight_decay from the "
                "space, or use method='random' or 'bayes'."
            )
        space: dict[str, list[Any]] = {"lr": log_grid(*self.lr, points)}
        if len(self.schedules) > 1:
            space["schedule"] = list(self.schedules)
        return space


def log_grid(low: float, high: float, points: int) -> list[float]:
    """``points`` values from ``low`` to ``high`` (both included) evenly spaced in log; one
    point is the geometric mean."""
    low, high = _bounds("lr", (low, high))
    points = check.whole("points", points, 1)
    if points == 1:
        return [math.sqrt(low * high)]
    ratio = math.log(high / low) / (points - 1)
    values = [low * math.exp(i * ratio) for i in range(points)]
    values[-1] = high  # exactly the bound, not an ulp past it
    return values


def space_from(space: Any) -> SearchSpace | None:
    """The caller's ``space`` argument as a :class:`SearchSpace` (``None`` stays ``None``):
    a space, ``(low, high)`` LR bounds, or a dict with ``lr`` and optional ``schedules`` and
    ``weight_decay``."""
    if space is None or isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        unknown = set(space) - {"lr", "schedules", "weight_decay"}
        if unknown or "lr" not in space:
            raise check.ArgError(
                "space",
                dict(space),
                "a dict with 'lr': (low, high) and optionally "
                "'schedules': [specs] and 'weight_decay': (low, high)",
            )
        return SearchSpace.from_dict(space)
    if isinstance(space, Sequence) and not isinstance(space, str):
        return SearchSpace(lr=tuple(space))
    raise check.ArgError("space", space, "(low, high) LR bounds, a dict or a SearchSpace")


def space_from_range_test(task: Task, seed: int) -> tuple[SearchSpace, int, float]:
    """The default space from a range test of ``task``: one decade either side of the
    suggestion, widened to hold its band; the steps the sweep took; and the suggestion (the
    search tries it first)."""
    from ..finder import find_lr_for_task

    result = find_lr_for_task(task, seed=seed, progress=False)
    space = SearchSpace(lr=space_around(result.lr, result.band))
    return space, result.cost_steps, float(result.lr)


def space_around(lr: float, band: tuple[float, float]) -> tuple[float, float]:
    """The LR bounds around a range test's suggestion ``lr``: ``RANGE_MARGIN`` either side,
    widened to hold its ``band``, to 3 significant figures."""
    low = min(band[0], lr / RANGE_MARGIN)
    high = max(band[1], lr * RANGE_MARGIN)
    return float(f"{low:.3g}"), float(f"{high:.3g}")


def task_for(task: Task, params: Mapping[str, Any]) -> Task:
    """``task`` with the sampled knobs other than the LR applied (schedule, weight decay)."""
    changes: dict[str, Any] = {}
    if "schedule" in params:
        changes["schedule"] = params["schedule"]
    if "weight_decay" in params:
        changes["optimizer_fn"] = _WithWeightDecay(task, float(params["weight_decay"]))
    return dataclasses.replace(task, **changes) if changes else task


@dataclass(frozen=True)
class _WithWeightDecay:
    """The task's optimizer with every param group's weight decay set (a class, so it
    pickles)."""

    task: Task
    weight_decay: float

    def __call__(self, model: Any, lr: float) -> Any:
        optimizer = self.task.make_optimizer(model, lr)
        for group in optimizer.param_groups:
            group["weight_decay"] = self.weight_decay
        return optimizer


def _bounds(arg: str, value: Any) -> tuple[float, float]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise check.ArgError(arg, value, "(low, high) with 0 < low < high") from None
    low = check.real(f"{arg} low", low, 0.0, open_low=True, open_high=True)
    high = check.real(f"{arg} high", high, 0.0, open_low=True, open_high=True)
    if not low < high:
        raise check.ArgError(arg, value, "(low, high) with 0 < low < high")
    return low, high
