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

A second table asks whether the one sweep could have told how far the best LR falls: for each
long task, the fall (the long run's best LR over the short run's) beside the sweep's shape (the
median over its 5 saved seeds of the decades from the valley floor's centre up to the
divergence edge, the floor's width, the decades from the onset up to the floor's centre, and the
drop in standard errors), and the rank correlation of each with the fall.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

import scipy.stats

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


SHAPES = {
    "headroom": "floor centre to edge (decades)",
    "width": "floor width (decades)",
    "onset": "onset to floor centre (decades)",
    "drop": "drop (std errors)",
}
"""The sweep's shape features :func:`shape` reads, with their column titles."""


def shape(curve: crossval.Curve) -> dict[str, float]:
    """One sweep's :data:`SHAPES`, read with the shipped rule's floor fraction; a sweep that
    never reached the edge has its last LR stand in for it, as the rule does."""
    marks = curve.marks(suggest.PilotConstants().floor_fraction)
    centre = marks.floor_centre
    edge = marks.edge if marks.edge is not None else 10**curve.log_last_lr
    low, high = marks.floor
    return {
        "headroom": math.log10(edge / centre),
        "width": math.log10(high / low) if low > 0 else math.nan,
        "onset": math.log10(centre / marks.onset),
        "drop": marks.signal_to_noise,
    }


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (SciPy's, ties at their average rank; NaN pairs dropped;
    NaN for fewer than 3 pairs or a constant)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(pairs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan  # too few to rank, or a constant, which says nothing
    return float(scipy.stats.spearmanr(xs, ys).statistic)


def shapes(rows: list[Bound]) -> dict[str, dict[str, float]]:
    """Each long task's median sweep shape over its saved seeds (tasks without saved sweeps are
    left out)."""
    out = {}
    for case in crossval.load_cases([r.task for r in rows]):
        features = [shape(c) for c in case.curves]
        out[case.task.name] = {k: statistics.median(f[k] for f in features) for k in SHAPES}
    return out


def shape_lines(rows: list[Bound], read: dict[str, dict[str, float]]) -> list[str]:
    """The table of falls and sweep shapes, and each shape's rank correlation with the fall."""
    have = [r for r in rows if r.task in read]
    if len(have) < 3:
        return []
    falls = [math.log10(r.long_best / r.short_best) for r in have]
    decays = [1.0 if TASKS[r.task].schedule is not None else 0.0 for r in have]
    lines = [
        "",
        "What the one sweep says about how far the best LR falls over the 10× longer run "
        "(shapes: the median over the saved sweeps of seeds 0-4):",
        "",
        "| long task | schedule | fall (long / short best LR) | "
        + " | ".join(SHAPES.values())
        + " |",
        "| --- | --- | ---: |" + " ---: |" * len(SHAPES),
    ]
    for r in have:
        cells = " | ".join(f"{read[r.task][k]:.2f}" for k in SHAPES)
        kind = "decaying" if TASKS[r.task].schedule is not None else "constant"
        lines.append(f"| `{r.task}` | {kind} | {r.long_best / r.short_best:.2g}× | {cells} |")
    rhos = {k: spearman(falls, [read[r.task][k] for r in have]) for k in SHAPES}
    cells = " | ".join(f"{rho:+.2f}" for rho in rhos.values())
    critical = 1.96 / math.sqrt(len(have) - 1)  # the rank correlation of noise, 5 % two-sided
    clear = [SHAPES[k] for k, rho in rhos.items() if abs(rho) >= critical]
    pairs = schedule_pairs(have)
    lines += [
        f"| rank correlation with the fall (log) | {spearman(falls, decays):+.2f} | | {cells} |",
        "",
        f"Over {len(have)} tasks a rank correlation needs about ±{critical:.2f} to be told from "
        "none (5 % two-sided). Features of the sweep's shape that reach it: "
        f"{', '.join(clear) or 'none'}. Within a family, the decaying AdamW run's best LR "
        f"falls no further than the constant-LR Adam run's in {sum(pairs.values())} of "
        f"{len(pairs)} families{_except(pairs)}: the schedule, which the rule already "
        "reads (`PilotConstants.schedule_exponent`; a run-length exponent of its own for "
        "decaying schedules did no better held out: `benchmarks.crossval`). What the sweep "
        "cannot see is what happens late in the long run (overfitting on MovieLens, a cliff "
        "the GRU meets at 45 % of the run, the noise a constant LR leaves): only training "
        "further measures it.",
    ]
    return lines


def _except(pairs: dict[str, bool]) -> str:
    missed = [family for family, held in pairs.items() if not held]
    return f" (not in {', '.join(missed)})" if missed else ""


def schedule_pairs(rows: list[Bound]) -> dict[str, bool]:
    """For each family with a long AdamW (decaying) and Adam (constant) run: whether the AdamW
    run's best LR falls no further than the Adam run's."""
    fall = {r.task: r.long_best / r.short_best for r in rows}
    out = {}
    for name, value in fall.items():
        if name.endswith(":adamw") and name.replace(":adamw", ":adam") in fall:
            family = name.split(":")[0].removesuffix("-long")
            # grid LRs are stored to 6 digits: equal falls may differ in the 6th
            out[family] = value >= fall[name.replace(":adamw", ":adam")] * (1 - 1e-3)
    return out


def markdown(rows: list[Bound], read: dict[str, dict[str, float]] | None = None) -> str:
    """RESULTS.md's section: the table and its medians and maxima, then, given the long tasks'
    sweep shapes (``read``, from :func:`shapes`), what they say about the fall."""
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
    lines += shape_lines(rows, read or {})
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.race_bound", description=__doc__)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    rows = bounds()
    text = markdown(rows, shapes(rows))
    print(text)
    if not args.no_write:
        write_section("race", text)


if __name__ == "__main__":
    main()
