"""Regret of LR pickers against an oracle grid, on real tasks.

    python -m benchmarks.suggestion            # the full benchmark, writes benchmarks/RESULTS.md
    python -m benchmarks.suggestion --quick    # a smoke test on four shortened tasks
    python -m benchmarks.suggestion --tasks mnist1d_conv:sgd,diamonds_mlp-long:adamw

For every task (a family, a length and a recipe; see ``tasks.py``): the recipe is trained at each
LR of the oracle grid with seed 0, then with seeds 1 and 2 at the grid points within two steps
of seed 0's best (the oracle is the best mean over the three seeds; far from the optimum one
seed tells enough, and the saved runs pay for more tasks). Every picker sweeps with 5 seeds of
data order (the spread of its picks) and the recipe is trained at its picks of the first 3
seeds (its mean metric, hence its regret). The LR-free pickers train their own optimizer
instead of the recipe's; Optuna runs 3 studies (sampler seeds 0-2, 20 runs each, all trained
with seed 0) and the recipe is trained at each study's pick with that study's seed. Each row
also gets its regret as a fraction of the oracle-trivial gap and its cost (steps, and runs of
wall time).
Every training result is cached in ``benchmarks/store/runs.json`` (kept in git) keyed by (task
recipe, LR, seed), every sweep curve is saved to ``benchmarks/out/curves/``: a re-run only
does what changed (lrpilot's sweeps are keyed by a hash of the code of the modules that decide
them, training runs by the code of its run layer: ``benchmarks/sources.py``). Every run is
``lrpilot.train``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from benchmarks.cache import RunCache, cache_path, recipe_key
from benchmarks.data import OUT
from benchmarks.pickers import (
    LR_FREE,
    OPTUNA_TRAIN_SEED,
    PICKERS,
    SEARCHES,
    SELF_TRAINING,
    Pick,
    available,
    pick,
    sweep_name,
    training_task,
    version_key,
)
from benchmarks.tasks import QUICK_TASKS, TASKS, BenchTask, get_task
from benchmarks.train import train_run

GRID_SEEDS = (0, 1, 2)
GRID_NEIGHBOURS = 2  # seeds 1-2 run at the grid points this close to seed 0's best
PICK_SEEDS = (0, 1, 2)
SPREAD_SEEDS = (0, 1, 2, 3, 4)
CURVES = OUT / "curves"
console = Console()


# --------------------------------------------------------------------------- workers
def _init_worker() -> None:
    import warnings

    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("MPLCONFIGDIR", "/tmp/mplcfg")
    warnings.filterwarnings("ignore")


def _train_job(name: str, quick: bool, lr: float, seed: int, picker: str = "") -> dict:
    """One training run; ``picker`` names an LR-free picker whose optimizer replaces the
    recipe's (see ``pickers.training_task``)."""
    return train_run(training_task(picker, get_task(name, quick)), lr, seed).to_dict()


def _pick_job(sweep: str, name: str, quick: bool, seed: int) -> list[dict]:
    task = get_task(name, quick)
    try:
        return [p.to_dict() for p in pick(sweep, task, seed)]
    except Exception as err:  # a peer crashing is a result, not the end of the benchmark
        failed = f"{type(err).__name__}: {err}"[:300]
        console.print(f"[red]{sweep} crashed on {name} seed {seed}[/]: {failed}")
        traceback.print_exc()
        names = [p for p in PICKERS if sweep_name(p) == sweep]
        return [
            Pick(p, name, seed, task.default_lr, 0, 0.0, failed=failed).to_dict() for p in names
        ]


# --------------------------------------------------------------------------- caches
def curve_path(task: BenchTask, picker: str, seed: int, quick: bool) -> Path:
    prefix = "quick-" if quick else ""
    return CURVES / f"{prefix}{task.name}__{picker}__seed{seed}.json"


def load_pick(task: BenchTask, picker: str, seed: int, quick: bool, version: str) -> dict | None:
    """A saved sweep, if it was made by this picker version for this recipe."""
    path = curve_path(task, picker, seed, quick)
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    ok = saved.get("version") == version and saved.get("signature") == task.signature()
    return saved if ok else None


