"""The training monitor on scoreboard tasks started too hot, and its cost per step.

    python -m benchmarks.monitor [--quick] [--tasks a,b,...] [--seeds 3] [--reps 9] [--no-long]
    python -m benchmarks.monitor --report-only   # re-write RESULTS from the saved run

**Recovery.** Each task's oracle best LR comes from its stored grid (``benchmarks/store/
runs.json``, seed 0, read through ``benchmarks.cache``). Every task is then trained from a
fresh model at 10x and at 30x that LR, with and without ``lrpilot.Monitor()`` (its defaults,
untouched), for each seed; and at the best LR itself with the same seed on ``DATA_ORDERS``
(the same initial weights, a few batches skipped at the start, as a rollback to the start
does), the reference. A run "recovers" when its final validation metric is within 2 % of the
median of those best-LR runs (relative, in the task's units; a diverged run never does); the
share against the best-LR run on the same order (no batch skipped), the measure before
2026-12-07, is given beside it. The table gives the share that recover with and without the
monitor. The monitor's constants were chosen on ``QUICK_TASKS``; the other
``TASKS`` (``HELD_OUT``) are reported apart, as held out. The best-LR reference is also run
with the monitor: it must stay quiet there (no action), the false-positive check.

**Long runs just past the cliff.** ``LONG_TASK`` (2,000 steps) started at the grid's first LRs
past its cliff (``LONG_LRS``: its stored grid's metric falls off above 0.01, 6 % worse at
0.0215), seeds 0 and 1, with and without the monitor; seed 0's runs without it are the stored
grid's own.

**Other long constant-LR runs started too hot.** Every other long task whose LR stays constant
(``HOT_LONG_TASKS``: SGD and Adam on diamonds, mnist1d_conv, movielens and wordnet_gpt) at
``HOT_LONG_MULTIPLIERS`` times its best LR (seed 0), with and without the monitor, both
trained here, against the best-LR run trained here: none of their traces was read while the
training-loss plateau was designed (on ``LONG_TASK``'s), so for that rule they are held out.

**Long runs at their best LR.** Every long task of the scoreboard (``LONG_TASKS``: 1,500 to
2,000 steps, constant LRs and warmup-cosine) trained at its oracle best LR (seed 0) with the
monitor, against the same run without it trained in the same process (a stored run will not
do: diamonds_mlp-long:sgd's ends 17 % apart on two machines): the false-positive check of the
detectors that only a long run exercises. It may act there (a plateau cut at
the end of a constant-LR run often helps); it must not cost more than the 2 % tolerance.

**Overhead.** ``lrpilot.train`` with a quiet monitor against ``lrpilot.train`` bare, at the
best LR, the two interleaved (alternating which goes first) after a warm-up pair; the ratio of
the process's CPU times per pair, median and range, judged against the target (the work the
monitor adds, which other processes on a shared machine do not inflate), with the wall-clock
ratios beside it. On a quiet machine the two agree, and either moves by ±10 % from pair to pair
on the same work: hence 100 pairs by default (25 moved their median by about ±5 % from one run
to the next on a shared machine), and a distribution-free 95 % interval of that median
(:func:`median_interval`) that the verdict reads: met, not met, or not shown when it holds the
target. In the same watched runs, the monitor's own work is timed
(:func:`callback_time`) and given beside the pairs: exact for that work, blind to any other
cost. One thread, as in the rest of the benchmark. The run is saved (``SAVED``) and
``--report-only`` re-writes the section from it; ``--overhead-only`` measures the overhead
again and keeps the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

import lrpilot
from benchmarks.cache import RunCache, cache_path
from benchmarks.data import OUT
from benchmarks.results_md import write_section
from benchmarks.tasks import TASKS as ALL_TASKS
from benchmarks.tasks import BenchTask

TASKS = (
    "diamonds_mlp:adamw",
    "diamonds_mlp:sgd",
    "movielens_mf:sgd",
    "movielens_mf:adamw",
    "mnist1d_conv:sgd",
    "mnist1d_conv:adamw",
    "wordnet_lstm:adamw",
    "fmnist_resnet:adamw",
    "bytes_gpt:adamw",
    "fortunes_gru:adam",
    "wordnet_gpt:adamw",
    "bytes_lstm:sgd",
)
"""The recovery tasks: the first six chose the monitor's constants; the rest are held out (the
last four were added on 2026-12-08, see :data:`HELD_OUT_NOTE`)."""
QUICK_TASKS = TASKS[:6]
HELD_OUT = tuple(t for t in TASKS if t not in QUICK_TASKS)
LONG_TASK = "fortunes_gru-long:adam"
LONG_LRS = (0.0215443, 0.0464159)
LONG_SEEDS = (0, 1)
LONG_TASKS = tuple(name for name in ALL_TASKS if "-long:" in name)
HOT_LONG_TASKS = tuple(
    name for name in LONG_TASKS if name != LONG_TASK and name.rsplit(":", 1)[1] in ("sgd", "adam")
)
HOT_LONG_MULTIPLIERS = (4.64, 10.0)
MULTIPLIERS = (10.0, 30.0)
TOLERANCE = 0.02
DATA_ORDERS = (0, 7, 19, 31, 47)
"""Batches skipped at the start of the best-LR reference runs (:class:`SkipAtStart`): five
data orders from the same initial weights. A rollback to the start trains on another order
than its same-seed reference, and on some tasks the order alone moves the final metric by
more than the 2 % tolerance: mnist1d_conv:adamw at its best LR, seed 1, ends between 0.734 and
0.878 accuracy with 0 to 50 batches skipped, where seeds 0-2 of the stored grid lie within
0.876-0.886. The best-LR result a run is judged against is the median over these orders."""
RECOVERY_TARGET, OVERHEAD_TARGET = 0.90, 1.05
OVERHEAD_TASKS = ("diamonds_mlp:adamw", "mnist1d_conv:adamw")
HELD_OUT_NOTE = (
    "One held-out trace (wordnet_lstm:adamw at 10x, seed 0) was read on 2026-12-03 before the "
    "snapshot rule was changed on the tuning tasks' traces, which showed the same fault. The "
    "warmup-aware cut, the training-loss plateau and the stall's noise test (2026-12-03, "
    "evening) were made on the tuning tasks', MovieLens' long runs' and fortunes_gru-long's "
    "traces; no held-out trace was read, and the held-out rows were first seen in this run. "
    "The two changes of 2026-12-07 (evening), no adaptive clipping by default and a spike in a "
    "learning run waited on for 12 steps, were made on diamonds_mlp:sgd's traces and on the "
    "runs at the best LR of every short task but the two held out (their sibling recipes of "
    "the same families included: the clipping table below). Their first run showed one "
    "held-out row lost (wordnet_lstm:adamw at 30x, seed 1: without clipping the stall rule no "
    "longer fired); its trace was read, and the third change, a loss that rose beyond its noise "
    "over the first quarter with the weights moving is rolled back and cut (before: a note "
    "that said the LR was too high and did nothing), was made on it: that row is no longer "
    "held out. On 2026-12-08 four recipes of four other families were added to the held-out "
    "tasks (bytes_gpt:adamw, fortunes_gru:adam, wordnet_gpt:adamw, bytes_lstm:sgd): no run of "
    "theirs above the best LR had been run with the monitor before, and the monitor did not "
    "change after their first run; their runs at the best LR were in the clipping table of "
    "2026-12-07."
)
"""What was seen of the held-out tasks while the monitor changed: a held-out figure is only as
clean as this says."""


@dataclass
class Outcome:
    task: str
    multiplier: float
    seed: int
    reference: float
    bare: float
    watched: float
    free: float
    bare_ok: bool
    watched_ok: bool
    free_ok: bool
    rollbacks: int
    lr_scale: float
    quiet_at_best: bool = True  # the monitor took no action on the best-LR run
    typical: float = math.nan  # the median best-LR result over DATA_ORDERS (same seed)
    orders: tuple[float, float] = (math.nan, math.nan)  # their lowest and highest
    bare_typical_ok: bool = False
    watched_typical_ok: bool = False
    free_typical_ok: bool = False


@dataclass
class LongOutcome:
    lr: float
    seed: int
    reference: float
    bare: float
    watched: float
    bare_ok: bool
    watched_ok: bool
    rollbacks: int
    lr_scale: float


def best_lr(task: BenchTask, cache: RunCache) -> float:
    """The oracle grid's best LR at seed 0 (the stored full-length grid)."""
    rows = [(lr, cache.get(task, lr, 0)) for lr in task.grid]
    found = [(lr, r["metric"]) for lr, r in rows if r is not None]
    if len(found) < len(task.grid) // 2:
        raise SystemExit(f"no stored grid for {task.name}: run python -m benchmarks.suggestion")
    return found[task.best_index([m for _, m in found])][0]


