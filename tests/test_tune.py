"""``lrpilot.tune``: the budget, the race's candidates and rungs (closed form), and the whole
pipeline on a real small task (scikit-learn's digits), from Python and from the command line."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import lrpilot
from lrpilot.autopilot import (
    FULL_RACE_STEPS,
    MIN_RACE_STEPS,
    SPREAD_COUNTS,
    band_candidates,
    choosing_budget,
    race_candidates,
    race_rungs,
    tune,
)
from lrpilot.cli import app

TASK_FILE = """
import torch
from sklearn.datasets import load_digits
from torch import nn

import lrpilot


def task():
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    train = torch.utils.data.TensorDataset(x[:1400], y[:1400])
    val = torch.utils.data.TensorDataset(x[1400:], y[1400:])
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        train_loader=torch.utils.data.DataLoader(
            train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
        ),
        val_loader=torch.utils.data.DataLoader(val, batch_size=400),
        loss_fn=nn.functional.cross_entropy,
        steps=STEPS,
        schedule="warmup(0.05)+cosine",
        name="digits <mlp>",
    )
"""


def write_task(folder: Path, steps: int) -> Path:
    path = folder / "digits_task.py"
    path.write_text(TASK_FILE.replace("STEPS", str(steps)))
    return path


@pytest.mark.parametrize(
    ("steps", "share"), [(600, 0.25), (1999, 0.25), (2000, 0.15), (4999, 0.15), (5000, 0.10)]
)
def test_choosing_may_cost_less_of_a_longer_run(steps: int, share: float) -> None:
    assert choosing_budget(steps) == share


@pytest.mark.parametrize(
    ("pick", "band", "advised", "expected"),
    [
        (0.01, (0.006, 0.03), None, [0.006, 0.01, 0.02]),  # 0.005 clipped up to the band
        (0.01, (0.001, 0.1), None, [0.005, 0.01, 0.02]),
        (0.01, (0.001, 0.1), 0.05, [0.005, 0.01, 0.02, 0.05]),  # the advice, inside the band
        (0.01, (0.001, 0.1), 0.5, [0.005, 0.01, 0.02]),  # outside: not raced
        (0.01, (0.001, 0.1), 0.011, [0.005, 0.01, 0.02]),  # within 20 % of the pick: once
        (0.01, (0.0099, 0.0101), None, [0.0099]),  # a band too narrow to race in
    ],
)
def test_race_candidates_lie_in_the_band(
    pick: float, band: tuple[float, float], advised: float | None, expected: list[float]
) -> None:
    assert race_candidates(pick, band, advised) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("candidates", "budget", "rungs"),
    [
        (3, 700, [100, 200]),  # 3 x 100 + 2 x 200 = 700
        (4, 800, [100, 200]),  # 4 x 100 + 2 x 200
        (5, 1900, [100, 200, 400]),  # 5 x 100 + 3 x 200 + 2 x 400
        (3, 200, [66]),  # halving would run 28 steps: one rung of every candidate instead
        (3, 3 * MIN_RACE_STEPS - 1, []),  # not even that: no race
        (1, 10_000, []),
    ],
)
def test_successive_halving_rungs_fit_the_budget(
    candidates: int, budget: int, rungs: list[int]
) -> None:
    assert race_rungs(candidates, budget) == rungs
    sizes = [candidates]
    while sizes[-1] > 2:
        sizes.append(math.ceil(sizes[-1] / 2))
    spent = sum(n * r for n, r in zip(sizes, rungs, strict=False)) if len(rungs) > 1 else None
    assert spent is None or spent <= budget


def test_tune_races_within_the_budget_and_trains_the_winner(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    task = lrpilot.load_task_file(write_task(tmp_path, 1000))
    result = tune(task, report=tmp_path / "report.html", progress=False, command="lrpilot tune")
    stages = {s["name"]: s for s in result.stages}
    assert set(stages) == {"advice and lint", "range test", "race", "full run"}
    assert result.cost_steps == stages["range test"]["steps"] + stages["race"]["steps"]
    assert result.cost_steps <= choosing_budget(1000) * 1000
    race = result.race
    assert race is not None and len(race["candidates"]) >= 2
    lo, hi = result.range_test["band"]
    winners = [c for c in race["candidates"] if c.get("winner")]
    chosen = [c for c in race["candidates"] if c.get("chosen")]
    assert len(winners) == 1 and len(chosen) == 1 and chosen[0]["lr"] == result.lr
    # the default, race="adopt": the race's best goes to the full run
    assert lrpilot.autopilot.DEFAULT_RACE == "adopt"
    assert chosen == winners and chosen[0]["metric"] is not None
    for c in race["candidates"]:
        assert lo * 0.999 <= c["lr"] <= hi * 1.001
        # raced at the run-length correction for its rung: a short run takes a higher LR
        ratio = (c["steps"] / 1000) ** -lrpilot.autopilot.RACE_HORIZON_EXPONENT
        assert c["raced_at"] == pytest.approx(c["lr"] * ratio)
        assert c["evals"][-1][0] == c["steps"]  # the final metric of a finished short run
    assert stages["race"]["steps"] == sum(c["steps"] for c in race["candidates"])
    # the full run is the recipe at the choice, under the monitor
    assert result.run is not None and result.run["lr"] == result.lr
    assert result.run["steps"] == 1000 and math.isfinite(result.metric)
    assert {c["name"] for c in result.checks} >= {"finished", "overfitting", "clipped share"}
    assert result.schedule == "warmup(0.05)+cosine"
    assert len(result.schedule_lrs) == 1000 and max(result.schedule_lrs) == pytest.approx(
        result.lr
    )
    json.dumps(result.to_dict())  # plain data
    assert (tmp_path / "report.html").read_text().count("<section") == 9


def test_tune_without_training_or_race_keeps_the_range_tests_pick(tmp_path: Path) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 1000))
    result = tune(task, train=False, race=False, progress=False)
    assert result.run is None and result.metric is None and result.events == []
    assert result.lr == result.range_test["lr"]
    assert result.cost_steps == result.range_test["num_steps_run"]
    assert "no race (race off)" in result.race["note"]


@pytest.mark.parametrize("monitor", [False, "own"])
def test_tune_trains_under_no_monitor_or_the_one_given(tmp_path: Path, monitor) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 200))
    own = lrpilot.Monitor(
        quiet=True, snapshots="disk", snapshot_dir=tmp_path / "snaps", clip="zscore"
    )
    result = tune(task, race=False, progress=False, monitor=own if monitor else False)
    assert result.run is not None and result.run["steps_done"] == 200
    clipping = [e for e in result.events if "zscore rule" in e["message"]]
    (check,) = [c for c in result.checks if c["name"] == "clipped share"]
    if monitor:  # the monitor given watched the run: its clipping summary is in the events
        assert own.to_dict()["clip_steps"] == 200 and len(clipping) == 1
        assert not list((tmp_path / "snaps").iterdir())  # its snapshot file went with the run
        clipped = own.to_dict()["clipped"]  # the recipe does not clip: the monitor's share
        assert f"the monitor clipped {clipped / 200:.1%} of the steps" in check["message"]
    else:
        assert own.to_dict()["clip_steps"] == 0 and clipping == []
        assert check["message"] == "no clipping in the recipe."


def test_tune_refuses_a_monitor_that_is_not_one(tmp_path: Path) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 200))
    with pytest.raises(lrpilot.ConfigError, match="True, False or an lrpilot.Monitor"):
        tune(task, race=False, progress=False, monitor="yes")


def _race_runs(
    monkeypatch: pytest.MonkeyPatch,
    diverge_at: float | None,
    metric_of=lambda lr: -math.log(lr),
    diverged_after: int | None = None,
) -> None:
    """Make race runs whose metric is ``metric_of(lr)`` (default: it peaks at the lowest LR),
    and that diverge at ``diverge_at`` (after ``diverged_after`` steps; default: at the end)."""
    import lrpilot.autopilot as autopilot

    def fake_train(task, lr, *, steps=None, seed=0, progress=True, callbacks=()):
        steps = steps or task.steps
        diverged = diverge_at is not None and lr >= diverge_at
        metric = math.nan if diverged else metric_of(lr)
        done = diverged_after if diverged and diverged_after is not None else steps
        return lrpilot.RunResult(
            lr=lr,
            steps=steps,
            seed=seed,
            metric=metric,
            evals=[(done, metric)],
            diverged=diverged,
            steps_done=done,
        )

    monkeypatch.setattr(autopilot, "train", fake_train)


def test_the_command_lines_race_default_is_the_librarys() -> None:
    import inspect

    from lrpilot._cli_tune import tune_command

    option = inspect.signature(tune_command).parameters["race"].default
    assert option.default == lrpilot.autopilot.DEFAULT_RACE


@pytest.mark.parametrize(
    ("mode", "diverge", "expected"),
    [
        ("check", None, "pick"),  # the race prefers the lowest; the pick trained: it stands
        ("adopt", None, "lowest"),
        (True, None, "lowest"),  # race=True is the default mode: adopt
        ("check", 0.0, "pick"),  # everything diverged: the pick stands, with the reason
    ],
)
def test_the_race_decides_only_as_far_as_asked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str | bool,
    diverge: float | None,
    expected: str,
) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 1000))
    _race_runs(monkeypatch, diverge)
    result = tune(task, train=False, race=mode, progress=False)
    pick = result.range_test["lr"]
    if expected == "pick":
        assert result.lr == pytest.approx(pick)
    else:
        assert result.lr == min(c["lr"] for c in result.race["candidates"]) < pick
    if diverge == 0.0:
        assert "every race run diverged" in result.race["note"]


def test_a_pick_that_diverges_in_the_race_is_vetoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 1000))
    found = tune(task, train=False, race=False, progress=False).range_test
    scale = (50 / 1000) ** -lrpilot.autopilot.RACE_HORIZON_EXPONENT
    _race_runs(monkeypatch, diverge_at=found["lr"] * 0.99 * scale)  # the pick and above blow up
    result = tune(task, train=False, race="check", progress=False)
    assert result.race["rungs"] == [50]  # 1000 x 25 % - 100 swept, over 3 candidates
    assert result.lr < found["lr"] and "diverged in the race" in result.race["note"]
    with pytest.raises(lrpilot.ConfigError, match="race"):
        tune(task, race="sometimes")


def test_a_very_short_run_is_raced_whole(tmp_path: Path) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 300))  # 75 steps of budget, 100 swept
    result = tune(task, train=False, progress=False)
    race = result.race
    assert race["rungs"] == [300] and "whole run" in race["note"]
    field_ = [c for c in race["candidates"] if not c.get("below_field")]
    assert len(field_) * 300 <= FULL_RACE_STEPS  # and one more run below the field at most
    assert len(race["candidates"]) * 300 <= FULL_RACE_STEPS + 300
    for c in race["candidates"]:  # whole runs: raced at their own LR, no run-length correction
        assert c["steps"] == 300 and c["raced_at"] == c["lr"]
        assert c["evals"][-1][0] == 300
    (winner,) = [c for c in race["candidates"] if not c["cut"]]
    assert winner.get("winner")
    assert winner["metric"] == max(c["metric"] for c in race["candidates"])
    assert result.lr == winner["lr"]
    assert result.cost_steps == result.range_test["cost_steps"] + 300 * len(race["candidates"])
    assert result.cost_steps > choosing_budget(300) * 300  # outside the share budget, said so


def test_a_run_too_short_to_race_says_so(tmp_path: Path) -> None:
    # 100 steps of budget, all swept; three whole runs (1,200 steps) exceed FULL_RACE_STEPS
    task = lrpilot.load_task_file(write_task(tmp_path, 400))
    result = tune(task, train=False, progress=False)
    assert result.lr == result.range_test["lr"]
    assert result.race["candidates"] == [] and "no race" in result.race["note"]


def test_tune_refuses_a_bad_report_path_before_any_work(tmp_path: Path) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 300))
    with pytest.raises(lrpilot.ConfigError, match="ending in .html"):
        tune(task, report=tmp_path / "report.png")
    with pytest.raises(lrpilot.ConfigError, match="folder does not exist"):
        tune(task, report=tmp_path / "missing" / "report.html")


def test_the_command_prints_the_choice_as_json(tmp_path: Path) -> None:
    path = write_task(tmp_path, 300)
    report = tmp_path / "r.html"
    out = CliRunner().invoke(app, ["tune", str(path), "--json", "--report", str(report)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert {"lr", "schedule", "cost_steps", "metric", "events"} <= set(data)
    assert data["lr"] > 0 and data["cost_steps"] > 0 and math.isfinite(data["metric"])
    assert data["report"] == str(report) and report.exists()
    out = CliRunner().invoke(app, ["tune", str(path), "--no-train", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["metric"] is None


def test_the_command_keeps_snapshots_on_disk_or_trains_without_the_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    path = write_task(tmp_path, 200)
    args = ["tune", str(path), "--json", "--race", "off", "--snapshots", "disk"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "home" / "snapshots").is_dir()  # the monitor's disk snapshots went there
    assert not list((tmp_path / "home" / "snapshots").iterdir())  # the file went with the run
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "unwatched"))
    out = CliRunner().invoke(app, [*args, "--no-monitor"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["events"] == []
    assert not (tmp_path / "unwatched" / "snapshots").exists()  # no monitor, no snapshot
    out = CliRunner().invoke(app, [*args[:-2], "--snapshots", "ssd"])
    assert out.exit_code == 2 and "snapshots must be one of" in out.output


def test_the_command_fails_cleanly_on_a_missing_task_file(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["tune", str(tmp_path / "nope.py")])
    assert out.exit_code == 2 and "error:" in out.output


def test_a_range_test_too_noisy_to_read_leaves_the_choice_to_the_race() -> None:
    """Where the sweep's curve says nothing (its pick is the family's prior, a guess), the
    race is the only measurement: even race="check" takes its best; with a clear curve the pick
    stands there (the tests above)."""
    import dataclasses

    from lrpilot.finder import too_noisy
    from test_finder_sweep import _noisy_regression

    task = dataclasses.replace(_noisy_regression(), steps=1000)
    result = tune(task, train=False, race="check", progress=False)
    assert too_noisy(lrpilot.LRFinderResult.from_dict(result.range_test))
    (winner,) = [c for c in result.race["candidates"] if c.get("winner")]
    assert winner.get("chosen") and result.lr == winner["lr"]
    assert "too noisy to read" in result.race["note"]
    # a compressed race (1,000 steps) keeps its field around the guess, and says nothing else
    assert "spread over the band" not in result.race["note"]
    assert len(result.race["candidates"]) <= len(lrpilot.autopilot.RACE_FACTORS) + 1
    best = max(c["metric"] for c in result.race["candidates"] if c["metric"] is not None)
    assert winner["metric"] == best


@pytest.mark.parametrize(
    ("pick", "band", "count", "expected"),
    [  # the midpoints of `count` equal log-segments of the band, and the pick
        (1e-3, (1e-4, 1e0), 4, [10**-3.5, 1e-3, 10**-2.5, 10**-1.5, 10**-0.5]),
        (10**-3.5, (1e-4, 1e0), 4, [10**-3.5, 10**-2.5, 10**-1.5, 10**-0.5]),  # on a midpoint
        (1.1e-3, (1e-4, 1e-1), 3, [10**-3.5, 1.1e-3, 10**-2.5, 10**-1.5]),
        (10**-2.45, (1e-4, 1e-1), 3, [10**-3.5, 10**-2.5, 10**-1.5]),  # within 20 %: once
    ],
)
def test_band_candidates_spread_over_the_band_beside_the_pick(
    pick: float, band: tuple[float, float], count: int, expected: list[float]
) -> None:
    got = band_candidates(pick, band, count)
    assert got == pytest.approx(expected)
    assert band[0] < min(got) and max(got) < band[1]  # neither end of the band raced


def test_a_short_run_whose_curve_gave_no_pick_races_the_whole_band() -> None:
    """Where the sweep's pick is the family's prior (a guess), a run short enough to race
    whole spreads the field over the band rather than around the guess."""
    import dataclasses

    from lrpilot.finder import too_noisy
    from test_finder_sweep import _noisy_regression

    task = dataclasses.replace(_noisy_regression(), steps=150)
    result = tune(task, train=False, progress=False)
    found = lrpilot.LRFinderResult.from_dict(result.range_test)
    assert too_noisy(found)
    race = result.race
    lrs = [c["lr"] for c in race["candidates"]]
    assert lrs == pytest.approx(band_candidates(found.lr, found.band, SPREAD_COUNTS[0]))
    assert race["rungs"] == [150] and "spread over the band" in race["note"]
    assert max(lrs) / min(lrs) > 10  # beyond the clustered field's x1/2-x2
    assert result.lr == next(c["lr"] for c in race["candidates"] if c.get("winner"))


def test_a_race_run_that_diverged_counts_the_steps_it_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = lrpilot.load_task_file(write_task(tmp_path, 300))  # raced whole: 300 steps each
    found = tune(task, train=False, race=False, progress=False).range_test
    _race_runs(monkeypatch, diverge_at=found["lr"] * 1.5, diverged_after=7)
    result = tune(task, train=False, progress=False)
    (blown,) = [c for c in result.race["candidates"] if c["metric"] is None]
    assert blown["steps"] == 7  # the report's "steps trained": not the run's 300
    raced = sum(c["steps"] for c in result.race["candidates"])
    assert raced == 7 + 300 * (len(result.race["candidates"]) - 1)
    assert result.cost_steps == found["cost_steps"] + raced


def test_a_tie_keeps_the_lr_nearest_the_pick_and_says_nothing_of_the_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every candidate scores the same: the race keeps the one nearest the range test's pick
    (a stable sort kept the lowest), and the edge check says they tied instead of failing."""
    task = lrpilot.load_task_file(write_task(tmp_path, 300))
    _race_runs(monkeypatch, None, metric_of=lambda lr: 1.0)
    result = tune(task, progress=False)
    pick = result.range_test["lr"]
    nearest = min(result.race["candidates"], key=lambda c: abs(math.log(c["lr"] / pick)))
    assert result.lr == nearest["lr"] and nearest.get("winner")
    (edge,) = [c for c in result.checks if c["name"] == "best LR inside what was tried"]
    assert edge["state"] == "unknown" and "tied with" in edge["message"]