def save_pick(task: BenchTask, result: dict, quick: bool, version: str) -> None:
    path = curve_path(task, result["picker"], result["seed"], quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {**result, "version": version, "signature": task.signature(), "run_steps": task.steps},
            indent=1,
        )
    )


# --------------------------------------------------------------------------- running jobs
def run_jobs(
    pool: ProcessPoolExecutor,
    jobs: list[tuple[Callable, tuple]],
    label: str,
    on_done: Callable[[tuple, dict], None],
) -> None:
    """Submit ``jobs`` (function, args) to ``pool``, call ``on_done(args, result)`` as each
    finishes, and show a progress bar."""
    if not jobs:
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(label, total=len(jobs))
        futures: dict[Future, tuple] = {pool.submit(fn, *args): args for fn, args in jobs}
        for count, future in enumerate(as_completed(futures), 1):
            args, result = futures[future], future.result()
            on_done(args, result)
            progress.advance(bar)
            if not console.is_terminal:  # a log file gets one line per job instead of a bar
                console.print(
                    f"[{count}/{len(jobs)} {time.perf_counter() - start:.0f}s] "
                    f"{label}: {_describe(args, result)}",
                    highlight=False,
                )


def _describe(args: tuple, result: dict | list[dict]) -> str:
    """One line about a finished job, for logs."""
    if isinstance(result, list):
        return "; ".join(_describe(args, r) for r in result)
    if "metric" in result:
        return (
            f"{args[0]} lr={result['lr']:.3g} seed={result['seed']} "
            f"metric={result['metric']:.4f} diverged={result['diverged']} "
            f"{result['wall_s']:.1f}s"
        )
    failed = f" FAILED {result['failed']}" if result.get("failed") else ""
    return (
        f"{result['task']} {result['picker']} seed={result['seed']} lr={result['lr']:.3g} "
        f"steps={result['sweep_steps']} {result['wall_s']:.1f}s{failed}"
    )


def sweep_all(
    pool: ProcessPoolExecutor, tasks: list[BenchTask], pickers: Iterable[str], quick: bool
) -> dict[tuple[str, str, int], dict]:
    """Every picker's pick for every task and spread seed, from disk where still valid. One
    sweep may serve several pickers (fastai's two rules)."""
    picks: dict[tuple[str, str, int], dict] = {}
    jobs = []
    versions = {p: version_key(p) for p in pickers}
    for task in tasks:
        for seed in SPREAD_SEEDS:
            missing = set()
            for picker in pickers:
                if seed not in (PICK_SEEDS if picker in SEARCHES else SPREAD_SEEDS):
                    continue
                saved = load_pick(task, picker, seed, quick, versions[picker])
                if saved is not None:
                    picks[task.name, picker, seed] = saved
                else:
                    missing.add(sweep_name(picker))
            jobs += [(_pick_job, (sweep, task.name, quick, seed)) for sweep in sorted(missing)]

    def done(args: tuple, results: list[dict]) -> None:
        _, name, _, seed = args
        for result in results:
            if result["picker"] in versions:
                picks[name, result["picker"], seed] = result
                save_pick(get_task(name, quick), result, quick, versions[result["picker"]])

    jobs.sort(key=lambda job: job[1][0] not in SEARCHES)  # the long searches first
    run_jobs(pool, jobs, "sweeps (pickers x tasks x 5 seeds; Optuna: 3 studies of 20 runs)", done)
    return picks


def grid_followups(task: BenchTask, cache: RunCache) -> set[tuple[float, int, str]]:
    """Seeds 1-2 at the grid points within ``GRID_NEIGHBOURS`` steps of seed 0's best run."""
    runs = [cache.get(task, lr, GRID_SEEDS[0]) for lr in task.grid]
    if any(r is None for r in runs):
        return set()
    best = task.best_index([r["metric"] for r in runs])
    near = task.grid[max(0, best - GRID_NEIGHBOURS) : best + GRID_NEIGHBOURS + 1]
    return {(lr, s, "") for lr in near for s in GRID_SEEDS[1:]}


