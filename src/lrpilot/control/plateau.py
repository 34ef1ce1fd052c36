"""Reduce-on-plateau: a controller fed metrics, not a schedule.

A schedule is a pure function of the step; reduce-on-plateau reads a metric, so it is a separate
type. :class:`ReduceOnPlateau` holds the settings (frozen); :class:`PlateauState` holds everything
that changes, explicitly, and round-trips through a plain dict. The update is pure:

    state, decision = controller.update(state, metric)

The result is a multiplier ``state.scale`` (1.0 at the start) to apply on top of whatever else
sets the LR. With a torch optimizer, attach any schedule (:func:`lrpilot.schedules.attach`; a
``constant()`` one for a plain plateau policy) and copy the scale into it:

    >>> import torch
    >>> from lrpilot import schedules
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> sched = schedules.attach(opt, schedules.constant())
    >>> ctrl = ReduceOnPlateau(patience=1, factor=0.5)
    >>> state = ctrl.init()
    >>> for val_loss in [1.0, 0.9, 0.95, 0.97]:
    ...     state, decision = ctrl.update(state, val_loss)
    ...     sched.scale = state.scale
    >>> decision.reduced, opt.param_groups[0]["lr"]
    (True, 0.05)

The rule is torch's ``ReduceLROnPlateau`` (same arguments, same sequence of reductions for
positive metrics), with two deliberate differences:

* **relative thresholds use** ``|best|``: an improvement in ``"min"`` mode is
  ``metric < best - threshold * |best|``; torch's ``best * (1 - threshold)`` counts a slightly
  *worse* value as better when the metric is negative (minus a loss, a log-likelihood);
* ``min_scale`` and ``eps`` are on the multiplier, not on absolute LRs, so every param group is
  cut by the same factor and the ratios between groups are kept.

**NaN policy.** A non-finite metric (NaN or ±inf) is never an improvement and never becomes
``best``: it counts as one update without improvement, exactly like a bad value (as torch does for
NaN). The decision's ``reason`` says so. Detecting divergence and rolling back is the training
monitor's job, not this controller's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from lrpilot import _validate as check
from lrpilot.errors import ConfigError

__all__ = ["ReduceOnPlateau", "PlateauState", "Decision"]


class PlateauState(NamedTuple):
    """Everything :class:`ReduceOnPlateau` remembers between updates.

    Attributes:
        best: Best finite metric so far (``inf`` in ``"min"`` mode, ``-inf`` in ``"max"``
            mode, before the first finite one).
        bad_updates: Updates since the last improvement (reset by a reduction and in cooldown).
        cooldown: Updates left during which bad updates are not counted.
        scale: The LR multiplier, 1.0 at the start.
        updates: Metrics seen.
        reductions: Times the scale was cut.
    """

    best: float
    bad_updates: int = 0
    cooldown: int = 0
    scale: float = 1.0
    updates: int = 0
    reductions: int = 0

    def to_dict(self) -> dict[str, float | int]:
        """The state as a plain dict (``best`` may be ``inf``; ``json`` writes ``Infinity``)."""
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlateauState:
        """Rebuild a state from :meth:`to_dict`'s output."""
        missing = set(cls._fields) - set(data)
        if missing:
            raise ConfigError(f"not a PlateauState dict: missing {sorted(missing)}, got {data=}")
        ints = ("bad_updates", "cooldown", "updates", "reductions")
        counts = {k: int(data[k]) for k in ints}
        fields: dict[str, float] = {k: float(data[k]) for k in cls._fields if k not in ints}
        fields.update(counts)
        if any(fields[k] < 0 for k in ints) or not fields["scale"] >= 0:
            raise ConfigError(f"PlateauState counts and scale must be >= 0, got {data=}")
        if math.isnan(fields["best"]):  # NaN would never be improved on: cuts forever
            raise ConfigError(
                f"PlateauState best must not be NaN (inf before any metric), got {data=}"
            )
        return cls(best=fields["best"], scale=fields["scale"], **counts)


class Decision(NamedTuple):
    """What one update did, and why.

    Attributes:
        reduced: The scale was cut at this update.
        improved: The metric improved on the best so far.
        scale: The LR multiplier after this update.
        reason: One sentence for logs and reports.
    """

    reduced: bool
    improved: bool
    scale: float
    reason: str


