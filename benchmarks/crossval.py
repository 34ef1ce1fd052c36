"""Choose the default rule's constants by leave-one-family-out cross-validation, and report the
held-out figure beside the in-sample one.

    python -m benchmarks.crossval              # fit, print, write RESULTS.md's section
    python -m benchmarks.crossval --no-write   # fit and print only

Data: lrpilot's saved sweeps (``benchmarks/out/curves/``, 5 seeds a task) and the oracle grids
(``store/runs.json``) that ``python -m benchmarks.suggestion`` made. Every candidate set of
:class:`lrpilot.suggest.PilotConstants` (the product of :data:`SPACE`) is replayed on every
task's curves with the run facts lrpilot's finder would pass (steps, the schedule's mean
multiplier, the optimizer family, the family's prior LR); the metric at a pick is the grid's
mean metric interpolated in log-LR (``benchmarks.replay``).

The protocol: for each family F, the constants that do best on the tasks of every *other*
family score F's tasks (held out); the in-sample figure scores every task with the constants
that do best on all of them. "Best" is the mean over tasks of the regret as a fraction of the
oracle-trivial gap (capped at 1), the counted tasks (long versions) weighing double, what
exceeds the plain default's gap by more than 1 % of the gap counting twice, and each doubling
of a task's seed spread beyond the target's 2x costing :data:`SPREAD_WEIGHT`. The band's
factors are fitted the same way: the narrowest ``(low, high)`` around the pick that holds
:data:`BAND_COVERAGE` of the training tasks' near-best LRs (within 1% of the gap of the oracle).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.cache import RunCache, cache_path
from benchmarks.data import OUT
from benchmarks.replay import grid_curve, interpolate
from benchmarks.results_md import write_section
from benchmarks.suggestion import CURVES, PICK_SEEDS, SPREAD_SEEDS
from benchmarks.tasks import TASKS, BenchTask
from lrpilot import suggest
from lrpilot._facts import RunFacts, run_facts

SPACE: dict[str, tuple] = {
    "reference_steps": (100, 250, 500),
    "horizon_exponent": (0.0, 0.25, 0.5, 0.75, 1.0),
    "schedule_exponent": (0.0, 0.5, 1.0, 1.5),
    "adam_factor": (1.0, 0.5, 0.3, 0.2, 0.1),
    "onset_margin": (1.0, 0.0),
    "anchor": ("floor", "minimum"),
    "floor_fraction": (0.03, 0.1, 0.3),
    "prior_weight": (0.0, 0.15, 0.3),
    "evidence_half_weight_z": (12.0, 20.0, 30.0),
}
"""The candidate values of each constant; every combination is tried. The floor fractions stop
at 0.3, the first past the edge's level (a quarter of the drop climbed back): beyond it the
floor's top is the edge and only its low side still grows (tried in :data:`EXTENSIONS`)."""

EXTENSIONS: dict[str, dict[str, tuple]] = {
    "a separate run-length exponent for the Adam family": {
        "adam_horizon_exponent": (0.0, 0.25, 0.5, 0.75, 1.0),
    },
    "a separate run-length exponent for a decaying schedule (warmup + cosine)": {
        "decay_horizon_exponent": (0.0, 0.25, 0.5, 0.75, 1.0),
    },
    "a floor reaching further up the valley's low side (floor fraction 0.5, 0.7)": {
        "floor_fraction": (0.03, 0.1, 0.3, 0.5, 0.7),
    },
}
"""Constants tried and not in :data:`SPACE`: each widens the space and is fitted by the same
protocol; it belongs in the rule only if, held out, it does better than without it
(:func:`earns_its_place`)."""

EXTENSION_GAIN = 0.02
"""How much lower (relative) an extension's held-out objective must be for it to enter the
rule, with neither the counted tasks' median nor their max worse: a new constant must buy more
than the differences a refit shows when one family joins the scoreboard (under 1 %)."""


