"""Schedules as plain data (:func:`to_dict`, :func:`from_dict`) and as sampled LRs
(:func:`values`, :func:`plot`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lrpilot._validate import real, whole
from lrpilot.errors import ConfigError

from ._base import BaseSchedule, Schedule

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def to_dict(schedule: Schedule) -> dict[str, Any]:
    """A schedule as nested plain data (``{"type": ..., field: value}``), safe for JSON and
    ``torch.load(weights_only=True)``; :func:`from_dict` rebuilds it.

    A field added after a schedule's first release (such as warmup's ``inclusive``) is left out
    while it holds its default, so a dict, and any fingerprint hashed from it, stays the same
    across versions.

    Raises:
        ConfigError: For a schedule (or piece) that is not one of lrpilot's dataclasses.
    """
    if not isinstance(schedule, BaseSchedule) or not schedule.kind:
        raise ConfigError(
            f"to_dict covers lrpilot's schedules only, got schedule={schedule!r}; pickle it"
        )
    out: dict[str, Any] = {"type": schedule.kind}
    for field in dataclasses.fields(schedule):  # type: ignore[arg-type]
        value = getattr(schedule, field.name)
        if field.metadata.get("omit_at_default") and value == field.default:
            continue
        out[field.name] = _encode(value)
    return out


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return to_dict(value) if callable(value) else value


def from_dict(data: Mapping[str, Any]) -> BaseSchedule:
    """Rebuild a schedule from :func:`to_dict`'s output (validating every field again)."""
    kind = data.get("type") if isinstance(data, Mapping) else None
    cls = BaseSchedule._kinds.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(f"not a schedule dict: unknown or missing 'type', got data={data!r}")
    kwargs = {k: _decode(v) for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad fields for a {kind!r} schedule: {err}") from None


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" in value:
        return from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


def values(schedule: Schedule, steps: int, *, peak: float = 1.0) -> list[float]:
    """The learning rates ``peak * schedule(t)`` for ``t = 0 .. steps - 1``."""
    peak = real("peak", peak, 0.0, open_low=True)
    return [peak * float(schedule(t)) for t in range(whole("steps", steps, 0))]


def plot(
    schedule: Schedule,
    steps: int,
    path: str | None = None,
    *,
    peak: float = 1.0,
    title: str | None = None,
    log: bool = False,
    ax: Axes | None = None,
    dpi: int = 100,
) -> Figure:
    """Plot a schedule over ``steps`` steps; save it to ``path`` when given.

    The drawing is :func:`lrpilot.report.plot_schedule`'s, from the sampled LRs; see it for
    the arguments.
    """
    from lrpilot.report import plot_schedule

    lrs = values(schedule, steps, peak=peak)
    return plot_schedule(lrs, path, peak=peak, title=title, log=log, ax=ax, dpi=dpi)
