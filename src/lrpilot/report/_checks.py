"""The checks a careful engineer makes after a run, as pure functions of result data.

Each returns a :class:`Check`: a name, its state (passed, failed, or cannot tell) and one
sentence saying what was seen and what to do. They read :meth:`RunResult.to_dict()
<lrpilot.RunResult>` data (or the result itself), so a report built from a saved run makes the
same checks.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .._json import nan_if_none
from ..control.monitor import GAVE_UP

__all__ = [
    "CLIPPED_TOO_MANY",
    "LABELS",
    "Check",
    "check_clipping",
    "check_edge",
    "check_finished",
    "check_improving",
    "check_overfitting",
    "final_metric_text",
    "label_of",
    "mark_of",
    "run_checks",
    "state_of",
]

CLIPPED_TOO_MANY = 0.5
"""More than this share of steps clipped means the LR is too high (Google's tuning playbook:
"more than 50 % of updates clipped" is extremely aggressive clipping; lower the LR instead)."""
TAIL = 0.1
"""The share of the run compared with the share before it, to tell whether it still improves."""


LABELS = {
    "finished": "finished",
    "still improving at the end": "levelled off by the end",
    "overfitting": "no overfitting",
    "clipped share": "few steps clipped",
    "best LR inside what was tried": "best LR inside what was tried",
}
"""How each check is shown beside its mark: the healthy state, so that the mark answers it
("✓ no overfitting", "✗ levelled off by the end", "– no overfitting" when it cannot tell). The
names stay the checks' keys in data (``name``), as earlier versions stored them."""

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
MARKS = {PASS: "✓", FAIL: "✗", UNKNOWN: "–"}
"""The mark of each state: "–" where the run cannot tell (too few evaluations, no race), so that
not knowing is never shown as healthy."""


def label_of(check: Mapping[str, Any]) -> str:
    """The label to show for ``check`` (a :meth:`Check.to_dict`, or the data of an older
    report without ``label``)."""
    name = str(check.get("name", ""))
    return str(check.get("label") or LABELS.get(name, name))


def state_of(check: Mapping[str, Any]) -> str:
    """``"pass"``, ``"fail"`` or ``"unknown"`` for ``check`` (a :meth:`Check.to_dict`); data
    of an older version, without ``state``, had only ``ok``: its state follows from it."""
    state = check.get("state")
    if state in MARKS:
        return str(state)
    return PASS if check.get("ok") else FAIL


def mark_of(check: Mapping[str, Any]) -> str:
    """The mark to show beside ``check``'s label: ✓, ✗ or – (cannot tell)."""
    return MARKS[state_of(check)]


@dataclass(frozen=True)
class Check:
    """One check: its name, whether the run passed it, and what was seen.

    ``known=False`` means the run cannot tell (too few evaluations, no race to compare): the
    state is ``"unknown"``, shown as "–". ``ok`` keeps its earlier meaning, "not failed" (it
    is ``True`` for a check that cannot tell, as before), so code that reads ``ok`` to find
    failures works unchanged; :attr:`state` tells the three apart."""

    name: str
    ok: bool
    message: str
    known: bool = True

    @property
    def label(self) -> str:
        """What the check asks, phrased as the healthy state that ✓ confirms (:data:`LABELS`)."""
        return LABELS.get(self.name, self.name)

    @property
    def state(self) -> str:
        """``"pass"``, ``"fail"``, or ``"unknown"`` where the run cannot tell."""
        if not self.known:
            return UNKNOWN
        return PASS if self.ok else FAIL

    def to_dict(self) -> dict[str, Any]:
        """``name``, ``ok``, ``message``, ``label`` and ``state``, as plain data."""
        data = asdict(self)
        del data["known"]  # ``state`` says it, in one field
        return data | {"label": self.label, "state": self.state}


def _cannot_tell(name: str, message: str) -> Check:
    """A check the run cannot answer: not failed (``ok``), but not passed either."""
    return Check(name, True, message, known=False)


def _data(run: Any) -> Mapping[str, Any]:
    return run if isinstance(run, Mapping) else run.to_dict()


def final_metric_text(run: Any, metric_is: str | None = None) -> str:
    """A run's final metric as the summaries show it: ``"none (no validation data)"`` for a
    run never evaluated that did not diverge, rather than a bare "nan"; ``metric_is`` says what
    the number is where the task did not (``-0.542 (minus the mean validation loss)``)."""
    r = _data(run)
    metric = nan_if_none(r.get("metric"))
    if math.isfinite(metric):
        return f"{metric:.4g}" + (f" ({metric_is})" if metric_is else "")
    if not r.get("evals") and not r.get("diverged"):
        return "none (no validation data)"
    return str(metric)


