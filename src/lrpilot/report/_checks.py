"""The checks a careful engineer makes after a run, as pure functions of result data.

Each returns a :class:`Check`: a name, whether it passed and one sentence saying what was seen
and what to do. They read :meth:`RunResult.to_dict() <lrpilot.RunResult>` data (or the result
itself), so a report built from a saved run makes the same checks.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "CLIPPED_TOO_MANY",
    "LABELS",
    "Check",
    "check_clipping",
    "check_edge",
    "check_finished",
    "check_improving",
    "check_overfitting",
    "label_of",
    "run_checks",
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
"""How each check is shown beside its ✓ or ✗: the healthy state, so that the mark answers it
("✓ no overfitting", "✗ levelled off by the end"). The names stay the checks' keys in data
(``name``), as earlier versions stored them."""


def label_of(check: Mapping[str, Any]) -> str:
    """The label to show for ``check`` (a :meth:`Check.to_dict`, or the data of an older
    report without ``label``)."""
    name = str(check.get("name", ""))
    return str(check.get("label") or LABELS.get(name, name))


@dataclass(frozen=True)
class Check:
    """One check: its name, whether the run passed it, and what was seen."""

    name: str
    ok: bool
    message: str

    @property
    def label(self) -> str:
        """What the check asks, phrased as the healthy state that ✓ confirms (:data:`LABELS`)."""
        return LABELS.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"label": self.label}


def _data(run: Any) -> Mapping[str, Any]:
    return run if isinstance(run, Mapping) else run.to_dict()


def check_finished(run: Any) -> Check:
    """The run reached its end with a finite metric (not diverged, not stopped early)."""
    r = _data(run)
    metric = float(r.get("metric", math.nan))
    if r.get("diverged"):
        return Check("finished", False, f"the run diverged ({r.get('stopped') or 'no reason'}).")
    if r.get("stopped"):
        return Check("finished", True, f"the run stopped early: {r['stopped']}.")
    if not math.isfinite(metric):
        return Check("finished", False, "the final metric is not finite (no validation data?).")
    return Check("finished", True, f"the run reached its end; final metric {metric:.4g}.")


def check_improving(run: Any) -> Check:
    """Whether the training loss was still falling at the end: the mean of the last
    :data:`TAIL` of the run against the tail before it, beyond their noise. Still improving
    means the budget (or the final LR of the schedule) cut the run short."""
    losses = [float(v) for v in _data(run).get("losses", []) if math.isfinite(float(v))]
    n = max(2, int(len(losses) * TAIL))
    if len(losses) < 2 * n:
        return Check("still improving at the end", True, "too few steps to tell.")
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
    evals = [(int(s), float(m)) for s, m in r.get("evals", []) if math.isfinite(float(m))]
    if len(evals) < 3:
        return Check("overfitting", True, "too few evaluations to tell.")
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


def check_edge(chosen: float, tried: Sequence[float]) -> Check:
    """Whether the chosen LR is the lowest or highest of those tried (``tune``'s race): then the
    best may lie beyond them, and the message says how to look (``tune`` has no knob for its
    race's field; a search's default space spans a decade either side of the range test's
    pick, :data:`lrpilot._search._space.RANGE_MARGIN`)."""
    if len(tried) < 2:
        return Check("best LR inside what was tried", True, "one LR tried.")
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
        return Check(
            "clipped share",
            False,
            f"{share:.0%} of the steps were clipped at {clip:g}: the LR is likely too high "
            "(lower it rather than clip most updates).",
        )
    return Check("clipped share", True, f"{share:.0%} of the steps were clipped at {clip:g}.")


def run_checks(
    run: Any,
    *,
    chosen: float | None = None,
    tried: Sequence[float] = (),
    clip: float | None,
    adaptive: tuple[int, int] | None = None,
) -> list[Check]:
    """Every check on one run (and on the choice of its LR, when ``chosen`` is given);
    ``adaptive``: the monitor's adaptive clipping, ``(clipped, steps seen)``."""
    checks = [check_finished(run), check_improving(run), check_overfitting(run)]
    checks.append(check_clipping(run, clip, adaptive))
    if chosen is not None:
        checks.append(check_edge(chosen, tried))
    return checks