def earns_its_place(extension: dict, without: dict) -> bool:
    """Whether an extension (:func:`extend`'s entry) beats the rule without it (the ablation
    table's "every piece" entry) by :data:`EXTENSION_GAIN`, held out, at no cost to the
    counted tasks' median or max."""
    return (
        extension["objective"] <= (1 - EXTENSION_GAIN) * without["objective"]
        and extension["median_gap_pct"] <= without["median_gap_pct"] + 1e-9
        and extension["max_gap_pct"] <= without["max_gap_pct"] + 1e-9
    )


BAND_COVERAGE = 0.85
"""The share of training tasks whose near-best LRs the fitted band must reach."""
NEAR_BEST_GAP = 0.01
"""LRs whose grid metric is within this fraction of the oracle-trivial gap are near-best."""
COUNTED_WEIGHT = 2.0
"""How much more a counted task (a long version, or a family with one length) weighs."""
SAFETY_WEIGHT = 1.0
"""The extra weight of the part of a task's gap beyond the plain default's gap + 1 %."""
SPREAD_TARGET = 2.0
"""The seed spread (largest / smallest pick over the seeds) the suggestion's target allows."""
SPREAD_WEIGHT = 0.03
"""What each doubling of a task's seed spread beyond :data:`SPREAD_TARGET` costs, in gap
fractions: a pick that moves 4x between seeds weighs like 3 % more of the gap. Held out the
result is the same for 0.01 to 0.1; without the term (0) the fit ignores the spread target."""


@dataclass(frozen=True)
class Scores:
    """What each candidate set of constants (row ``i``) does on each task (column ``j``):
    ``gaps[i, j]``, the task's gap fraction at the picks of the first 3 seeds, and
    ``spreads[i, j]``, the largest over the smallest pick over every seed."""

    gaps: np.ndarray
    spreads: np.ndarray

    def take(self, rows: Sequence[int]) -> Scores:
        """The rows ``rows`` only."""
        return Scores(self.gaps[list(rows)], self.spreads[list(rows)])


@dataclass
class Curve:
    """One saved sweep, read down to what the rule's constants act on: its smoothed losses,
    whose landmarks are read once for each floor fraction the candidates ask for."""

    x: np.ndarray  # log10 LR
    smooth: np.ndarray
    stderr: float
    _marks: dict[float, suggest.Landmarks] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, lrs: Sequence[float], losses: Sequence[float]) -> Curve:
        x, y = suggest._as_curve(lrs, losses)
        return cls(x, *suggest._fit(x, y))

    def marks(self, floor_fraction: float = suggest.FLOOR_MIN_FRACTION) -> suggest.Landmarks:
        """The curve's landmarks with the floor reaching ``floor_fraction`` of the drop."""
        if floor_fraction not in self._marks:
            self._marks[floor_fraction] = suggest._landmarks_xy(
                self.x, self.smooth, self.stderr, floor_fraction=floor_fraction
            )
        return self._marks[floor_fraction]

    @property
    def log_last_lr(self) -> float:
        return float(self.x[-1])

    @functools.cached_property
    def edge_step(self) -> float:
        """The LR growth per step before the edge (which no floor fraction moves)."""
        return suggest._edge_step(self.x, self.marks().edge)


@dataclass
class Case:
    """One task: its curves, what the finder knows about its run, and its oracle grid."""

    task: BenchTask
    curves: list[Curve]
    facts: RunFacts
    grid: list[tuple[float, float]]  # (log10 LR, mean metric)
    oracle: float
    near_best: tuple[float, float]  # log10 LR interval

    def gap(self, lr: float) -> float:
        """Regret at ``lr`` as a fraction of the oracle-trivial gap (0 at the oracle)."""
        value = interpolate(self.grid, lr)
        fraction = self.task.gap_fraction(self.oracle, value)
        return 0.0 if fraction is None else fraction


