"""What a search and an impact table return: plain data, with ``to_dict()``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

__all__ = ["ImpactResult", "ImpactRow", "SearchResult", "TrialRecord", "trial_record"]

FAILURE = "lrpilot.failure"
"""User attribute: why lrpilot failed a trial it ran to the end (a NaN metric); such a trial
counts towards ``trials``. A FAIL trial without it (a dead worker, an interrupt, a surplus
trial) does not."""
DIVERGED = "lrpilot.diverged"
STEPS = "lrpilot.steps"
SECONDS = "lrpilot.seconds"
REASON = "lrpilot.reason"
SURPLUS = "lrpilot.surplus"


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search.

    Attributes:
        number: Optuna's trial number.
        lr: The peak LR it trained at (``None`` for a trial that never sampled one).
        params: Every sampled knob (``lr``, ``schedule``, ``weight_decay``).
        metric: Its final validation metric (higher is better); ``None`` unless complete.
        state: ``"COMPLETE"``, ``"PRUNED"``, ``"FAIL"``, ``"RUNNING"`` or ``"WAITING"``.
        steps: Optimizer steps trained.
        diverged: It was stopped because its loss diverged (then state is ``"PRUNED"``).
        reason: Why it was pruned or failed (``""`` for a complete one).
        seconds: Wall time of its training run.
    """

    number: int
    lr: float | None
    params: dict[str, Any]
    metric: float | None
    state: str
    steps: int
    diverged: bool
    reason: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return asdict(self)


def trial_record(trial: FrozenTrial) -> TrialRecord:
    """The :class:`TrialRecord` of an Optuna trial."""
    attrs = trial.user_attrs
    value = trial.value if trial.state.name == "COMPLETE" else None
    reason = str(attrs.get(FAILURE) or attrs.get(REASON) or "")
    if trial.state.name == "FAIL" and not reason:
        reason = "surplus trial" if attrs.get(SURPLUS) else "its worker stopped; not counted"
    return TrialRecord(
        number=trial.number,
        lr=trial.params.get("lr"),
        params=dict(trial.params),
        metric=None if value is None or not math.isfinite(value) else float(value),
        state=trial.state.name,
        steps=int(attrs.get(STEPS, 0)),
        diverged=bool(attrs.get(DIVERGED, False)),
        reason=reason,
        seconds=float(attrs.get(SECONDS, 0.0)),
    )


@dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`lrpilot.search`.

    Attributes:
        lr: The best trial's peak LR.
        metric: Its final validation metric (higher is better).
        params: Every knob of the best trial.
        trials: Every trial of the study, in order (those not counted included).
        method: ``"grid"``, ``"random"`` or ``"bayes"``.
        study: The Optuna study's name.
        storage: Where it is stored (passwords masked).
        space: The space searched (:meth:`SearchSpace.to_dict`).
        range_test_steps: Steps the range test took to choose the space (0 when given).
        range_test_lr: The range test's suggestion, tried as the first trial (``None`` when
            the space was given or stored: no range test ran).
    """

    lr: float
    metric: float
    params: dict[str, Any]
    trials: list[TrialRecord]
    method: str
    study: str
    storage: str
    space: dict[str, Any]
    range_test_steps: int = 0
    range_test_lr: float | None = None

    @property
    def steps(self) -> int:
        """Optimizer steps trained by every trial, plus the range test's."""
        return self.range_test_steps + sum(t.steps for t in self.trials)

    def counts(self) -> dict[str, int]:
        """How many trials are in each state, and how many diverged."""
        out = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        out["diverged"] = sum(t.diverged for t in self.trials)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data: ``lr``, ``metric``, ``trials`` and the rest."""
        return {
            "lr": self.lr,
            "metric": self.metric,
            "params": dict(self.params),
            "method": self.method,
            "study": self.study,
            "storage": self.storage,
            "space": self.space,
            "steps": self.steps,
            "range_test_steps": self.range_test_steps,
            "range_test_lr": self.range_test_lr,
            "counts": self.counts(),
            "trials": [t.to_dict() for t in self.trials],
        }

    def plot(self, path: str | Path | None = None, **kwargs: Any) -> Any:
        """Plot metric vs LR (see :func:`lrpilot.report.plot_search`)."""
        from ..report._search import plot_search

        return plot_search(self.to_dict(), path, **kwargs)

    def __repr__(self) -> str:
        c = self.counts()
        return (
            f"SearchResult(lr={self.lr:.4g}, metric={self.metric:.6g}, method={self.method!r}, "
            f"trials={c['COMPLETE']} complete/{c['PRUNED']} pruned/{c['FAIL']} failed, "
            f"steps={self.steps})"
        )


@dataclass(frozen=True)
class ImpactRow:
    """One LR of an impact table.

    Attributes:
        lr: The peak LR.
        seconds: Wall time of the training run.
        train_loss: The final training loss: the mean loss over (up to 20) training batches,
            measured in eval mode after the run, like the validation loss.
        val_loss: The mean validation loss after the run (NaN without validation data).
        metric: The validation metric (higher is better; NaN when it diverged).
        gap: ``val_loss - train_loss``: how much worse held-out data does (overfitting).
        diverged: The run diverged and was stopped.
        steps: Optimizer steps trained.
    """

    lr: float
    seconds: float
    train_loss: float
    val_loss: float
    metric: float
    gap: float
    diverged: bool
    steps: int

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data (NaN as ``None``)."""
        return {k: _json_number(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ImpactResult:
    """The outcome of :func:`lrpilot.impact`: one row per LR, in the order given."""

    rows: list[ImpactRow] = field(default_factory=list)

    @property
    def best_by(self) -> str | None:
        """What :attr:`best` ranks by: ``"metric"``, ``"training loss"`` where no row has a
        finite metric (a task without validation data: as ``tune``'s race and ``search`` rank
        such runs), ``None`` when no row gives either."""
        if any(math.isfinite(r.metric) for r in self.rows):
            return "metric"
        if any(not r.diverged and math.isfinite(r.train_loss) for r in self.rows):
            return "training loss"
        return None

    @property
    def best(self) -> ImpactRow | None:
        """The row with the best finite metric; without any, the lowest final training loss
        of the runs that did not diverge (:attr:`best_by` says which)."""
        by = self.best_by
        if by == "metric":
            return max((r for r in self.rows if math.isfinite(r.metric)), key=lambda r: r.metric)
        if by == "training loss":
            ok = [r for r in self.rows if not r.diverged and math.isfinite(r.train_loss)]
            return min(ok, key=lambda r: r.train_loss)
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{"rows": [...], "best_lr": ..., "best_by": ...}``."""
        best = self.best
        return {
            "rows": [r.to_dict() for r in self.rows],
            "best_lr": best.lr if best else None,
            "best_by": self.best_by,
        }


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
