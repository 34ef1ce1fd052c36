"""Point torch LR schedulers built before a range test at its new peak LR.

A torch scheduler keeps LRs of its own besides the param groups' ``lr``: ``base_lrs`` (most of
them), ``max_lrs`` (``CyclicLR``), the groups' ``max_lr``/``initial_lr``/``min_lr``
(``OneCycleLR``), ``eta_min`` (the cosine ones), or its children's (``SequentialLR``,
``ChainedScheduler``). Setting only ``group["lr"]`` is undone by the next ``step()``.

:func:`retarget` scales all of them for param group ``i`` by ``f_i = new_peak_i / old_peak_i``,
where ``old_peak_i`` is the scheduler's own peak for that group (``base_lrs``, ``max_lr``,
``max_lrs``, the largest of its children's, or the group's LR for ``ReduceLROnPlateau``).
Every LR the schedule will give is then the old one times ``f_i``: the shape and the current
position are kept, and the groups run at the new peak times where the schedule is now. For
``CyclicLR`` the new peak is ``max_lr``, and ``base_lr`` keeps its ratio to it. ``eta_min``
(one number for all groups) is scaled by the head group's factor; ``ReduceLROnPlateau``'s
``min_lrs`` are floors and are kept. Everything is checked before anything is changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch.optim.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    LRScheduler,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
)

from lrpilot._step import set_group_lr
from lrpilot._validate import ArgError
from lrpilot.errors import ConfigError

__all__ = ["retarget"]

_ONE_CYCLE_KEYS = ("max_lr", "min_lr")
"""Group keys ``OneCycleLR`` reads besides ``lr`` and ``initial_lr``."""


def retarget(schedulers: Any, optimizer: Any, lrs: Sequence[float]) -> None:
    """Scale ``schedulers`` (one, or several on the same optimizer) and ``optimizer``'s groups
    so that each group's peak becomes ``lrs[i]``; see the module docstring.

    Raises:
        ConfigError: naming the scheduler's type, for one that is not a torch
            ``LRScheduler``, is built on another optimizer, has a different number of groups,
            or whose peak is 0 where the new one is not. Nothing is changed then.
    """
    tops = list(schedulers) if isinstance(schedulers, (list, tuple)) else [schedulers]
    every = [s for top in tops for s in _walk(top)]
    for scheduler in every:
        _check(scheduler, optimizer)
    groups = optimizer.param_groups
    factors = _factors(tops, groups, lrs)
    keys = ["initial_lr"]
    if any(isinstance(s, OneCycleLR) for s in every):
        keys += _ONE_CYCLE_KEYS
    _scale_groups(groups, factors, keys)
    head = max(range(len(lrs)), key=lambda i: lrs[i])
    for scheduler in every:
        _scale_own(scheduler, factors, factors[head])


def _walk(scheduler: Any) -> Iterator[Any]:
    """``scheduler`` and, for a composite, every scheduler inside it."""
    yield scheduler
    for child in _children(scheduler) or ():
        yield from _walk(child)


def _children(scheduler: Any) -> list[Any] | None:
    if isinstance(scheduler, (SequentialLR, ChainedScheduler)):
        return list(scheduler._schedulers)
    return None


def _unwrapped(optimizer: Any) -> Any:
    """The torch optimizer inside a wrapper (Lightning's, Accelerate's) that has one."""
    return getattr(optimizer, "optimizer", optimizer)


def _check(scheduler: Any, optimizer: Any) -> None:
    """Refuse a scheduler that cannot be retargeted, naming its type and what to do."""
    if not isinstance(scheduler, LRScheduler):
        raise ArgError(
            "scheduler", scheduler, "a torch LRScheduler or lrpilot's ScheduleLR (or None)"
        )
    name = type(scheduler).__name__
    if _unwrapped(scheduler.optimizer) is not _unwrapped(optimizer):
        raise ConfigError(
            f"the {name} is built on another optimizer than the one the pick is applied to: "
            "apply the result to the scheduler's own optimizer"
        )
    count = len(optimizer.param_groups)
    own = _own_lrs(scheduler)
    if any(len(values) != count for values in own.values()):
        raise ConfigError(
            f"the {name} holds LRs for another number of param groups than the optimizer's "
            f"{count}: build it after the param groups are final, then apply the result"
        )
    if _children(scheduler) is None and not isinstance(scheduler, ReduceLROnPlateau):
        if "base_lrs" not in own and "peak_lrs" not in own:
            raise ConfigError(
                f"lrpilot cannot point a {name} at a new peak LR (it has no base_lrs): set "
                "the LR before building the scheduler, or build it from result.group_lrs()"
            )


def _own_lrs(scheduler: Any) -> dict[str, list[Any]]:
    """The per-group LR lists the scheduler keeps itself, by attribute name."""
    names = ("base_lrs", "max_lrs", "peak_lrs", "_last_lr")
    found = {n: getattr(scheduler, n, None) for n in names}
    return {n: values for n, values in found.items() if isinstance(values, list)}


def _peaks(scheduler: Any, groups: list[dict[str, Any]]) -> list[float]:
    """Each group's peak LR as ``scheduler`` sees it (what the new peak replaces)."""
    children = _children(scheduler)
    if children is not None:
        per_child = [_peaks(child, groups) for child in children]
        return [max(column) for column in zip(*per_child, strict=True)]
    if isinstance(scheduler, OneCycleLR):
        return [float(g["max_lr"]) for g in groups]
    if isinstance(scheduler, ReduceLROnPlateau):
        return [float(g["lr"]) for g in groups]
    for name in ("peak_lrs", "max_lrs", "base_lrs"):  # ScheduleLR, CyclicLR, the rest
        if isinstance(getattr(scheduler, name, None), list):
            return [float(v) for v in getattr(scheduler, name)]
    raise AssertionError("checked by _check")


def _factors(tops: list[Any], groups: list[dict[str, Any]], lrs: Sequence[float]) -> list[float]:
    """``new peak / old peak`` for each group (the old peak: the largest the schedulers hold)."""
    olds = [max(column) for column in zip(*(_peaks(s, groups) for s in tops), strict=True)]
    factors = []
    for i, (old, new) in enumerate(zip(olds, lrs, strict=True)):
        if old > 0:
            factors.append(new / old)
        elif new == 0:
            factors.append(1.0)
        else:
            names = ", ".join(type(s).__name__ for s in tops)
            raise ConfigError(
                f"the {names} peaks at LR 0 for param_groups[{i}], so no schedule shape can be "
                "scaled to the new peak there: build the scheduler after result.apply(optimizer)"
            )
    return factors


def _scale_groups(groups: list[dict[str, Any]], factors: list[float], keys: list[str]) -> None:
    """Scale each group's ``lr`` (in place for a tensor LR) and its scheduler keys, once."""
    for group, f in zip(groups, factors, strict=True):
        set_group_lr(group, float(group["lr"]) * f)
        for key in keys:
            if key in group:
                group[key] = group[key] * f


def _scale_own(scheduler: Any, factors: list[float], head: float) -> None:
    """Scale the LRs ``scheduler`` keeps itself (not the groups': :func:`_scale_groups`)."""
    for name, values in _own_lrs(scheduler).items():
        setattr(scheduler, name, [v * f for v, f in zip(values, factors, strict=True)])
    if isinstance(scheduler, (CosineAnnealingLR, CosineAnnealingWarmRestarts)):
        scheduler.eta_min = scheduler.eta_min * head