def load_cases(names: Iterable[str]) -> list[Case]:
    """Every task of ``names`` with its 5 saved lrpilot sweeps and a complete oracle grid."""
    cache = RunCache(cache_path(quick=False))
    cases = []
    for name in names:
        task = TASKS[name]
        files = [CURVES / f"{task.name}__lrpilot__seed{s}.json" for s in SPREAD_SEEDS]
        grid = grid_curve(task, cache)
        if len(grid) < len(task.grid) or not all(f.exists() for f in files):
            continue
        curves = [_curve(json.loads(f.read_text())) for f in files]
        best = grid[task.best_index([m for _, m in grid])]
        case = Case(task, curves, _facts(task), grid, best[1], (0.0, 0.0))
        case.near_best = _near_best(case)
        cases.append(case)
    return cases


def _curve(saved: dict) -> Curve:
    return Curve.of(saved["lrs"], saved["losses"])


def _facts(task: BenchTask) -> RunFacts:
    """What ``find_lr_for_task`` tells the rule about this task's run."""
    probe = task.optimizer_fn([torch.zeros(1, requires_grad=True)], 1.0)
    schedule = task.lrpilot_task().schedule_for(task.steps)
    return run_facts(probe, task.steps, schedule, task.grad_clip)


def _near_best(case: Case) -> tuple[float, float]:
    """The log10-LR interval where the grid's interpolated metric is near-best."""
    xs = np.linspace(case.grid[0][0], case.grid[-1][0], 401)
    near = [x for x in xs if case.gap(10**x) <= NEAR_BEST_GAP]
    return (min(near), max(near)) if near else (case.grid[0][0], case.grid[0][0])


def picks(case: Case, constants: suggest.PilotConstants) -> list[float]:
    """The rule's pick on each of the case's curves under ``constants``."""
    f = case.facts
    return [
        suggest.pilot_from_landmarks(
            c.marks(constants.floor_fraction),
            c.log_last_lr,
            c.edge_step,
            steps=f.steps,
            prior_lr=f.prior_lr,
            schedule_mean=f.schedule_mean,
            family=f.family,
            constants=constants,
        )
        for c in case.curves
    ]


def task_gap(case: Case, lrs: Sequence[float]) -> float:
    """The gap fraction of the mean metric at the picks of the first 3 seeds (as trained)."""
    metric = statistics.fmean(interpolate(case.grid, lr) for lr in lrs[: len(PICK_SEEDS)])
    fraction = case.task.gap_fraction(case.oracle, metric)
    return 0.0 if fraction is None else fraction


def candidates(space: dict[str, tuple] | None = None) -> list[suggest.PilotConstants]:
    """Every combination of ``space`` (:data:`SPACE` by default)."""
    space = SPACE if space is None else space
    keys = list(space)
    return [
        suggest.PilotConstants(**dict(zip(keys, values, strict=True)))
        for values in itertools.product(*(space[k] for k in keys))
    ]


def score_matrix(cases: list[Case], options: list[suggest.PilotConstants]) -> Scores:
    """Every candidate's :class:`Scores` on every task."""
    gaps = np.zeros((len(options), len(cases)))
    spreads = np.ones_like(gaps)
    for i, option in enumerate(options):
        for j, case in enumerate(cases):
            lrs = picks(case, option)
            gaps[i, j] = task_gap(case, lrs)
            spreads[i, j] = max(lrs) / min(lrs)
    return Scores(gaps, spreads)


def objective(scores: Scores, cases: list[Case], keep: Sequence[int]) -> np.ndarray:
    """Weighted mean over the tasks ``keep``, for every row of ``scores``, of the capped gap,
    plus :data:`SAFETY_WEIGHT` times how far it exceeds the plain default's gap beyond the 1 %
    allowed (the target: never worse than the default), plus :data:`SPREAD_WEIGHT` per
    doubling of the seed spread beyond :data:`SPREAD_TARGET` (the target: a pick that does
    not move with the seed)."""
    keep = list(keep)
    w = np.array([COUNTED_WEIGHT if cases[j].task.counted else 1.0 for j in keep])
    capped = np.minimum(scores.gaps[:, keep], 1.0)
    default = np.array([min(cases[j].gap(cases[j].task.default_lr), 1.0) for j in keep])
    excess = np.maximum(capped - default - NEAR_BEST_GAP, 0.0)
    doublings = np.maximum(np.log2(scores.spreads[:, keep] / SPREAD_TARGET), 0.0)
    per_task = capped + SAFETY_WEIGHT * excess + SPREAD_WEIGHT * doublings
    return (per_task * w).sum(1) / w.sum()