def train_all(
    pool: ProcessPoolExecutor,
    tasks: list[BenchTask],
    wanted: dict[str, set[tuple[float, int, str]]],
    cache: RunCache,
    quick: bool,
    label: str,
) -> None:
    """Train every (task, LR, seed, LR-free picker or "") in ``wanted`` that the cache does
    not hold yet."""
    by_name = {t.name: t for t in tasks}
    jobs = [
        (_train_job, (task.name, quick, lr, seed, picker))
        for task in tasks
        for lr, seed, picker in sorted(wanted[task.name], key=lambda p: (p[1], p[0], p[2]))
        if cache.get(training_task(picker, task), lr, seed) is None
    ]

    def done(args: tuple, result: dict) -> None:
        cache.put(training_task(args[4], by_name[args[0]]), result)

    run_jobs(pool, jobs, label, done)


# --------------------------------------------------------------------------- summary
def summarize_task(task: BenchTask, cache: RunCache, picks: dict, pickers: Iterable[str]) -> dict:
    """Oracle grid, each picker's picks, metrics and regret for one task."""
    grid = []
    for lr in task.grid:
        runs = [cache.get(task, lr, s) for s in GRID_SEEDS]
        metrics = [r["metric"] for r in runs if r is not None]
        grid.append(
            {
                "lr": lr,
                "metrics": metrics,
                "mean": statistics.fmean(metrics) if metrics else None,
                "std": statistics.pstdev(metrics) if len(metrics) > 1 else 0.0,
                "diverged": sum(bool(r and r["diverged"]) for r in runs),
            }
        )
    done = [g for g in grid if g["mean"] is not None and len(g["metrics"]) == len(GRID_SEEDS)]
    oracle = done[task.best_index([g["mean"] for g in done])] if done else None
    run_s = reference_run_seconds(task, cache)
    out = {
        "task": task.name,
        "title": task.title,
        "steps": task.steps,
        "grid": grid,
        "family": task.family.name,
        "recipe": task.recipe,
        "length": task.length,
        "counted": task.counted,
        "oracle": oracle,
        "ms_per_step": 1000 * run_s / task.steps,
        "run_s": run_s,
        "pickers": {},
        "compute_s": _compute_seconds(task, cache, picks, pickers),
    }
    for picker in pickers:
        out["pickers"][picker] = _summarize_picker(task, cache, picks, picker, oracle, run_s)
    return out


def reference_run_seconds(task: BenchTask, cache: RunCache) -> float:
    """Wall time of one training run of the recipe: the median over its cached full-length
    runs (the unit of every picker's wall-time cost)."""
    prefix = f"{recipe_key(task)}|"
    walls = [
        r["wall_s"]
        for k, r in cache.runs.items()
        if k.startswith(prefix) and r["steps_done"] == task.steps
    ]
    return statistics.median(walls) if walls else 0.0


def _compute_seconds(
    task: BenchTask, cache: RunCache, picks: dict, pickers: Iterable[str]
) -> float:
    """Worker seconds that this task's results cost: grid runs, runs at picks, sweeps (a sweep
    shared by two pickers once) and search trials (each distinct run once)."""
    keys = {cache.key(task, lr, s) for lr in task.grid for s in GRID_SEEDS}
    sweeps, seen = 0.0, set()
    for picker in pickers:
        for seed in SPREAD_SEEDS:
            p = picks.get((task.name, picker, seed))
            if p is None:
                continue
            if picker in SEARCHES:
                keys.update(cache.key(task, lr, OPTUNA_TRAIN_SEED) for lr in p["lrs"])
            elif (sweep_name(picker), seed) not in seen:
                seen.add((sweep_name(picker), seed))
                sweeps += p["wall_s"]
            if seed in PICK_SEEDS:
                keys.add(cache.key(training_task(picker, task), p["lr"], seed))
    return sweeps + sum(cache.runs[k]["wall_s"] for k in keys if k in cache.runs)