class SkipAtStart(lrpilot.Callback):
    """Puts a run on another data order: after its first step, back to the start (the
    weights, the optimizer and the RNGs as they were) with ``batches`` batches skipped in
    all, as the monitor's rollback to step 0 does."""

    def __init__(self, batches: int) -> None:
        self.batches, self.done = batches, False

    def on_step(self, info: Any) -> lrpilot.Action | None:
        if self.done:
            return None
        self.done = True
        return lrpilot.Action(
            rollback=True, skip_batches=self.batches - 1, reason="another data order"
        )


def final_metric(
    task: BenchTask,
    lr: float,
    seed: int,
    monitor: bool,
    divergence: bool = True,
    skip: int = 0,
    options: dict | None = None,
) -> tuple[float, dict]:
    """The run's final metric in the task's units (``nan`` when it diverged); ``divergence=
    False`` turns off the run's own divergence stop (``train(..., divergence=None)``);
    ``skip``: start on another data order (:class:`SkipAtStart`); ``options``: the monitor's
    settings other than its defaults."""
    watcher = lrpilot.Monitor(quiet=True, **(options or {})) if monitor else None
    run_options: dict = {} if divergence else {"divergence": None}
    callbacks: list[Any] = [SkipAtStart(skip)] if skip else []
    run = lrpilot.train(
        task.lrpilot_task(),
        lr,
        seed=seed,
        progress=False,
        callbacks=callbacks + ([watcher] if watcher else []),
        **run_options,
    )
    value = math.nan if run.diverged else task.in_units(run.metric)
    return value, (watcher.to_dict() if watcher else {})


