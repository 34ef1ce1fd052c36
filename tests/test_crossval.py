"""The cross-validation that chooses the default rule's constants: a held-out family never
informs its own constants, and the band's fit has its closed form."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
from benchmarks import crossval
from benchmarks.tasks import TASKS

from lrpilot import suggest
from lrpilot._facts import RunFacts

LRS = np.logspace(-7, 1, 100)
X = np.log10(LRS)


def _curve(inflection: float) -> crossval.Curve:
    """A sigmoid fall at ``inflection`` (decades) and a cliff two decades above it."""
    loss = 2.0 - 1.5 / (1 + np.exp(-(X - inflection) / 0.3))
    loss += np.where(X > inflection + 2, 5 * (X - inflection - 2) ** 2, 0.0)
    return crossval.Curve.of(LRS, loss)


def _case(name: str, inflection: float, best: float, steps: int) -> crossval.Case:
    """A task whose grid metric peaks (at 0.9, accuracy) at log10 LR ``best``."""
    task = TASKS[name]
    grid = [(x, 0.9 - 0.2 * (x - best) ** 2) for x in np.arange(-5.0, 0.01, 1 / 3)]
    facts = RunFacts(steps=steps, schedule_mean=1.0, family="adam", prior_lr=1e-3)
    case = crossval.Case(task, [_curve(inflection)] * 5, facts, grid, 0.9, (0.0, 0.0))
    case.near_best = crossval._near_best(case)
    return case


CASES = [
    _case("mnist1d_conv-long:adam", -3.0, -2.5, 2000),
    _case("mnist1d_conv:adam", -3.0, -2.0, 200),
    _case("fmnist_resnet:adam", -2.5, -1.8, 300),
    _case("fortunes_gru-long:adam", -3.2, -2.9, 2000),
    _case("wordnet_gpt-long:adam", -3.1, -2.6, 2000),
]


@pytest.fixture(autouse=True)
def small_space(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        crossval,
        "SPACE",
        {
            "reference_steps": (100, 500),
            "horizon_exponent": (0.25, 0.75),
            "schedule_exponent": (0.0,),
            "adam_factor": (1.0, 0.3, 0.1),
            "onset_margin": (0.0,),
            "anchor": ("floor",),
        },
    )


def test_a_held_out_family_never_informs_its_own_constants() -> None:
    before = crossval.crossvalidate(CASES)
    moved = copy.deepcopy(CASES)
    for case in moved:  # move the oracle of one family far away
        if case.task.family.name == "mnist1d_conv":
            case.grid = [(x, 0.9 - 0.2 * (x + 4.5) ** 2) for x, _ in case.grid]
            case.near_best = crossval._near_best(case)
    after = crossval.crossvalidate(moved)
    assert after["folds"]["mnist1d_conv"] == before["folds"]["mnist1d_conv"]
    # ... while its held-out score, and the in-sample fit that sees it, do move
    assert (
        after["tasks"]["mnist1d_conv-long:adam"]["held_out_gap"]
        != before["tasks"]["mnist1d_conv-long:adam"]["held_out_gap"]
    )


def test_in_sample_constants_are_the_best_over_every_task() -> None:
    result = crossval.crossvalidate(CASES)
    options = crossval.candidates()
    values = crossval.objective(crossval.score_matrix(CASES, options), CASES, range(len(CASES)))
    chosen = suggest.PilotConstants(**result["in_sample"]["constants"])
    assert values[options.index(chosen)] == pytest.approx(values.min())


def test_the_objective_weighs_counted_double_caps_gaps_and_charges_excess_over_default() -> None:
    gaps = np.array([[0.1, 3.0, 0.2, 0.0, 0.0]])  # counted: long ones, fmnist (no long one)
    calm = crossval.Scores(gaps, np.full_like(gaps, 2.0))  # spreads within the target
    assert [c.task.counted for c in CASES[:3]] == [True, False, True]
    default = [min(c.gap(c.task.default_lr), 1.0) for c in CASES[:3]]
    capped = [0.1, 1.0, 0.2]
    excess = [max(g - d - 0.01, 0.0) for g, d in zip(capped, default, strict=True)]
    assert excess[1] > 0  # the capped 1.0 is far worse than the default
    total = [g + e for g, e in zip(capped, excess, strict=True)]
    value = crossval.objective(calm, CASES, [0, 1, 2])
    assert value[0] == pytest.approx((2 * total[0] + 1 * total[1] + 2 * total[2]) / 5)


def test_the_objective_charges_each_doubling_of_the_seed_spread_beyond_the_target() -> None:
    gaps = np.zeros((1, 5))
    spreads = np.array([[8.0, 1.0, 3.0, 1.0, 1.0]])  # 2 and log2(1.5) doublings beyond 2x
    value = crossval.objective(crossval.Scores(gaps, spreads), CASES, [0, 1, 2])
    # zero gaps: nothing but the spread is charged (no task is worse than its default)
    expected = crossval.SPREAD_WEIGHT * (2 * 2.0 + 0 + 2 * math.log2(1.5)) / 5
    assert value[0] == pytest.approx(expected)


def test_band_fit_is_the_narrowest_that_reaches_the_required_share() -> None:
    # 20 tasks, one seed each, whose near-best LR lies k/10 decades above the pick
    cases = [SimpleNamespace(near_best=(k / 10, k / 10)) for k in range(20)]
    low, high = crossval.fit_band(cases, [[1.0]] * 20)  # type: ignore[arg-type]
    assert low == 1.0
    assert math.log10(high) == pytest.approx(1.6)  # reaches k = 0..16: 17 of 20 = 85 %
    assert crossval.band_covers(cases[16], [1.0], (low, high)) == 1.0  # type: ignore[arg-type]
    assert crossval.band_covers(cases[17], [1.0], (low, high)) == 0.0  # type: ignore[arg-type]


def test_ablation_of_every_piece_matches_the_held_out_scores_and_a_fixed_piece_is_fixed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = crossval.crossvalidate(CASES)
    counted = [r["held_out_gap"] for r in result["tasks"].values() if r["counted"]]
    free = result["ablations"]["every piece"]
    assert free["median_gap_pct"] == pytest.approx(100 * float(np.median(counted)))
    assert free["max_gap_pct"] == pytest.approx(100 * max(counted))
    # with the Adam factor held at 1, every fold's choice has it at 1: the same held-out
    # scores as a search space that only ever offered 1
    options = crossval.candidates()
    scores = crossval.score_matrix(CASES, options)
    rows = [i for i, o in enumerate(options) if o.adam_factor == 1.0]
    held = crossval.held_out(CASES, scores, rows).gaps[0].tolist()
    monkeypatch.setitem(crossval.SPACE, "adam_factor", (1.0,))
    only_one = crossval.crossvalidate(CASES)
    assert held == pytest.approx([only_one["tasks"][c.task.name]["held_out_gap"] for c in CASES])
    assert "no run-length correction" not in result["ablations"]  # 0 is not in the space here


def test_the_replayed_pick_reads_the_floor_of_the_candidates_floor_fraction() -> None:
    """``picks`` replays :func:`suggest.pilot` exactly, the valley floor included: a curve whose
    floor depends on its fraction (a wide, sloping valley) gets the live rule's pick at each."""
    loss = 2.0 - 1.5 / (1 + np.exp(-(X + 3.0) / 0.6)) + 0.1 * np.maximum(X + 3.0, 0.0)
    loss += np.where(X > -0.5, 5 * (X + 0.5) ** 2, 0.0)
    case = crossval.Case(
        TASKS["mnist1d_conv:adam"],
        [crossval.Curve.of(LRS, loss)],
        RunFacts(steps=200, schedule_mean=1.0, family="adam", prior_lr=None),
        [(-3.0, 0.9)],
        0.9,
        (0.0, 0.0),
    )
    replayed = []
    for fraction in (0.03, 0.3):
        constants = suggest.PilotConstants(floor_fraction=fraction, prior_weight=0.0)
        live = suggest.pilot(LRS, loss, steps=200, family="adam", constants=constants)
        (pick,) = crossval.picks(case, constants)
        assert pick == pytest.approx(live, rel=1e-9)
        replayed.append(pick)
    assert replayed[0] != pytest.approx(replayed[1], rel=0.05)  # the fraction mattered


def test_an_extension_earns_its_place_only_by_a_clear_held_out_gain() -> None:
    without = {"objective": 0.100, "median_gap_pct": 1.0, "max_gap_pct": 30.0}
    clear = {"objective": 0.097, "median_gap_pct": 1.0, "max_gap_pct": 30.0}
    assert crossval.earns_its_place(clear, without)  # 3 % lower, nothing worse
    slight = {**clear, "objective": 0.099}
    assert not crossval.earns_its_place(slight, without)  # 1 %: within a refit's wobble
    assert not crossval.earns_its_place({**clear, "median_gap_pct": 1.1}, without)
    assert not crossval.earns_its_place({**clear, "max_gap_pct": 31.0}, without)
