"""Replay a suggestion rule on saved sweep curves, without training: a fast loop for rule design.

    python -m benchmarks.replay                                  # lrpilot.suggest:pilot
    python -m benchmarks.replay --rule lrpilot.suggest:minimum
    python -m benchmarks.replay --rule mymodule:my_rule --curves lrpilot

The rule is called as ``rule(lrs, losses)``, plus ``steps=`` (the task's step budget) and
``prior_lr=`` (the plain default LR for the optimizer family, if lrpilot's ``prior_lr_for``
gives one) when its signature accepts them. Curves are lrpilot's saved sweeps (raw losses,
1e-7 to 10) from ``benchmarks/out/curves/``; torch-lr-finder's and Lightning's saved losses are
their own EMA-smoothed values, not raw. The metric at each pick is *estimated* by linear
interpolation of the oracle grid's mean metric in log-LR (cached in ``store/runs.json``);
``python -m benchmarks.suggestion`` trains at the picks for the real numbers.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import statistics
from collections.abc import Callable

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.cache import RunCache, cache_path
from benchmarks.suggestion import CURVES, GRID_SEEDS, PICK_SEEDS, SPREAD_SEEDS
from benchmarks.tasks import TASKS, BenchTask

console = Console()


def load_rule(spec: str) -> Callable:
    """``module:function`` -> the function."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def grid_curve(task: BenchTask, cache: RunCache) -> list[tuple[float, float]]:
    """(log10 LR, mean metric over the seeds run there) of the oracle grid: three seeds near
    the optimum, seed 0 elsewhere."""
    points = []
    for lr in task.grid:
        runs = [r for r in (cache.get(task, lr, s) for s in GRID_SEEDS) if r is not None]
        if runs:
            points.append((math.log10(lr), statistics.fmean(r["metric"] for r in runs)))
    return points


def interpolate(points: list[tuple[float, float]], lr: float) -> float:
    """The grid's mean metric at ``lr``, linear in log-LR, flat beyond the ends."""
    x = math.log10(lr)
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]


def call_rule(rule: Callable, curve: dict, task: BenchTask) -> float:
    """The rule's pick on one saved curve, with the keywords its signature takes."""
    params = inspect.signature(rule).parameters
    kwargs = {}
    if "steps" in params:
        kwargs["steps"] = task.steps
    if "prior_lr" in params:
        from lrpilot.advice import prior_lr_for

        probe = task.optimizer_fn([torch.zeros(1, requires_grad=True)], 1.0)
        kwargs["prior_lr"] = prior_lr_for(probe)
    return float(rule(curve["lrs"], curve["losses"], **kwargs))


def replay_task(task: BenchTask, rule: Callable, curves: str, cache: RunCache) -> dict | None:
    """Picks, estimated metrics, regret and spread of ``rule`` on one task's saved curves."""
    points = grid_curve(task, cache)
    files = [CURVES / f"{task.name}__{curves}__seed{s}.json" for s in SPREAD_SEEDS]
    if not points or not all(f.exists() for f in files):
        return None
    picks = [call_rule(rule, json.loads(f.read_text()), task) for f in files]
    best = points[task.best_index([metric for _, metric in points])]
    est = [interpolate(points, lr) for lr in picks[: len(PICK_SEEDS)]]
    mean = statistics.fmean(est)
    return {
        "task": task.name,
        "picks": picks,
        "spread": max(picks) / min(picks),
        "oracle_lr": 10 ** best[0],
        "est_regret": task.regret(best[1], mean),
        "est_gap_pct": 100 * task.gap_fraction(best[1], mean),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rule", default="lrpilot.suggest:pilot", help="module:function")
    parser.add_argument("--curves", default="lrpilot", help="whose saved sweeps to read")
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args(argv)
    rule = load_rule(args.rule)
    cache = RunCache(cache_path(quick=False))
    table = Table(title=f"{args.rule} replayed on {args.curves}'s curves (estimated regret)")
    for col in ("task", "oracle LR", "picks, seeds 0-4", "spread", "est. regret", "est. % gap"):
        table.add_column(col, justify="right")
    regrets, gaps = [], []
    for name in args.tasks.split(","):
        r = replay_task(TASKS[name], rule, args.curves, cache)
        if r is None:
            table.add_row(name, "–", "no grid or curves yet", "", "")
            continue
        regrets.append(r["est_regret"])
        if TASKS[name].counted:
            gaps.append(r["est_gap_pct"])
        table.add_row(
            name,
            f"{r['oracle_lr']:.3g}",
            ", ".join(f"{p:.2g}" for p in r["picks"]),
            f"{r['spread']:.2f}×",
            f"{r['est_regret']:.2f}",
            f"{r['est_gap_pct']:.1f}",
        )
    console.print(table)
    if regrets:
        console.print(f"regret: median {statistics.median(regrets):.2f}, max {max(regrets):.2f}")
    if gaps:
        console.print(
            f"% of gap, counted tasks: median {statistics.median(gaps):.1f}, max {max(gaps):.1f}"
        )


if __name__ == "__main__":
    main()