def fit_band(cases: list[Case], lrs: list[list[float]]) -> tuple[float, float]:
    """The narrowest ``(low, high)`` factors such that, on :data:`BAND_COVERAGE` of the
    (task, seed) pairs, ``[pick * low, pick * high]`` reaches the task's near-best interval."""
    below, above = [], []
    for case, seeds in zip(cases, lrs, strict=True):
        lo, hi = case.near_best
        for lr in seeds:
            x = math.log10(lr)
            below.append(max(0.0, x - hi))  # how far down the band must reach
            above.append(max(0.0, lo - x))  # how far up
    below_a, above_a = np.array(below), np.array(above)
    best = (math.inf, 0.0, 0.0)
    steps = np.arange(0.0, 2.01, 0.05)
    for down in steps:
        for up in steps:
            covered = np.mean((below_a <= down + 1e-9) & (above_a <= up + 1e-9))
            if covered >= BAND_COVERAGE and down + up < best[0]:
                best = (down + up, down, up)
    return float(10 ** -best[1]), float(10 ** best[2])


def band_covers(case: Case, lrs: Sequence[float], band: tuple[float, float]) -> float:
    """The share of the case's seeds whose band reaches its near-best interval."""
    lo, hi = case.near_best
    hits = [
        math.log10(lr * band[0]) <= hi + 1e-9 and math.log10(lr * band[1]) >= lo - 1e-9
        for lr in lrs
    ]
    return float(np.mean(hits))


ABLATIONS: dict[str, Callable[[suggest.PilotConstants], bool]] = {
    "no run-length correction": lambda c: c.horizon_exponent == 0.0,
    "no schedule correction": lambda c: c.schedule_exponent == 0.0,
    "no optimizer-family factor": lambda c: c.adam_factor == 1.0,
    "no floor at the onset": lambda c: c.onset_margin == 0.0,
    "no least prior weight": lambda c: c.prior_weight == 0.0,
    "a narrow floor (3 % of the drop)": lambda c: c.floor_fraction == 0.03,
}
"""Each piece of evidence the rule uses, switched off: only the constants that hold it at its
neutral value are tried, while the others are still fitted, to measure what the piece buys
held out."""


def fold_choice(cases: list[Case], scores: Scores, rows: Sequence[int], family: str) -> int:
    """The row of ``scores``, among ``rows``, that does best on every family but ``family``."""
    train = [j for j, c in enumerate(cases) if c.task.family.name != family]
    return rows[int(np.argmin(objective(scores.take(rows), cases, train)))]


def held_out(cases: list[Case], scores: Scores, rows: Sequence[int]) -> Scores:
    """Each task's scores (one row) under the constants that do best, among ``rows``, on the
    other families' tasks."""
    out = Scores(np.zeros((1, len(cases))), np.ones((1, len(cases))))
    for family in {c.task.family.name for c in cases}:
        best = fold_choice(cases, scores, rows, family)
        for j, c in enumerate(cases):
            if c.task.family.name == family:
                out.gaps[0, j] = scores.gaps[best, j]
                out.spreads[0, j] = scores.spreads[best, j]
    return out


