"""``search(task, method, trials)``: an LR search on Optuna, every trial a ``lrpilot.train`` run.

How a search runs, in every worker alike (one process, or many on one study):

1. Open the storage (:mod:`._storage`) and the study, created on first use with the task's
   fingerprint, what a trial scores (:func:`objective_of`), the space, the method and the seed
   in its user attributes; a study made for another task, objective, space, method or seed is
   refused. A study made by an older lrpilot, without the objective or the seed, takes this
   search's on first use (unknown is not a mismatch) and is checked from then on.
2. Until the study holds ``trials`` finished trials (complete, pruned, or failed by lrpilot with a
   reason): fail and requeue the trials of dead workers, then run one trial through Optuna's
   ``study.optimize`` (so a database's heartbeat thread and stale-trial check run as Optuna runs
   them). When the other workers' running trials already make up the count, wait for them.
3. A trial is *surplus* when ``trials`` counted trials come before it (by trial number; a retry
   takes the place of the trial it retries): two workers that both start the last trial at the
   same moment do not run it twice; the later one is failed at once, marked surplus, and not
   counted.

The samplers are Optuna's: ``TPESampler`` (``bayes``, constant liar for parallel workers),
``QMCSampler`` (``random``: scrambled Sobol, quasi-random as the tuning playbook recommends)
and ``GridSampler`` (``grid``: the LR evenly spaced in log). TPE is seeded for each trial from
``seed`` and the trial's number (Sobol and the grid share one sequence), so one worker's search
is reproducible and two workers do not draw the same LRs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .. import _validate as check
from .. import history
from .._callsite import user_stacklevel
from .._imports import require
from ..errors import ConfigError, LossError
from ..lint import LintWarning, lint, warn_serious
from ..task import Task
from ._result import (
    DIVERGED,
    FAILURE,
    REASON,
    SECONDS,
    STEPS,
    SURPLUS,
    SearchResult,
    trial_record,
)
from ._space import SearchSpace, space_from, space_from_range_test, task_for

__all__ = ["search", "METHODS", "PRUNE_CHOICES", "CHECKPOINTS", "DEFAULT_HEARTBEAT"]

METHODS = ("grid", "random", "bayes")
PRUNE_CHOICES = ("fair", "median", "none")
CHECKPOINTS = 10
"""A trial reports its metric at every tenth of its run (1/10 to 9/10): the points where it may
be pruned (the final metric is the trial's value). The first comes at about the smallest rung of
successive halving with η = 3 over three rungs (1/9 of the budget: Hyperband, ASHA), so a
trial predicted to lose costs a tenth of a run, not a fifth."""
DEFAULT_HEARTBEAT = 10
"""Seconds between heartbeats; a trial silent for twice this is taken for dead."""
POLL_S = 0.5
TASK_ATTR, FINGERPRINT_ATTR, SPACE_ATTR, METHOD_ATTR = (
    "lrpilot.task",
    "lrpilot.fingerprint",
    "lrpilot.space",
    "lrpilot.method",
)
GRID_ATTR = "lrpilot.grid_points"
OBJECTIVE_ATTR = "lrpilot.objective"
"""What a trial's value measures (:func:`objective_of`): part of a study's identity beside the
task's fingerprint, which leaves out the validation data and the metric."""
SEED_ATTR = "lrpilot.seed"
"""The seed every trial of the study trains with."""


class _Surplus(Exception):
    """This trial would exceed the requested count: failed at once, not counted."""


def search(
    task: Task,
    method: str = "bayes",
    trials: int = 20,
    storage: str | os.PathLike[str] | None = None,
    study: str | None = None,
    *,
    space: Any = None,
    prune: bool | str = True,
    seed: int = 0,
    heartbeat: int = DEFAULT_HEARTBEAT,
    progress: bool = True,
    start: Sequence[float] | None = None,
) -> SearchResult:
    """Search the peak LR of ``task`` (and, on request, schedule and weight decay) on Optuna.

    Every trial trains the task's whole recipe through :func:`lrpilot.train` at the sampled LR,
    with the same ``seed``, and scores its validation metric (higher is better). Trials that
    diverge are stopped at once and recorded as pruned with ``diverged=True``; trials whose
    predicted final metric is poor are pruned (:class:`ScheduleFairPruner`). The study is an
    ordinary Optuna study: rerun the same call to continue it up to ``trials`` finished trials,
    run it in several processes (or machines, with a database ``storage``) to share the work,
    read it with ``optuna.load_study`` or optuna-dashboard.

    Args:
        task: The recipe; its ``steps`` is every trial's length.
        method: ``"bayes"`` (TPE), ``"random"`` (quasi-random Sobol) or ``"grid"`` (``trials``
            LRs evenly spaced in log).
        trials: Finished trials the study should hold in total: rerun with a higher count to
            continue a random or bayes study; a grid study's count (its grid) is fixed when
            the study is made.
        storage: ``None`` (the journal file ``$LRPILOT_HOME/search.journal``), a path ending in
            ``.journal``, or a SQLAlchemy URL (``postgresql://user:pw@host/db``).
        study: The study's name (default: from the task's name, the method and the task's
            fingerprint, so rerunning continues it).
        space: ``(low, high)`` LR bounds, a dict with ``lr`` and optional ``schedules`` (specs)
            and ``weight_decay`` bounds, or a :class:`SearchSpace`. Default: the stored space of
            an existing study, else one decade either side of a range test's suggestion.
        prune: ``True`` / ``"fair"`` (lrpilot's pruner), ``"median"`` (Optuna's
            ``MedianPruner``), ``False`` / ``"none"``.
        seed: Seeds every trial's training run and the samplers.
        heartbeat: Seconds between heartbeats; a trial silent for twice this is failed and
            retried.
        progress: Show trials done, pruned, running, failed and the best so far on stderr.
        start: LRs to try first, in order (a guess, a colleague's LR, the history's
            recommendation): each is enqueued once in the study (Optuna's ``enqueue_trial``
            with ``skip_if_exists``), so rerunning the search does not try it twice; the
            sampler picks the other knobs of the space and the trials after them. Each must
            lie in the LR space. Not with ``method="grid"`` (a grid tries its own points).
            Default: none, except when the search runs its own range test (no ``space`` given
            or stored), whose suggestion is then tried first (``SearchResult.range_test_lr``).
            A study that already holds ``trials`` trials runs none: a ``UserWarning`` names
            the start LRs not tried (give another ``study`` or raise ``trials``).

    Returns:
        A :class:`SearchResult`.

    Raises:
        ConfigError: a bad argument (a ``start`` LR outside the space among them), an
            unreachable storage, a journal file whose folder does not exist, or a study made
            for another task, objective (what a trial scores: :func:`objective_of`), space,
            method, seed or grid size.
        LossError: every trial diverged (lower the range), or none completed.
        MissingDependencyError: Optuna is not installed (``pip install 'lrpilot[search]'``).
    """
    require("optuna", "lrpilot.search")
    require("sqlalchemy", "lrpilot.search")
    settings = _Settings.checked(task, method, trials, prune, seed, heartbeat)
    starts = _checked_start(start, settings.method)
    given = space_from(space)
    from ._storage import open_storage

    store = open_storage(storage, settings.heartbeat)
    with _quiet_optuna():
        fingerprint = task.fingerprint()
        name = study if study is not None else default_study_name(task, fingerprint, method)
        if not isinstance(name, str) or not name:
            raise check.ArgError("study", study, "a non-empty study name")
        stored = _stored_space(store, name)
        range_steps, suggested = 0, None
        chosen = given or stored
        if chosen is None:
            chosen, range_steps, suggested = space_from_range_test(task, seed)
            if not starts and settings.method != "grid":
                starts = [min(max(suggested, chosen.lr[0]), chosen.lr[1])]
        _start_in_space(starts, chosen)
        objective = objective_of(task)
        optuna_study = _open_study(store, name, fingerprint, objective, chosen, settings)
        skipped = _enqueue(optuna_study, starts, settings.trials)
        _warn_full(optuna_study, skipped, settings.trials)
        warn_serious(lint(task, batches=0), stacklevel=user_stacklevel())
        runner = _Runner(task, settings, chosen, store, optuna_study)
        with _progress(progress, settings.trials) as show:
            runner.run(show)
        return _result(optuna_study, settings, chosen, store.shown, range_steps, suggested)


@dataclasses.dataclass(frozen=True)
class _Settings:
    method: str
    trials: int
    prune: str
    seed: int
    heartbeat: int

    @classmethod
    def checked(
        cls, task: Any, method: Any, trials: Any, prune: Any, seed: Any, heartbeat: Any
    ) -> _Settings:
        if not isinstance(task, Task):
            raise check.ArgError("task", task, "an lrpilot.Task")
        if task.steps is None:
            raise ConfigError("search needs the run's length: set Task.steps.")
        method = check.choice("method", method, METHODS)
        trials = check.whole("trials", trials, 1)
        if isinstance(prune, bool):
            prune = "fair" if prune else "none"
        prune = check.choice("prune", prune, PRUNE_CHOICES)
        return cls(
            method,
            trials,
            prune,
            check.whole("seed", seed, 0),
            check.whole("heartbeat", heartbeat, 1),
        )


def _checked_start(start: Any, method: str) -> list[float]:
    """The ``start`` LRs as floats (positive, finite); ``None`` is none."""
    if start is None:
        return []
    if isinstance(start, (str, bytes)) or not isinstance(start, Sequence):
        raise check.ArgError("start", start, "a list of LRs to try first, e.g. [3e-3, 1e-3]")
    values = [
        check.real(f"start[{i}]", lr, 0.0, open_low=True, open_high=True)
        for i, lr in enumerate(start)
    ]
    if values and method == "grid":
        raise ConfigError(
            "start LRs need method='random' or 'bayes': a grid search tries its own evenly "
            "spaced LRs."
        )
    return values


def _start_in_space(starts: list[float], space: SearchSpace) -> None:
    """Refuse a start LR the space does not hold (Optuna would try it, out of bounds)."""
    low, high = space.lr
    outside = [lr for lr in starts if not low <= lr <= high]
    if outside:
        shown = ", ".join(f"{lr:.3g}" for lr in outside)
        raise ConfigError(
            f"start LR {shown} lies outside the search space: LR {low:.3g} to {high:.3g}; "
            "widen the space (space=(low, high), --lr-min/--lr-max) or drop it."
        )


def _enqueue(study: Any, starts: list[float], trials: int) -> list[float]:
    """Queue the start LRs not tried (or queued) in ``study`` yet, while the study holds fewer
    than ``trials`` counted trials: a rerun adds none twice, a full study none at all. The
    start LRs left out because the study was full (and not tried in it before)."""
    for i, lr in enumerate(starts):
        if sum(1 for t in study.get_trials(deepcopy=False) if counts(t)) >= trials:
            return _untried(study, starts[i:])
        study.enqueue_trial({"lr": lr}, skip_if_exists=True)
    return []


def _untried(study: Any, lrs: list[float]) -> list[float]:
    """Those of ``lrs`` that no trial of ``study`` has tried or queued."""
    seen: set[Any] = set()
    for t in study.get_trials(deepcopy=False):
        seen.add(t.params.get("lr"))
        seen.add((t.system_attrs.get("fixed_params") or {}).get("lr"))  # a queued trial's
    return [lr for lr in lrs if lr not in seen]


def _warn_full(study: Any, skipped: list[float], trials: int) -> None:
    """Say that the start LRs ``skipped`` will not run: the study already holds its trials.
    Silently returning the old result would read as if they had been tried and lost."""
    if not skipped:
        return
    counted = [t for t in study.get_trials(deepcopy=False) if counts(t)]
    finished = sum(1 for t in counted if t.state.is_finished())
    others = len(counted) - finished
    held = f"{finished} finished trial(s)" + (f" and {others} running or queued" if others else "")
    more = len(counted) + len(skipped)
    shown = ", ".join(f"{lr:.3g}" for lr in skipped)
    warnings.warn(
        f"start LR {shown} not tried: study {study.study_name!r} already holds {held} of the "
        f"{trials} asked for. Give another study name (study=..., --study) or raise the count "
        f"(trials={more}, --trials {more}) to try them.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def default_study_name(task: Task, fingerprint: dict[str, Any], method: str) -> str:
    """``"<task name>-<method>-<fingerprint id>"``: the same task and method continue one study."""
    return f"{task.name or 'task'}-{method}-{str(fingerprint['id'])[:10]}"


def _stored_space(store: Any, name: str) -> SearchSpace | None:
    import optuna

    try:
        existing = optuna.load_study(study_name=name, storage=store.storage)
    except KeyError:
        return None
    data = existing.user_attrs.get(SPACE_ATTR)
    return SearchSpace.from_dict(data) if isinstance(data, dict) else None


def objective_of(task: Task) -> dict[str, Any]:
    """What a trial of ``task`` scores, as plain data: the validation metric (``metric_fn``'s
    name), minus the validation loss, or, without validation data, minus the training loss
    (``loss_fn``'s name for both). Two studies that score differently cannot share trials: the
    pruner would compare one kind of value with the other, and the best would be picked
    across both."""
    if task.val_loader is None:
        return {"scores": "minus the training loss", "fn": _name_of(task.loss_fn)}
    if task.metric_fn is None:
        return {"scores": "minus the validation loss", "fn": _name_of(task.loss_fn)}
    return {"scores": "the validation metric", "fn": _name_of(task.metric_fn)}


def _name_of(fn: Any) -> str:
    """A function's qualified name (its module left out: a task file's module is named after
    the file, which may move), or its type's name for another callable."""
    name = getattr(fn, "__qualname__", None)
    return str(name) if name else type(fn).__name__


def _open_study(
    store: Any,
    name: str,
    fingerprint: dict[str, Any],
    objective: dict[str, Any],
    space: SearchSpace,
    settings: _Settings,
) -> Any:
    """The study ``name``, created if new; refused if it was made for another search (another
    task, objective, space, method, seed or grid size)."""
    import optuna

    study = optuna.create_study(
        study_name=name, storage=store.storage, direction="maximize", load_if_exists=True
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(
            f"study {name!r} in {store.shown} minimizes; lrpilot's studies maximize the "
            "validation metric: give another --study name."
        )
    wanted: dict[str, Any] = {
        TASK_ATTR: str(fingerprint["id"]),
        SPACE_ATTR: space.to_dict(),
        METHOD_ATTR: settings.method,
        OBJECTIVE_ATTR: objective,
        SEED_ATTR: settings.seed,
    }
    if settings.method == "grid":
        wanted[GRID_ATTR] = settings.trials
    attrs = study.user_attrs
    for key, value in wanted.items():
        if key in attrs and attrs[key] != value:
            raise ConfigError(_mismatch(name, store.shown, key, attrs, value, fingerprint))
    # an attribute the study lacks (new, or one an older lrpilot did not store, such as the
    # objective and the seed) is unknown, not a mismatch: recorded now, checked from then on
    for key, value in wanted.items():
        if key not in attrs:
            study.set_user_attr(key, value)
    if FINGERPRINT_ATTR not in attrs:
        study.set_user_attr(FINGERPRINT_ATTR, {k: v for k, v in fingerprint.items() if k != "id"})
    return study


def _mismatch(
    name: str, shown: str, key: str, attrs: dict[str, Any], value: Any, fingerprint: dict[str, Any]
) -> str:
    head = f"study {name!r} in {shown} was created for "
    tail = ": give another --study name (study=...), or rerun it with what it was made for."
    if key == TASK_ATTR:
        old = attrs.get(FINGERPRINT_ATTR) or {}
        changed = sorted(k for k in fingerprint if k != "id" and old.get(k) != fingerprint[k])
        what = f" (differs in {', '.join(changed)})" if changed else ""
        return head + f"another task{what}" + tail
    if key == SPACE_ATTR:
        return head + f"another space {attrs[key]} (this search: {value})" + tail
    if key == OBJECTIVE_ATTR:
        return head + f"a task scored by {_scored(attrs[key])} (this one: {_scored(value)})" + tail
    if key == SEED_ATTR:
        return (
            head + f"seed {attrs[key]} (this search: seed {value}); every trial of a study "
            f"trains with its one seed: rerun with --seed {attrs[key]} (seed={attrs[key]}), or "
            "give another --study name (study=...) for another seed."
        )
    if key == GRID_ATTR:
        return head + (
            f"a grid of {attrs[key]} LRs (this search asks for {value}): a grid's points are "
            "fixed when its study is made, so a grid study cannot be extended (--trials N "
            f"continues a random or bayes study only); rerun it with {attrs[key]} trials "
            "(trials=...), or give another --study name (study=...) for a new grid."
        )
    return head + f"method={attrs[key]!r} (this search: {value!r})" + tail


def _scored(objective: Any) -> str:
    """An objective of :func:`objective_of` in words: ``the validation metric (accuracy)``."""
    if not isinstance(objective, dict):
        return repr(objective)
    return f"{objective.get('scores')} ({objective.get('fn')})"


class _Runner:
    """One worker's loop over a study."""

    def __init__(
        self, task: Task, settings: _Settings, space: SearchSpace, store: Any, study: Any
    ) -> None:
        self.task, self.settings, self.space, self.store, self.study = (
            task,
            settings,
            space,
            store,
            study,
        )
        self.steps = int(task.steps or 0)
        self.every = task.eval_every or max(1, self.steps // CHECKPOINTS)
        self.checkpoints = set(range(self.every, self.steps, self.every))
        self.report_loss = task.val_loader is None

    def run(self, show: Callable[[Any], None]) -> None:
        """Run trials until the study holds the requested count of finished ones."""
        from ._storage import reap

        while True:
            reap(self.study, self.store)
            trials = self.study.get_trials(deepcopy=False)
            counted = [t for t in trials if counts(t)]
            show(trials)
            if sum(t.state.is_finished() for t in counted) >= self.settings.trials:
                return
            waiting = any(t.state.name == "WAITING" for t in counted)
            if len(counted) >= self.settings.trials and not waiting:
                time.sleep(POLL_S)  # the rest are other workers' running trials
                continue
            self._one_trial(len(trials))

    def _one_trial(self, existing: int) -> None:
        import optuna

        from ._pruning import make_pruner

        study = optuna.load_study(
            study_name=self.study.study_name,
            storage=self.store.storage,
            sampler=self._sampler(existing),
            pruner=make_pruner(self.settings.prune),
        )
        study.optimize(self._objective, n_trials=1, catch=(_Surplus,), gc_after_trial=False)

    def _sampler(self, existing: int) -> Any:
        settings = self.settings
        return make_sampler(settings.method, settings.trials, settings.seed, existing, self.space)

    def _objective(self, trial: Any) -> float:
        import optuna

        from ..train import train
        from ._pruning import TrialReporter
        from ._storage import HEARTBEAT, OWNER, beating, owner_tag

        trial.set_user_attr(OWNER, owner_tag(trial.number))
        if self.store.heartbeat is not None:
            trial.set_user_attr(HEARTBEAT, time.time())
        if is_surplus(self.study.get_trials(deepcopy=False), trial.number, self.settings.trials):
            trial.set_user_attr(SURPLUS, True)
            raise _Surplus(f"the study already holds {self.settings.trials} trials")
        if self.settings.method == "bayes":  # seeded by the trial's own (unique) number, so
            trial.study.sampler = self._sampler(trial.number)  # two workers never draw alike
        params = self.space.suggest(trial)
        recipe = task_for(self.task, params)
        if recipe.val_loader is not None and recipe.eval_every is None:
            recipe = dataclasses.replace(recipe, eval_every=self.every)
        reporter = TrialReporter(trial, self.checkpoints, report_loss=self.report_loss)
        with (
            beating(trial, self.store.heartbeat),
            warnings.catch_warnings(),
            history.capturing_runs() as captured,
        ):
            # the recipe was linted once, before the first trial; a sampled LR is the
            # search's choice. The run is recorded below as a trial, with its outcome.
            warnings.simplefilter("ignore", LintWarning)
            run = train(
                recipe, params["lr"], seed=self.settings.seed, callbacks=[reporter], progress=False
            )
        trial.set_user_attr(STEPS, run.steps_done)
        trial.set_user_attr(SECONDS, run.seconds)
        outcome = _TrialOutcome(trial, params, run, captured.fingerprint)
        diverged = reporter.diverged or _diverged_reason(run)
        if diverged:
            trial.set_user_attr(DIVERGED, True)
            trial.set_user_attr(REASON, f"diverged: {diverged}")
            outcome.record("diverged", None)
            raise optuna.TrialPruned(f"diverged: {diverged}")
        if reporter.pruned_at is not None:
            trial.set_user_attr(REASON, f"pruned at step {reporter.pruned_at} of {self.steps}")
            outcome.record("pruned", None)
            raise optuna.TrialPruned()
        metric = _final_metric(run, self.report_loss)
        if reporter.failed or not math.isfinite(metric):
            trial.set_user_attr(FAILURE, reporter.failed or f"the final metric was {metric}")
            outcome.record("failed", None)
            return math.nan
        outcome.record("complete", metric)
        return metric


@dataclasses.dataclass(frozen=True)
class _TrialOutcome:
    """One trial's run, to record in the history once the search knows what the trial was."""

    trial: Any
    params: dict[str, Any]
    run: Any
    fingerprint: dict[str, Any] | None

    def record(self, state: str, metric: float | None) -> None:
        """Record the trial as a ``trial`` (:func:`lrpilot.history.record_trial`) with its
        state and the steps it trained: the history's recommender learns only from complete
        ones. Nothing when recording is off (``train`` then captured no fingerprint)."""
        if self.fingerprint is None:
            return
        run = self.run
        reason = self.trial.user_attrs.get(REASON) or self.trial.user_attrs.get(FAILURE) or ""
        features = {
            "steps": run.steps,
            "steps_done": run.steps_done,
            "seconds": run.seconds,
            "stopped": run.stopped,
            "reason": reason,
            "seed": run.seed,
        }
        history.record_trial(
            float(self.params["lr"]),
            metric,
            fingerprint=self.fingerprint,
            diverged=state == "diverged",
            study=self.trial.study.study_name,
            number=self.trial.number,
            params=self.params,
            state=state,
            features=features,
            name=run.task or None,
        )


def make_sampler(method: str, trials: int, seed: int, number: int, space: SearchSpace) -> Any:
    """The Optuna sampler a search of ``trials`` trials with ``method`` uses for trial
    ``number``: TPE reseeded per trial (so two workers never draw alike), scrambled Sobol, or
    the log-even grid shared by every worker. The search runner and the benchmark's replay of
    stored trial curves (``benchmarks.prune_replay``) both take their sampler from here."""
    import optuna

    if method == "bayes":
        startup = max(3, min(10, trials // 4))
        return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed * 1_000_003 + number)
    if method == "random":
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=seed,
            warn_asynchronous_seeding=False,
            warn_independent_sampling=False,
        )
    points = -(-trials // max(1, len(space.schedules)))
    # one seed for every trial and worker: the grid's order (and trial i's point) is shared
    return optuna.samplers.GridSampler(space.grid(points), seed=seed)


def counts(trial: Any) -> bool:
    """Whether ``trial`` counts towards the requested number: finished by lrpilot (complete,
    pruned, or failed with a reason), running, or queued. A trial failed without a reason (a
    dead worker's, since retried; an interrupted one; a surplus one) does not."""
    state = trial.state.name
    if state in ("COMPLETE", "PRUNED", "RUNNING", "WAITING"):
        return True
    return state == "FAIL" and FAILURE in trial.user_attrs


def _order(trial: Any) -> tuple[int, int]:
    """A trial's place in line: a retry takes the place of the trial it retries."""
    return (int(trial.system_attrs.get("failed_trial", trial.number)), trial.number)


def is_surplus(trials: list[Any], number: int, wanted: int) -> bool:
    """Whether trial ``number`` has ``wanted`` counted trials before it in line."""
    mine = next(t for t in trials if t.number == number)
    place = _order(mine)
    ahead = sum(1 for t in trials if t.number != number and counts(t) and _order(t) < place)
    return ahead >= wanted


def _diverged_reason(run: Any) -> str:
    if not run.diverged:
        return ""
    for event in run.events:
        if event["kind"] == "diverged":
            return str(event["message"])
    return "the run diverged"


def _final_metric(run: Any, from_loss: bool) -> float:
    """The run's validation metric; without validation data minus its last losses' mean."""
    if not from_loss:
        return float(run.metric)
    tail = [x for x in run.losses[-max(1, len(run.losses) // 20) :] if math.isfinite(x)]
    return -sum(tail) / len(tail) if tail else math.nan


def _result(
    study: Any,
    settings: _Settings,
    space: SearchSpace,
    shown: str,
    range_steps: int,
    suggested: float | None,
) -> SearchResult:
    records = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    counted = [
        r for r, t in zip(records, study.get_trials(deepcopy=False), strict=True) if counts(t)
    ]
    complete = [r for r in counted if r.state == "COMPLETE" and r.metric is not None]
    if not complete:
        raise LossError(_no_result(counted, space))
    best = max(complete, key=lambda r: r.metric or -math.inf)
    return SearchResult(
        lr=float(best.lr or math.nan),
        metric=float(best.metric or math.nan),
        params=best.params,
        trials=records,
        method=settings.method,
        study=study.study_name,
        storage=shown,
        space=space.to_dict(),
        range_test_steps=range_steps,
        range_test_lr=suggested,
    )


def _no_result(counted: list[Any], space: SearchSpace) -> str:
    low, high = space.lr
    if counted and all(r.diverged for r in counted):
        return (
            f"every one of the {len(counted)} trials diverged (LR {low:.3g} to {high:.3g}): "
            f"lower the range, e.g. space=({low / 100:.3g}, {high / 100:.3g}) "
            f"(--lr-min/--lr-max), and use a new study name."
        )
    states = ", ".join(f"{r.number}: {r.state.lower()} ({r.reason})" for r in counted[:5])
    return f"no trial completed ({states}): check the task's metric, or widen the LR range."


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's per-trial INFO lines and experimental-feature warnings off (lrpilot shows its
    own progress), put back afterwards."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[Any], None]]:
    """Show trials done, pruned, running, failed and the best so far, on stderr."""
    if not enabled:
        yield lambda trials: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from .._progress import in_notebook

    if in_notebook():
        yield lambda trials: print("\r" + _summary(trials), end="", file=sys.stderr)
        print(file=sys.stderr)
        return
    columns = (
        TextColumn("[bold]search"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[text]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task("search", total=total, text="")

        def show(trials: Any) -> None:
            done = sum(1 for t in trials if counts(t) and t.state.is_finished())
            bar.update(task_id, completed=min(done, total), text=_summary(trials))

        yield show


def _summary(trials: Any) -> str:
    by = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    best: Any = None
    for t in trials:
        if t.state.name in by and (t.state.name != "FAIL" or counts(t)):
            by[t.state.name] += 1
        if t.state.name == "COMPLETE" and t.value is not None and math.isfinite(t.value):
            if best is None or t.value > best.value:
                best = t
    text = (
        f"done {by['COMPLETE']} · pruned {by['PRUNED']} · failed {by['FAIL']} · "
        f"running {by['RUNNING']}"
    )
    if best is not None:
        text += f" · best {best.value:.4g} at lr {best.params.get('lr', math.nan):.3g}"
    return text