def within(task: BenchTask, reference: float, value: float) -> bool:
    if not math.isfinite(value):
        return False
    if task.higher_is_better:
        return value >= reference - TOLERANCE * abs(reference)
    return value <= reference + TOLERANCE * abs(reference)


def _median_result(task: BenchTask, values: list[float]) -> float:
    """The median of best-LR results, a diverged one (``nan``) counted as the worst."""
    worst = -math.inf if task.higher_is_better else math.inf
    return statistics.median([v if math.isfinite(v) else worst for v in values])


def recovery(tasks: list[BenchTask], seeds: int, cache: RunCache) -> list[Outcome]:
    outcomes = []
    for task in tasks:
        lr = best_lr(task, cache)
        for seed in range(seeds):
            orders = [final_metric(task, lr, seed, monitor=False, skip=k)[0] for k in DATA_ORDERS]
            reference = orders[0]  # skip 0: the same data order as the runs started too hot
            typical = _median_result(task, orders)
            finite = [v for v in orders if math.isfinite(v)] or [math.nan]
            _, at_best = final_metric(task, lr, seed, monitor=True)
            quiet = not any(e["acted"] for e in at_best["events"])
            for m in MULTIPLIERS:
                bare, _ = final_metric(task, lr * m, seed, monitor=False)
                watched, _ = final_metric(task, lr * m, seed, monitor=True)
                free, info = final_metric(task, lr * m, seed, monitor=True, divergence=False)
                outcomes.append(
                    Outcome(
                        task.name,
                        m,
                        seed,
                        reference,
                        bare,
                        watched,
                        free,
                        within(task, reference, bare),
                        within(task, reference, watched),
                        within(task, reference, free),
                        info["rollbacks"],
                        info["lr_scale"],
                        quiet,
                        typical,
                        (min(finite), max(finite)),
                        within(task, typical, bare),
                        within(task, typical, watched),
                        within(task, typical, free),
                    )
                )
                print(_row(outcomes[-1]), flush=True)
    return outcomes


def stored_or_trained(task: BenchTask, lr: float, seed: int, cache: RunCache) -> float:
    """A run without the monitor: the stored grid's when there is one, else trained."""
    row = cache.get(task, lr, seed)
    if row is not None:
        return math.nan if row["diverged"] else float(row["metric"])  # stored in units
    return final_metric(task, lr, seed, monitor=False)[0]


def long_runs(cache: RunCache) -> list[LongOutcome]:
    task = ALL_TASKS[LONG_TASK]
    best = best_lr(task, cache)
    outcomes = []
    for seed in LONG_SEEDS:
        reference = stored_or_trained(task, best, seed, cache)
        for lr in LONG_LRS:
            bare = stored_or_trained(task, lr, seed, cache)
            watched, info = final_metric(task, lr, seed, monitor=True)
            o = LongOutcome(
                lr,
                seed,
                reference,
                bare,
                watched,
                within(task, reference, bare),
                within(task, reference, watched),
                info["rollbacks"],
                info["lr_scale"],
            )
            outcomes.append(o)
            print(_long_row(o, best), flush=True)
    return outcomes


def hot_long_runs(cache: RunCache) -> list[Outcome]:
    """``HOT_LONG_TASKS`` started at ``HOT_LONG_MULTIPLIERS`` times their best LR, seed 0."""
    outcomes = []
    for name in HOT_LONG_TASKS:
        task = ALL_TASKS[name]
        lr = best_lr(task, cache)
        reference, _ = final_metric(task, lr, 0, monitor=False)
        for m in HOT_LONG_MULTIPLIERS:
            bare, _ = final_metric(task, lr * m, 0, monitor=False)
            watched, info = final_metric(task, lr * m, 0, monitor=True)
            o = Outcome(
                name,
                m,
                0,
                reference,
                bare,
                watched,
                math.nan,
                within(task, reference, bare),
                within(task, reference, watched),
                False,
                info["rollbacks"],
                info["lr_scale"],
            )
            outcomes.append(o)
            print(_hot_row(o), flush=True)
    return outcomes


def _hot_row(o: Outcome) -> str:
    return (
        f"| {o.task} | {o.multiplier:g}x | {_fmt(o.reference)} | {_fmt(o.bare)}"
        f"{' ✓' if o.bare_ok else ''} | {_fmt(o.watched)}{' ✓' if o.watched_ok else ''} | "
        f"{o.rollbacks} | {o.lr_scale:.3g} |"
    )


@dataclass
class BestOutcome:
    task: str
    lr: float
    bare: float
    watched: float
    ok: bool
    actions: list[str]
    spread: float  # the stored grid's std over seeds at this LR (nan with fewer than 2)


