"""The recommender benchmark's scoring pieces on synthetic grids with closed-form answers:
three one-task families whose metric peaks at a known grid LR, a real SQLite history of the
others' runs and range tests, and a TPE simulation that starts where it is told."""

from __future__ import annotations

import dataclasses
import math

import pytest
from benchmarks import recommender as rec
from benchmarks.tasks import TASKS, log_grid

GRID = log_grid(-4, 0)  # 1e-4 .. 1, three per decade
BEST = {"syna": GRID[3], "synb": GRID[6], "sync": GRID[9]}  # 1e-3, 1e-2, 1e-1
PARAMS = {"syna": 10_000, "synb": 100_000, "sync": 1_000_000}


def _metric(family: str, lr: float, higher: bool) -> float:
    """A parabola in log LR peaking at the family's best LR (a loss when not ``higher``)."""
    miss = (math.log10(lr) - math.log10(BEST[family])) ** 2 / 10
    return 0.9 - miss if higher else 0.1 + miss


def _task(family: str, higher: bool) -> rec.TaskData:
    base = TASKS["diamonds_mlp:adamw"]
    fam = dataclasses.replace(
        base.family, name=family, higher_is_better=higher, trivial=1.0 - higher
    )
    task = dataclasses.replace(base, name=f"{family}:adamw", family=fam, length="only", grid=GRID)
    grid = [(math.log10(lr), _metric(family, lr, higher)) for lr in GRID]
    runs = [
        {"lr": lr, "seed": s, "metric": _metric(family, lr, higher) + 0.001 * s, "diverged": False}
        for lr in GRID
        for s in (0, 1)
    ]
    lrs = [10 ** (-6 + 6 * i / 59) for i in range(60)]
    losses = [
        1.0 + 0.01 * i - 0.5 * math.exp(-((math.log10(x) + 2) ** 2)) for i, x in enumerate(lrs)
    ]
    curve = {"lrs": lrs, "losses": losses, "lr": BEST[family] / 2, "extra": {"band": None}}
    fingerprint = {
        "id": family,
        "model": "M",
        "optimizer": "AdamW",
        "parameters": PARAMS[family],
        "steps": 100,
    }
    return rec.TaskData(task, grid, fingerprint, curve, runs)


@pytest.fixture
def tasks() -> list[rec.TaskData]:
    return [_task("syna", True), _task("synb", False), _task("sync", True)]


def test_the_held_out_family_is_predicted_from_the_others_in_closed_form(tasks, tmp_path):
    folds = rec.held_out(tasks, tmp_path, rules_of=lambda d: 1e-3)
    assert [f.family for f in folds] == ["syna", "synb", "sync"]
    pick = folds[2].picks[0]
    assert pick.task.name == "sync:adamw" and pick.oracle_lr == pytest.approx(BEST["sync"])
    # k=5 >= 2 neighbours, 1 and 2 decades away: weights 1/1.1^2 and 1/2.1^2, geometric mean of
    # their best LRs (synb's is its metric's minimum: the loss was oriented)
    w_b, w_a = 1 / 1.1**2, 1 / 2.1**2
    log_lr = (w_b * math.log10(BEST["synb"]) + w_a * math.log10(BEST["syna"])) / (w_a + w_b)
    assert pick.lrs["history (zero-shot), before"] == pytest.approx(10**log_lr, rel=1e-9)
    # relative mode, anchor "lr": every neighbour's best is 2x its range test's pick
    assert pick.lrs["history (zero-shot)"] == pytest.approx(10**log_lr, rel=1e-9)
    assert pick.lrs["history + range test"] == pytest.approx(BEST["sync"], rel=1e-9)
    assert pick.ratio("history + range test") == pytest.approx(1.0)
    assert pick.gaps["history + range test"] == pytest.approx(0.0, abs=1e-9)
    assert pick.lrs["range test"] == BEST["sync"] / 2
    assert pick.lrs["geo-mean"] == pytest.approx(math.sqrt(BEST["sync"] / 2 * 10**log_lr))
    # the gap: % of the oracle-trivial gap, on the parabola
    expected = 100 * (math.log10(pick.lrs["rules"]) + 1) ** 2 / 10 / (0.9 - 0.0)
    assert pick.gaps["rules"] == pytest.approx(expected, rel=1e-9)


def test_fill_writes_one_run_per_grid_lr_and_seed_and_one_range_test(tasks, tmp_path):
    from lrpilot.history import History, _past_tasks

    store = History(f"sqlite:///{tmp_path / 'h.sqlite'}")
    assert rec.fill(store, tasks[:2]) == 2 * (2 * len(GRID) + 1)
    past = {p.task_id: p for p in _past_tasks(store.records())}
    assert past["syna"].lr == pytest.approx(BEST["syna"]) and past["synb"].lr == pytest.approx(
        BEST["synb"]
    )
    assert past["synb"].test_lr == pytest.approx(BEST["synb"] / 2)


def test_fit_score_counts_picks_within_2x_and_a_missing_answer_as_a_miss(tasks):
    pairs = [(BEST["syna"] * 1.9, tasks[0]), (BEST["synb"] / 3, tasks[1]), (None, tasks[2])]
    share, minus_median = rec.fit_score(pairs)
    assert share == pytest.approx(1 / 3)
    assert minus_median == pytest.approx(-math.log10(3))


def test_the_simulated_search_starts_at_the_start_and_counts_trials_to_the_target():
    lrs = rec.simulate(
        lambda lr: -abs(math.log10(lr) + 2), (1e-4, 1.0), seed=3, start=0.02, trials=6
    )
    assert len(lrs) == 6 and lrs[0] == 0.02 and all(1e-4 <= x <= 1.0 for x in lrs)
    assert rec.simulate(lambda lr: 0.0, (1e-4, 1.0), 3, trials=6) == rec.simulate(
        lambda lr: 0.0, (1e-4, 1.0), 3, trials=6
    )  # seeded: reproducible
    assert rec.running_best([5.0, 7.0, 2.0, 3.0]) == [5.0, 5.0, 2.0, 2.0]
    assert rec.trials_to(2.5, [5.0, 7.0, 2.0]) == 3 and rec.trials_to(1.0, [5.0, 2.0]) is None


def test_the_search_space_is_a_decade_either_side_widened_to_the_band():
    assert rec.search_space({"lr": 0.01, "extra": {"band": [0.005, 0.02]}}) == (0.001, 0.1)
    assert rec.search_space({"lr": 0.01, "extra": {"band": [0.0004, 0.5]}}) == (0.0004, 0.5)
