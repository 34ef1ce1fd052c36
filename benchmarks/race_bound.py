"""What a race of short runs could buy a long run's pick, at best: an upper bound from the grids.

    python -m benchmarks.race_bound              # print, write RESULTS.md's "race" section
    python -m benchmarks.race_bound --no-write

A race trains candidate LRs for a fraction of the run (the schedule compressed to it) and
keeps the best, then corrects its LR for the real run's length. The scoreboard's long tasks
are their short versions' recipes with 10× the steps, so the short version's oracle grid *is*
a race at 1/10 of the run over every grid LR, with perfect selection (three seeds near the
best). This script scores that perfect race: the short grid's best LR, times
``(steps_long / steps_short) ** -e`` for a few horizon exponents ``e`` (``tune``'s race one
among them), looked up on the long task's grid. That is a race at its best: perfect
selection among every grid LR; a real one has fewer candidates and noisier selection, and
still costs a run-tenth per candidate (30-50 % of the run for a few), against lrpilot's single
100-step sweep. Nothing is trained: it reads the
stored grids (``store/runs.json``).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

from benchmarks import crossval
from benchmarks.cache import RunCache, cache_path
from benchmarks.replay import grid_curve, interpolate
from benchmarks.results_md import write_section
from benchmarks.tasks import TASKS, BenchTask
from lrpilot import suggest
from lrpilot.autopilot import RACE_HORIZON_EXPONENT

EXPONENTS = (0.0, RACE_HORIZON_EXPONENT, 0.5)
"""Horizon exponents tried for the race's length correction (``tune``'s in the middle)."""


@dataclass(frozen=True)
class Bound:
    """One long task: the best LRs of both lengths and the perfect race's gap per exponent."""

    task: str
    short_best: float
    long_best: float
    ratio: float  # steps_long / steps_short
    gaps: dict[float, float]  # exponent -> % of the long task's oracle-trivial gap
    default_gap: float
    lrpilot_gap: float | None = None  # the shipped rule on its saved sweeps (None: no sweeps)


def best(task: BenchTask, grid: list[tuple[float, float]]) -> tuple[float, float]:
    """(LR, mean metric) of the grid's best point."""
    x, metric = grid[task.best_index([m for _, m in grid])]
    return 10**x, metric


def gap_pct(task: BenchTask, grid: list[tuple[float, float]], lr: float) -> float:
    """% of the oracle-trivial gap lost at ``lr`` on ``grid`` (interpolated in log-LR)."""
    oracle = best(task, grid)[1]
    fraction = task.gap_fraction(oracle, interpolate(grid, lr))
    return 0.0 if fraction is None else 100 * fraction + 0.0  # + 0.0: no "-0.0"


def race_bound(
    long: BenchTask,
    short: BenchTask,
    long_grid: list[tuple[float, float]],
    short_grid: list[tuple[float, float]],
    exponents: Sequence[float] = EXPONENTS,
) -> Bound:
    """The perfect race at ``short``'s length for ``long``, corrected by each exponent."""
    ratio = long.steps / short.steps
    short_lr = best(short, short_grid)[0]
    gaps = {e: gap_pct(long, long_grid, short_lr * ratio**-e) for e in exponents}
    default = gap_pct(long, long_grid, long.default_lr)
    return Bound(long.name, short_lr, best(long, long_grid)[0], ratio, gaps, default)


def lrpilot_gaps(names: Sequence[str]) -> dict[str, float]:
    """% of the gap of the shipped rule's picks on the saved sweeps (seeds 0-2), estimated from
    the grid like the race: the tasks whose sweeps are saved (``--stage sweeps`` makes them)."""
    shipped = suggest.PilotConstants()
    return {
        case.task.name: 100 * crossval.task_gap(case, crossval.picks(case, shipped))
        for case in crossval.load_cases(names)
    }


def bounds() -> list[Bound]:
    """Every long task whose grid and whose short version's grid are complete."""
    cache = RunCache(cache_path(quick=False))
    out = []
    for name, long in TASKS.items():
        short = TASKS.get(name.replace("-long", "")) if "-long" in name else None
        if short is None:
            continue
        long_grid, short_grid = grid_curve(long, cache), grid_curve(short, cache)
        if len(long_grid) == len(long.grid) and len(short_grid) == len(short.grid):
            out.append(race_bound(long, short, long_grid, short_grid))
    mine = lrpilot_gaps([b.task for b in out])
    return [replace(b, lrpilot_gap=mine.get(b.task)) for b in out]


def markdown(rows: list[Bound]) -> str:
    """RESULTS.md's section: the table and its medians and maxima."""
    exponents = list(rows[0].gaps)
    head = " | ".join(f"race, e = {e:g}" for e in exponents)
    lines = [
        "## A race of short runs, at best: the bound from the grids",
        "",
        "`python -m benchmarks.race_bound` (seconds: it reads the stored grids). "
        + " ".join(__doc__.split("\n\n")[2].split()).replace("``", "`"),
        "",
        f"| long task | short run's best LR | long run's best LR | {head} | default | "
        "lrpilot, one sweep |",
        "| --- | ---: | ---: |" + " ---: |" * (len(exponents) + 2),
    ]
    for r in rows:
        cells = " | ".join(f"{r.gaps[e]:.1f}" for e in exponents)
        lines.append(
            f"| `{r.task}` | {r.short_best:.3g} | {r.long_best:.3g} | {cells} | "
            f"{r.default_gap:.1f} | {_pct(r.lrpilot_gap)} |"
        )
    for label, agg in (("median", statistics.median), ("max", max)):
        cells = " | ".join(f"**{agg(r.gaps[e] for r in rows):.1f}**" for e in exponents)
        mine = [r.lrpilot_gap for r in rows if r.lrpilot_gap is not None]
        lines.append(
            f"| {label} | | | {cells} | {agg(r.default_gap for r in rows):.1f} | "
            f"{_pct(agg(mine) if len(mine) == len(rows) else None)} |"
        )
    lines += [
        "",
        "Figures are % of the long task's oracle-trivial gap, all read off the grids "
        "(interpolated in log-LR; lrpilot's trained figures are in the first section). The ratio "
        "between the two lengths' best LRs runs from "
        f"{min(r.short_best / r.long_best for r in rows):.2g}× to "
        f"{max(r.short_best / r.long_best for r in rows):.2g}× over a 10× longer run: no single "
        "horizon exponent carries a race's winner to the long run reliably (MovieLens with "
        "Adam overfits at the short run's best LR when trained 10× longer).",
    ]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.race_bound", description=__doc__)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text = markdown(bounds())
    print(text)
    if not args.no_write:
        write_section("race", text)


if __name__ == "__main__":
    main()