def long_at_best(cache: RunCache) -> list[BestOutcome]:
    """Each long task at its best LR (seed 0) with the monitor, against the bare run."""
    outcomes = []
    for name in LONG_TASKS:
        task = ALL_TASKS[name]
        lr = best_lr(task, cache)
        bare, _ = final_metric(task, lr, 0, monitor=False)  # here: stored runs of a chaotic
        watched, info = final_metric(task, lr, 0, monitor=True)  # task differ across machines
        acted = [e["kind"] for e in info["events"] if e["acted"]]
        seeds = [r["metric"] for r in (cache.get(task, lr, k) for k in range(3)) if r]
        spread = statistics.stdev(seeds) if len(seeds) > 1 else math.nan
        o = BestOutcome(name, lr, bare, watched, within(task, bare, watched), acted, spread)
        outcomes.append(o)
        print(_best_row(o), flush=True)
    return outcomes


def _best_row(o: BestOutcome) -> str:
    acted = ", ".join(f"{k} x{o.actions.count(k)}" for k in dict.fromkeys(o.actions)) or "none"
    spread = f"{100 * o.spread / abs(o.bare):.1f} %" if math.isfinite(o.spread) else "—"
    return (
        f"| {o.task} | {o.lr:.3g} | {_fmt(o.bare)} | {_fmt(o.watched)}{' ✓' if o.ok else ''} | "
        f"{spread} | {acted} |"
    )


CLIP_TASKS = tuple(
    name
    for name in ALL_TASKS
    if "-long:" not in name or name.split("-long:")[0] in ("diamonds_mlp", "movielens_mf")
)
"""The tasks the adaptive clipping is measured on at the best LR: every short one, and the long
ones quick to train (the long runs at their best LR, below, cover the rest with the default)."""


@dataclass
class ClipOutcome:
    task: str
    lr: float
    bare: float
    clipped: float  # the monitor with clip="zscore" (the default before 2026-12-07)
    share: float  # the share of steps it clipped
    default: float  # the monitor at its defaults
    clip_ok: bool
    default_ok: bool


def clipping_at_best(cache: RunCache) -> list[ClipOutcome]:
    """Each of ``CLIP_TASKS`` at its best LR (seed 0): bare, under a monitor that clips
    adaptively (ZClip, ``clip="zscore"``), and under the monitor at its defaults."""
    outcomes = []
    for name in CLIP_TASKS:
        task = ALL_TASKS[name]
        lr = best_lr(task, cache)
        bare, _ = final_metric(task, lr, 0, monitor=False)
        clipped, info = final_metric(task, lr, 0, monitor=True, options={"clip": "zscore"})
        default, _ = final_metric(task, lr, 0, monitor=True)
        o = ClipOutcome(
            name,
            lr,
            bare,
            clipped,
            info["clipped_share"],
            default,
            within(task, bare, clipped),
            within(task, bare, default),
        )
        outcomes.append(o)
        print(_clip_row(o, task), flush=True)
    return outcomes


def _clip_row(o: ClipOutcome, task: BenchTask | None = None) -> str:
    task = task or ALL_TASKS[o.task]
    change = o.clipped - o.bare if math.isfinite(o.clipped + o.bare) else math.nan
    better = change > 0 if task.higher_is_better else change < 0
    rel = 100 * abs(change) / abs(o.bare) if math.isfinite(change) and o.bare else math.nan
    how = "same" if change == 0 else f"{'better' if better else 'worse'} by {rel:.1f} %"
    return (
        f"| {o.task} | {o.lr:.3g} | {_fmt(o.bare)} | {_fmt(o.clipped)}{' ✓' if o.clip_ok else ''}"
        f" ({100 * o.share:.1f} % clipped; {how}) | {_fmt(o.default)}"
        f"{' ✓' if o.default_ok else ''} |"
    )


def _long_row(o: LongOutcome, best: float) -> str:
    return (
        f"| {o.lr:.3g} ({o.lr / best:.3g}x) | {o.seed} | {_fmt(o.reference)} | {_fmt(o.bare)}"
        f"{' ✓' if o.bare_ok else ''} | {_fmt(o.watched)}{' ✓' if o.watched_ok else ''} | "
        f"{o.rollbacks} | {o.lr_scale:.3g} |"
    )


CALLBACK_WORK = ("_dispatch", "_apply", "_take_snapshot")
"""What ``lrpilot.train``'s loop does only for its callbacks: call their hooks, carry out
their answers, take the snapshots a rollback would return to; with the monitor's gradient hook
(``Monitor.on_before_optimizer_step``: its adaptive clipping), which the loop calls directly.
Timed inside a watched run, their share of the run is the monitor's cost measured in one run
(:func:`callback_time`)."""


