"""Sweeping again on validation batches when the training loss is too noisy: what it buys.

    python -m benchmarks.val_fallback              # measure, print, write RESULTS.md's section
    python -m benchmarks.val_fallback --no-write

``find_lr_for_task(task, val_fallback=True)`` runs the sweep a second time, on fixed
validation batches, when the training loss's drop is within reach of its noise (fewer than
``lrpilot.finder.NOISE_LEVEL_Z`` standard errors). This finds the scoreboard's tasks where
that happens (from lrpilot's saved sweeps, ``python -m benchmarks.suggestion --stage
sweeps``), sweeps each again with the fallback for seeds 0-4, and scores both picks on the
stored oracle grid (interpolated in log-LR, as ``benchmarks.replay`` does; nothing is
trained). Then it replays the default rule's cross-validation (``benchmarks.crossval``) with
those tasks' curves replaced by the fallback's: the held-out figure says whether the fallback
should be on by default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from dataclasses import dataclass

from rich.console import Console

import lrpilot
from benchmarks import crossval
from benchmarks.results_md import write_section
from benchmarks.suggestion import CURVES, PICK_SEEDS, SPREAD_SEEDS
from benchmarks.tasks import TASKS
from lrpilot import suggest
from lrpilot.finder import NOISE_LEVEL_Z

console = Console()


@dataclass
class Row:
    """One noisy task: the signal-to-noise of its training-loss sweeps and both picks."""

    task: str
    counted: bool
    oracle_lr: float
    train_z: list[float]
    val_z: list[float]
    train_picks: list[float]
    val_picks: list[float]
    train_gap: float  # % of the oracle-trivial gap at the mean metric of seeds 0-2
    val_gap: float
    default_gap: float
    cost: int  # optimizer steps of the fallback (both sweeps), seed 0


def _saved(name: str, seed: int) -> dict:
    return json.loads((CURVES / f"{name}__lrpilot__seed{seed}.json").read_text())


def noisy_tasks(cases: list[crossval.Case]) -> list[str]:
    """Tasks with a training-loss sweep too noisy to read on any seed."""
    return [
        c.task.name
        for c in cases
        if any(curve.marks().signal_to_noise < NOISE_LEVEL_Z for curve in c.curves)
    ]


def measure(case: crossval.Case) -> tuple[Row, list[dict]]:
    """Both picks on one task, and the fallback's curves (seeds 0-4)."""
    recipe = case.task.lrpilot_task
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in SPREAD_SEEDS:
            found.append(
                lrpilot.find_lr_for_task(recipe(), seed=seed, val_fallback=True, progress=False)
            )
    saved = [_saved(case.task.name, s) for s in SPREAD_SEEDS]
    n = len(PICK_SEEDS)
    row = Row(
        task=case.task.name,
        counted=case.task.counted,
        oracle_lr=10 ** crossval._oracle_x(case),
        train_z=[c.marks().signal_to_noise for c in case.curves],
        val_z=[suggest.landmarks(r.lrs, r.losses).signal_to_noise for r in found],
        train_picks=[float(s["lr"]) for s in saved],
        val_picks=[r.lr for r in found],
        train_gap=100 * crossval.task_gap(case, [float(s["lr"]) for s in saved][:n]),
        val_gap=100 * crossval.task_gap(case, [r.lr for r in found][:n]),
        default_gap=100 * case.gap(case.task.default_lr),
        cost=found[0].cost_steps,
    )
    curves = [{"lrs": r.lrs, "losses": r.losses} for r in found]
    return row, curves


def crossval_with(cases: list[crossval.Case], replaced: dict[str, list[dict]]) -> dict:
    """The cross-validation's summary with the curves of ``replaced`` tasks swapped in."""
    swapped = []
    for case in cases:
        if case.task.name in replaced:
            case = crossval.Case(
                case.task,
                [crossval._curve(c) for c in replaced[case.task.name]],
                case.facts,
                case.grid,
                case.oracle,
                case.near_best,
            )
        swapped.append(case)
    result = crossval.crossvalidate(swapped)
    return {**crossval.summary(result), "constants": result["in_sample"]["constants"]}


def _picks(values: list[float]) -> str:
    return ", ".join(f"{v:.2g}" for v in values[: len(PICK_SEEDS)])