def _summarize_picker(
    task: BenchTask,
    cache: RunCache,
    picks: dict,
    picker: str,
    oracle: dict | None,
    run_s: float,
) -> dict:
    seeds = [s for s in SPREAD_SEEDS if (task.name, picker, s) in picks]
    lrs = [picks[task.name, picker, s]["lr"] for s in seeds]
    trained = training_task(picker, task)
    runs = [
        cache.get(trained, picks[task.name, picker, s]["lr"], s)
        for s in PICK_SEEDS
        if (task.name, picker, s) in picks
    ]
    metrics = [r["metric"] for r in runs if r is not None]
    mean = statistics.fmean(metrics) if metrics else None
    ok = oracle is not None and mean is not None and len(metrics) == len(PICK_SEEDS)
    sweep_steps = (
        statistics.fmean(picks[task.name, picker, s]["sweep_steps"] for s in seeds)
        if seeds
        else None
    )
    sweep_s = (
        statistics.fmean(picks[task.name, picker, s]["wall_s"] for s in seeds) if seeds else None
    )
    return {
        "picks": lrs,
        "pick_median": statistics.median(lrs) if lrs else None,
        "spread": max(lrs) / min(lrs) if lrs and min(lrs) > 0 else None,
        "metrics": metrics,
        "mean": mean,
        "regret": task.regret(oracle["mean"], mean) if ok else None,
        "gap_pct": _percent(task.gap_fraction(oracle["mean"], mean)) if ok else None,
        "sweep_steps": sweep_steps,
        "sweep_wall_s": sweep_s,
        **_cost(
            task, picker, sweep_steps, sweep_s, _unit_seconds(task, cache, picks, picker, run_s)
        ),
        "failed": [
            picks[task.name, picker, s]["failed"]
            for s in seeds
            if picks[task.name, picker, s].get("failed")
        ],
        "diverged": sum(bool(r and r["diverged"]) for r in runs),
    }


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def _unit_seconds(
    task: BenchTask, cache: RunCache, picks: dict, picker: str, run_s: float
) -> float:
    """The wall time of one training run to divide a picker's cost by. For a search made of
    training runs, the median of its own full-length trials, timed alongside it: wall time on
    the shared machine drifts between sessions by more than the costs compared here."""
    if picker not in SELF_TRAINING:
        return run_s
    studies = [picks[k] for k in picks if k[0] == task.name and k[1] == picker]
    trials = [cache.get(task, lr, OPTUNA_TRAIN_SEED) for p in studies for lr in p["lrs"]]
    walls = [r["wall_s"] for r in trials if r and r["steps_done"] == task.steps]
    return statistics.median(walls) if walls else run_s


def _cost(
    task: BenchTask, picker: str, sweep_steps: float | None, sweep_s: float | None, run_s: float
) -> dict:
    """What a picker costs to deliver one trained model: its sweep (or search) plus the final
    run at its pick, in optimizer steps and in wall time relative to one training run of the
    recipe. A search of full runs already holds its final model; an LR-free optimizer's final
    run counts as one run (its per-step overhead is not timed here)."""
    if sweep_steps is None or sweep_s is None or not run_s:
        return {"cost_steps": None, "cost_runs": None}
    final_steps, final_s = (0, 0.0) if picker in SELF_TRAINING else (task.steps, run_s)
    return {"cost_steps": sweep_steps + final_steps, "cost_runs": (sweep_s + final_s) / run_s}


def aggregate(summaries: list[dict], pickers: Iterable[str]) -> dict[str, dict]:
    """Median and max regret across tasks, per picker."""
    agg = {}
    for picker in pickers:
        regrets = [s["pickers"][picker]["regret"] for s in summaries]
        known = [r for r in regrets if r is not None]
        complete = bool(known) and len(known) == len(regrets)
        gaps = [g for s in summaries if (g := s["pickers"][picker]["gap_pct"]) is not None]
        spreads = [s["pickers"][picker]["spread"] for s in summaries]
        agg[picker] = {
            "median": statistics.median(known) if complete else None,
            "max": max(known) if complete else None,
            "median_gap_pct": statistics.median(gaps) if complete and gaps else None,
            "max_gap_pct": max(gaps) if complete and gaps else None,
            "max_spread": max(x for x in spreads if x is not None)
            if any(x is not None for x in spreads)
            else None,
            "median_spread": statistics.median(x for x in spreads if x is not None)
            if any(x is not None for x in spreads)
            else None,
            "max_sweep_steps": max(
                ((s["pickers"][picker]["sweep_steps"] or 0) for s in summaries), default=0
            ),
            **_median_cost(summaries, picker),
        }
    return agg