@contextlib.contextmanager
def callback_time() -> Iterator[list[float]]:
    """Within the block, the process CPU seconds ``lrpilot.train`` spends on
    :data:`CALLBACK_WORK`, summed into the yielded one-item list (a call made inside another,
    a snapshot taken while applying an answer, counts once)."""
    from lrpilot.train import _Run

    spent, depth = [0.0], [0]

    def timed(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            start = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    spent[0] += time.process_time() - start

        return wrapper

    targets: list[tuple[type, str]] = [(_Run, name) for name in CALLBACK_WORK]
    targets.append((lrpilot.Monitor, "on_before_optimizer_step"))
    originals = [(owner, name, owner.__dict__[name]) for owner, name in targets]
    try:
        for owner, name, method in originals:
            setattr(owner, name, timed(method))
        yield spent
    finally:
        for owner, name, method in originals:
            setattr(owner, name, method)


def overhead(
    tasks: list[BenchTask], cache: RunCache, reps: int
) -> dict[str, dict[str, list[float]]]:
    """Per task, the monitor's cost two ways. In one run (``"in_run"``): each watched run's
    CPU time over that time less what the loop spent on the monitor (:func:`callback_time`),
    exact for that work and blind to what it does not time (the step's record handed to the
    hooks; a cache the snapshots evict). Side by side (``"cpu"``, ``"wall"``): the ratios
    watched / bare of interleaved pairs of whole runs, on the process's CPU time (the work
    done, which the other processes of a shared machine do not inflate; the runs are
    single-threaded) and on the wall clock, which see every cost but move by about ±10 % from
    pair to pair on the same work."""
    ratios: dict[str, dict[str, list[float]]] = {}
    for task in tasks:
        lr = best_lr(task, cache)
        in_run: list[float] = []

        def timed(
            monitor: bool, task: BenchTask = task, lr: float = lr, in_run: list[float] = in_run
        ) -> tuple[float, float]:
            with callback_time() as spent:
                wall, cpu = time.perf_counter(), time.process_time()
                final_metric(task, lr, 0, monitor)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if monitor:
                in_run.append(cpu / (cpu - spent[0]))
            return wall, cpu

        timed(False), timed(True)  # warm-up pair
        in_run.clear()
        pairs: dict[str, list[float]] = {"cpu": [], "wall": [], "in_run": in_run}
        for i in range(reps):
            if i % 2:
                watched, bare = timed(True), timed(False)
            else:
                bare, watched = timed(False), timed(True)
            pairs["wall"].append(watched[0] / bare[0])
            pairs["cpu"].append(watched[1] / bare[1])
        ratios[task.name] = pairs
        print(
            f"overhead {task.name}: {statistics.median(in_run):.3f}x in one run, median "
            f"{statistics.median(pairs['cpu']):.3f}x of pairs on CPU time, "
            f"{statistics.median(pairs['wall']):.3f}x on the wall clock",
            flush=True,
        )
    return ratios


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of ``values``: the order statistics
    ``x_(j)`` and ``x_(n+1-j)`` with the largest ``j`` whose coverage, ``1 - 2 P(B < j)`` for
    ``B ~ Binomial(n, 1/2)``, is at least ``level`` (the sign test's interval; no
    assumption on the pairs' noise, no resampling). Too few values for ``level``: their
    whole range."""
    ordered, n = sorted(values), len(values)
    tail, j = 0.0, 0  # tail = P(B < j + 1) as j grows
    while j < n // 2:
        tail += math.comb(n, j) / 2**n
        if 1.0 - 2.0 * tail < level:
            break
        j += 1
    j = max(j, 1)
    return ordered[j - 1], ordered[n - j]


def overhead_verdict(low: float, high: float) -> str:
    """``met`` when the interval of the median lies at or below the target, ``not met`` when
    above it, and ``not shown`` when it holds the target: the pairs cannot tell."""
    if high <= OVERHEAD_TARGET:
        return "met"
    if low > OVERHEAD_TARGET:
        return "**not met**"
    return "**not shown** either way: the interval holds the target"


def _fmt(value: float) -> str:
    return "diverged" if not math.isfinite(value) else f"{value:.4g}"


def _row(o: Outcome) -> str:
    def mark(typical: bool, same: bool) -> str:
        return (" ✓" if typical else "") + (" =" if same else "")

    return (
        f"| {o.task} | {o.multiplier:g}x | {o.seed} | {_fmt(o.typical)} ({_fmt(o.orders[0])}–"
        f"{_fmt(o.orders[1])}) | {_fmt(o.reference)} | {_fmt(o.bare)}"
        f"{mark(o.bare_typical_ok, o.bare_ok)} | {_fmt(o.watched)}"
        f"{mark(o.watched_typical_ok, o.watched_ok)} | {_fmt(o.free)}"
        f"{mark(o.free_typical_ok, o.free_ok)} | {o.rollbacks} | {o.lr_scale:.3g} |"
    )


def _shares(outcomes: list[Outcome], typical: bool = True) -> tuple[float, float, float]:
    """The shares that recover with the monitor, without it, and with it alone deciding
    (divergence=None): against the median best-LR result over the data orders (``typical``),
    else against the same-order best-LR run."""
    n = max(len(outcomes), 1)
    if typical:
        return (
            sum(o.watched_typical_ok for o in outcomes) / n,
            sum(o.bare_typical_ok for o in outcomes) / n,
            sum(o.free_typical_ok for o in outcomes) / n,
        )
    return (
        sum(o.watched_ok for o in outcomes) / n,
        sum(o.bare_ok for o in outcomes) / n,
        sum(o.free_ok for o in outcomes) / n,
    )


def report(
    outcomes: list[Outcome],
    ratios: dict[str, dict[str, list[float]]],
    command: str,
    long: list[LongOutcome] | None = None,
    at_best: list[BestOutcome] | None = None,
    hot_long: list[Outcome] | None = None,
    clipping: list[ClipOutcome] | None = None,
    date: str | None = None,
) -> str:
    chosen = [o for o in outcomes if o.task in QUICK_TASKS]
    held = [o for o in outcomes if o.task not in QUICK_TASKS]
    watched, bare, free = _shares(chosen)
    worst = max(statistics.median(r["in_run"]) for r in ratios.values())
    worst_task = max(ratios, key=lambda name: statistics.median(ratios[name]["cpu"]))
    pairs_worst = statistics.median(ratios[worst_task]["cpu"])
    low, high = median_interval(ratios[worst_task]["cpu"])
    reps = len(next(iter(ratios.values()))["cpu"])
    refs = {(o.task, o.seed): o.quiet_at_best for o in outcomes}
    noisy = sorted(f"{t} seed {s}" for (t, s), q in refs.items() if not q)
    lines = [
        "## Monitor: recovery from a too-high LR, and its cost",
        "",
        f"`{command}` ({date or dt.date.today().isoformat()}, one thread). Each task is "
        "started at 10x and 30x its oracle best LR (the stored grid, seed 0), with and without "
        "`lrpilot.Monitor()` at its defaults; a run recovers when its final metric is within "
        f"{TOLERANCE:.0%} of the best-LR result, the median of {len(DATA_ORDERS)} best-LR runs "
        "with the same seed on different data orders (the same initial weights, "
        f"{', '.join(map(str, DATA_ORDERS))} batches skipped at the start; a diverged run never "
        "recovers). Why the median over data orders: a rollback to the start trains on another "
        "order than the run it is compared with, and on some tasks the order alone moves the "
        "result by more than the tolerance (the range column below).",
        "",
        f"**Recovered, on the tasks the constants were chosen on ({', '.join(QUICK_TASKS)}): "
        f"{watched:.0%} with the monitor, {bare:.0%} without** ({len(chosen)} runs each; "
        f"target ≥ {RECOVERY_TARGET:.0%} with it: "
        f"{'met' if watched >= RECOVERY_TARGET else '**not met**'}). With the run's own "
        f"divergence stop off (`train(..., divergence=None)`, the monitor alone deciding): "
        f"**{free:.0%}**. Against the best-LR run on the same data order alone (the measure "
        "before 2026-12-07): {:.0%} with the monitor, {:.0%} without, {:.0%} with "
        "divergence=None.".format(*_shares(chosen, typical=False)),
        "",
    ]
    if held:
        h_watched, h_bare, h_free = _shares(held)
        names = ", ".join(sorted({o.task for o in held}))
        lines += [
            f"**Held out ({names}; not looked at while choosing the constants): "
            f"{h_watched:.0%} with the monitor, {h_bare:.0%} without** ({len(held)} runs "
            f"each; {h_free:.0%} with divergence=None; against the same-order run: "
            "{:.0%} with, {:.0%} without). ".format(*_shares(held, typical=False)[:2])
            + HELD_OUT_NOTE,
            "",
        ]
    lines += [
        f"**Quiet at the best LR:** the monitor acted on {len(noisy)} of {len(refs)} best-LR "
        "reference runs" + (f" ({', '.join(noisy)})." if noisy else "."),
        "",
        f"**Overhead per step: {pairs_worst:.3f}x** at worst ({worst_task}; 95 % interval of "
        f"the median {low:.3f}–{high:.3f}), side by side (target ≤ {OVERHEAD_TARGET}x: "
        f"{overhead_verdict(low, high)}): the median of {reps} interleaved pairs of whole runs "
        "at the best LR with and without the monitor, on the process's CPU time. On this "
        "machine such pairs move by ±10 % from pair to pair, so that the median of 25 moved "
        "by about ±5 % from one run to the next (1.029-1.098x in earlier runs of this "
        "benchmark): hence this many pairs, and the interval (the sign test's, from the "
        "pairs' order statistics). The interval covers the pairs' noise within one run, not "
        "the machine's drift between runs: three runs of 100 pairs on 2026-12-07 gave "
        "medians of 1.056x, 1.045x and 1.047x at worst (diamonds_mlp:adamw each time), with "
        "the adaptive clipping the monitor then did by default; the target sits at the edge "
        "of what this machine measures. "
        f"The monitor's own work, measured in the same runs: **{worst:.3f}x** at worst, the "
        "run's CPU time over that time less what `lrpilot.train` spent on the monitor (its "
        "hooks, the snapshots it asks for, carrying out its answers); what the pairs find "
        "beyond it is what that clock does not see (the step's record handed to the hooks, a "
        "cache the snapshots evict, the allocator) or the pairs' noise.",
        "",
        "| task | start | seed | best-LR result: median over data orders (range) | "
        "best-LR run, same order | without | with monitor | monitor, divergence=None | "
        "rollbacks | LR scale at end |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(o) for o in outcomes),
        "",
        f"✓ = within {TOLERANCE:.0%} of the median best-LR result; = within {TOLERANCE:.0%} "
        "of the best-LR run on the same data order. Rollbacks and LR scale: the "
        "divergence=None run.",
        "",
        "| task (overhead) | in one run: median | range | pairs, CPU time: median | range "
        "| pairs, wall clock: median | range |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {statistics.median(r['in_run']):.3f}x | {min(r['in_run']):.3f}–"
            f"{max(r['in_run']):.3f} | {statistics.median(r['cpu']):.3f}x | {min(r['cpu']):.3f}–"
            f"{max(r['cpu']):.3f} | {statistics.median(r['wall']):.3f}x | {min(r['wall']):.3f}–"
            f"{max(r['wall']):.3f} |"
            for name, r in ratios.items()
        ),
        "",
    ]
    if long:
        best = best_lr(ALL_TASKS[LONG_TASK], RunCache(cache_path(quick=False)))
        lines += [
            "",
            f"**Long runs just past the cliff** ({LONG_TASK}, {ALL_TASKS[LONG_TASK].steps} "
            f"steps, best LR {best:.3g}): {sum(o.watched_ok for o in long)} of {len(long)} "
            f"recover with the monitor, {sum(o.bare_ok for o in long)} without.",
            "",
            "| start LR | seed | best-LR metric | without | with monitor | rollbacks | "
            "LR scale at end |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(_long_row(o, best) for o in long),
        ]
    else:
        lines += ["", "Long runs just past their cliff: not run (`--no-long`)."]
    if hot_long:
        lines += [
            "",
            f"**Other long constant-LR runs started too hot** (seed 0, "
            f"{' and '.join(f'{m:g}x' for m in HOT_LONG_MULTIPLIERS)} their best LR; held out "
            "for the training-loss plateau): "
            f"{sum(o.watched_ok for o in hot_long)} of {len(hot_long)} recover with the monitor, "
            f"{sum(o.bare_ok for o in hot_long)} without.",
            "",
            "| task | start | best-LR metric | without | with monitor | rollbacks | "
            "LR scale at end |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *(_hot_row(o) for o in hot_long),
        ]
    if at_best:
        lines += [
            "",
            f"**Long runs at their best LR** (seed 0, the monitor against the run without "
            f"it): within {TOLERANCE:.0%} on {sum(o.ok for o in at_best)} of "
            f"{len(at_best)}; the monitor acted on {sum(bool(o.actions) for o in at_best)}. "
            "Seeds' spread: the standard deviation of the stored grid's metric over seeds 0-2 "
            "at that LR, relative: where it passes the tolerance, one seed's difference with "
            "and without the monitor says little (any change to such a run, a plateau cut or "
            "the adaptive clipping the monitor did by default before 2026-12-07, moves it as "
            "much as another seed does). A monitor that takes no action leaves the run "
            "exactly as it was.",
            "",
            "| task | best LR | without | with monitor | seeds' spread | actions |",
            "| --- | --- | --- | --- | --- | --- |",
            *(_best_row(o) for o in at_best),
        ]
    if clipping:
        lines += _clipping_lines(clipping)
    return "\n".join(lines) + "\n"


def _clipping_lines(clipping: list[ClipOutcome]) -> list[str]:
    """The adaptive clipping at the best LR: why the monitor does not clip by default."""

    def moved(o: ClipOutcome) -> int:  # +1 better, -1 worse, 0 within the tolerance
        if not o.clip_ok:
            return -1
        return 0 if within(ALL_TASKS[o.task], o.clipped, o.bare) else 1

    signs = [moved(o) for o in clipping]
    return [
        "",
        f"**Adaptive clipping at the best LR** (seed 0; every short task, and the long "
        "versions of diamonds_mlp and movielens_mf): the monitor with ZClip "
        '(`clip="zscore"`, z = 2.5; its default before 2026-12-07) against the bare run: '
        f"within {TOLERANCE:.0%} on "
        f"{sum(o.clip_ok for o in clipping)} of {len(clipping)}, worse beyond it on "
        f"{signs.count(-1)}, better on {signs.count(1)}. The monitor at its defaults "
        f"(no clipping, a spike in a learning run waited on for 12 steps): within "
        f"{TOLERANCE:.0%} on {sum(o.default_ok for o in clipping)} of {len(clipping)}. "
        "Clipping a healthy run moves its result as a data order does, more often for the "
        'worse, so it is off by default (`Monitor(clip="zscore")` turns it on).',
        "",
        "| task | best LR | without the monitor | monitor, ZClip | monitor, defaults |",
        "| --- | --- | --- | --- | --- |",
        *(_clip_row(o) for o in clipping),
    ]


SAVED = OUT / "monitor.json"
"""Every outcome and timing of the last full run, so that ``--report-only`` re-writes the
section without training."""


def save(
    outcomes: list[Outcome],
    ratios: dict[str, dict[str, list[float]]],
    command: str,
    long: list[LongOutcome] | None,
    at_best: list[BestOutcome] | None,
    hot_long: list[Outcome] | None,
    clipping: list[ClipOutcome] | None = None,
    date: str | None = None,
) -> None:
    """Write what :func:`report` reads to :data:`SAVED`; ``date``: the run's (today)."""

    def rows(items: list[Any] | None) -> list[dict[str, Any]] | None:
        return None if items is None else [dataclasses.asdict(o) for o in items]

    data = {
        "date": date or dt.date.today().isoformat(),
        "command": command,
        "outcomes": rows(outcomes),
        "ratios": ratios,
        "long": rows(long),
        "at_best": rows(at_best),
        "hot_long": rows(hot_long),
        "clipping": rows(clipping),
    }
    SAVED.parent.mkdir(parents=True, exist_ok=True)
    SAVED.write_text(json.dumps(data, indent=1))


def load_saved() -> tuple[Any, ...]:
    """What :func:`save` wrote: the arguments of :func:`report`, in its order, the run's
    date last."""
    data = json.loads(SAVED.read_text())

    def rows(kind: type, items: list[dict[str, Any]] | None) -> list[Any] | None:
        if items is None:
            return None
        return [kind(**{**o, **({"orders": tuple(o["orders"])} if "orders" in o else {})})
                for o in items]  # fmt: skip

    return (
        rows(Outcome, data["outcomes"]),
        data["ratios"],
        data["command"],
        rows(LongOutcome, data["long"]),
        rows(BestOutcome, data["at_best"]),
        rows(Outcome, data["hot_long"]),
        rows(ClipOutcome, data.get("clipping")),
        data["date"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.monitor")
    parser.add_argument("--quick", action="store_true", help="two seeds instead of three")
    parser.add_argument("--no-long", action="store_true", help="skip the long-run cases")
    parser.add_argument("--tasks", help="comma-separated task names")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--reps", type=int, default=100, help="timed pairs per overhead task")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--report-only", action="store_true", help="re-write the section from the saved run"
    )
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="measure the overhead again, keep the saved recovery runs, re-write the section",
    )
    parser.add_argument(
        "--only",
        choices=("recovery", "long", "clipping"),
        help="run one part (recovery: with the overhead), keep the saved others, re-write the "
        "section: parts run in parallel processes merge into one saved run",
    )
    parser.add_argument(
        "--keep-overhead",
        action="store_true",
        help="with --only recovery: keep the saved overhead figures (a busy machine)",
    )
    args = parser.parse_args()
    if args.only:
        run_part(args.only, args)
        return
    if args.report_only or args.overhead_only:
        saved = list(load_saved())
        if args.overhead_only:
            torch.set_num_threads(1)
            warnings.simplefilter("ignore")
            cache = RunCache(cache_path(quick=False))
            saved[1] = overhead([ALL_TASKS[n] for n in OVERHEAD_TASKS], cache, args.reps)
            saved[7] = dt.date.today().isoformat()
            save(*saved[:7], date=saved[7])
        body = report(*saved)
        print(body)
        if not args.no_write:
            write_section("monitor", body)
        return
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    names = args.tasks.split(",") if args.tasks else list(TASKS)
    seeds = args.seeds or (2 if args.quick else 3)
    cache = RunCache(cache_path(quick=False))
    tasks = [ALL_TASKS[n] for n in names]
    outcomes = recovery(tasks, seeds, cache)
    long = None if args.no_long else long_runs(cache)
    hot_long = None if args.no_long else hot_long_runs(cache)
    at_best = None if args.no_long else long_at_best(cache)
    clipping = clipping_at_best(cache)
    ratios = overhead([ALL_TASKS[n] for n in OVERHEAD_TASKS], cache, args.reps)
    command = "python -m benchmarks.monitor" + (" --quick" if args.quick else "")
    save(outcomes, ratios, command, long, at_best, hot_long, clipping)
    body = report(outcomes, ratios, command, long, at_best, hot_long, clipping)
    print(body)
    if not args.no_write:
        write_section("monitor", body)


def run_part(part: str, args: argparse.Namespace) -> None:
    """Run one part of the benchmark and merge it into the saved run, read again at the end
    (so that parts run in parallel processes, finishing at different times, all land)."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    cache = RunCache(cache_path(quick=False))
    found: dict[int, Any] = {}
    if part == "recovery":
        names = args.tasks.split(",") if args.tasks else list(TASKS)
        seeds = args.seeds or (2 if args.quick else 3)
        found[0] = recovery([ALL_TASKS[n] for n in names], seeds, cache)
        if args.tasks:  # these tasks' runs replace their saved ones; the others' are kept
            kept = [o for o in (load_saved()[0] if SAVED.exists() else []) if o.task not in names]
            found[0] = sorted(kept + found[0], key=lambda o: TASKS.index(o.task))
        if not args.keep_overhead:
            found[1] = overhead([ALL_TASKS[n] for n in OVERHEAD_TASKS], cache, args.reps)
        found[2] = "python -m benchmarks.monitor" + (" --quick" if args.quick else "")
    elif part == "long":
        found[3], found[5], found[4] = long_runs(cache), hot_long_runs(cache), long_at_best(cache)
    else:
        found[6] = clipping_at_best(cache)
    saved = list(load_saved()) if SAVED.exists() else [[], {}, "", None, None, None, None, None]
    for index, value in found.items():
        saved[index] = value
    saved[7] = dt.date.today().isoformat()
    save(*saved[:7], date=saved[7])
    if saved[0] and saved[1]:
        body = report(*saved)
        print(body)
        if not args.no_write:
            write_section("monitor", body)


if __name__ == "__main__":
    main()
