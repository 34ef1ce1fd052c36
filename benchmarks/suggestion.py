"""Regret of LR pickers against an oracle grid, on real tasks.

    python -m benchmarks.suggestion            # the full benchmark, writes benchmarks/RESULTS.md
    python -m benchmarks.suggestion --quick    # a smoke test in a couple of minutes
    python -m benchmarks.suggestion --tasks fmnist_cnn,mnist1d_conv --stage grid

For every task: the recipe is trained at each LR of the oracle grid with 3 seeds (the oracle is
the best mean metric); every picker sweeps with 5 seeds of data order (the spread of its picks)
and the recipe is trained at its picks of the first 3 seeds (its mean metric, hence its regret).
The LR-free pickers train their own optimizer instead of the recipe's; Optuna searches with the
first 3 seeds only (20 runs each) and its best trial is the run scored. Each row also gets its
regret as a fraction of the oracle-trivial gap and its cost (steps, and runs of wall time).
Every training result is cached in ``benchmarks/out/cache/runs.json`` keyed by (task recipe, LR,
seed), every sweep curve is saved to ``benchmarks/out/curves/``: a re-run only does what changed
(lrpilot's sweeps are keyed by a hash of its source).
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

from benchmarks.cache import RunCache, cache_path
from benchmarks.data import OUT
from benchmarks.pickers import (
    LR_FREE,
    PICKERS,
    SEARCHES,
    SELF_TRAINING,
    Pick,
    available,
    pick,
    training_task,
    version_key,
)
from benchmarks.tasks import TASKS, BenchTask, get_task
from benchmarks.train import train_run

GRID_SEEDS = (0, 1, 2)
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


def _pick_job(picker: str, name: str, quick: bool, seed: int) -> dict:
    task = get_task(name, quick)
    try:
        return pick(picker, task, seed).to_dict()
    except Exception as err:  # a peer crashing is a result, not the end of the benchmark
        failed = f"{type(err).__name__}: {err}"[:300]
        console.print(f"[red]{picker} crashed on {name} seed {seed}[/]: {failed}")
        traceback.print_exc()
        return Pick(picker, name, seed, task.default_lr, 0, 0.0, failed=failed).to_dict()


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
    path.write_text(json.dumps({**result, "version": version, "signature": task.signature(),
                                "run_steps": task.steps}, indent=1))  # fmt: skip


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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
    start = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(label, total=len(jobs))
        futures: dict[Future, tuple] = {pool.submit(fn, *args): args for fn, args in jobs}
        for count, future in enumerate(as_completed(futures), 1):
            args, result = futures[future], future.result()
            on_done(args, result)
            progress.advance(bar)
            if not console.is_terminal:  # a log file gets one line per job instead of a bar
                console.print(f"[{count}/{len(jobs)} {time.perf_counter() - start:.0f}s] "
                              f"{label}: {_describe(args, result)}", highlight=False)


def _describe(args: tuple, result: dict) -> str:
    """One line about a finished job, for logs."""
    if "metric" in result:
        return (f"{args[0]} lr={result['lr']:.3g} seed={result['seed']} "
                f"metric={result['metric']:.4f} diverged={result['diverged']} "
                f"{result['wall_s']:.1f}s")
    failed = f" FAILED {result['failed']}" if result.get("failed") else ""
    return (f"{result['task']} {result['picker']} seed={result['seed']} lr={result['lr']:.3g} "
            f"steps={result['sweep_steps']} {result['wall_s']:.1f}s{failed}")


def sweep_all(
    pool: ProcessPoolExecutor, tasks: list[BenchTask], pickers: Iterable[str], quick: bool
) -> dict[tuple[str, str, int], dict]:
    """Every picker's pick for every task and spread seed, from disk where still valid."""
    picks: dict[tuple[str, str, int], dict] = {}
    jobs = []
    versions = {p: version_key(p) for p in pickers}
    for task in tasks:
        for picker in pickers:
            for seed in PICK_SEEDS if picker in SEARCHES else SPREAD_SEEDS:
                saved = load_pick(task, picker, seed, quick, versions[picker])
                if saved is not None:
                    picks[task.name, picker, seed] = saved
                else:
                    jobs.append((_pick_job, (picker, task.name, quick, seed)))

    def done(args: tuple, result: dict) -> None:
        picker, name, _, seed = args
        picks[name, picker, seed] = result
        save_pick(get_task(name, quick), result, quick, versions[picker])

    jobs.sort(key=lambda job: job[1][0] not in SEARCHES)  # the long searches first
    run_jobs(pool, jobs, "sweeps (pickers x tasks x 5 seeds; Optuna: 3 studies of 20 runs)",
             done)  # fmt: skip
    return picks