@dataclass(frozen=True)
class ReduceOnPlateau:
    r"""Cut the LR multiplier by ``factor`` when the metric stops improving.

    After ``patience + 1`` updates in a row without improvement, ``scale`` becomes
    ``max(scale * factor, min_scale)`` and ``cooldown`` updates follow in which bad updates are
    not counted. An update improves when, with ``b = best`` and ``δ`` the threshold:

    .. math:: \text{min: } x < b - \delta\,|b| \;(\text{rel}),\; x < b - \delta
        \;(\text{abs}); \qquad \text{max: } x > b + \delta\,|b|,\; x > b + \delta

    Args:
        mode: ``"min"`` for a loss, ``"max"`` for an accuracy or score.
        factor: Multiplier in ``(0, 1)`` applied at each reduction.
        patience: Updates without improvement tolerated before a reduction.
        threshold: Smallest change ``δ >= 0`` that counts as an improvement.
        threshold_mode: ``"rel"`` (``δ`` relative to ``|best|``) or ``"abs"``.
        cooldown: Updates after a reduction during which bad updates are not counted.
        min_scale: Floor of the multiplier, in ``[0, 1]``.
        eps: A cut smaller than this (on the multiplier) is skipped.
    """

    mode: str = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: str = "rel"
    cooldown: int = 0
    min_scale: float = 0.0
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _set = object.__setattr__  # frozen: fields are normalised this way
        _set(self, "mode", check.choice("mode", self.mode, ("min", "max")))
        _set(
            self, "factor", check.real("factor", self.factor, 0, 1, open_low=True, open_high=True)
        )
        _set(self, "patience", check.whole("patience", self.patience, 0))
        _set(self, "threshold", check.real("threshold", self.threshold, 0))
        _set(
            self,
            "threshold_mode",
            check.choice("threshold_mode", self.threshold_mode, ("rel", "abs")),
        )
        _set(self, "cooldown", check.whole("cooldown", self.cooldown, 0))
        _set(self, "min_scale", check.real("min_scale", self.min_scale, 0, 1))
        _set(self, "eps", check.real("eps", self.eps, 0))

    def init(self) -> PlateauState:
        """The state before any metric: no best yet, scale 1."""
        return PlateauState(best=math.inf if self.mode == "min" else -math.inf)

    def is_better(self, metric: float, best: float) -> bool:
        """Whether a finite ``metric`` improves on ``best`` by more than the threshold."""
        if math.isinf(best):
            return True
        margin = self.threshold * abs(best) if self.threshold_mode == "rel" else self.threshold
        return metric < best - margin if self.mode == "min" else metric > best + margin

    def update(self, state: PlateauState, metric: float) -> tuple[PlateauState, Decision]:
        """Feed one metric; return the new state and the decision. Pure: ``state`` is unchanged.

        Args:
            state: The state from :meth:`init` or the previous update.
            metric: The new value (a float, or anything ``float()`` accepts, such as a 0-d tensor).
        """
        value = _as_float(metric)
        improved = math.isfinite(value) and self.is_better(value, state.best)
        best = value if improved else state.best
        bad = 0 if improved else state.bad_updates + 1
        cooldown = state.cooldown
        if cooldown > 0:
            cooldown, bad = cooldown - 1, 0
        scale, reductions, reduced = state.scale, state.reductions, False
        plateau = bad > self.patience
        if plateau:
            new = max(scale * self.factor, self.min_scale)
            reduced = scale - new > self.eps
            if reduced:
                scale, reductions = new, reductions + 1
            cooldown, bad = self.cooldown, 0
        new_state = PlateauState(best, bad, cooldown, scale, state.updates + 1, reductions)
        reason = self._reason(value, improved, plateau, reduced, state.scale, new_state)
        return new_state, Decision(reduced, improved, scale, reason)

    def replay(
        self, metrics: Iterable[float], state: PlateauState | None = None
    ) -> tuple[PlateauState, list[Decision]]:
        """Feed a sequence of metrics; return the final state and every decision."""
        state = self.init() if state is None else state
        decisions = []
        for metric in metrics:
            state, decision = self.update(state, metric)
            decisions.append(decision)
        return state, decisions

    def _reason(
        self,
        value: float,
        improved: bool,
        plateau: bool,
        reduced: bool,
        old_scale: float,
        new: PlateauState,
    ) -> str:
        if improved:
            return f"improved: best={new.best:.6g}"
        head = "" if math.isfinite(value) else f"metric={value} is not finite: no improvement; "
        if reduced:
            return head + (
                f"no improvement on best={new.best:.6g} for {self.patience + 1} updates "
                f"(patience={self.patience}): scale {old_scale:.6g} -> {new.scale:.6g}"
            )
        if plateau:
            return head + f"plateau, but scale={new.scale:.6g} is at min_scale={self.min_scale}"
        if new.bad_updates == 0:
            return head + f"in cooldown ({new.cooldown} updates left)"
        return head + f"no improvement for {new.bad_updates} of {self.patience + 1} updates"


def _as_float(metric: Any) -> float:
    try:
        return float(metric)
    except (TypeError, ValueError):
        raise ConfigError(f"metric must be a number, got metric={metric!r}") from None