def markdown(rows: list[Row], off: dict, on: dict, date: str) -> str:
    lines = [
        "## Sweeping again on validation batches when the training loss is too noisy",
        "",
        f"`python -m benchmarks.val_fallback` ({date}; sweeps only, nothing trained). "
        "`find_lr_for_task(task, val_fallback=True)` sweeps a second time, from the same "
        "start, on fixed validation batches when the training loss fell by fewer than "
        f"{NOISE_LEVEL_Z:g} standard errors of its noise; otherwise the pick leans on the "
        "optimizer family's prior (1e-3 Adam-family, 0.01 SGD). Tasks where that happens on "
        "any seed of lrpilot's saved sweeps; gaps are % of the oracle-trivial gap at the mean "
        "metric of seeds 0-2, interpolated on the stored grid.",
        "",
        "| task | oracle LR | training loss: z (min over seeds) | picks | gap | "
        "with the fallback: z | picks | gap | plain default's gap | steps (both sweeps) |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.task}{'*' if r.counted else ''} | {r.oracle_lr:.2g} | {min(r.train_z):.1f} | "
            f"{_picks(r.train_picks)} | {r.train_gap:.1f} | {min(r.val_z):.0f} | "
            f"{_picks(r.val_picks)} | {r.val_gap:.1f} | {r.default_gap:.1f} | {r.cost} |"
        )
    keep = ("reference_steps", "horizon_exponent", "adam_factor", "onset_margin")
    lines += [
        "",
        "The default rule's cross-validation (`benchmarks.crossval`, constants refitted) with "
        "these tasks' curves as the fallback makes them:",
        "",
        "| | median % of the gap, counted, held out | max % | tasks > 1 % worse than "
        "the default, held out | constants chosen in sample |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for label, s in (("fallback off (shipped)", off), ("fallback on", on)):
        held = s["held_out"]
        chosen = ", ".join(f"{k} {s['constants'][k]:g}" for k in keep)
        lines.append(
            f"| {label} | {held['median_gap_pct']:.1f} | {held['max_gap_pct']:.1f} | "
            f"{len(held['worse_than_default'])} | {chosen} |"
        )
    better = on["held_out"]["median_gap_pct"] < off["held_out"]["median_gap_pct"]
    lines += [
        "",
        "Where the fallback finds a clear curve, its pick is read like any other; where the "
        "best LR of a long run lies far below its short version's (the oracle grids of "
        "MovieLens with the Adam family: 10x lower at 10x the steps), the run-length "
        "correction does not reach it, and the rule's constants refitted with these curves "
        "do "
        + ("better" if better else "worse")
        + " held out (the table above). So it is "
        + ("on" if better else "off")
        + " by default: pass `val_fallback=True` (`lrpilot find --val-fallback`) for a task "
        "whose batches differ too much to give a readable training loss.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.val_fallback", description=__doc__)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    cases = crossval.load_cases(list(TASKS))
    names = noisy_tasks(cases)
    console.print(f"too noisy on some seed: {', '.join(names) or 'none'}")
    by_name = {c.task.name: c for c in cases}
    rows, replaced = [], {}
    for name in names:
        row, curves = measure(by_name[name])
        rows.append(row)
        replaced[name] = curves
        console.print(
            f"{name}: gap {row.train_gap:.1f} % -> {row.val_gap:.1f} % "
            f"(picks {_picks(row.train_picks)} -> {_picks(row.val_picks)})"
        )
    off = crossval_with(cases, {})
    on = crossval_with(cases, replaced)
    for label, s in (("off", off), ("on", on)):
        held = s["held_out"]
        console.print(
            f"fallback {label}: held out median {held['median_gap_pct']:.1f} %, "
            f"max {held['max_gap_pct']:.1f} %"
        )
    median = statistics.median
    console.print(
        f"median gap on the noisy tasks: {median([r.train_gap for r in rows]):.1f} % -> "
        f"{median([r.val_gap for r in rows]):.1f} %"
        if rows
        else "no noisy task"
    )
    if not args.no_write:
        import datetime

        write_section("val_fallback", markdown(rows, off, on, str(datetime.date.today())))


if __name__ == "__main__":
    main()
