"""``tune``: advice and lint, a range test, a race of the best candidates, the full run under
the monitor, and one report; every stage's cost counted in optimizer steps.

The race: a few candidate LRs around the range test's pick (inside its band, plus the
advisor's start when it falls there), each trained from the same initial weights (the same
seed) for a short run with the task's schedule compressed to it, so every race run ends its
own schedule (a cosine fully decayed, say) and its final metric predicts a finished run's,
not an early step's (a task without validation data has no metric: its race ranks by the
training loss at the end of each run instead, lower is better, and says so). Successive
halving: every candidate runs the first rung; the better half runs a rung twice as long; and so
on until two meet in the last. A short run prefers a higher LR than a long one, so each
candidate ``c`` (an LR for the real run) is raced at ``c * (race / run) ** -e``
(:data:`RACE_HORIZON_EXPONENT`).

What the race decides is measured (``python -m benchmarks.tune_regret``, every choice scored
on the scoreboard's oracle grids), and the default follows the measurement. With the range
test's current rule, whose run-length correction (``steps ** -0.5``) runs low on some long runs
(MNIST-1D's long Adam-family runs, the long GRU with AdamW), the race's best is the mode chosen
leave-one-family-out in every fold: on the 40 tasks where a race runs (short runs raced whole,
below) it scores 0.7 % of the gap median, 2.5 % mean and 20.1 % max held out, against the range
test's pick's 1.2 %, 8.9 % and 85.7 %, and 22 of 43 tasks are within the regret target against
18 (a whole race costs more than the pick on some short tasks, where a candidate wins on its own
seed by luck; MNIST-1D's, MovieLens' and the LSTM's gains outweigh it). So by default
(``race="adopt"``) the full run gets the race's best. Under the previous rule the race did no
better than the pick (1.6 % median held out against 0.5 %), and ``race="check"`` keeps that
behaviour: the range test's pick unless it diverges in the race, or unless its curve was too
noisy to read (its pick is then the optimizer family's prior, a guess, and the race is the
only measurement).

The budget: choosing costs at most :func:`choosing_budget` of the run's steps (15 % for runs of
2,000 steps or more, 10 % from 5,000); what the range test leaves of it goes to the race, and a
run too short for a race of :data:`MIN_RACE_STEPS` steps a candidate keeps the range test's
pick (and says so). The exception is a run so short that racing every candidate for the whole
run costs at most :data:`FULL_RACE_STEPS` steps (a run of up to 333 steps with three
candidates): then each candidate runs it whole, which no share of the run would pay for and
which needs no run-length correction. Such a race, when the range test's curve was too noisy to
give a pick (its pick is then the optimizer family's prior), spreads its candidates over the band
(:func:`band_candidates`) instead of clustering them around that guess.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from . import _validate as check
from ._json import json_safe
from .errors import ConfigError
from .finder import find_lr_for_task, too_noisy
from .lint import LintWarning
from .task import Task
from .train import RunResult, train

__all__ = [
    "TuneResult",
    "band_candidates",
    "choosing_budget",
    "race_candidates",
    "race_rungs",
    "tune",
]

MIN_RACE_STEPS = 50
"""The shortest race run worth its cost: below it a run says little about its LR."""
FULL_RACE_STEPS = 1000
"""A run so short that every candidate can run it whole within this many steps (ten range
tests of 100 steps: 3 candidates of a run of up to 333 steps) is raced whole, outside
:func:`choosing_budget`: such a run costs less than the sweeps people do by hand, the share
budget leaves no race at all after the range test's 100 steps, and a whole run needs no
run-length correction, so the race measures exactly what the run will do."""
RACE_HORIZON_EXPONENT = 0.25
"""``e`` in the race's length correction: a race run of ``r`` steps for a run of ``n`` steps
takes ``(r / n) ** -e`` times the run's LR. ``python -m benchmarks.race_bound`` carries a
perfect race's winner at a tenth of the run to the scoreboard's long tasks: 0.6 % of the gap
median at 0.25, 2.0 % at 0 and 1.1 % at 0.5. (The range test's own run-length correction,
from a sweep rather than a finished short run, is fitted apart: :class:`lrpilot.suggest.
PilotConstants`.)"""
RACE_FACTORS = (0.5, 1.0, 2.0)
"""Candidates: the range test's pick times these, kept inside its band.