def ablate(cases: list[Case], options: list[suggest.PilotConstants], scores: Scores) -> dict:
    """Held-out median / max gap (%) of the counted tasks, and the weighted objective, with
    every constant free and with each of :data:`ABLATIONS`."""
    counted = [j for j, c in enumerate(cases) if c.task.counted]
    variants: dict[str, Callable[[suggest.PilotConstants], bool]] = {
        "every piece": lambda c: True,
        **ABLATIONS,
    }
    out = {}
    for name, allowed in variants.items():
        rows = [i for i, o in enumerate(options) if allowed(o)]
        if not rows:
            continue
        held = held_out(cases, scores, rows)
        score = objective(held, cases, range(len(cases)))[0]
        gaps = held.gaps[0]
        out[name] = {
            "median_gap_pct": float(100 * np.median(gaps[counted])) if counted else None,
            "max_gap_pct": float(100 * gaps[counted].max()) if counted else None,
            "objective": float(score),
        }
    return out


def extend(cases: list[Case]) -> dict:
    """For each of :data:`EXTENSIONS`: the held-out median / max gap (%) of the counted tasks
    and the objective with the space widened by it, and the values it takes in sample."""
    counted = [j for j, c in enumerate(cases) if c.task.counted]
    out = {}
    for name, extra in EXTENSIONS.items():
        options = candidates({**SPACE, **extra})
        scores = score_matrix(cases, options)
        held = held_out(cases, scores, range(len(options)))
        best = options[int(np.argmin(objective(scores, cases, range(len(cases)))))]
        gaps = held.gaps[0]
        out[name] = {
            "median_gap_pct": float(100 * np.median(gaps[counted])) if counted else None,
            "max_gap_pct": float(100 * gaps[counted].max()) if counted else None,
            "objective": float(objective(held, cases, range(len(cases)))[0]),
            "in_sample": {k: getattr(best, k) for k in extra},
        }
    return out


def crossvalidate(cases: list[Case]) -> dict:
    """Held-out and in-sample scores of every task, the constants each fold chose."""
    options = candidates()
    scores = score_matrix(cases, options)
    everyone = list(range(len(cases)))
    in_sample = int(np.argmin(objective(scores, cases, everyone)))
    in_lrs = [picks(c, options[in_sample]) for c in cases]
    in_band = fit_band(cases, in_lrs)
    rows: dict[str, dict] = {}
    folds = {}
    for family in sorted({c.task.family.name for c in cases}):
        train = [j for j, c in enumerate(cases) if c.task.family.name != family]
        held = [j for j, c in enumerate(cases) if c.task.family.name == family]
        chosen = options[fold_choice(cases, scores, range(len(options)), family)]
        band = fit_band([cases[j] for j in train], [picks(cases[j], chosen) for j in train])
        folds[family] = {"constants": dataclasses.asdict(chosen), "band": band}
        for j in held:
            case = cases[j]
            held_lrs = picks(case, chosen)
            rows[case.task.name] = {
                "family": family,
                "counted": case.task.counted,
                "oracle_lr": 10 ** _oracle_x(case),
                "near_best": [10 ** case.near_best[0], 10 ** case.near_best[1]],
                "held_out_picks": held_lrs,
                "held_out_gap": task_gap(case, held_lrs),
                "held_out_spread": max(held_lrs) / min(held_lrs),
                "in_sample_spread": float(scores.spreads[in_sample, j]),
                "held_out_band_cover": band_covers(case, held_lrs, band),
                "in_sample_picks": in_lrs[j],
                "in_sample_gap": float(scores.gaps[in_sample, j]),
                "in_sample_band_cover": band_covers(case, in_lrs[j], in_band),
                "default_lr": case.task.default_lr,
                "default_gap": case.gap(case.task.default_lr),
            }
    return {
        "in_sample": {"constants": dataclasses.asdict(options[in_sample]), "band": in_band},
        "folds": folds,
        "tasks": rows,
        "candidates": len(options),
        "ablations": ablate(cases, options, scores),
        "extensions": extend(cases),
    }


def _oracle_x(case: Case) -> float:
    return case.grid[case.task.best_index([m for _, m in case.grid])][0]


