"""``lrpilot.tune`` on the scoreboard: its regret beside ``find_lr`` alone and an Optuna TPE
search given the same optimizer steps, and what choosing costs as a share of the run.

    python -m benchmarks.tune_regret --quick   # 4 long tasks, 1 seed: under a minute
    python -m benchmarks.tune_regret           # all 43 tasks, 3 seeds, 2 workers: over an hour
    python -m benchmarks.tune_regret --report-only   # re-write RESULTS from the saved outcomes

For each task and seed, ``lrpilot.tune(task, train=False, race="check")`` runs the range test
and the race (the choosing stages, whose steps it counts). From that one call come three
choices: the range test's pick (what ``find_lr`` alone gives), ``race="check"`` (the pick unless
it diverged in the race) and ``race="adopt"`` (the race's best: tune's default,
``autopilot.DEFAULT_RACE``, as this benchmark chose it). Then an Optuna
TPE search (``lrpilot.search``, method ``bayes``, no pruning) gets exactly the steps tune spent:
``n`` trials of ``cost / n`` steps each for each ``n`` in :data:`TPE_TRIALS`, the schedule
compressed to them (a full-length trial would not fit: choosing may cost 15-25 % of one run),
over the oracle grid's LR range. A short trial prefers a higher LR than the full run, so its best
LR is carried to the run by the same horizon exponent the race uses (``TPE xn, corrected``);
``TPE xn, raw`` takes it as is. Where tune's steps pay for two or more whole runs (a run short
enough that tune races its candidates whole: ``autopilot.FULL_RACE_STEPS``), ``TPE, whole
runs`` is a search of that many whole-run trials, its best taken as is.

Every choice is scored on the task's stored oracle grid (``benchmarks/store/runs.json``, the
mean over seeds 0-2 near the optimum, linear in log-LR between grid points: the estimate
``benchmarks.crossval`` and ``benchmarks.race_bound`` use) as a % of the oracle-trivial gap and
in the task's units (accuracy points, or % excess loss), not retrained: a retrained pick would
cost one full run per choice and method.

Which choice tune should default to is itself chosen honestly: for each task family, the choice
with the lowest mean gap on the *other* families (leave-one-family-out); the held-out column
is that choice's gap on the family's own tasks.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import statistics
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import lrpilot
from benchmarks.cache import RunCache, cache_path
from benchmarks.race_bound import best, gap_pct
from benchmarks.replay import grid_curve, interpolate
from benchmarks.results_md import write_section
from benchmarks.tasks import TASKS, BenchTask
from benchmarks.train import train_run
from lrpilot.autopilot import DEFAULT_RACE, FULL_RACE_STEPS, RACE_HORIZON_EXPONENT

QUICK_TASKS = (
    "mnist1d_conv-long:adamw",
    "diamonds_mlp-long:sgd",
    "movielens_mf-long:adam",
    "fortunes_gru-long:adam",
)
TPE_TRIALS = (6, 12)
"""Trial counts of the equal-steps TPE searches: few trials of a longer run each, or more of a
shorter one (lrpilot's TPE fits its model after ``max(3, trials // 4)`` random trials)."""
MIN_TRIAL_STEPS = 10
CHOICES = (
    "range test",
    "tune (check)",
    "tune (adopt)",
    "race's best if lower",
    "TPE x6, corrected",
    "TPE x12, corrected",
    "TPE x6, raw",
    "TPE, whole runs",
    "default",
)
TUNE_CHOICES = ("range test", "tune (check)", "tune (adopt)", "race's best if lower")
"""The modes of tune leave-one-family-out picks among (race off, check, adopt); TPE and the
default LR are the rivals."""
REGRET_TARGET = {True: 0.5, False: 1.0}  # higher is better (accuracy points) / loss (% excess)
LONGEST_STEPS = 5000
LONGEST_TASKS = (
    "mnist1d_conv-long:adamw",
    "diamonds_mlp-long:sgd",
    "fortunes_gru-long:adam",
    "wordnet_gpt-long:adamw",
)
"""Recipes run at :data:`LONGEST_STEPS` for the cost target of runs of 5,000 steps or more:
the scoreboard has no oracle grid that long, so only what choosing costs is measured."""
OUT = Path(__file__).resolve().parent / "out" / "tune_regret.json"


@dataclass
class Outcome:
    """One task and seed: every choice's LR and the steps spent choosing."""

    task: str
    seed: int
    run_steps: int
    lrs: dict[str, float]
    cost_steps: int  # tune's range test + race
    range_steps: int
    tpe_steps: dict[str, int]
    race_note: str
    seconds: float


def family_of(task: BenchTask) -> str:
    """The task family, a family's short and long versions together."""
    return task.family.name.removesuffix("-long")


def tpe_at_equal_steps(
    task: BenchTask, budget: int, trials: int, seed: int, folder: Path
) -> tuple[float, int, int]:
    """An unpruned TPE search of ``trials`` trials of ``budget / trials`` steps each over the
    grid's range: its best trial's LR (at the trials' length), the trials' length and the steps
    it ran (``nan, 0, 0`` when a trial would be shorter than :data:`MIN_TRIAL_STEPS`). A trial
    never runs longer than the task's run."""
    length = min(budget // trials, task.steps)
    if length < MIN_TRIAL_STEPS:
        return math.nan, 0, 0
    short = dataclasses.replace(task.lrpilot_task(), steps=length)
    journal = folder / f"{task.name}-{trials}-{seed}.journal".replace(":", "_")
    result = lrpilot.search(
        short,
        "bayes",
        trials,
        str(journal),
        "bench",
        space=(task.grid[0], task.grid[-1]),
        prune=False,
        seed=seed,
        progress=False,
    )
    return result.lr, length, result.steps


def one_task(task: BenchTask, seed: int, folder: Path) -> Outcome:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lint warnings on the LRs a search samples
        result = lrpilot.tune(
            task.lrpilot_task(), train=False, seed=seed, progress=False, race="check"
        )
        race = result.race or {}
        pick = float((result.range_test or {})["lr"])
        winner = next((c for c in race.get("candidates", []) if c.get("winner")), None)
        adopt = float(winner["lr"]) if winner else result.lr
        tpe: dict[str, float] = {}
        tpe_steps: dict[str, int] = {}
        for trials in TPE_TRIALS:
            raw, length, spent = tpe_at_equal_steps(task, result.cost_steps, trials, seed, folder)
            tpe[f"TPE x{trials}, raw"] = raw
            tpe[f"TPE x{trials}, corrected"] = (
                raw * (length / task.steps) ** RACE_HORIZON_EXPONENT if spent else math.nan
            )
            tpe_steps[f"x{trials}"] = spent
        whole = result.cost_steps // task.steps  # where tune raced whole runs, so can TPE
        if whole >= 2:
            tpe["TPE, whole runs"], _, tpe_steps["whole"] = tpe_at_equal_steps(
                task, whole * task.steps, whole, seed, folder
            )
    return Outcome(
        task=task.name,
        seed=seed,
        run_steps=task.steps,
        lrs={
            "range test": pick,
            "tune (check)": result.lr,
            "tune (adopt)": adopt,
            "race's best if lower": lowered(result.lr, adopt),
            **tpe,
            "default": task.default_lr,
        },
        cost_steps=result.cost_steps,
        range_steps=int((result.range_test or {}).get("cost_steps", 0)),
        tpe_steps=tpe_steps,
        race_note=str(race.get("note", "")),
        seconds=time.perf_counter() - start,
    )


def lowered(check: float, adopt: float) -> float:
    """The race's best when it lies below the pick that ``race="check"`` keeps, else that pick:
    a rule tried here, not a mode of tune (a race compressed to a short run favours higher LRs
    than the full run wants, so only its votes against that bias would be taken)."""
    return adopt if adopt < check else check


def longest_costs() -> list[dict[str, Any]]:
    """What ``tune(train=False)`` spends choosing (steps) on :data:`LONGEST_TASKS` at
    :data:`LONGEST_STEPS` steps, seed 0."""
    rows = []
    for name in LONGEST_TASKS:
        task = dataclasses.replace(TASKS[name], steps=LONGEST_STEPS)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = lrpilot.tune(task.lrpilot_task(), train=False, seed=0, progress=False)
        rows.append({"task": name, "steps": LONGEST_STEPS, "cost_steps": result.cost_steps})
        print(f"{name} at {LONGEST_STEPS} steps: choosing cost {result.cost_steps}", flush=True)
    return rows


def run_all(names: tuple[str, ...], seeds: int, workers: int = 1) -> list[Outcome]:
    """Every task and seed's :func:`one_task`, spread over ``workers`` processes (one thread
    each), in the order of ``names`` and seeds."""
    jobs = [(name, seed) for name in names for seed in range(seeds)]
    if workers <= 1:
        return [_one_job(name, seed) for name, seed in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        return list(pool.map(_one_job, *zip(*jobs, strict=True)))


def _one_thread() -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")


def _one_job(name: str, seed: int) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="lrpilot-tune-bench-") as tmp:
        o = one_task(TASKS[name], seed, Path(tmp))
    shown = " ".join(f"{k}={v:.3g}" for k, v in o.lrs.items())
    print(
        f"{name:26s} seed={seed} cost={o.cost_steps}/{o.run_steps} {shown} ({o.seconds:.0f} s)",
        flush=True,
    )
    return o


# --------------------------------------------------------------------------- scoring
@dataclass
class Scored:
    """One task's choices scored on its grid, averaged over seeds."""

    task: str
    family: str
    run_steps: int
    gap: dict[str, float]  # % of the oracle-trivial gap
    regret: dict[str, float]  # task units
    higher: bool
    cost_share: float  # tune's choosing steps / run steps
    lrs: dict[str, float]  # geometric mean over seeds
    oracle_lr: float
    raced: bool = False  # whether tune's race ran (on some seed)


def score(outcomes: list[Outcome], cache: RunCache) -> list[Scored]:
    by_task: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_task.setdefault(o.task, []).append(o)
    rows = []
    for name, items in by_task.items():
        task = TASKS[name]
        for o in items:  # outcomes saved before this rule was scored
            o.lrs.setdefault(
                "race's best if lower", lowered(o.lrs["tune (check)"], o.lrs["tune (adopt)"])
            )
        grid = grid_curve(task, cache)
        oracle_lr, oracle = best(task, grid)
        gap, regret, lrs = {}, {}, {}
        for choice in CHOICES:
            picked = [o.lrs[choice] for o in items if math.isfinite(o.lrs.get(choice, math.nan))]
            if not picked:
                continue
            gap[choice] = statistics.fmean(gap_pct(task, grid, lr) for lr in picked)
            regret[choice] = statistics.fmean(
                task.regret(oracle, interpolate(grid, lr)) for lr in picked
            )
            lrs[choice] = math.exp(statistics.fmean(math.log(lr) for lr in picked))
        rows.append(
            Scored(
                task=name,
                family=family_of(task),
                run_steps=task.steps,
                gap=gap,
                regret=regret,
                higher=task.higher_is_better,
                cost_share=statistics.fmean(o.cost_steps / o.run_steps for o in items),
                lrs=lrs,
                oracle_lr=oracle_lr,
                raced=any(o.cost_steps > o.range_steps for o in items),
            )
        )
    return rows


def held_out(rows: list[Scored]) -> tuple[dict[str, float], dict[str, str]]:
    """Leave-one-family-out: per family, the mode of tune with the lowest mean gap on the other
    families' tasks (the first listed on a tie); returns each task's held-out gap and each
    family's choice."""
    gaps, chosen = {}, {}
    for family in sorted({r.family for r in rows}):
        others = [r for r in rows if r.family != family]
        if not others:
            continue
        choice = min(
            TUNE_CHOICES,
            key=lambda c: statistics.fmean(r.gap.get(c, math.inf) for r in others),
        )
        chosen[family] = choice
        for r in rows:
            if r.family == family and choice in r.gap:
                gaps[r.task] = r.gap[choice]
    return gaps, chosen


# --------------------------------------------------------------------------- report
def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1f}"


def markdown(
    rows: list[Scored],
    outcomes: list[Outcome],
    command: str,
    longest: list[dict[str, Any]] | None = None,
) -> str:
    gaps, chosen = held_out(rows)
    seeds = sorted({o.seed for o in outcomes})
    lines = [
        "## Tune: the whole pipeline against find_lr alone and TPE at equal steps",
        "",
        f"`{command}` ({dt.date.today().isoformat()}, one thread): {len(rows)} tasks, seeds "
        f"{', '.join(map(str, seeds))}. `lrpilot.tune(task, train=False)` runs the range test "
        "and the race; from that call come the range test's pick (`find_lr` alone), "
        '`race="check"` (the pick unless it diverges in the race) and `race="adopt"` '
        f"(the race's best); tune's default is `race={DEFAULT_RACE!r}`. TPE: `lrpilot.search` "
        "(Optuna TPE, unpruned), 6 or 12 trials "
        "sharing exactly tune's choosing steps, the schedule compressed to each trial, over the "
        "grid's LR range; *corrected* carries its best LR to the full run by the race's horizon "
        "exponent; *TPE, whole runs*: as many whole-run trials as tune's steps pay for, where "
        "they pay for two or more. A run short enough that its candidates' whole runs cost at "
        f"most {FULL_RACE_STEPS:,} steps (up to 333 steps with three candidates) is raced "
        "whole, outside the share budget (the cost column: choosing's steps as a share of one "
        "run). Every choice is scored on the stored oracle grid (interpolated in log-LR, not "
        "retrained) as a % of the oracle–trivial gap (mean over seeds); the race's best on one "
        "seed is scored on the seeds' mean, so a candidate that wins its race by that seed's "
        "luck scores as the LR it is. Not held out: where the range test's curve was too noisy "
        "to give a pick, a whole race spreads its candidates over the band "
        "(`autopilot.band_candidates`); that rule was made with MovieLens in view, the only "
        "family whose sweeps are that noisy, so its MovieLens rows are in-sample figures "
        "(the leave-one-family-out column chooses among tune's modes, not this rule).",
        "",
        "| task | steps | cost | oracle LR | " + " | ".join(CHOICES) + " | held out (choice) |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in CHOICES) + " | --- |",
    ]
    for r in rows:
        cells = " | ".join(
            f"{_pct(r.gap.get(c))} ({r.lrs[c]:.2g})" if c in r.lrs else "—" for c in CHOICES
        )
        lines.append(
            f"| {r.task} | {r.run_steps} | {100 * r.cost_share:.0f} % | {r.oracle_lr:.2g} | "
            f"{cells} | {_pct(gaps.get(r.task))} ({chosen.get(r.family, '—')}) |"
        )
    lines += ["", "Cells: % of the gap (the LR chosen, geometric mean over seeds).", ""]
    lines += _summary(rows, gaps, chosen, longest)
    return "\n".join(lines) + "\n"


def _choice_table(rows: list[Scored], gaps: dict[str, float]) -> list[str]:
    lines = ["| choice | median % of gap | mean | max | tasks within the regret target |"]
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    for c in CHOICES:
        values = [r.gap[c] for r in rows if c in r.gap]
        within = sum(r.regret[c] <= REGRET_TARGET[r.higher] for r in rows if c in r.regret)
        if values:
            lines.append(
                f"| {c} | {statistics.median(values):.1f} | {statistics.fmean(values):.1f} | "
                f"{max(values):.1f} | {within}/{len(values)} |"
            )
    kept = [gaps[r.task] for r in rows if r.task in gaps]
    if kept:
        lines.append(
            f"| held out (leave-one-family-out) | {statistics.median(kept):.1f} | "
            f"{statistics.fmean(kept):.1f} | {max(kept):.1f} | — |"
        )
    return lines


def _summary(
    rows: list[Scored],
    gaps: dict[str, float],
    chosen: dict[str, str],
    longest: list[dict[str, Any]] | None = None,
) -> list[str]:
    raced = [r for r in rows if r.raced]
    lines = [f"All {len(rows)} tasks:", "", *_choice_table(rows, gaps), ""]
    lines += [
        f"The {len(raced)} tasks where a race ran (on the others the range test alone spends "
        "the budget, so every mode of tune is the range test's pick):",
        "",
        *_choice_table(raced, gaps),
    ]
    mine = f"tune ({DEFAULT_RACE})"
    lines += ["", f"**Targets** (issue 13), for tune's default, `race={DEFAULT_RACE!r}`:", ""]
    within = [r for r in rows if r.regret.get(mine, math.inf) <= REGRET_TARGET[r.higher]]
    lines.append(
        f"- regret ≤ 0.5 accuracy point / ≤ 1 % excess loss on every task: met on "
        f"{len(within)} of {len(rows)} ({'met' if len(within) == len(rows) else 'not met'})."
    )
    for rival in ("range test", "TPE x6, corrected", "TPE x12, corrected", "TPE, whole runs"):
        both = [r for r in rows if mine in r.gap and rival in r.gap]
        lower = sum(r.gap[mine] < r.gap[rival] - 1e-9 for r in both)
        ties = sum(abs(r.gap[mine] - r.gap[rival]) <= 1e-9 for r in both)
        ours = statistics.median(r.gap[mine] for r in both) if both else math.nan
        theirs = statistics.median(r.gap[rival] for r in both) if both else math.nan
        lines.append(
            f"- lower than {rival}: lower on {lower}, tied on {ties}, higher on "
            f"{len(both) - lower - ties} of {len(both)} tasks; median {ours:.1f} % vs "
            f"{theirs:.1f} % ({'met' if lower + ties == len(both) and lower else 'not met'})."
        )
    for floor, share in ((2000, 0.15), (5000, 0.10)):
        long = [r for r in rows if r.run_steps >= floor]
        if long:
            worst = max(r.cost_share for r in long)
            lines.append(
                f"- cost ≤ {100 * share:.0f} % of the run for runs of ≥ {floor:,} steps: at most "
                f"{100 * worst:.1f} % over {len(long)} tasks "
                f"({'met' if worst <= share + 1e-9 else 'not met'})."
            )
        elif longest:
            worst = max(r["cost_steps"] / r["steps"] for r in longest)
            names = ", ".join(r["task"] for r in longest)
            lines.append(
                f"- cost ≤ {100 * share:.0f} % of the run for runs of ≥ {floor:,} steps: at most "
                f"{100 * worst:.1f} % on {len(longest)} recipes run at "
                f"{longest[0]['steps']:,} steps ({names}; no oracle grid that long, so their "
                f"regret is not measured) ({'met' if worst <= share + 1e-9 else 'not met'})."
            )
        else:
            lines.append(f"- cost for runs of ≥ {floor:,} steps: no such task on the scoreboard.")
    moved = [
        f"{r.task} {r.gap['range test']:.1f} -> {r.gap[mine]:.1f} %"
        for r in rows
        if mine in r.gap
        and "range test" in r.gap
        and abs(r.gap[mine] - r.gap["range test"]) > 1e-9
    ]
    lines.append(
        f"- where tune's default moved off the range test's pick: {', '.join(moved) or 'nowhere'}."
    )
    picks = ", ".join(f"{f}: {c}" for f, c in chosen.items())
    lines += ["", f"Leave-one-family-out choices: {picks}."]
    kept = [r for r in raced if r.task in gaps and "range test" in r.gap]
    if kept:
        held = [gaps[r.task] for r in kept]
        pick = [r.gap["range test"] for r in kept]
        lines.append(
            f"On the raced tasks the mode chosen on the other families scores median "
            f"{statistics.median(held):.1f} % / mean {statistics.fmean(held):.1f} % of the gap on "
            f"its own family, against the range test's pick's {statistics.median(pick):.1f} % / "
            f"{statistics.fmean(pick):.1f} %: " + _verdict(held, pick)
        )
    return lines


def _verdict(held: list[float], pick: list[float]) -> str:
    """Whether the held-out choice beats the range test's pick on the raced tasks: no worse on
    the median (within 0.05 point) and the mean, better on one of them."""
    median_held, median_pick = statistics.median(held), statistics.median(pick)
    mean_held, mean_pick = statistics.fmean(held), statistics.fmean(pick)
    no_worse = median_held <= median_pick + 0.05 and mean_held <= mean_pick + 0.05
    better = median_held < median_pick - 0.05 or mean_held < mean_pick - 0.05
    if no_worse and better:
        return (
            "held out, the race improves on the pick it starts from, so tune's default takes "
            "the race's best."
            if DEFAULT_RACE == "adopt"
            else "held out, the race improves on the pick it starts from, yet tune's default "
            f"is {DEFAULT_RACE!r}: re-read this choice."
        )
    return (
        "held out, the race does not beat the pick it starts from, so tune's default should "
        "only veto a pick that diverges in the race, or replace a pick the range test's curve "
        "was too noisy to give (then the race is the only measurement)"
        + ("." if DEFAULT_RACE == "check" else f"; it is {DEFAULT_RACE!r}: re-read this choice.")
    )


CHECKED = ("range test", "tune (adopt)")
"""The choices :func:`check_grid` trains, where they differ: the race's effect rests on them."""


def check_grid(outcomes: list[Outcome], cache: RunCache) -> list[dict[str, Any]]:
    """How far the grid's interpolation is from training: on every raced task where the race's
    best differs from the pick (seed 0), train both with seed 0 through ``lrpilot.train``
    (kept in the run store) and return each one's measured and interpolated gap."""
    rows = []
    for o in outcomes:
        lrs = [o.lrs[c] for c in CHECKED]
        if o.seed != 0 or o.cost_steps <= o.range_steps or math.isclose(*lrs, rel_tol=1e-6):
            continue
        task = TASKS[o.task]
        grid = grid_curve(task, cache)
        oracle = best(task, grid)[1]
        for choice, lr in zip(CHECKED, lrs, strict=True):
            run = cache.get(task, lr, 0)
            if run is None:
                run = train_run(task, lr, 0).to_dict()
                cache.put(task, run)
            measured = task.gap_fraction(oracle, float(run["metric"]))
            rows.append(
                {
                    "task": o.task,
                    "choice": choice,
                    "lr": lr,
                    "measured": math.nan if measured is None else 100 * measured,
                    "interpolated": gap_pct(task, grid, lr),
                }
            )
            print(f"{o.task:26s} {choice:14s} lr={lr:.3g} {rows[-1]}", flush=True)
    return rows


def _grid_check_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        "**How well the grid estimates a choice**: where the race's best differs from the "
        "pick (seed 0), both trained for real with seed 0 (`--check-grid`), against the "
        "interpolated estimate used above.",
        "",
        "| task | choice | LR | trained: % of gap | grid estimate |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['choice']} | {r['lr']:.3g} | {r['measured']:.1f} | "
            f"{r['interpolated']:.1f} |"
        )
    errors = [abs(r["measured"] - r["interpolated"]) for r in rows]
    lines += ["", f"Median absolute difference {statistics.median(errors):.1f} points of the gap."]
    pairs = {}
    for r in rows:
        pairs.setdefault(r["task"], {})[r["choice"]] = r
    agree = sum(
        (p[CHECKED[0]]["measured"] < p[CHECKED[1]]["measured"])
        == (p[CHECKED[0]]["interpolated"] < p[CHECKED[1]]["interpolated"])
        for p in pairs.values()
        if len(p) == 2
    )
    lines.append(
        f"Trained and estimated agree on which of the two is better on {agree} of "
        f"{len(pairs)} tasks."
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4 long tasks, 1 seed")
    parser.add_argument("--tasks", help="comma-separated task names")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--report-only", action="store_true", help="re-score the saved outcomes")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace these tasks' outcomes in the saved ones, keep the rest",
    )
    parser.add_argument(
        "--check-grid",
        action="store_true",
        help="train the pick and the race's best where they differ, to check the grid estimate",
    )
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    everything = QUICK_TASKS if args.quick else tuple(TASKS)
    names = tuple(args.tasks.split(",")) if args.tasks else everything
    seeds = args.seeds or (1 if args.quick else 3)
    command = "python -m benchmarks.tune_regret" + (" --quick" if args.quick else "")
    cache = RunCache(cache_path(False))
    checked: list[dict[str, Any]] = []
    longest: list[dict[str, Any]] = []
    if args.report_only:
        saved = json.loads(OUT.read_text())
        outcomes = [Outcome(**o) for o in saved["outcomes"]]
        command = saved["command"]
        checked = saved.get("grid_check", [])
        longest = saved.get("longest", [])
    else:
        outcomes = run_all(names, seeds, args.workers)
        longest = [] if args.quick else longest_costs()
        if args.merge:
            saved = json.loads(OUT.read_text())
            command = saved["command"]
            kept = [Outcome(**o) for o in saved["outcomes"] if o["task"] not in names]
            outcomes = sorted(kept + outcomes, key=lambda o: (list(TASKS).index(o.task), o.seed))
    if args.check_grid:
        checked = check_grid(outcomes, cache)
    if not args.report_only or args.check_grid:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "command": command,
            "outcomes": [dataclasses.asdict(o) for o in outcomes],
            "grid_check": checked,
            "longest": longest,
        }
        OUT.write_text(json.dumps(data, indent=1))
    rows = score(outcomes, cache)
    body = markdown(rows, outcomes, command, longest)
    body += "\n".join(_grid_check_lines(checked)) + "\n"
    print(body)
    if not args.no_write:
        write_section("tune", body)


if __name__ == "__main__":
    main()