def check_finished(run: Any) -> Check:
    """The run reached its end (not diverged) with a finite metric, or, for a task without
    validation data (a run with no evaluation at all), with a finite training loss: such a run
    has no metric to give, and finishing is all this check asks."""
    r = _data(run)
    metric = nan_if_none(r.get("metric"))
    if r.get("diverged"):
        return Check("finished", False, f"the run diverged ({r.get('stopped') or 'no reason'}).")
    if r.get("stopped") and GAVE_UP in str(r["stopped"]):
        return Check(
            "finished",
            False,
            f"the monitor stopped the run: {r['stopped']}. The LR is likely still too high: "
            "run the range test again (or tune) with a lower end_lr, or lower the LR.",
        )
    if r.get("stopped"):
        return Check("finished", True, f"the run stopped early: {r['stopped']}.")
    if math.isfinite(metric):
        return Check("finished", True, f"the run reached its end; final metric {metric:.4g}.")
    if r.get("evals"):  # it was evaluated, and the metric came out NaN or infinite
        return Check("finished", False, "the final metric is not finite.")
    return _finished_without_metric(r)


def _finished_without_metric(r: Mapping[str, Any]) -> Check:
    """A run never evaluated (no validation data): finished when its last training losses are
    finite."""
    losses = [nan_if_none(v) for v in r.get("losses", [])]
    tail = [v for v in losses[-max(1, len(losses) // 20) :] if math.isfinite(v)]
    if not tail:
        return Check("finished", False, "the run ended without a finite training loss.")
    loss = statistics.fmean(tail)
    return Check(
        "finished",
        True,
        f"the run reached its end; no validation data, so no metric; final training loss "
        f"{loss:.4g}.",
    )


def check_improving(run: Any) -> Check:
    """Whether the training loss was still falling at the end: the mean of the last
    :data:`TAIL` of the run against the tail before it, beyond their noise. Still improving
    means the budget (or the final LR of the schedule) cut the run short."""
    losses = [float(v) for v in _data(run).get("losses", []) if math.isfinite(float(v))]
    n = max(2, int(len(losses) * TAIL))
    if len(losses) < 2 * n:
        return _cannot_tell("still improving at the end", "too few steps to tell.")
    before, last = losses[-2 * n : -n], losses[-n:]
    drop = statistics.fmean(before) - statistics.fmean(last)
    noise = math.sqrt(
        (statistics.pvariance(before) + statistics.pvariance(last)) / n
    )  # standard error of the difference of the two means
    if drop > 2 * noise and drop > 0:
        return Check(
            "still improving at the end",
            False,
            f"the training loss fell by {drop:.3g} over the last {n} steps ({drop / noise:.0f}× "
            "its noise): a longer run would likely do better.",
        )
    return Check(
        "still improving at the end", True, f"the training loss had levelled off ({drop:+.3g})."
    )


def check_overfitting(run: Any, tolerance: float = 0.02) -> Check:
    """Whether the validation metric (higher is better) ended worse than its best by more than
    ``tolerance`` of its range while the training loss kept falling: the playbook's
    "problematic overfitting"."""
    r = _data(run)
    evals = [
        (int(s), nan_if_none(m)) for s, m in r.get("evals", []) if math.isfinite(nan_if_none(m))
    ]
    if len(evals) < 3:
        return _cannot_tell("overfitting", "too few evaluations to tell.")
    metrics = [m for _, m in evals]
    best_at = max(range(len(evals)), key=lambda i: metrics[i])
    span = max(metrics) - min(metrics)
    worse = metrics[best_at] - metrics[-1]
    losses = [float(v) for v in r.get("losses", []) if math.isfinite(float(v))]
    step = evals[best_at][0]
    after = losses[step:] if step < len(losses) else []
    falling = len(after) >= 2 and statistics.fmean(after[-max(1, len(after) // 5) :]) < after[0]
    if best_at < len(evals) - 1 and worse > tolerance * span and falling:
        return Check(
            "overfitting",
            False,
            f"the validation metric peaked at step {step} ({metrics[best_at]:.4g}) and ended "
            f"at {metrics[-1]:.4g} while the training loss kept falling: stop at the best "
            "step (Monitor restores the best weights), regularize, or shorten the run.",
        )
    return Check(
        "overfitting", True, "the validation metric did not fall while training improved."
    )


def check_edge(chosen: float, tried: Sequence[float], tied: Sequence[float] = ()) -> Check:
    """Whether the chosen LR is the lowest or highest of those tried (``tune``'s race): then the
    best may lie beyond them, and the message says how to look (``tune`` has no knob for its
    race's field; a search's default space spans a decade either side of the range test's
    pick, :data:`lrpilot._search._space.RANGE_MARGIN`). ``tied``: the LRs that scored exactly
    as the chosen one at the same length; a tie says nothing of where the best lies."""
    if len(tried) < 2:
        return _cannot_tell(
            "best LR inside what was tried",
            "no race compared LRs (none run, or none of its runs finished): cannot tell.",
        )
    if tied:
        others = ", ".join(f"{lr:.3g}" for lr in sorted(tied))
        return _cannot_tell(
            "best LR inside what was tried",
            f"the chosen LR {chosen:.3g} tied with {others}: the race could not tell them "
            "apart (kept: the one nearest the range test's pick), so it says nothing of where "
            "the best lies.",
        )
    low, high = min(tried), max(tried)
    for edge, side in ((low, "lowest"), (high, "highest")):
        if math.isclose(chosen, edge, rel_tol=1e-9):
            return Check(
                "best LR inside what was tried",
                False,
                f"the chosen LR {chosen:.3g} is the {side} tried ({low:.3g}–{high:.3g}): "
                "the best may lie beyond; to look past it, run `lrpilot search` on the task "
                "(its space spans a decade either side of the range test's pick).",
            )
    return Check(
        "best LR inside what was tried", True, f"{chosen:.3g} lies inside {low:.3g}–{high:.3g}."
    )


def check_clipping(run: Any, clip: float | None, adaptive: tuple[int, int] | None = None) -> Check:
    """The share of steps whose gradient norm was clipped, by the recipe's ``clip`` or, where
    the recipe does not clip, by the monitor's adaptive rule (``adaptive``: ``(clipped,
    steps seen)``); over :data:`CLIPPED_TOO_MANY` means the LR is too high."""
    r = _data(run)
    steps = max(1, len(r.get("losses", [])))
    share = int(r.get("clipped", 0)) / steps
    if clip is None and adaptive is not None and adaptive[1] > 0:
        monitor_share = adaptive[0] / adaptive[1]
        said = (
            f"no clipping in the recipe; the monitor clipped {monitor_share:.1%} of the steps "
            f"adaptively ({adaptive[0]} of {adaptive[1]})"
        )
        if monitor_share > CLIPPED_TOO_MANY:
            return Check("clipped share", False, f"{said}: the LR is likely too high.")
        return Check("clipped share", True, f"{said}.")
    if clip is None:
        return Check("clipped share", True, "no clipping in the recipe.")
    if share > CLIPPED_TOO_MANY:
        norms = [x for x in (nan_if_none(v) for v in r.get("grad_norms", [])) if math.isfinite(x)]
        typical = f" (median gradient norm {statistics.median(norms):.3g})" if norms else ""
        return Check(
            "clipped share",
            False,
            f"{share:.0%} of the steps were clipped at {clip:g}{typical}: clipping that often "
            "scales most updates down, a smaller LR in disguise; the tuning playbook's advice is "
            "a lower LR with a threshold above the typical norm instead (the share follows the "
            "threshold more than the LR).",
        )
    return Check("clipped share", True, f"{share:.0%} of the steps were clipped at {clip:g}.")


def run_checks(
    run: Any,
    *,
    chosen: float | None = None,
    tried: Sequence[float] = (),
    tied: Sequence[float] = (),
    clip: float | None,
    adaptive: tuple[int, int] | None = None,
) -> list[Check]:
    """Every check on one run (and on the choice of its LR, when ``chosen`` is given);
    ``adaptive``: the monitor's adaptive clipping, ``(clipped, steps seen)``; ``tied``: the
    LRs the race could not tell from ``chosen``."""
    checks = [check_finished(run), check_improving(run), check_overfitting(run)]
    checks.append(check_clipping(run, clip, adaptive))
    if chosen is not None:
        checks.append(check_edge(chosen, tried, tied))
    return checks