def summary(result: dict) -> dict:
    """Median and max gap (%), band coverage and safety, held out and in sample."""
    rows = list(result["tasks"].values())
    counted = [r for r in rows if r["counted"]]
    out = {}
    for kind in ("held_out", "in_sample"):
        gaps = [100 * r[f"{kind}_gap"] for r in counted]
        worse = [
            r for r in rows if r[f"{kind}_gap"] > r["default_gap"] + 0.01
        ]  # >1 % of the gap worse than the plain default
        out[kind] = {
            "median_gap_pct": statistics.median(gaps) if gaps else None,
            "max_gap_pct": max(gaps) if gaps else None,
            "band_cover": statistics.fmean(r[f"{kind}_band_cover"] for r in rows),
            "worse_than_default": [r_name(result, r) for r in worse],
        }
    for kind in ("held_out", "in_sample"):
        out[kind]["max_spread"] = max(r[f"{kind}_spread"] for r in rows)
    return out


def r_name(result: dict, row: dict) -> str:
    return next(name for name, r in result["tasks"].items() if r is row)


def print_report(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Leave-one-family-out: % of the oracle-trivial gap (est.)")
    for col in ("task", "oracle LR", "held-out picks", "held out", "in sample", "default"):
        table.add_column(col, justify="right")
    for name, r in result["tasks"].items():
        table.add_row(
            name + ("*" if r["counted"] else ""),
            f"{r['oracle_lr']:.3g}",
            ", ".join(f"{p:.2g}" for p in r["held_out_picks"][:3]),
            f"{100 * r['held_out_gap']:.1f}",
            f"{100 * r['in_sample_gap']:.1f}",
            f"{100 * r['default_gap']:.1f}",
        )
    console.print(table)
    s = summary(result)
    console.print(s)
    console.print("in-sample constants:", result["in_sample"])
    for family, fold in result["folds"].items():
        console.print(family, fold)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _constants_row(label: str, c: dict, band: Sequence[float]) -> str:
    return (
        f"| {label} | {c['reference_steps']} | {c['horizon_exponent']:g} | "
        f"{c['schedule_exponent']:g} | {c['adam_factor']:g} | {c['onset_margin']:g} | "
        f"{c['anchor']} | {c['floor_fraction']:g} | {c['evidence_half_weight_z']:g} | "
        f"{c['prior_weight']:g} | "
        f"×{band[0]:.2f} – ×{band[1]:.2f} |"
    )


def markdown(result: dict, s: dict) -> str:
    """RESULTS.md's cross-validation section."""
    held, ins = s["held_out"], s["in_sample"]
    n = len(result["tasks"])
    families = len(result["folds"])
    lines = [
        "## Held out: the default rule's constants by leave-one-family-out cross-validation",
        "",
        "`python -m benchmarks.crossval` (about 7 minutes on one core: it replays saved "
        "sweeps, trains nothing). "
        f"{result['candidates']:,} sets of `PilotConstants` (every combination of "
        "`benchmarks.crossval.SPACE`) are replayed on lrpilot's saved sweeps of "
        f"{n} tasks from {families} families (5 seeds a task), with the facts the finder "
        "passes (steps, the schedule's mean multiplier, the optimizer family, its prior). "
        "For each family, the constants that do best on the *other* families score it "
        "(**held out**); **in sample** scores every task with the constants that do best on "
        "all of them, which are the shipped defaults. Best = the lowest mean regret as a "
        "fraction of the oracle-trivial gap (capped at 1; counted tasks weigh double; what "
        "exceeds the plain default's gap by more than 1 % of the gap counts twice; each "
        "doubling of a task's seed spread beyond 2× costs "
        f"{100 * SPREAD_WEIGHT:g} % of the gap). The "
        "metric at a pick is the oracle grid's mean interpolated in log-LR (an estimate; the "
        "trained figures with the shipped constants are in the section above). The band's "
        f"factors are fitted the same way, to reach the near-best LRs (within "
        f"{100 * NEAR_BEST_GAP:g} % of the gap of the oracle) of {100 * BAND_COVERAGE:g} % of "
        "the training tasks' sweeps.",
        "",
        "| | in sample | held out |",
        "| --- | ---: | ---: |",
        f"| median % of the gap, counted tasks | {_pct(ins['median_gap_pct'])} | "
        f"{_pct(held['median_gap_pct'])} |",
        f"| max % of the gap, counted tasks | {_pct(ins['max_gap_pct'])} | "
        f"{_pct(held['max_gap_pct'])} |",
        f"| band reaches the near-best LRs (share of task × seed) | "
        f"{100 * ins['band_cover']:.0f} % | {100 * held['band_cover']:.0f} % |",
        f"| tasks > 1 % of the gap worse than the plain default | "
        f"{len(ins['worse_than_default'])} | {len(held['worse_than_default'])} |",
        f"| max seed spread (5 seeds) | {ins['max_spread']:.2f}× | {held['max_spread']:.2f}× |",
        "",
        "Worse than the plain default (1e-3 Adam-family, 0.01 SGD) by more than 1 % of the "
        f"gap, held out: {', '.join(held['worse_than_default']) or 'none'}.",
        "",
        "| constants | reference steps | horizon exponent | schedule exponent | Adam factor | "
        "onset margin | anchor | floor fraction | evidence half-weight z | prior weight | band |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |",
        _constants_row(
            "**shipped (in sample)**",
            result["in_sample"]["constants"],
            result["in_sample"]["band"],
        ),
    ]
    for family, fold in result["folds"].items():
        lines.append(_constants_row(f"without {family}", fold["constants"], fold["band"]))
    lines += [
        "",
        "What each piece of evidence buys, held out (the piece switched off, every other "
        "constant still fitted by the same leave-one-family-out protocol), and what each "
        "constant tried beyond the rule would (it enters only if it lowers the held-out "
        f"objective by {100 * EXTENSION_GAIN:g} % or more with neither the counted median nor "
        "max worse):",
        "",
        "| rule | median % of the gap, counted | max % | objective (weighted mean) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, a in result.get("ablations", {}).items():
        lines.append(
            f"| {name} | {_pct(a['median_gap_pct'])} | {_pct(a['max_gap_pct'])} | "
            f"{a['objective']:.4f} |"
        )
    every = result.get("ablations", {}).get("every piece")
    for name, a in result.get("extensions", {}).items():
        took = ", ".join(f"{k} = {v:g}" for k, v in a["in_sample"].items())
        verdict = (
            "earns a place, and is not in the rule yet"
            if every is not None and earns_its_place(a, every)
            else "tried, not in the rule"
        )
        lines.append(
            f"| {verdict}: {name} (in sample: {took}) | "
            f"{_pct(a['median_gap_pct'])} | {_pct(a['max_gap_pct'])} | {a['objective']:.4f} |"
        )
    lines += [
        "",
        "| task | oracle LR | near-best LRs | held-out picks (seeds 0-2) | held out % | "
        "in sample % | default % | band reaches |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in result["tasks"].items():
        lo, hi = r["near_best"]
        picks_text = ", ".join(f"{p:.2g}" for p in r["held_out_picks"][:3])
        lines.append(
            f"| {name}{'*' if r['counted'] else ''} | {r['oracle_lr']:.3g} | {lo:.2g} – "
            f"{hi:.2g} | {picks_text} | {100 * r['held_out_gap']:.1f} | "
            f"{100 * r['in_sample_gap']:.1f} | {100 * r['default_gap']:.1f} | "
            f"{100 * r['held_out_band_cover']:.0f} % |"
        )
    lines += ["", "\\* counted (long versions, and families without one)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crossval", description=__doc__)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    cases = load_cases(args.tasks.split(","))
    result = crossvalidate(cases)
    print_report(result)
    (OUT / "crossval.json").write_text(json.dumps(result, indent=1))
    if not args.no_write:
        write_section("crossval", markdown(result, summary(result)))


if __name__ == "__main__":
    main()
