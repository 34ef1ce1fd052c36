"""The demo: its task trains for real, and ``lrpilot demo`` runs ``tune`` and leaves the report,
a plot and JSON results."""

from __future__ import annotations

import json
import math

import torch
from torch import nn
from typer.testing import CliRunner

import lrpilot
from conftest import batches_of, make_classification, mlp
from lrpilot.cli import app
from lrpilot.demo import train_and_score


def _tiny_task(steps: int) -> lrpilot.Task:
    x, y = make_classification(n=128)
    batches = batches_of(x, y, 16)
    return lrpilot.Task(
        model_fn=lambda: mlp(seed=0),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr),
        train_loader=batches,
        val_loader=batches,
        loss_fn=nn.functional.cross_entropy,
        steps=steps,
        schedule=lrpilot.schedules.cosine(steps=steps),
    )


def test_train_and_score_trains_the_recipe():
    untrained = _tiny_task(1).metric(mlp(seed=0))  # minus the mean loss before any step
    trained = train_and_score(_tiny_task(200), lr=0.5)
    assert trained > untrained + 0.2
    assert math.isnan(train_and_score(_tiny_task(50), lr=1e6))  # diverges: NaN, no crash


def test_train_and_score_runs_a_loss_step_only_task():
    x, y = make_classification(n=128)
    batches = [{"x": a, "y": b} for a, b in batches_of(x, y, 16)]
    task = lrpilot.Task(
        model_fn=lambda: mlp(seed=0),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr),
        train_loader=batches,
        val_loader=batches,
        loss_step=lambda model, batch: nn.functional.cross_entropy(model(batch["x"]), batch["y"]),
        steps=100,
    )
    assert train_and_score(task, lr=0.5) > task.metric(mlp(seed=0)) + 0.2


def test_demo_writes_plot_and_json(tmp_path, monkeypatch):
    # each call from an empty history: the advice (and with it the race's field) learns from
    # the runs recorded before, so a second call on the same history may race other candidates
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--no-train"])
    assert result.exit_code == 0, result.output
    assert (out / "range_test.png").stat().st_size > 0
    saved = json.loads((out / "range_test.json").read_text())
    assert saved["lr"] > 0 and saved["steps"] == 1500
    tuned = json.loads((out / "tune.json").read_text())
    assert tuned["range_test"]["lr"] == saved["lr"] and tuned["run"] is None
    assert f"lr {tuned['lr']:.3g}" in result.output
    assert (out / "report.html").read_text().count("<section") == 9
    assert f"report: {out / 'report.html'}" in result.output.replace("\n", "")
    assert result.output.count("report: ") == 1  # once, last, not again in the summary
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == len(set(warned))  # each warning once
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home-again"))
    again = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "again"), "--no-train"])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / "tune.json").read_text())["lr"] == tuned["lr"]


def test_demo_refuses_an_empty_out_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Path("") is the current folder: never written unasked
    result = CliRunner().invoke(app, ["demo", "--no-train", "--out", ""])
    assert result.exit_code == 2 and "error: --out is empty" in result.output
    assert list(tmp_path.iterdir()) == []


def test_demo_trains_and_saves_both_runs(tmp_path, monkeypatch):
    monkeypatch.setattr("lrpilot.demo.DEMO_STEPS", 60)  # the printed length only
    import lrpilot.demo

    real = lrpilot.demo.mnist1d_task

    def short(seed: int = 0) -> lrpilot.Task:
        task = real(seed)
        task.steps = 60
        return task

    monkeypatch.setattr(lrpilot.demo, "mnist1d_task", short)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ours = lrpilot.RunResult.load(out / "run_suggested.json")
    default = lrpilot.RunResult.load(out / "run_default.json")
    assert ours.steps == default.steps == 60 and default.lr == 1e-3
    assert f"{ours.metric:.1%}" in result.output
    assert result.output.count("report: ") == 1