The race's best is its highest candidate on most of the scoreboard's tasks. Tried on
2026-12-08 and not kept: following a best at the field's edge with up to two more candidates
(x2 each, head to head at the last rung's length, one run of it kept back from the budget).
Over 25 tasks (``benchmarks.tune_regret``, 3 seeds) the mean regret rose from 3.8 % to 5.2 %
of the gap and the worst from 20 % to 50 %: MovieLens' 2,000-step Adam runs, whose best LR is
10x below their 200-step runs', climbed further (19.6 -> 50.3 %, 2.3 -> 14.7 %), for gains
on its SGD run (20.1 -> 10.1 %) and the long MNIST-1D Adam run (1.7 -> 0.3 %). A race
compressed to a short run favours LRs higher than the full run wants; going past the field
follows that bias."""
RESULT_VERSION = 1
RACE_MODES = ("check", "adopt", "off")
DEFAULT_RACE = "adopt"
"""What ``race=True`` means. Chosen by ``python -m benchmarks.tune_regret``: leave-one-family-
out, every fold chose the race's best over the range test's pick and over ``"check"`` (the
pick unless it diverges in the race, or unless the curve could not give one:
:func:`lrpilot.finder.too_noisy`)."""


def choosing_budget(steps: int) -> float:
    """The share of a run's steps that choosing its LR may cost: 10 % for runs of 5,000 steps
    or more, 15 % from 2,000, 25 % below (a short run is cheap to race, and one sweep of 100
    steps is already a large share of it). A run short enough to race whole
    (:data:`FULL_RACE_STEPS`) is raced outside this share."""
    if steps >= 5000:
        return 0.10
    if steps >= 2000:
        return 0.15
    return 0.25


def race_candidates(
    pick: float,
    band: tuple[float, float] | None,
    advised: float | None = None,
    factors: Sequence[float] = RACE_FACTORS,
) -> list[float]:
    """The LRs a race tries: ``pick`` times each factor, clipped into ``band``, with the
    advisor's ``advised`` LR added when it lies inside the band; near-duplicates (within 20 %
    of one another) dropped, ascending."""
    low, high = band if band is not None else (0.0, math.inf)
    lrs = [min(max(pick * f, low), high) for f in factors]
    if advised is not None and low <= advised <= high:
        lrs.append(advised)
    return _distinct(lrs)


def _distinct(lrs: list[float]) -> list[float]:
    """``lrs`` ascending, each more than 20 % above the one kept before it (a race that ran
    two LRs that close would learn nothing from the second)."""
    kept: list[float] = []
    for lr in sorted(lrs):
        if not kept or lr > kept[-1] * 1.2:
            kept.append(lr)
    return kept


SPREAD_COUNTS = (4, 3)
"""How many LRs a whole race (:data:`FULL_RACE_STEPS`) spreads over the band when the range
test's curve was too noisy to give a pick (:func:`lrpilot.finder.too_noisy`): the most of these
that fit, each with the pick (the optimizer family's prior) beside them."""


def band_candidates(pick: float, band: tuple[float, float], count: int) -> list[float]:
    """``count`` LRs spread evenly in log over ``band`` (the midpoints of ``count`` equal
    log-segments, so neither the band's lowest LR nor its highest, which a noisy sweep puts
    near its divergence, is raced), with ``pick`` added; near-duplicates (within 20 %) dropped,
    ascending.

    Why: where the sweep's curve said nothing, its pick is a prior, not a measurement, and
    candidates clustered around it (:func:`race_candidates`) cannot reach an LR a decade away;
    the band is what the sweep did say (where the loss moved, where it blew up)."""
    low, high = math.log10(band[0]), math.log10(band[1])
    spread = [10 ** (low + (high - low) * (i + 0.5) / count) for i in range(count)]
    return _distinct([*spread, pick])


@dataclass
class Stage:
    """One stage of the pipeline and what it cost."""

    name: str
    steps: int
    seconds: float


@dataclass
class TuneResult:
    """What ``tune`` chose and why, as plain data (:meth:`to_dict` is what the report reads).

    Attributes:
        lr: The chosen peak LR for the task's run.
        schedule: The schedule as a spec string (``"constant"`` without one; for a schedule
            given as an object or a callable, the one resolved for the run as its ``repr``).
        cost_steps: Optimizer steps spent choosing (range test and race), not the full run.
        run_steps: The task's run length.
        stages: Each stage's name, steps and seconds.
        advice: The advisor's advice (``to_dict()``), ``None`` when unavailable.
        range_test: The range test's result (``to_dict()``).
        race: ``{"lr", "candidates": [...], "rungs": [...], "note": ...}``. For a task without
            validation data it also has ``"scored_by": "training loss"``: its candidates were
            ranked by ``train_loss`` (lower is better; their ``metric`` is ``None``) and carry
            ``loss_curve``. Without ``scored_by`` they were ranked by the validation
            ``metric`` (higher is better).
        run: The full run's :meth:`RunResult.to_dict`, ``None`` with ``train=False``.
        checks: The checks a careful engineer makes, each ``{"name", "ok", "message", "label",
            "state"}``; ``state`` is ``"pass"``, ``"fail"`` or ``"unknown"`` (the run cannot
            tell), and ``ok`` is ``False`` only for ``"fail"``.
        report: Where the HTML report was written, if anywhere.
        monitored: Whether a :class:`lrpilot.Monitor` watched the full run (``None``: no
            full run).
        metric_is: What the metric is when the task did not say (no ``metric_fn``): ``"minus
            the mean validation loss"``; ``None`` otherwise.
    """

    lr: float
    schedule: str
    cost_steps: int
    run_steps: int
    stages: list[dict[str, Any]] = field(default_factory=list)
    advice: dict[str, Any] | None = None
    range_test: dict[str, Any] | None = None
    race: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    task: str | None = None
    grad_clip: float | None = None
    schedule_lrs: list[float] = field(default_factory=list)
    command: str | None = None
    report: str | None = None
    monitored: bool | None = None
    metric_is: str | None = None

    @property
    def metric(self) -> float | None:
        """The full run's final metric (``None`` without a run)."""
        return None if self.run is None else float(self.run["metric"])

    @property
    def events(self) -> list[dict[str, Any]]:
        """The full run's events (rollbacks, LR cuts, early stop), ``[]`` without a run."""
        return [] if self.run is None else list(self.run.get("events", []))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, strict JSON (a metric that is not finite, as a run without validation
        data has, is ``None``)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {"version": RESULT_VERSION, **data, "metric": self.metric, "events": self.events}
        return cast(dict[str, Any], json_safe(out))


def tune(
    task: Task,
    *,
    train: bool = True,
    report: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    race: bool | str = True,
    monitor: bool | Any = True,
    command: str | None = None,
) -> TuneResult:
    """Choose the LR of ``task``'s run with the least compute, train it (``train=True``) under
    the monitor, and write the report (``report=PATH``).

    Args:
        task: The recipe, with ``steps`` (its budget) set.
        train: Run the full training at the choice (under :class:`lrpilot.Monitor` unless
            ``monitor=False``).
        monitor: ``True``: a :class:`lrpilot.Monitor` at its defaults; ``False``: none; or a
            monitor of your own (``lrpilot.Monitor(snapshots="disk")`` for a big model).
        report: Write the HTML report here.
        seed: The seed of every stage (same initial weights for every race candidate).
        progress: Show progress bars.
        race: Race candidates after the range test (when the budget allows): ``True`` or
            ``"adopt"`` takes the race's best (:data:`DEFAULT_RACE`); ``"check"`` keeps the
            range test's pick unless it diverges in the race or the range test's curve was
            too noisy to read (then the race's best); ``False`` or ``"off"`` runs no race.
        command: The command line that reproduces this, shown in the report.

    Returns:
        A :class:`TuneResult`; ``to_dict()`` is JSON-ready.
    """
    if not isinstance(task, Task):
        raise check.ArgError("task", task, "an lrpilot.Task")
    if task.steps is None:
        raise ConfigError("tune needs the run's budget: set Task.steps.")
    seed = check.whole("seed", seed, 0)
    mode = (DEFAULT_RACE if race else "off") if isinstance(race, bool) else race
    mode = check.choice("race", mode, list(RACE_MODES))
    report_path = _check_report_path(report)
    callbacks = _monitor(monitor)
    stages: list[Stage] = []
    advice = _timed(stages, "advice and lint", lambda: (_advice(task), 0))
    found = _timed(stages, "range test", lambda: _range_test(task, seed, progress))
    race_data = _timed(
        stages,
        "race",
        lambda: (
            _race(task, found, advice, seed, progress, mode)
            if mode != "off"
            else _no_race("no race (race off): the range test's pick stands.", found.lr)
        ),
    )
    lr = float(race_data["lr"])
    run: RunResult | None = None
    if train:
        run = _timed(
            stages,
            "full run",
            lambda: (
                (r := _train(task, lr, seed=seed, callbacks=callbacks, progress=progress)),
                r.steps_done,
            ),
        )
    adaptive = _adaptive_clipping(callbacks)
    result = _assemble(
        task, lr, found, advice, race_data, run, stages, command, adaptive, bool(callbacks)
    )
    if report_path is not None:
        from .report._html import write_html_report

        write_html_report(result.to_dict(), report_path)
        result.report = str(report_path)
    return result


# --------------------------------------------------------------------------- stages
def _timed(stages: list[Stage], name: str, work: Any) -> Any:
    start = time.perf_counter()
    value, steps = work()
    stages.append(Stage(name, int(steps), time.perf_counter() - start))
    return value


def _advice(task: Task) -> dict[str, Any] | None:
    """The advisor's advice on the task, as data; ``None`` when the advisor is unavailable."""
    try:
        from .advisor import advise
    except ImportError:  # pragma: no cover - the advisor ships with lrpilot
        return None
    return advise(task).to_dict()


def _range_test(task: Task, seed: int, progress: bool) -> tuple[Any, int]:
    found = find_lr_for_task(task, seed=seed, progress=progress)
    return found, int(found.cost_steps)


def _monitor(monitor: bool | Any) -> list[Any]:
    """The full run's callbacks: ``[Monitor()]`` for ``True``, none for ``False``, or the
    monitor given."""
    from .control.monitor import Monitor

    if isinstance(monitor, Monitor):
        return [monitor]
    if not isinstance(monitor, bool):
        raise check.ArgError("monitor", monitor, "True, False or an lrpilot.Monitor")
    return [Monitor()] if monitor else []


def _adaptive_clipping(callbacks: list[Any]) -> tuple[int, int] | None:
    """``(clipped, steps seen)`` of the monitor's adaptive clipping in the full run, if any."""
    for callback in callbacks:
        summary = callback.to_dict() if hasattr(callback, "to_dict") else {}
        if summary.get("clip_steps"):
            return int(summary["clipped"]), int(summary["clip_steps"])
    return None


def _train(task: Task, lr: float, **options: Any) -> RunResult:
    """:func:`lrpilot.train` (inside :func:`tune` its ``train`` flag hides the function)."""
    return train(task, lr, **options)


def _no_race(why: str, lr: float | None = None) -> tuple[dict[str, Any], int]:
    return {"lr": lr, "candidates": [], "rungs": [], "note": why}, 0


def _race(
    task: Task, found: Any, advice: dict[str, Any] | None, seed: int, progress: bool, mode: str
) -> tuple[dict[str, Any], int]:
    """Successive halving over :func:`race_candidates`; the winner's LR and the race's cost."""
    assert task.steps is not None
    budget = int(choosing_budget(task.steps) * task.steps) - int(found.cost_steps)
    advised = None if advice is None else advice.get("lr")
    guessed = too_noisy(found)
    lrs, rungs, whole, spread = _field(task, found, advised, budget, guessed)
    if not rungs:
        why = (
            f"no race: {max(budget, 0)} steps of the budget are left after the range test, "
            f"fewer than {len(lrs)} candidates x {MIN_RACE_STEPS} steps; the range test's pick "
            "stands."
        )
        return _no_race(why, found.lr)
    by_loss = task.val_loader is None
    field_: list[dict[str, Any]] = [
        {"lr": lr, "cut": "", "evals": [], "metric": None} for lr in lrs
    ]
    cost = 0
    diverged: set[float] = set()
    for rung, length in enumerate(rungs):
        standing = [c for c in field_ if not c["cut"]]
        for c in standing:
            steps_done, blew_up = _race_run(task, length, c, seed, progress, by_loss)
            cost += steps_done
            if blew_up:
                diverged.add(c["lr"])
        ranked = sorted(standing, key=lambda c: _race_rank(c, found.lr), reverse=True)
        keep = math.ceil(len(ranked) / 2) if rung < len(rungs) - 1 else 1
        for c in ranked[keep:]:
            c["cut"] = f"cut after {length} steps (rung {rung + 1})"
    winner = next(c for c in field_ if not c["cut"])
    if _race_score(winner) == -math.inf:  # no candidate gave a score
        return _no_race(_unscored(field_, diverged, by_loss), found.lr)[0], cost
    room = (FULL_RACE_STEPS + task.steps if whole else budget) - cost
    winner, spent = _follow_down(
        field_,
        winner,
        lambda c: _race_run(task, rungs[-1], c, seed, progress, by_loss)[0],
        length=rungs[-1],
        room=room,
    )
    cost += spent
    winner["winner"] = True
    chosen, why = _choose(field_, winner, found.lr, mode, guessed=guessed)
    chosen["chosen"] = True
    how = (
        f"each raced for the whole run ({task.steps} steps: {len(lrs)} whole runs cost at "
        f"most {FULL_RACE_STEPS} steps), so no run-length correction"
        if whole
        else f"rungs of {', '.join(map(str, rungs))} steps, the schedule compressed to each; "
        f"each candidate raced at its LR x (rung / run) ** -{RACE_HORIZON_EXPONENT:g} (the "
        "run-length correction)"
    )
    where = " spread over the band (the range test's curve gave no pick)" if spread else ""
    below = [c for c in field_ if c.get("below_field")]
    followed = (
        " Its lowest won, so it went below the field: "
        + ", ".join(f"{c['lr']:.3g} ({'lost' if c['cut'] else 'won'})" for c in below)
        + "."
        if below
        else ""
    )
    note = (
        f"{len(lrs)} candidates{where}; {how}.{followed} The race's best: {winner['lr']:.3g}. "
        f"{why}"
    )
    result = {"lr": chosen["lr"], "candidates": field_, "rungs": rungs, "note": note}
    if by_loss:
        result |= {"scored_by": "training loss", "note": f"{BY_LOSS_NOTE} {note}"}
    return result, cost


def _race_run(
    task: Task, length: int, candidate: dict[str, Any], seed: int, progress: bool, by_loss: bool
) -> tuple[int, bool]:
    """Train ``candidate``'s LR for a race run of ``length`` steps (the schedule compressed to
    it, the LR carried to it by :data:`RACE_HORIZON_EXPONENT`) and record its score in
    ``candidate``; the steps it trained and whether it diverged."""
    assert task.steps is not None
    scale = (length / task.steps) ** -RACE_HORIZON_EXPONENT
    raced = dataclasses.replace(task, eval_every=max(1, length // 5))
    with warnings.catch_warnings():  # a candidate's LR is the race's, not the user's
        warnings.simplefilter("ignore", LintWarning)
        run = train(raced, candidate["lr"] * scale, steps=length, seed=seed, progress=progress)
    candidate.update(_race_outcome(run, by_loss, raced.eval_every or length))
    candidate.update(
        steps=run.steps_done, raced_at=candidate["lr"] * scale, evals=[list(e) for e in run.evals]
    )
    return run.steps_done, run.diverged


FOLLOW_DOWN = 2
"""At most this many candidates a race adds below its field, each half the last, while the
lowest keeps winning (:func:`_follow_down`)."""


def _follow_down(
    field_: list[dict[str, Any]], winner: dict[str, Any], race: Any, *, length: int, room: int
) -> tuple[dict[str, Any], int]:
    """Where the race's best is its lowest candidate, race half its LR against it at the last
    rung's length, while the new one wins, at most :data:`FOLLOW_DOWN` times and while
    ``room`` (steps) holds a run (a whole race may spend one run past
    :data:`FULL_RACE_STEPS` on it). Returns the best and the steps spent.

    Why down only: a race shorter than the run favours higher LRs (a short run ends before a
    hot LR's cost shows), so a field whose lowest LR wins has beaten that bias and the best
    likely lies lower still, while following a best at the top follows the bias (measured:
    :data:`RACE_FACTORS`). The band's low end is x0.79 of the pick, so without this the race
    could not look below it (a helper's NAdam recipe: the race chose its lowest, x0.77 the
    pick, at a validation loss 32 % above the plain default's)."""
    spent = 0
    for _ in range(FOLLOW_DOWN):
        if winner["lr"] != min(c["lr"] for c in field_) or not 0 < length <= room - spent:
            break
        below: dict[str, Any] = {"lr": winner["lr"] / 2, "cut": "", "evals": [], "metric": None}
        below["below_field"] = True
        field_.append(below)
        spent += race(below)
        if _race_score(below) > _race_score(winner):
            winner["cut"] = f"lost to {below['lr']:.3g}, below the field"
            winner = below
        else:
            below["cut"] = f"lost to {winner['lr']:.3g} (tried below the field)"
            break
    return winner, spent


BY_LOSS_NOTE = (
    "No validation data: the race ranked its candidates by the training loss at the end of "
    "each run (the mean of its last 5 % of steps; lower is better)."
)
"""What a race without validation data says it did (:func:`_race_outcome`)."""
LOSS_TAIL = 0.05
"""The share of a race run's last steps whose mean training loss scores it when the task has
no validation data: as ``lrpilot search`` scores such a run (``_search._impact``)."""


def _race_outcome(run: RunResult, by_loss: bool, every: int) -> dict[str, Any]:
    """What a race run scored, to update its candidate with. With validation data: its final
    ``metric`` (``None`` when it diverged or is not finite). Without (``by_loss``): ``metric``
    stays ``None`` and ``train_loss`` is the mean of the last :data:`LOSS_TAIL` of its finite
    training losses (``None`` when it diverged), with ``loss_curve``, ``[step, mean loss]``
    every ``every`` steps, for the report's figure. A task without validation data has no
    metric, and a race that waits for one wastes every run it pays for."""
    if not by_loss:
        ok = math.isfinite(run.metric) and not run.diverged
        return {"metric": run.metric if ok else None}
    loss = None if run.diverged else _tail_mean(run.losses, LOSS_TAIL)
    return {"metric": None, "train_loss": loss, "loss_curve": _loss_curve(run.losses, every)}


def _tail_mean(losses: Sequence[float], share: float) -> float | None:
    """The mean of the finite values among the last ``share`` of ``losses`` (at least one);
    ``None`` when there is none."""
    tail = [v for v in losses[-max(1, int(len(losses) * share)) :] if math.isfinite(v)]
    return sum(tail) / len(tail) if tail else None


def _loss_curve(losses: Sequence[float], every: int) -> list[list[float]]:
    """``[step, mean of the finite losses of the ``every`` steps up to it]`` at every
    ``every``-th step and the last: a race run's training loss, thinned for the report."""
    points = []
    ends = sorted({*range(every, len(losses) + 1, every), len(losses)} - {0})
    for end in ends:
        mean = _tail_mean(losses[max(0, end - every) : end], 1.0)
        if mean is not None:
            points.append([end, mean])
    return points


def _unscored(field_: list[dict[str, Any]], diverged: set[float], by_loss: bool) -> str:
    """Why a race whose candidates all came out without a score chose nothing: "diverged" only
    when every candidate's run did."""
    if all(c["lr"] in diverged for c in field_):
        return "every race run diverged; the range test's pick stands."
    what = "training loss" if by_loss else "metric"
    return f"no race run gave a finite {what}; the range test's pick stands."


def _field(
    task: Task, found: Any, advised: float | None, budget: int, guessed: bool
) -> tuple[list[float], list[int], bool, bool]:
    """The race's candidates, its rungs (``[]``: no race), whether it runs them whole and
    whether they are spread over the band.

    Around a pick read off the curve: :func:`race_candidates`. Around a guess (``guessed``)
    when the race runs them whole: :func:`band_candidates`, the most of :data:`SPREAD_COUNTS`
    that fit :data:`FULL_RACE_STEPS`. A compressed race keeps the clustered field even then:
    its winner reaches the run through the run-length correction, whose error grows with the
    distance from the pick, so a spread field trades a bounded miss (×½-×2 around the prior)
    for an unbounded one (``benchmarks.tune_regret``: MovieLens' 2,000-step Adam-family runs
    went from 2.3 and 19.6 % of the gap to 28.4 and 65.8 % with a spread field raced at 71
    steps, while its 200-step runs, raced whole, went from 58-73 % to 0.1-12 %)."""
    assert task.steps is not None
    if guessed and found.band is not None:
        for count in SPREAD_COUNTS:
            lrs = band_candidates(found.lr, found.band, count)
            if _whole(len(lrs), task.steps):
                return lrs, [task.steps], True, True
    lrs = race_candidates(found.lr, found.band, advised)
    if advised is not None and _edge_unseen(found):
        lrs = _distinct([*lrs, advised])  # the band's top is a guess: race the advice too
    whole = _whole(len(lrs), task.steps)
    return lrs, [task.steps] if whole else race_rungs(len(lrs), budget), whole, False


def _edge_unseen(found: Any) -> bool:
    """Whether the range test ended without seeing its divergence edge: it did not diverge,
    and its smoothed curve never climbed back from its minimum (the finder's "still falling at
    the end of the sweep"). Its pick then rests on the sweep's last LR standing in for the
    edge, which says nothing when clipping bounds every update (SGD clipped at 0.5: no edge
    up to LR 10, a pick of 0.81 and a race that went to 1.62, 6-9 accuracy points below the
    plain 0.01 on three seeds), so :func:`_field` races the advisor's start beside the field
    even below the band."""
    from .suggest import landmarks

    if found.diverged or len(found.lrs) < 5:
        return False
    return landmarks(found.lrs, found.losses).edge is None


def _whole(candidates: int, steps: int) -> bool:
    """Whether ``candidates`` (two or more) can each run the whole ``steps``-step run within
    :data:`FULL_RACE_STEPS`."""
    return candidates >= 2 and candidates * steps <= FULL_RACE_STEPS


def _choose(
    field_: list[dict[str, Any]],
    winner: dict[str, Any],
    pick: float,
    mode: str,
    guessed: bool = False,
) -> tuple[dict[str, Any], str]:
    """The candidate the full run gets, and why. ``"adopt"``: the race's best. ``"check"``:
    the range test's pick unless its race run diverged (then the race's best), so the race
    only vetoes a pick that blows up; but where the range test's curve was too noisy to read
    (``guessed``: its pick is the optimizer family's prior, a guess), the race is the only
    measurement, and its best is taken."""
    mine = min(field_, key=lambda c: abs(math.log(c["lr"] / pick)))
    if mode == "adopt":
        return winner, "Chosen: the race's best (race='adopt')."
    if _race_score(mine) == -math.inf:
        return winner, (
            f"The range test's pick {mine['lr']:.3g} diverged in the race: the race's best "
            "replaces it."
        )
    if guessed:
        return winner, (
            f"Chosen: the race's best {winner['lr']:.3g}. The range test's curve was too noisy "
            "to read, so its pick leaned on the optimizer family's prior, a guess; the race is "
            "the only measurement."
        )
    return mine, (
        f"Chosen: the range test's pick {mine['lr']:.3g}, which trained without diverging "
        "(race='check'; race='adopt' takes the race's best)."
    )


def _race_rank(candidate: dict[str, Any], pick: float) -> tuple[float, float]:
    """What the race sorts by, higher first: its score (:func:`_race_score`), and among equal
    scores the LR nearest the range test's ``pick`` (in log): a tie is no evidence for the
    field's lowest LR, which a stable sort would have kept."""
    return _race_score(candidate), -abs(math.log(candidate["lr"] / pick))


def _race_score(candidate: dict[str, Any]) -> float:
    """What the race ranks by, higher is better: the validation metric, or, for a candidate
    raced without validation data (it has ``train_loss``), minus its training loss; ``-inf``
    for a run that diverged."""
    if "train_loss" in candidate:
        loss = candidate["train_loss"]
        return -math.inf if loss is None else -float(loss)
    return -math.inf if candidate["metric"] is None else float(candidate["metric"])


def race_rungs(candidates: int, budget: int) -> list[int]:
    """Successive halving's rung lengths ``r, 2r, 4r, ...`` for ``candidates``, the field
    halved (rounded up) after each rung until two meet in the last, with the largest ``r`` whose
    total cost fits ``budget``. When that ``r`` is below :data:`MIN_RACE_STEPS`, one rung of
    every candidate (if that fits), else ``[]``: no race."""
    if candidates < 2:
        return []
    sizes = [candidates]
    while sizes[-1] > 2:
        sizes.append(math.ceil(sizes[-1] / 2))
    base = budget // sum(n * 2**i for i, n in enumerate(sizes))
    if base >= MIN_RACE_STEPS:
        return [base * 2**i for i in range(len(sizes))]
    single = budget // candidates
    return [single] if single >= MIN_RACE_STEPS else []


def _assemble(
    task: Task,
    lr: float,
    found: Any,
    advice: dict[str, Any] | None,
    race_data: dict[str, Any],
    run: RunResult | None,
    stages: list[Stage],
    command: str | None,
    adaptive: tuple[int, int] | None = None,
    monitored: bool = False,
) -> TuneResult:
    from .report._checks import run_checks

    assert task.steps is not None
    tried = [float(c["lr"]) for c in race_data.get("candidates", [])]
    chosen = next((c for c in race_data.get("candidates", []) if c.get("chosen")), None)
    tied = [
        float(c["lr"])
        for c in race_data.get("candidates", [])
        if chosen is not None
        and c is not chosen
        and c.get("steps") == chosen.get("steps")
        and _race_score(c) == _race_score(chosen) > -math.inf
    ]
    run_dict = None if run is None else run.to_dict()
    checks = (
        []
        if run is None
        else [
            c.to_dict()
            for c in run_checks(
                run, chosen=lr, tried=tried, tied=tied, clip=task.grad_clip, adaptive=adaptive
            )
        ]
    )
    schedule = task.schedule_for(task.steps)
    cost = sum(s.steps for s in stages if s.name in ("range test", "race"))
    return TuneResult(
        lr=lr,
        schedule=_spec_of(task),
        cost_steps=cost,
        run_steps=task.steps,
        stages=[dataclasses.asdict(s) for s in stages],
        advice=advice,
        range_test=found.to_dict(),
        race=race_data,
        run=run_dict,
        checks=checks,
        task=task.name,
        grad_clip=task.grad_clip,
        schedule_lrs=[lr * float(schedule(t)) for t in range(task.steps)],
        command=command,
        monitored=None if run is None else monitored,
        metric_is=(
            "minus the mean validation loss"
            if task.metric_fn is None and task.val_loader is not None
            else None
        ),
    )


def _spec_of(task: Task) -> str:
    """The task's schedule as text: its spec string, ``"constant"`` without one, else the
    schedule resolved for the run as lrpilot's schedules print themselves (``Warmup(schedule=
    Cosine(steps=360, ...), steps=40, ...)``, every field, so it can be rebuilt), or a plain
    function's name. (Its class name alone, ``"Warmup"``, said neither length nor shape.)"""
    from .schedules import BaseSchedule

    if task.schedule is None:
        return "constant"
    if isinstance(task.schedule, str):
        return task.schedule
    assert task.steps is not None
    resolved = task.schedule_for(task.steps)
    if isinstance(resolved, BaseSchedule):
        return repr(resolved)
    name = getattr(resolved, "__qualname__", type(resolved).__name__)
    return f"{name} (a function of the step)"


def _check_report_path(report: str | Path | None) -> Path | None:
    """The report's path, checked before any work: its folder must exist."""
    if report is None:
        return None
    path = Path(report)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(
            f"the report is an HTML file: give a path ending in .html, got {report!r}"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write the report to {str(path)!r}: its folder does not exist.")
    return path