def _median_cost(summaries: list[dict], picker: str) -> dict:
    """Median over tasks of a picker's cost in steps and in training runs."""
    out = {}
    for key in ("cost_steps", "cost_runs"):
        values = [s["pickers"][picker][key] for s in summaries]
        known = [v for v in values if v is not None]
        out[f"median_{key}"] = statistics.median(known) if known else None
    return out


# --------------------------------------------------------------------------- output
def fmt(value: float | None, spec: str = ".2f") -> str:
    return "–" if value is None else format(value, spec)


def print_summary(summaries: list[dict], agg: dict, pickers: list[str]) -> None:
    """Regret per task (rows) and picker (columns), then the headline aggregates."""
    table = Table(title="Regret against the oracle grid (lower is better; * = counted)")
    table.add_column("task")
    for picker in pickers:
        table.add_column(picker, justify="right")
    for s in summaries:
        mark = "*" if s["counted"] else ""
        table.add_row(s["task"] + mark, *(fmt(s["pickers"][p]["regret"]) for p in pickers))
    for label, key, spec in (
        ("median % gap*", "median_gap_pct", ".1f"),
        ("max % gap*", "max_gap_pct", ".1f"),
        ("max spread", "max_spread", ".2f"),
        ("cost × run", "median_cost_runs", ".2f"),
    ):
        table.add_row(label, *(fmt(agg[p][key], spec) for p in pickers), style="bold")
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suggestion",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: short runs, small grid")
    parser.add_argument(
        "--tasks",
        default=None,
        help=f"comma-separated task names (default: all; with --quick: {','.join(QUICK_TASKS)})",
    )
    parser.add_argument("--pickers", default=",".join(PICKERS), help="comma-separated pickers")
    parser.add_argument(
        "--stage",
        choices=("grid", "sweeps", "all"),
        default="all",
        help="grid: only the oracle grid (no picker needed); sweeps: only the pickers' sweeps "
        "(what benchmarks.crossval replays); all: everything",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the summary only (a subset of tasks would replace RESULTS.md's section)",
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    names = args.tasks.split(",") if args.tasks else list(QUICK_TASKS if args.quick else TASKS)
    tasks = [get_task(name, args.quick) for name in names]
    pickers, missing = available([p for p in args.pickers.split(",") if p])
    if missing:
        print(f"skipping {', '.join(missing)}: not installed (see benchmarks/README.md)")
    cache = RunCache(cache_path(args.quick))
    picks: dict = {}
    with ProcessPoolExecutor(args.workers, initializer=_init_worker) as pool:
        if args.stage == "sweeps":
            sweep_all(pool, tasks, pickers, args.quick)
            console.print(f"sweeps done in {time.perf_counter() - start:.0f} s")
            return
        # Seed 0 of the grid first: Optuna's trials reuse those runs.
        first = {t.name: {(lr, GRID_SEEDS[0], "") for lr in t.grid} for t in tasks}
        train_all(pool, tasks, first, cache, args.quick, "oracle grid, seed 0")
        wanted = {t.name: grid_followups(t, cache) for t in tasks}
        if args.stage == "all":
            picks = sweep_all(pool, tasks, pickers, args.quick)
            cache.reload()  # Optuna's trials were written by the workers
            for (name, picker, seed), p in picks.items():
                if seed in PICK_SEEDS:
                    wanted[name].add((p["lr"], seed, picker if picker in LR_FREE else ""))
        train_all(
            pool,
            tasks,
            wanted,
            cache,
            args.quick,
            "oracle grid (seeds 1-2 near the best) + runs at the picks",
        )
    wall = time.perf_counter() - start
    if args.stage != "all":
        console.print(f"grid done in {wall:.0f} s")
        return
    summaries = [summarize_task(t, cache, picks, pickers) for t in tasks]
    # A subset with no counted task (--quick's short ones) is headlined as it is.
    counted = [s for s, t in zip(summaries, tasks, strict=True) if t.counted] or summaries
    short = [s for s, t in zip(summaries, tasks, strict=True) if not t.counted]
    agg = {"counted": aggregate(counted, pickers), "short": aggregate(short, pickers)}
    print_summary(summaries, agg["counted"], pickers)
    if args.no_write:
        return
    from benchmarks.report import write_report

    write_report(summaries, agg, pickers, tasks, args, wall, platform.platform())
    console.print(f"done in {wall:.0f} s")


if __name__ == "__main__":
    main()
