"""The pruner replay benchmark: curves interpolated in log-LR, real Optuna studies driven by
stored curves, steps counted as a search counts them, and the paired comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from benchmarks import prune_replay as pr
from benchmarks.tasks import TASKS

from lrpilot._search import _pruning


def _curve(lr: float, final: float | None, steps: int = 100, slope: float = 0.0) -> pr.Curve:
    """A curve that reports ``final - slope * (1 - k / steps)`` at each tenth of the run."""
    values = {
        k: (final if final is not None else -5.0) - slope * (1 - k / steps)
        for k in range(10, steps, 10)
    }
    return pr.Curve(lr, values, final, steps)


def _landscape() -> list[pr.Curve]:
    """Finals peak at LR 1e-2 (a parabola in log-LR); LRs above 1 diverge at step 30."""
    lrs = [10.0**e for e in range(-5, 2)]
    curves = []
    for lr in lrs:
        if lr > 1.0:
            curves.append(pr.Curve(lr, {10: -3.0, 20: -4.0}, None, 30))
        else:
            curves.append(_curve(lr, -((math.log10(lr) + 2) ** 2)))
    return curves


def test_a_curve_between_two_grid_lrs_is_their_log_linear_mix() -> None:
    low, high = _curve(1e-3, -1.0, slope=1.0), _curve(1e-2, -3.0, slope=1.0)
    mid = pr.curve_at([low, high], 10**-2.5)
    assert mid.final == pytest.approx(-2.0)
    assert mid.values[50] == pytest.approx(0.5 * (low.values[50] + high.values[50]))
    quarter = pr.curve_at([low, high], 10**-2.75)
    assert quarter.final == pytest.approx(-1.5)
    assert pr.curve_at([low, high], 1e-4) is low and pr.curve_at([low, high], 1.0) is high


def test_next_to_a_diverged_grid_lr_the_nearer_curve_is_taken_whole() -> None:
    fine, gone = _curve(1e-2, -1.0), pr.Curve(1e-1, {10: -9.0}, None, 12)
    assert pr.curve_at([fine, gone], 10**-1.2) is gone
    assert pr.curve_at([fine, gone], 10**-1.8) is fine


def test_an_unpruned_grid_search_finds_the_best_grid_lr_and_trains_every_step() -> None:
    curves = _landscape()
    lr, steps = pr.replay_search(curves, 100, "grid", "none", len(curves), seed=0)
    assert lr == pytest.approx(1e-2)
    assert steps == 6 * 100 + 30  # six full runs and one that diverged at step 30


def test_a_diverged_trial_counts_the_steps_it_ran_and_is_never_the_pick() -> None:
    gone = pr.Curve(10.0, {10: 9.0, 20: 9.0}, None, 25)  # looks best, then diverges
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    assert pr._run_trial(trial, gone, 1) == 25
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {10: 9.0, 20: 9.0}
    curves = [_curve(1e-3, -1.0), gone]
    lr, steps = pr.replay_search(curves, 100, "grid", "none", 2, seed=0)
    assert lr == pytest.approx(1e-3) and steps == 125


def test_pruning_stops_trials_early_and_saves_steps_against_the_same_search_unpruned() -> None:
    curves = _landscape()
    plain = pr.replay_search(curves, 100, "bayes", "none", 12, seed=3)
    for prune in ("fair", "median", "fair weighted"):
        lr, steps = pr.replay_search(curves, 100, "bayes", prune, 12, seed=3)
        assert steps < plain[1]
        assert lr is not None and 1e-3 <= lr <= 1e-1


def test_reporting_every_second_checkpoint_halves_the_reports() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    assert pr._run_trial(trial, _curve(1e-2, -1.0), 2) is None
    reported = trial.storage.get_trial(trial._trial_id).intermediate_values
    assert sorted(reported) == [20, 40, 60, 80]


def test_the_variants_are_the_fair_pruner_with_their_settings() -> None:
    weighted = pr.make_pruner("fair weighted", startup=3)
    assert isinstance(weighted, _pruning.ScheduleFairPruner)
    assert weighted._prediction == "weighted" and weighted._n_startup_trials == 3
    assert pr.make_pruner("fair")._prediction == "bracket"  # type: ignore[attr-defined]
    assert pr.make_pruner("fair 1/2")._percentile == 50.0  # type: ignore[attr-defined]
    assert isinstance(pr.make_pruner("halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(pr.make_pruner("percentile"), optuna.pruners.PercentilePruner)


def _row(task: str, seed: int, prune: str, gap: float, steps: int = 100) -> pr.Replayed:
    return pr.Replayed(task, "bayes", prune, 8, seed, 1e-2, gap, steps)


def test_the_paired_comparison_is_per_task_then_across_tasks() -> None:
    rows = [
        _row("a", 0, "fair", 0.10),
        _row("a", 0, "median", 0.20),
        _row("a", 1, "fair", 0.10),
        _row("a", 1, "median", 0.10),
        _row("b", 0, "fair", 0.30),
        _row("b", 0, "median", 0.00),
    ]
    mean, low, high, share = pr.paired(rows, "fair", "median", 8)
    assert mean == pytest.approx(0.5 * (-5.0 + 30.0))  # task a: -5 points, task b: +30
    assert low <= mean <= high
    assert share == pytest.approx(2 / 3)


def test_steps_are_a_share_of_unpruned_tpe_on_the_same_task_seed_and_count() -> None:
    rows = [_row("a", 0, "none", 0.0, 1000), _row("a", 0, "fair", 0.1, 400)]
    rows += [_row("a", 1, "none", 0.0, 500), _row("a", 1, "fair", 0.3, 400)]
    table = pr.summarize(rows)
    mean, median, ratio = table[("bayes", "fair", 8)]
    assert mean == pytest.approx(20.0) and median == pytest.approx(20.0)
    assert ratio == pytest.approx(0.5 * (0.4 + 0.8))


def test_the_default_search_is_paired_with_random_search_at_twice_its_trials() -> None:
    def row(task: str, seed: int, method: str, prune: str, trials: int, gap: float, steps: int):
        return pr.Replayed(task, method, prune, trials, seed, 1e-3, gap, steps)

    rows = [
        row("a", 0, pr.START_OWN, "fair", 8, 0.10, 300),
        row("a", 0, "random", "none", 16, 0.20, 1600),
        row("a", 0, "bayes", "none", 8, 0.00, 800),
        row("a", 0, pr.START_OWN, "none", 8, 0.90, 900),  # another pruner: not the default
        row("b", 0, pr.START_OWN, "fair", 8, 0.30, 600),
        row("b", 0, "random", "none", 16, 0.00, 1600),
        row("b", 0, "bayes", "none", 8, 0.00, 1000),
    ]
    (line,) = [x for x in pr.default_against_random(rows) if x.startswith("- N=8 ")]
    assert "+10.00 [" in line  # task a: -10 points, task b: +30: their mean
    assert "(mean over 2 tasks)" in line and "at least as good in 50% of searches" in line
    assert "0.49× [" in line  # 300/800 and 600/1000: their mean over tasks


def test_the_choice_is_the_best_pick_for_no_more_steps_than_the_median_pruner() -> None:
    table = {
        ("bayes", "median", 8): (2.0, 2.0, 0.5),
        ("bayes", "fair", 8): (1.0, 1.0, 0.6),  # better, but trains more: not eligible
        ("bayes", "fair 1/2", 8): (1.5, 1.5, 0.4),
        ("bayes", "fair weighted", 8): (3.0, 3.0, 0.2),
    }
    assert pr._choose(table, 8) == "fair 1/2"
    table[("bayes", "median", 8)] = (2.0, 2.0, 0.1)  # none as cheap: the fewest steps
    assert pr._choose(table, 8) == "fair weighted"


def test_held_out_scores_each_family_with_the_choice_made_without_it() -> None:
    rows = []
    for task, cheap_gap in (("diamonds_mlp:sgd", 0.01), ("movielens_mf:sgd", 0.05)):
        for seed in range(2):
            rows.append(pr.Replayed(task, "bayes", "none", 8, seed, 1e-2, 0.0, 1000))
            rows.append(pr.Replayed(task, "bayes", "median", 8, seed, 1e-2, 0.03, 600))
            rows.append(pr.Replayed(task, "bayes", "fair", 8, seed, 1e-2, cheap_gap, 500))
            rows.append(pr.Replayed(task, "bayes", "fair 1/2", 8, seed, 1e-2, 0.02, 550))
    lines = pr.held_out_lines(rows, ["diamonds_mlp:sgd", "movielens_mf:sgd"])
    # without diamonds, fair (5 %) loses to fair 1/2 (2 %): diamonds is scored with fair 1/2
    # (2 %); without movielens, fair (1 %) wins: movielens is scored with fair (5 %)
    (line,) = [x for x in lines if x.startswith("- N=")]  # no rows at 16 trials: no line
    assert line.startswith("- N=8: 3.50 % of gap") and "`fair 1/2` ×1" in line
    assert "MedianPruner 3.00 %" in line and "on 1 of 2 families" in line


def test_every_stored_curve_is_keyed_by_the_task_and_the_trial_reporter() -> None:
    version = pr.trial_version()
    assert version.startswith("trial-") and version.endswith(f"-c{pr._runner.CHECKPOINTS}")
    assert all(name in TASKS for name in pr.DEFAULT_TASKS)
    assert not any(name.startswith(pr.SLOW) for name in pr.DEFAULT_TASKS)


def test_the_range_tests_pick_is_tried_first_and_its_sweep_is_counted() -> None:
    curves = _landscape()
    lr, steps = pr.replay_search(curves, 100, "bayes", "none", 1, seed=0, start=10**-2.2)
    assert lr == pytest.approx(10**-2.2) and steps == 100
    lr, steps = pr.replay_search(curves, 100, "bayes", "none", 1, seed=0, start=1e3)
    assert lr is None and steps == 30  # tried at the range's edge (10), where it diverges


def test_the_searchs_own_space_is_a_decade_either_side_widened_to_the_band() -> None:
    pick = pr.RangePick(1e-2, (3e-3, 0.2), 120)
    assert pick.space(1e-5, 10.0) == (1e-3, 0.2)  # the band reaches past 10x above
    assert pick.space(5e-3, 0.05) == (5e-3, 0.05)  # kept within the grid
    assert pr.RangePick(3.3333e-2, (0.02, 0.05), 9).space(1e-5, 10.0) == (0.00333, 0.333)


def test_range_tests_are_read_from_the_saved_sweeps_of_every_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "diamonds_mlp:sgd"
    for seed in range(5):
        sweep = {"lr": 0.01 * (seed + 1), "extra": {"band": [0.005, 0.05], "cost_steps": 90}}
        (tmp_path / f"{name}__lrpilot__seed{seed}.json").write_text(json.dumps(sweep))
    (tmp_path / "mnist1d_conv:sgd__lrpilot__seed0.json").write_text("{}")  # seeds missing
    monkeypatch.setattr(pr, "CURVES", tmp_path)
    pr.range_test_picks.cache_clear()
    try:
        picks = pr.range_test_picks()
    finally:
        pr.range_test_picks.cache_clear()
    assert list(picks) == [name]
    assert [p.lr for p in picks[name]] == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05])
    assert picks[name][0] == pr.RangePick(0.01, (0.005, 0.05), 90)