def test_the_edge_check_tells_a_tie_from_a_best_at_the_edge() -> None:
    from lrpilot.report._checks import check_edge

    assert not check_edge(0.01, [0.01, 0.02, 0.04]).ok  # the lowest won: look below it
    tied = check_edge(0.01, [0.01, 0.02, 0.04], tied=[0.02])
    assert tied.ok and not tied.known and "tied with 0.02" in tied.message
    assert check_edge(0.02, [0.01, 0.02, 0.04]).ok


def test_a_schedule_object_is_reported_as_the_schedule_not_its_class(tmp_path: Path) -> None:
    import dataclasses

    from lrpilot import schedules

    task = lrpilot.load_task_file(write_task(tmp_path, 300))
    task = dataclasses.replace(
        task, schedule=schedules.warmup(schedules.cosine(steps=270), steps=30)
    )
    result = tune(task, train=False, race=False, progress=False)
    assert result.schedule.startswith("Warmup(schedule=Cosine(steps=270")  # it was "Warmup"
    assert "steps=30" in result.schedule


def test_the_report_quotes_its_command_and_says_when_no_monitor_watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import html
    import shlex
    import sys

    folder = tmp_path / "my tasks"
    folder.mkdir()
    report = tmp_path / "r&1.html"
    argv = [
        "lrpilot",
        "tune",
        str(write_task(folder, 300)),
        "--no-monitor",
        "--report",
        str(report),
    ]
    monkeypatch.setattr(sys, "argv", argv)  # the command the report shows is the one typed
    out = CliRunner().invoke(app, argv[1:])
    assert out.exit_code == 0, out.output
    page = report.read_text()
    shown = re.search(r'<section id="reproduce">.*?<pre>(.*?)</pre>', page, re.S)
    assert shown is not None and shlex.split(html.unescape(shown.group(1))) == argv
    assert "no monitor watched this run (--no-monitor)" in page
    assert "the monitor did not need to act" not in page
    # the digits task has no metric_fn: its metric is minus the validation loss, and says so
    assert re.search(r"final metric -[0-9.]+ \(minus the mean validation loss\)", out.stdout)
    assert "(minus the mean validation loss)</td>" in page


