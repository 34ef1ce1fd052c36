"""Pruners and samplers of ``lrpilot.search`` replayed on stored trial curves: many tasks,
many search seeds, in minutes.

    python -m benchmarks.prune_replay --collect      # train the curves not stored yet
    python -m benchmarks.prune_replay                # replay every search, write RESULTS.md

``benchmarks.search_regret`` runs real searches, but a search of 16 trials costs 16 training
runs, so it covers 4 short tasks and 3 seeds: too few to tell two pruners apart (their
difference there is within its noise). Here each task's oracle-grid LRs are trained once
(seed 0) the way a search trial is trained: ``lrpilot.train`` evaluating at every tenth of the
run (``_runner.CHECKPOINTS``), with the search's own ``TrialReporter`` watching the loss and
stopping a diverging run. Each run's checkpoint values, final metric, steps and divergence are
stored (``store/trial_curves.json``, tracked: a fresh checkout keeps them).

A replayed search is then the real thing except for the training: an in-memory Optuna study
with the search's sampler (``_runner.make_sampler``: TPE reseeded per trial, scrambled Sobol,
the log-even grid) and a real pruner (lrpilot's ``ScheduleFairPruner``, Optuna's
``MedianPruner``, ``PercentilePruner`` keeping the same top third, ``SuccessiveHalvingPruner``,
or none). A sampled LR's curve is interpolated, linear in log-LR, between the two grid LRs
around it (the nearer one's, whole, when either diverged); the trial reports its values at the
checkpoints, stops where the pruner says or where the curve diverged, and completes with its
final value otherwise. The pick is the best completed trial; its regret is the oracle grid's
mean metric over the stored seeds at that LR (interpolated in log-LR: the expected result of
training it again) as a share of the oracle-trivial gap, as the scoreboard computes it. Steps
are what the search trained.

What this does not model: the noise between two trainings at one LR (every replay sees seed
0's curves; the real benchmark trains each trial with the search's seed), the curve between
grid LRs (interpolated), and a finished run whose metric is not finite (stored as diverged
here: a real search fails that trial instead). Every pruner sees the same curves, so their
comparisons are paired.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import hashlib
import inspect
import json
import math
import multiprocessing
import random
import statistics
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import optuna
import torch

import lrpilot
from benchmarks import search_regret
from benchmarks.cache import STORE, RunCache, cache_path
from benchmarks.replay import grid_curve, interpolate
from benchmarks.results_md import write_section
from benchmarks.sources import code_of
from benchmarks.suggestion import CURVES, SPREAD_SEEDS
from benchmarks.tasks import TASKS, BenchTask
from lrpilot._search import _pruning, _runner
from lrpilot._search._space import SearchSpace, space_around
from lrpilot.control._detectors import relative_rise

CURVES_PATH = STORE / "trial_curves.json"
CURVE_SEED = 0
SLOW = ("fortunes_gru-long", "wordnet_gpt-long", "fmnist_vit-long")
"""Families whose long runs take 25-45 s each: left out unless ``--slow`` (16 LRs each)."""
DEFAULT_TASKS = tuple(name for name in TASKS if not name.startswith(SLOW))


@functools.cache
def trial_version() -> str:
    """What a stored trial curve depends on besides the run layer (in its cache key): the
    code of the search's ``TrialReporter`` (its divergence stop), the divergence factor and
    the checkpoints. Not the pruners': replaying them is this benchmark's point."""
    text = code_of(inspect.getsource(_pruning.TrialReporter))
    text += f"|{_pruning.DIVERGED_FACTOR}|{code_of(inspect.getsource(relative_rise))}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"trial-{digest}-c{_runner.CHECKPOINTS}"


class _Recorder:
    """Stands in for an ``optuna.Trial`` under ``TrialReporter``: keeps what is reported and
    never prunes, so that the run's whole curve is recorded."""

    def __init__(self) -> None:
        self.values: dict[int, float] = {}

    def report(self, value: float, step: int) -> None:
        self.values[step] = float(value)

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def checkpoints_of(steps: int) -> tuple[int, set[int]]:
    """The search's evaluation interval and checkpoint steps for a run of ``steps``."""
    every = max(1, steps // _runner.CHECKPOINTS)
    return every, set(range(every, steps, every))


def train_curve(task: BenchTask, lr: float, seed: int = CURVE_SEED) -> dict[str, Any]:
    """One trial's run at ``lr``, as ``lrpilot.search`` trains it, with its whole curve."""
    every, checkpoints = checkpoints_of(task.steps)
    recipe = dataclasses.replace(task.lrpilot_task(), eval_every=every)
    recorder = _Recorder()
    reporter = _pruning.TrialReporter(
        recorder,  # type: ignore[arg-type]
        checkpoints,
        report_loss=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = lrpilot.train(recipe, lr, seed=seed, callbacks=[reporter], progress=False)
    diverged = bool(reporter.diverged) or bool(run.diverged)
    final = float(run.metric) if not diverged and math.isfinite(run.metric) else None
    return {
        "lr": lr,
        "seed": seed,
        "values": {str(k): v for k, v in sorted(recorder.values.items())},
        "final": final,
        "steps": int(run.steps_done),
        "diverged": diverged,
        "trial_version": trial_version(),
        "wall_s": run.seconds,
    }


def _store() -> RunCache:
    return RunCache(CURVES_PATH)


def stored(task: BenchTask, lr: float, store: RunCache) -> dict[str, Any] | None:
    row = store.get(task, lr, CURVE_SEED)
    return row if row is not None and row.get("trial_version") == trial_version() else None


def _collect_one(job: tuple[str, float]) -> str:
    name, lr = job
    task = TASKS[name]
    row = train_curve(task, lr)
    _store().put(task, row)
    state = "diverged" if row["diverged"] else f"final {row['final']:.4g}"
    return f"{name:28s} lr={lr:<9.3g} {state} ({row['wall_s']:.1f} s)"


def collect(tasks: Iterable[str], workers: int) -> None:
    """Train and store every grid LR's curve of ``tasks`` not stored yet."""
    store = _store()
    jobs = [(n, lr) for n in tasks for lr in TASKS[n].grid if stored(TASKS[n], lr, store) is None]
    runs = RunCache(cache_path(quick=False)).runs.values()
    cost = {
        n: statistics.fmean([r["wall_s"] for r in runs if r["task"] == n] or [60.0]) for n in tasks
    }
    jobs.sort(key=lambda job: cost[job[0]])  # the cheap tasks first: replayable soonest
    print(f"{len(jobs)} trial curves to train", flush=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        for line in pool.map(_collect_one, jobs):
            print(line, flush=True)


def _one_thread() -> None:
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- replay
@dataclass(frozen=True)
class Curve:
    """One stored trial run: values at the checkpoints (higher is better), final value
    (``None`` when it diverged), steps trained."""

    lr: float
    values: dict[int, float]
    final: float | None
    steps: int

    @property
    def diverged(self) -> bool:
        return self.final is None


def curves_of(task: BenchTask, store: RunCache) -> list[Curve] | None:
    """``task``'s stored trial curves in LR order; ``None`` when any grid LR is missing."""
    rows = [stored(task, lr, store) for lr in task.grid]
    if any(r is None for r in rows):
        return None
    return [
        Curve(r["lr"], {int(k): v for k, v in r["values"].items()}, r["final"], r["steps"])
        for r in rows
        if r is not None
    ]


def curve_at(curves: list[Curve], lr: float) -> Curve:
    """The curve at ``lr``: linear in log-LR between the grid curves around it; the nearer
    one's, whole, beyond the grid's ends or where either neighbour diverged."""
    x = math.log10(lr)
    xs = [math.log10(c.lr) for c in curves]
    if x <= xs[0]:
        return curves[0]
    if x >= xs[-1]:
        return curves[-1]
    i = next(i for i in range(1, len(xs)) if x <= xs[i])
    low, high = curves[i - 1], curves[i]
    w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    if low.final is None or high.final is None or low.values.keys() != high.values.keys():
        return high if w >= 0.5 else low
    values = {k: (1 - w) * v + w * high.values[k] for k, v in low.values.items()}
    return Curve(lr, values, (1 - w) * low.final + w * high.final, low.steps)


PRUNES = ("none", "fair", "median", "percentile", "halving")
"""``fair``: lrpilot's ``ScheduleFairPruner``; ``median``: Optuna's ``MedianPruner``;
``percentile``: Optuna's ``PercentilePruner`` keeping the fair pruner's top third;
``halving``: Optuna's ``SuccessiveHalvingPruner`` (its defaults, η = 3). Every pruner but the
last waits for the same ``STARTUP_TRIALS`` completed trials."""


VARIANTS: dict[str, dict[str, Any]] = {
    "fair weighted": {"prediction": "weighted"},
    "fair 1/2": {"percentile": 50.0},
}
"""The fair pruner with the Gaussian-weighted prediction of every completed neighbour (its
default until 2026-12-07, :func:`~lrpilot._search._pruning.predict_final`), or keeping half of
the trials (the median's share) instead of a third."""


def make_pruner(name: str, startup: int = _pruning.STARTUP_TRIALS) -> optuna.pruners.BasePruner:
    if name in VARIANTS:
        return _pruning.ScheduleFairPruner(n_startup_trials=startup, **VARIANTS[name])
    if name == "percentile":
        return optuna.pruners.PercentilePruner(
            100.0 * _pruning.KEEP_SHARE, n_startup_trials=startup
        )
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return _pruning.make_pruner(name, startup)


@dataclass(frozen=True)
class Replayed:
    task: str
    method: str
    prune: str
    trials: int
    seed: int
    lr: float
    gap: float
    steps: int


def replay_search(
    curves: list[Curve],
    total_steps: int,
    method: str,
    prune: str,
    trials: int,
    seed: int,
    checkpoint_every: int = 1,
    startup: int = _pruning.STARTUP_TRIALS,
    start: float | None = None,
    lr_range: tuple[float, float] | None = None,
) -> tuple[float | None, int]:
    """One search replayed on ``curves``: (the best completed trial's LR or ``None`` when
    none completed, the steps it trained). ``checkpoint_every``: report at every k-th stored
    checkpoint only (2: every fifth of the run); ``startup``: the pruner's startup trials;
    ``start``: an LR enqueued as the first trial, as ``lrpilot.search`` does with its range
    test's suggestion; ``lr_range``: the space's bounds (default: the grid's)."""
    space = SearchSpace(lr=lr_range or (curves[0].lr, curves[-1].lr))
    study = optuna.create_study(direction="maximize", pruner=make_pruner(prune, startup))
    if start is not None:
        study.enqueue_trial({"lr": min(max(start, space.lr[0]), space.lr[1])})
    spent = [0]

    def objective(trial: optuna.Trial) -> float:
        curve = curve_at(curves, space.suggest(trial)["lr"])
        stopped = _run_trial(trial, curve, checkpoint_every)
        spent[0] += total_steps if stopped is None else stopped
        if stopped is not None or curve.final is None:
            raise optuna.TrialPruned()
        return curve.final

    for number in range(trials):  # the runner's loop: one trial at a time, its own sampler
        study.sampler = _runner.make_sampler(method, trials, seed, number, space)
        study.optimize(objective, n_trials=1)
    steps = spent[0]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return None, steps
    return float(
        max(done, key=lambda t: -math.inf if t.value is None else float(t.value)).params["lr"]
    ), steps


def _run_trial(trial: optuna.Trial, curve: Curve, checkpoint_every: int) -> int | None:
    """Report ``curve`` to ``trial``; the step where it stopped (pruned or diverged), or
    ``None`` when it ran to the end."""
    reported = sorted(curve.values)[checkpoint_every - 1 :: checkpoint_every]
    for step in reported:
        if step > curve.steps:
            break
        trial.report(curve.values[step], step)
        if trial.should_prune():
            return step
    return curve.steps if curve.diverged else None


COUNTS = (8, 16, 20, 32)
"""Trial counts replayed (20: ``lrpilot.search``'s default); random search also at twice each,
the target's bar."""
SEEDS = 20
BOOTSTRAP = 2000
ABLATIONS = {"fair 4/5": (4, 2), "fair 2/5": (2, 2), "fair 4/10": (4, 1)}
"""The fair pruner with ``s`` startup trials and ``c`` checkpoints a run (``"fair s/c"``), as
in ``benchmarks.search_regret``: (startup trials, report at every k-th stored checkpoint)."""
CONFIGS: tuple[tuple[str, str], ...] = (
    ("grid", "none"),
    ("random", "none"),
    ("bayes", "none"),
    *(("bayes", p) for p in PRUNES if p != "none"),
    *(("bayes", name) for name in ABLATIONS),
    *(("bayes", name) for name in VARIANTS),
)


def replay_task(name: str, seeds: int) -> list[Replayed]:
    """Every config's searches on one task's stored curves, search seeds 0..seeds-1; and,
    where the scoreboard's range-test picks are at hand, the range test alone and TPE that
    tries its pick first (its sweep's steps counted)."""
    task = TASKS[name]
    curves = curves_of(task, _store())
    points = grid_curve(task, RunCache(cache_path(quick=False)))
    if curves is None or not points:
        return []
    best = points[task.best_index([m for _, m in points])][1]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    picks = range_test_picks().get(name)
    out = []

    def add(method: str, prune: str, trials: int, seed: int, lr: float | None, steps: int) -> None:
        gap = task.gap_fraction(best, task.trivial if lr is None else interpolate(points, lr))
        if gap is not None:
            pick = math.nan if lr is None else lr
            out.append(Replayed(name, method, prune, trials, seed, pick, gap, steps))

    for method, prune in CONFIGS:
        counts = sorted({*COUNTS, *(2 * n for n in COUNTS)}) if method == "random" else COUNTS
        for trials in counts:
            for seed in range(1 if method == "grid" else seeds):
                startup, every = ABLATIONS.get(prune, (_pruning.STARTUP_TRIALS, 1))
                pruner = "fair" if prune in ABLATIONS else prune
                lr, steps = replay_search(
                    curves, task.steps, method, pruner, trials, seed, every, startup
                )
                add(method, prune, trials, seed, lr, steps)
    for seed in range(seeds if picks else 0):
        pick = picks[seed % len(picks)]  # type: ignore[index]
        add("range test", "-", 1, seed, pick.lr, pick.steps + task.steps)
        own = pick.space(curves[0].lr, curves[-1].lr)
        for prune in START_PRUNES:
            for trials in COUNTS:
                for method, lr_range in ((START, None), (START_OWN, own)):
                    lr, steps = replay_search(
                        curves,
                        task.steps,
                        "bayes",
                        prune,
                        trials,
                        seed,
                        start=pick.lr,
                        lr_range=lr_range,
                    )
                    add(method, prune, trials, seed, lr, steps + pick.steps)
    return out


START = "bayes, range-test start"
START_OWN = "bayes, range-test start and space"
START_PRUNES = ("none", "fair", "median")


@dataclass(frozen=True)
class RangePick:
    """One seed's range test of a task: its pick, band and steps."""

    lr: float
    band: tuple[float, float]
    steps: int

    def space(self, low: float, high: float) -> tuple[float, float]:
        """``lrpilot.search``'s own space from this range test (``_space.space_around``:
        a decade either side of the pick, widened to hold the band, to 3 figures), kept
        within ``low``-``high`` (the grid, where the curves are)."""
        lo, hi = space_around(self.lr, self.band)
        return max(lo, low), min(hi, high)


@functools.cache
def range_test_picks() -> dict[str, list[RangePick]]:
    """Each task's range tests over the scoreboard's seeds, from its saved sweeps
    (``out/curves``, written by ``python -m benchmarks.suggestion``); a task without all of
    them is left out."""
    found = {}
    for name in TASKS:
        files = [CURVES / f"{name}__lrpilot__seed{s}.json" for s in SPREAD_SEEDS]
        if not all(f.exists() for f in files):
            continue
        sweeps = [json.loads(f.read_text()) for f in files]
        found[name] = [
            RangePick(
                float(sweep["lr"]),
                (float(sweep["extra"]["band"][0]), float(sweep["extra"]["band"][1])),
                int(sweep["extra"]["cost_steps"]),
            )
            for sweep in sweeps
        ]
    return found


def replay_all(tasks: list[str], seeds: int, workers: int) -> list[Replayed]:
    """:func:`replay_task` for every task, spread over ``workers`` processes."""
    if workers <= 1:
        return [r for name in tasks for r in replay_task(name, seeds)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return [r for rows in pool.map(replay_task, tasks, [seeds] * len(tasks)) for r in rows]


Key = tuple[str, str, int]


def summarize(rows: list[Replayed]) -> dict[Key, tuple[float, float, float]]:
    """(method, prune, trials) -> (mean % of gap, median % of gap, mean steps as a share of
    unpruned TPE's with the same task, seed and trials)."""
    table = search_regret.summarize(rows)  # type: ignore[arg-type]  # the same fields
    return {key: (mean, median, ratio) for key, (mean, ratio, median) in table.items()}


def paired(rows: list[Replayed], a: str, b: str, trials: int) -> tuple[float, float, float, float]:
    """Pruner ``a`` against ``b`` (both bayes, ``trials``): the mean over tasks of the
    difference in % of gap (negative: ``a`` better), its 95 % bootstrap interval over tasks,
    and the share of searches (same task and seed) where ``a``'s pick is at least as good."""
    gaps = {
        (r.task, r.seed, r.prune): r.gap
        for r in rows
        if r.method == "bayes" and r.trials == trials and r.prune in (a, b)
    }
    by_task: dict[str, list[float]] = {}
    wins = []
    for (task, seed, prune), gap in gaps.items():
        other = gaps.get((task, seed, b))
        if prune != a or other is None:
            continue
        by_task.setdefault(task, []).append(100 * (gap - other))
        wins.append(gap <= other + 1e-12)
    return _paired_stats(by_task, wins)


def _paired_stats(
    by_task: dict[str, list[float]], wins: list[bool]
) -> tuple[float, float, float, float]:
    if not by_task:
        return math.nan, math.nan, math.nan, math.nan
    return (*_mean_interval(by_task), sum(wins) / len(wins))


def _mean_interval(by_task: dict[str, list[float]]) -> tuple[float, float, float]:
    """The mean over tasks of each task's mean, with its 95 % bootstrap interval over tasks."""
    means = [statistics.fmean(v) for v in by_task.values()]
    if not means:
        return math.nan, math.nan, math.nan
    rng = random.Random(0)
    boots = sorted(statistics.fmean(rng.choices(means, k=len(means))) for _ in range(BOOTSTRAP))
    low, high = boots[int(0.025 * BOOTSTRAP)], boots[int(0.975 * BOOTSTRAP) - 1]
    return statistics.fmean(means), low, high


def report(rows: list[Replayed], tasks: list[str], seeds: int, command: str) -> str:
    """The RESULTS.md section: the table, each pruner against Optuna's ``MedianPruner``,
    decaying against constant schedules, the target, and the held-out choice."""
    table = summarize(rows)
    families = sorted({TASKS[t].family.name for t in tasks})
    lines = [
        "## LR search replayed on stored trial curves: pruners side by side",
        "",
        f"`{command}` ({dt.date.today().isoformat()}): {len(tasks)} tasks of "
        f"{len(families)} families, search seeds 0–{seeds - 1} (the grid once); trains "
        "nothing once `--collect` has stored every grid LR's trial curve (seed 0, evaluated at "
        f"every 1/{_runner.CHECKPOINTS} of the run, as a search trial is). Each search is an "
        "Optuna study with `lrpilot.search`'s sampler and a real pruner over the oracle grid's "
        "range; a sampled LR's curve is interpolated in log-LR between the grid's (see the "
        "module's docstring for what this does not model; the grid search here tries the "
        "oracle grid's own LRs, which flatters it). Regret: the oracle grid's mean metric at "
        "the pick, as a % of the oracle–trivial gap. `fair`: lrpilot's pruner as shipped "
        f"({_pruning.STARTUP_TRIALS} completed trials first; it keeps the trials predicted "
        "in the top third, each predicted by the better of its two bracketing neighbours' "
        "guesses); `fair weighted`: the same with the Gaussian-weighted prediction it "
        "shipped with before; `fair s/c`: s startup trials, c checkpoints a run; `fair 1/2`: "
        "keeps half; `median`, `percentile` (the top third), `halving`: Optuna's "
        "`MedianPruner`, `PercentilePruner`, `SuccessiveHalvingPruner`. "
        f"`{START}`: TPE over the grid's range whose first trial is the range test's pick "
        "(the scoreboard's saved sweep of the seed, seeds 0–4 in turn); "
        f"`{START_OWN}`: the same in the space `lrpilot.search` builds from that range test "
        "(a decade either side of the pick, widened to its band; kept within the grid, where "
        "the curves are): what `lrpilot.search` does by default; both count the sweep's "
        "steps. `range test`: the pick alone, its sweep and one run.",
        "",
        "| method | pruner | trials | mean % of gap | median % of gap | steps / unpruned TPE |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key in sorted(table, key=lambda k: (k[0], k[1] != "none", k[1], k[2])):
        mean, median, ratio = table[key]
        shown = "—" if math.isnan(ratio) else f"{ratio:.2f}"
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {mean:.1f} | {median:.1f} | {shown} |")
    lines += ["", *against_median_lines(rows, table), "", *schedule_lines(rows)]
    lines += ["", *target_lines(table), *default_against_random(rows)]
    lines += ["", *held_out_lines(rows, tasks)]
    lines += ["", *start_lines(rows, table)]
    return "\n".join(lines) + "\n"


COMPARED = ("fair", "fair weighted", "fair 1/2", "percentile", "halving")


def against_median_lines(
    rows: list[Replayed], table: dict[Key, tuple[float, float, float]]
) -> list[str]:
    """Each pruner against Optuna's ``MedianPruner``, paired, with its steps beside."""
    lines = [
        "**Against Optuna's MedianPruner** (the issue's comparison; paired: same task, seed "
        "and trials; the difference in % of gap, negative: better than the median pruner; "
        "95 % interval by bootstrap over tasks; the share of searches whose pick is at least "
        "as good; steps as a share of the median pruner's):",
        "",
    ]
    for n in COUNTS:
        base = table.get(("bayes", "median", n))
        if base is None:
            continue
        parts = []
        for prune in COMPARED:
            row = table.get(("bayes", prune, n))
            if row is None:
                continue
            mean, low, high, share = paired(rows, prune, "median", n)
            parts.append(
                f"`{prune}` {mean:+.2f} [{low:+.2f}, {high:+.2f}], {100 * share:.0f} %, "
                f"{row[2] / base[2]:.2f}× the steps"
            )
        lines.append(f"- N={n}: " + "; ".join(parts) + ".")
    return lines


def decays(task: str) -> bool:
    """Whether the task's recipe decays its LR (the ``adamw`` recipes' warmup-cosine)."""
    return TASKS[task].schedule is not None


def schedule_lines(rows: list[Replayed]) -> list[str]:
    """Regret and steps of the median pruner and lrpilot's on decaying-schedule tasks (where
    the short-horizon bias lives) and constant-LR ones, apart."""
    lines = [
        "**Decaying against constant schedules** (mean % of gap at steps / unpruned TPE; the "
        "short-horizon bias lives in the decaying ones):",
        "",
    ]
    for label, keep in (("decaying", True), ("constant", False)):
        part = [r for r in rows if decays(r.task) is keep]
        if not part:
            continue
        table = summarize(part)
        cells = []
        for n in COUNTS:
            for prune in ("none", "median", "fair", "fair weighted"):
                row = table.get(("bayes", prune, n))
                if row is not None:
                    cells.append(f"{prune}@{n} {row[0]:.1f} % at {row[2]:.2f}×")
        count = len({r.task for r in part})
        lines.append(f"- {label} ({count} tasks): " + "; ".join(cells) + ".")
    return lines


def target_lines(table: dict[Key, tuple[float, float, float]]) -> list[str]:
    """The issue's target for each pruner: regret at N within random search's at 2N, and at
    most half the steps of unpruned TPE at N."""
    lines = [
        "**Target** (bayes + a pruner at N trials: regret ≤ random search at 2N; steps ≤ ½ "
        "of unpruned TPE at N):",
        "",
    ]
    for n in COUNTS:
        bar = table.get(("random", "none", 2 * n))
        plain = table.get(("bayes", "none", n))
        if bar is None or plain is None:
            continue
        cells = [f"unpruned TPE {plain[0]:.1f} %"]
        for prune in ("fair", "median", *VARIANTS):
            row = table.get(("bayes", prune, n))
            if row is None:
                continue
            met = row[0] <= bar[0] and row[2] <= 0.5
            cells.append(f"{prune} {row[0]:.1f} % at {row[2]:.2f}×{' (met)' if met else ''}")
        lines.append(f"- N={n} (random@{2 * n}: {bar[0]:.1f} %): " + "; ".join(cells) + ".")
    for n in COUNTS:
        bar, ours = table.get(("random", "none", 2 * n)), table.get((START_OWN, "fair", n))
        if bar is None or ours is None:
            continue
        regret_met = "met" if ours[0] <= bar[0] else "not met"
        steps_met = "met" if ours[2] <= 0.5 else "not met"
        lines.append(
            f"- `lrpilot.search` as it runs by default (the range test's pick first, in its own "
            f"space, lrpilot's pruner), N={n}: {ours[0]:.2f} % of gap against random@{2 * n}'s "
            f"{bar[0]:.2f} % ({regret_met}); {ours[2]:.2f}× unpruned TPE's steps, the sweep "
            f"counted ({steps_met})."
        )
    return lines


def default_against_random(rows: list[Replayed]) -> list[str]:
    """The default search at N against random search at 2N, paired by task and seed: the mean
    difference in % of gap over tasks with its 95 % bootstrap interval (negative: the default
    better), and the share of searches where its pick is at least as good."""
    gaps = {(r.task, r.seed, r.method, r.prune, r.trials): r.gap for r in rows}
    steps = {(r.task, r.seed, r.method, r.prune, r.trials): r.steps for r in rows}
    lines = [
        "",
        "The default search against random search at twice its trials, paired (the difference "
        "in % of gap, negative: the default better, with its 95 % bootstrap interval over "
        "tasks), and its steps over unpruned TPE's at N (the mean over tasks, with the same "
        "interval):",
        "",
    ]
    for n in COUNTS:
        by_task: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        wins = []
        for (task, seed, method, prune, trials), gap in gaps.items():
            other = gaps.get((task, seed, "random", "none", 2 * n))
            if (method, prune, trials) != (START_OWN, "fair", n) or other is None:
                continue
            by_task.setdefault(task, []).append(100 * (gap - other))
            wins.append(gap <= other + 1e-12)
            plain = steps.get((task, seed, "bayes", "none", n))
            if plain:
                ratios.setdefault(task, []).append(steps[(task, seed, method, prune, n)] / plain)
        if not by_task:
            continue
        mean, low, high, share = _paired_stats(by_task, wins)
        ratio, r_low, r_high = _mean_interval(ratios)
        lines.append(
            f"- N={n} against random@{2 * n}: {mean:+.2f} [{low:+.2f}, {high:+.2f}] % of gap "
            f"(mean over {len(by_task)} tasks), at least as good in {share:.0%} of searches; "
            f"{ratio:.2f}× [{r_low:.2f}, {r_high:.2f}] unpruned TPE's steps."
        )
    return lines


def start_lines(rows: list[Replayed], table: dict[Key, tuple[float, float, float]]) -> list[str]:
    """What trying the range test's pick first buys TPE, at equal trials."""
    if not any(r.method == START for r in rows):
        return [
            "(No saved range tests at hand: run `python -m benchmarks.suggestion --stage "
            "sweeps --pickers lrpilot` first.)"
        ]
    alone = table.get(("range test", "-", 1))
    tasks = len({r.task for r in rows if r.method == START})
    lines = [
        f"**The range test's pick as the first trial** ({tasks} tasks; steps include the "
        "sweep's; TPE over the grid's range → with the pick first (→ with the pick first "
        "and the search's own space around it: the default `lrpilot.search`)):",
        "",
    ]
    if alone is not None:
        lines.append(f"- the range test alone: {alone[0]:.1f} % of gap (median {alone[1]:.1f}).")
    for n in COUNTS:
        cells = []
        for prune in START_PRUNES:
            plain, first = table.get(("bayes", prune, n)), table.get((START, prune, n))
            own = table.get((START_OWN, prune, n))
            if plain is None or first is None or own is None:
                continue
            cells.append(
                f"{prune}: {plain[0]:.1f} → {first[0]:.1f} % ({own[0]:.1f} % in its own "
                f"space) at {plain[2]:.2f}× → {first[2]:.2f}× ({own[2]:.2f}×) unpruned TPE's "
                "steps"
            )
        bar = table.get(("random", "none", 2 * n))
        shown = f" (random@{2 * n}: {bar[0]:.1f} %)" if bar else ""
        lines.append(f"- N={n}{shown}: " + "; ".join(cells) + ".")
    return lines


SETTINGS = ("fair", *ABLATIONS, *VARIANTS)
"""The fair pruner's settings the held-out check chooses among (shipped first)."""


def held_out_lines(rows: list[Replayed], tasks: list[str]) -> list[str]:
    """Each family scored by the fair pruner's setting chosen on the other families by the
    issue's criterion (:func:`_choose`), beside Optuna's ``MedianPruner`` on it."""
    family = {t: TASKS[t].family.name for t in tasks}
    lines = [
        "**Held out by family** (the setting among "
        f"{', '.join(f'`{s}`' for s in SETTINGS)} chosen without the family: the lowest "
        "regret among those that train no more steps than Optuna's MedianPruner there; "
        "scored on the family, beside the MedianPruner):",
        "",
    ]
    for n in COUNTS:
        gaps, ratios, medians, median_ratios = [], [], [], []
        chosen: dict[str, int] = {}
        for held in sorted(set(family.values())):
            train = summarize([r for r in rows if family[r.task] != held])
            test = summarize([r for r in rows if family[r.task] == held])
            choice = _choose(train, n)
            scored, median = test.get(("bayes", choice, n)), test.get(("bayes", "median", n))
            if choice is None or scored is None or median is None:
                continue
            chosen[choice] = chosen.get(choice, 0) + 1
            gaps.append(scored[0])
            ratios.append(scored[2])
            medians.append(median[0])
            median_ratios.append(median[2])
        if not gaps:
            continue
        picks = ", ".join(f"`{c}` ×{k}" for c, k in sorted(chosen.items()))
        better = sum(g < m for g, m in zip(gaps, medians, strict=True))
        lines.append(
            f"- N={n}: {statistics.fmean(gaps):.2f} % of gap at "
            f"{statistics.fmean(ratios):.2f}× unpruned TPE's steps (mean over {len(gaps)} "
            f"families; chosen: {picks}); Optuna's MedianPruner {statistics.fmean(medians):.2f} "
            f"% at {statistics.fmean(median_ratios):.2f}×; lower regret than it on {better} of "
            f"{len(gaps)} families."
        )
    return lines


def _choose(table: dict[Key, tuple[float, float, float]], n: int) -> str | None:
    """The setting with the lowest regret among those whose steps are at most the
    ``MedianPruner``'s ("prunes better than Optuna's MedianPruner": as good a pick for no more
    training); the fewest steps when none is that cheap."""
    scored = {s: table[("bayes", s, n)] for s in SETTINGS if ("bayes", s, n) in table}
    if not scored:
        return None
    budget = table.get(("bayes", "median", n), (0.0, 0.0, math.inf))[2]
    cheap = [s for s, row in scored.items() if row[2] <= budget]
    if cheap:
        return min(cheap, key=lambda s: scored[s][0])
    return min(scored, key=lambda s: scored[s][2])


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.prune_replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--collect", action="store_true", help="train missing trial curves")
    parser.add_argument("--slow", action="store_true", help=f"add {', '.join(SLOW)}")
    parser.add_argument("--tasks", help="comma-separated task names (default: all but --slow)")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--seeds", type=int, default=SEEDS, help="search seeds per config")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    tasks = args.tasks.split(",") if args.tasks else list(DEFAULT_TASKS)
    if args.slow and not args.tasks:
        tasks = list(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"unknown tasks: {', '.join(unknown)}")
    if args.collect:
        collect(tasks, args.workers)
        return
    store = _store()
    ready = [t for t in tasks if curves_of(TASKS[t], store) is not None]
    missing = sorted(set(tasks) - set(ready))
    if missing:
        print(f"no stored trial curves for {', '.join(missing)}: run with --collect")
    command = "python -m benchmarks.prune_replay" + (" --slow" if args.slow else "")
    rows = replay_all(ready, args.seeds, args.workers)
    body = report(rows, ready, args.seeds, command)
    print(body)
    if not args.no_write:
        write_section("search_replay", body)


if __name__ == "__main__":
    main()