def train_all(
    pool: ProcessPoolExecutor,
    tasks: list[BenchTask],
    wanted: dict[str, set[tuple[float, int, str]]],
    cache: RunCache,
    quick: bool,
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

    run_jobs(pool, jobs, "training runs (grid + picks)", done)


# --------------------------------------------------------------------------- summary
def summarize_task(
    task: BenchTask, cache: RunCache, picks: dict, pickers: Iterable[str]
) -> dict:
    """Oracle grid, each picker's picks, metrics and regret for one task."""
    grid = []
    for lr in task.grid:
        runs = [cache.get(task, lr, s) for s in GRID_SEEDS]
        metrics = [r["metric"] for r in runs if r is not None]
        grid.append({
            "lr": lr,
            "metrics": metrics,
            "mean": statistics.fmean(metrics) if metrics else None,
            "std": statistics.pstdev(metrics) if len(metrics) > 1 else 0.0,
            "diverged": sum(bool(r and r["diverged"]) for r in runs),
        })  # fmt: skip
    done = [g for g in grid if g["mean"] is not None and len(g["metrics"]) == len(GRID_SEEDS)]
    oracle = None
    for g in done:
        if oracle is None or task.better(g["mean"], oracle["mean"]):
            oracle = g
    run_s = reference_run_seconds(task, cache)
    out = {"task": task.name, "title": task.title, "steps": task.steps, "grid": grid,
           "oracle": oracle, "ms_per_step": 1000 * run_s / task.steps, "run_s": run_s,
           "pickers": {},
           "compute_s": _compute_seconds(task, cache, picks, pickers)}  # fmt: skip
    for picker in pickers:
        out["pickers"][picker] = _summarize_picker(task, cache, picks, picker, oracle, run_s)
    return out


def reference_run_seconds(task: BenchTask, cache: RunCache) -> float:
    """Wall time of one training run of the recipe: the median over its cached full-length
    runs (the unit of every picker's wall-time cost)."""
    prefix = f"{task.name}|{task.signature()}|"
    walls = [r["wall_s"] for k, r in cache.runs.items()
             if k.startswith(prefix) and r["steps_done"] == task.steps]  # fmt: skip
    return statistics.median(walls) if walls else 0.0


def _compute_seconds(
    task: BenchTask, cache: RunCache, picks: dict, pickers: Iterable[str]
) -> float:
    """Worker seconds that this task's results cost: grid runs, runs at picks and sweeps."""
    keys = {cache.key(task, lr, s) for lr in task.grid for s in GRID_SEEDS}
    sweeps = 0.0
    for picker in pickers:
        for seed in SPREAD_SEEDS:
            p = picks.get((task.name, picker, seed))
            if p is not None:
                sweeps += p["wall_s"]
                if seed in PICK_SEEDS:
                    keys.add(cache.key(training_task(picker, task), p["lr"], seed))
    return sweeps + sum(cache.runs[k]["wall_s"] for k in keys if k in cache.runs)


def _summarize_picker(
    task: BenchTask, cache: RunCache, picks: dict, picker: str, oracle: dict | None,
    run_s: float,
) -> dict:
    seeds = [s for s in SPREAD_SEEDS if (task.name, picker, s) in picks]
    lrs = [picks[task.name, picker, s]["lr"] for s in seeds]
    trained = training_task(picker, task)
    runs = [cache.get(trained, picks[task.name, picker, s]["lr"], s)
            for s in PICK_SEEDS if (task.name, picker, s) in picks]  # fmt: skip
    metrics = [r["metric"] for r in runs if r is not None]
    mean = statistics.fmean(metrics) if metrics else None
    ok = oracle is not None and mean is not None and len(metrics) == len(PICK_SEEDS)
    sweep_steps = statistics.fmean(picks[task.name, picker, s]["sweep_steps"] for s in seeds) \
        if seeds else None
    sweep_s = statistics.fmean(picks[task.name, picker, s]["wall_s"] for s in seeds) \
        if seeds else None
    return {
        "picks": lrs,
        "pick_median": statistics.median(lrs) if lrs else None,
        "spread": max(lrs) / min(lrs) if lrs and min(lrs) > 0 else None,
        "metrics": metrics,
        "mean": mean,
        "regret": task.regret(oracle["mean"], mean) if ok else None,
        "gap_pct": 100 * task.gap_fraction(oracle["mean"], mean) if ok else None,
        "sweep_steps": sweep_steps,
        "sweep_wall_s": sweep_s,
        **_cost(task, picker, sweep_steps, sweep_s, _unit_seconds(task, cache, picks, picker,
                                                                  run_s)),
        "failed": [picks[task.name, picker, s]["failed"] for s in seeds
                   if picks[task.name, picker, s].get("failed")],
        "diverged": sum(bool(r and r["diverged"]) for r in runs),
    }  # fmt: skip


def _unit_seconds(
    task: BenchTask, cache: RunCache, picks: dict, picker: str, run_s: float
) -> float:
    """The wall time of one training run to divide a picker's cost by. For a search made of
    training runs, the median of its own full-length trials, timed alongside it: wall time on
    the shared machine drifts between sessions by more than the costs compared here."""
    if picker not in SELF_TRAINING:
        return run_s
    studies = [picks[k] for k in picks if k[0] == task.name and k[1] == picker]
    trials = [cache.get(task, lr, p["seed"]) for p in studies for lr in p["lrs"]]
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
        complete = len(known) == len(regrets) and known
        gaps = [s["pickers"][picker]["gap_pct"] for s in summaries]
        spreads = [s["pickers"][picker]["spread"] for s in summaries]
        agg[picker] = {
            "median": statistics.median(known) if complete else None,
            "max": max(known) if complete else None,
            "median_gap_pct": statistics.median(gaps) if complete else None,
            "max_gap_pct": max(gaps) if complete else None,
            "max_spread": max(x for x in spreads if x is not None)
            if any(x is not None for x in spreads) else None,
            "max_sweep_steps": max((s["pickers"][picker]["sweep_steps"] or 0) for s in summaries),
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
    table = Table(title="Regret against the oracle grid (lower is better)")
    table.add_column("picker")
    for s in summaries:
        table.add_column(s["task"], justify="right")
    for col in ("median", "max", "median % gap", "max spread", "cost steps", "cost × run"):
        table.add_column(col, justify="right")
    for picker in pickers:
        cells = [fmt(s["pickers"][picker]["regret"]) for s in summaries]
        a = agg[picker]
        table.add_row(picker, *cells, fmt(a["median"]), fmt(a["max"]),
                      fmt(a["median_gap_pct"], ".1f"), fmt(a["max_spread"], ".2f"),
                      fmt(a["median_cost_steps"], ".0f"),
                      fmt(a["median_cost_runs"], ".2f"))  # fmt: skip
    console.print(table)
    for s in summaries:
        o = s["oracle"]
        console.print(f"{s['task']}: oracle LR {fmt(o and o['lr'], '.3g')} -> "
                      f"{fmt(o and o['mean'], '.4f')}; picks (median of 5 seeds): "
                      + ", ".join(f"{p} {fmt(s['pickers'][p]['pick_median'], '.3g')}"
                                  for p in pickers))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suggestion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke test: short runs, small grid")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--pickers", default=",".join(PICKERS), help="comma-separated pickers")
    parser.add_argument("--stage", choices=("grid", "all"), default="all",
                        help="grid: only the oracle grid (no picker needed); all: everything")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tasks = [get_task(name, args.quick) for name in args.tasks.split(",")]
    pickers, missing = available([p for p in args.pickers.split(",") if p])
    if missing:
        print(f"skipping {', '.join(missing)}: not installed (see benchmarks/README.md)")
    cache = RunCache(cache_path(args.quick))
    wanted = {t.name: {(lr, s, "") for lr in t.grid for s in GRID_SEEDS} for t in tasks}
    picks: dict = {}
    with ProcessPoolExecutor(args.workers, initializer=_init_worker) as pool:
        if args.stage == "all":
            picks = sweep_all(pool, tasks, pickers, args.quick)
            cache.reload()  # Optuna's trials were written by the workers
            for (name, picker, seed), p in picks.items():
                if seed in PICK_SEEDS:
                    wanted[name].add((p["lr"], seed, picker if picker in LR_FREE else ""))
        train_all(pool, tasks, wanted, cache, args.quick)
    wall = time.perf_counter() - start
    if args.stage != "all":
        console.print(f"grid done in {wall:.0f} s")
        return
    summaries = [summarize_task(t, cache, picks, pickers) for t in tasks]
    agg = aggregate(summaries, pickers)
    print_summary(summaries, agg, pickers)
    from benchmarks.report import write_report

    write_report(summaries, agg, pickers, tasks, args, wall, platform.platform())
    console.print(f"done in {wall:.0f} s")


if __name__ == "__main__":
    main()