@pytest.mark.parametrize("recording", ["1", "0"])
def test_ctrl_c_says_what_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recording: str
) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lrpilot.autopilot, "tune", interrupted)  # the command imports it late
    monkeypatch.setenv("LRPILOT_HISTORY", recording)
    out = CliRunner().invoke(app, ["tune", str(write_task(tmp_path, 300))])
    assert out.exit_code == 130
    assert "interrupted: tune was stopped; no report was written" in out.stderr
    assert ("in the history" in out.stderr) is (recording == "1")  # it said "nothing written"


def _sweep(edge: bool):
    """A range test's result: a loss falling over the whole sweep, or rising at its end."""
    from types import SimpleNamespace

    lrs = [1e-4 * 10 ** (5 * i / 99) for i in range(100)]
    losses = [2.0 - 1.5 * i / 99 for i in range(100)]
    if edge:
        losses[80:] = [losses[79] + 0.2 * (i - 79) for i in range(80, 100)]
    return SimpleNamespace(lrs=lrs, losses=losses, diverged=False, lr=1.0, band=(0.79, 3.16))


@pytest.mark.parametrize("edge", [False, True])
def test_a_sweep_that_never_saw_its_edge_races_the_advice_too(tmp_path: Path, edge: bool) -> None:
    """Without an edge the pick rests on the sweep's last LR standing in for it (clipping can
    hide the edge): the advisor's start joins the race even below the band, so the race can
    tell whether the high pick is real."""
    task = lrpilot.load_task_file(write_task(tmp_path, 200))
    lrs, rungs, whole, _ = lrpilot.autopilot._field(task, _sweep(edge), 0.01, 0, guessed=False)
    assert (0.01 in lrs) is (not edge) and whole and rungs == [200]
    assert min(lrs) >= 0.79 or not edge  # with an edge the field stays in the band


