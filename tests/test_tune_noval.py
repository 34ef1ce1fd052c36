"""``lrpilot tune`` on a task without validation data: the race ranks its candidates by their
training loss (it used to spend three whole runs, find no metric, and report that every race run
"diverged"), and the report's checks read what such a run has. Real small runs (scikit-learn's
digits, 120 steps: raced whole)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import lrpilot
from lrpilot.autopilot import BY_LOSS_NOTE, LOSS_TAIL, tune
from lrpilot.cli import app

STEPS = 120

TASK_FILE = """
import math

import torch
from sklearn.datasets import load_digits
from torch import nn

import lrpilot


class Loss:
    \"\"\"Cross-entropy, NaN from call ``nan_from`` on (``None``: never).\"\"\"

    def __init__(self, nan_from=None):
        self.calls, self.nan_from = 0, nan_from

    def __call__(self, out, y):
        self.calls += 1
        loss = nn.functional.cross_entropy(out, y)
        return loss * math.nan if self.nan_from and self.calls >= self.nan_from else loss


def task(nan_from=None):
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    train = torch.utils.data.TensorDataset(x[:1400], y[:1400])
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
        train_loader=torch.utils.data.DataLoader(train, batch_size=64, shuffle=True),
        loss_fn=Loss(nan_from),
        steps=STEPS,
        schedule="warmup(0.05)+cosine",
        name="digits without validation data",
    )
"""


@pytest.fixture
def task_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))  # no history: the same field
    torch.set_num_threads(1)
    path = tmp_path / "noval_task.py"
    path.write_text(TASK_FILE.replace("STEPS", str(STEPS)))
    return path


def _tail_loss(run: lrpilot.RunResult) -> float:
    """What the race scores a run by: the mean of its last :data:`LOSS_TAIL` of losses."""
    tail = run.losses[-max(1, int(len(run.losses) * LOSS_TAIL)) :]
    return sum(tail) / len(tail)


def test_a_task_without_validation_data_is_raced_on_its_training_loss(
    task_file: Path, tmp_path: Path
) -> None:
    task = lrpilot.load_task_file(task_file)
    assert task.val_loader is None
    result = tune(task, report=tmp_path / "r.html", progress=False)
    race = result.race
    assert race is not None and race["scored_by"] == "training loss"
    candidates = race["candidates"]
    assert len(candidates) >= 2 and race["rungs"] == [STEPS]  # raced whole
    assert race["note"].startswith(BY_LOSS_NOTE) and "diverged" not in race["note"]
    for c in candidates:
        assert c["metric"] is None and math.isfinite(c["train_loss"])
        assert c["loss_curve"][-1][0] == STEPS
        # the score is the run's own: a whole run at the candidate's LR, trained again
        again = lrpilot.train(task, c["lr"], seed=0, progress=False)
        assert not again.diverged and math.isnan(again.metric)
        assert c["train_loss"] == pytest.approx(_tail_loss(again), rel=1e-6)
    (winner,) = [c for c in candidates if c.get("winner")]
    assert winner["train_loss"] == min(c["train_loss"] for c in candidates)  # lower is better
    assert result.lr == winner["lr"] and winner.get("chosen")  # race="adopt"
    stages = {s["name"]: s["steps"] for s in result.stages}
    assert stages["race"] == STEPS * len(candidates)
    # the checks read what such a run has
    checks = {c["name"]: c for c in result.checks}
    assert (
        checks["finished"]["state"] == "pass"
        and "no validation data" in (checks["finished"]["message"])
    )
    assert checks["overfitting"]["state"] == "unknown"
    edge = checks["best LR inside what was tried"]
    assert edge["state"] in ("pass", "fail") and "cannot tell" not in edge["message"]
    low, high = min(c["lr"] for c in candidates), max(c["lr"] for c in candidates)
    assert f"{low:.3g}–{high:.3g}" in edge["message"]  # every raced LR counted
    page = (tmp_path / "r.html").read_text()
    section = re.search(r'<section id="race">.*?</section>', page, re.S)
    assert section is not None
    race_html = section.group(0)
    assert "<th>final training loss</th>" in race_html and "diverged" not in race_html
    assert "race: training loss per candidate (no validation data)" in race_html
    assert "<td>final metric</td><td>none (no validation data)</td>" in page
    assert '<span class="ok">✓ finished</span>' in page
    assert '<span class="unknown">– no overfitting</span>' in page
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))  # strict JSON, no NaN
    assert data["metric"] is None and data["run"]["metric"] is None


def test_check_mode_keeps_a_pick_that_trained(task_file: Path) -> None:
    """``race="check"`` only vetoes a pick that diverges: on the training loss, as with a
    metric."""
    task = lrpilot.load_task_file(task_file)
    result = tune(task, train=False, race="check", progress=False)
    race = result.race
    assert race["scored_by"] == "training loss" and "diverged" not in race["note"]
    (chosen,) = [c for c in race["candidates"] if c.get("chosen")]
    pick = result.range_test["lr"]
    closest = min(race["candidates"], key=lambda c: abs(math.log(c["lr"] / pick)))
    assert chosen is closest and result.lr == chosen["lr"]
    assert "which trained without diverging" in race["note"]


def test_the_race_says_diverged_only_when_its_runs_did(task_file: Path) -> None:
    """Every race run really diverges (the loss turns NaN once the range test is done): the
    note says so, the pick stands, and the edge check cannot tell (no LRs were compared)."""
    from importlib import util

    spec = util.spec_from_file_location("noval_task", task_file)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counting = module.task()
    tune(counting, train=False, race=False, progress=False)  # how many calls the range test makes
    poisoned = module.task(nan_from=counting.loss_fn.calls + 5)
    result = tune(poisoned, progress=False)
    assert result.race["note"] == "every race run diverged; the range test's pick stands."
    assert result.lr == result.range_test["lr"]
    checks = {c["name"]: c for c in result.checks}
    edge = checks["best LR inside what was tried"]
    assert edge["state"] == "unknown" and edge["ok"] is True
    assert edge["message"] == (
        "no race compared LRs (none run, or none of its runs finished): cannot tell."
    )


def test_the_command_prints_the_checks_states_and_no_metric(task_file: Path) -> None:
    out = CliRunner().invoke(app, ["tune", str(task_file), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["metric"] is None  # no validation data
    states = {c["name"]: c["state"] for c in data["checks"]}
    assert states["finished"] == "pass" and states["overfitting"] == "unknown"
    assert all(c["ok"] == (c["state"] != "fail") for c in data["checks"])
    out = CliRunner().invoke(app, ["tune", str(task_file), "--race", "off"])
    assert out.exit_code == 0, out.output
    assert "final metric none (no validation data)" in out.stdout
    assert "✓ finished: the run reached its end; no validation data" in out.stdout
    assert "– no overfitting: too few evaluations to tell." in out.stdout
    assert "– best LR inside what was tried" in out.stdout  # race off: nothing compared