def _scripted(best_lr: float):
    """A race run scoring an LR by a metric peaked at ``best_lr`` (in log), 100 steps each."""

    def race(candidate: dict) -> int:
        candidate.update(metric=-abs(math.log10(candidate["lr"] / best_lr)), steps=100)
        return 100

    return race


@pytest.mark.parametrize(
    ("best_lr", "room", "winner", "below"),
    [
        (0.004, 1000, 0.005, [0.005, 0.0025]),  # one step down wins, the next loses
        (0.001, 1000, 0.0025, [0.005, 0.0025]),  # both win: at most FOLLOW_DOWN
        (0.001, 150, 0.005, [0.005]),  # room for one run only
        (0.021, 1000, 0.02, []),  # the best inside the field: nothing more
        (0.08, 1000, 0.04, []),  # the highest won: the race does not follow it up
    ],
)
def test_a_race_whose_lowest_wins_looks_below_its_field(
    best_lr: float, room: int, winner: float, below: list[float]
) -> None:
    race = _scripted(best_lr)
    field_ = [{"lr": lr, "cut": "", "evals": [], "metric": None} for lr in (0.01, 0.02, 0.04)]
    for c in field_:
        race(c)
    best = max(field_, key=lambda c: c["metric"])
    for c in field_:
        c["cut"] = "" if c is best else "cut after 100 steps (rung 1)"
    chosen, spent = lrpilot.autopilot._follow_down(field_, best, race, length=100, room=room)
    assert chosen["lr"] == pytest.approx(winner)
    assert [c["lr"] for c in field_ if c.get("below_field")] == pytest.approx(below)
    assert spent == 100 * len(below)
    assert [c for c in field_ if not c["cut"]] == [chosen]  # every other one says why it lost
