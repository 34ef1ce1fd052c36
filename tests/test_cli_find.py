"""``lrpilot find TASK.py``: through typer's test runner, and once through the real script."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrpilot.cli import app

TASK_FILE = """
import torch
from sklearn.datasets import load_digits
from torch import nn

import lrpilot


def task():
    digits = load_digits()
    x = torch.tensor(digits.data[:256], dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target[:256])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True
    )
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        optimizer_fn=lambda params, lr: torch.optim.Adam(params, lr=lr),
        train_loader=loader,
        loss_fn=nn.functional.cross_entropy,
        steps=200,
    )
"""


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "digits_task.py"
    path.write_text(TASK_FILE)
    return path


def _check_payload(stdout: str, num_steps: int = 30) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {stdout!r}"
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    assert {"lr", "lrs", "losses", "candidates"} <= payload.keys()
    assert math.isfinite(payload["lr"]) and payload["lr"] > 0
    assert 8 <= len(payload["lrs"]) == len(payload["losses"]) <= num_steps
    assert payload["lr"] == payload["candidates"][payload["rule"]]
    return payload


def test_find_json(task_file):
    result = CliRunner().invoke(app, ["find", str(task_file), "--json", "--num-steps", "30"])
    assert result.exit_code == 0, result.output
    payload = _check_payload(result.stdout)
    assert payload["steps"] == 200 and payload["rule"] == "pilot"
    assert payload["effective_batch_size"] == 32


def test_find_options_reach_the_sweep(task_file):
    args = [
        "find",
        str(task_file),
        "--json",
        "--num-steps",
        "20",
        "--start-lr",
        "1e-5",
        "--end-lr",
        "1e-1",
        "--steps",
        "5000",
        "--rule",
        "valley",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = _check_payload(result.stdout, num_steps=20)
    assert payload["lrs"][0] == pytest.approx(1e-5)
    assert payload["steps"] == 5000 and payload["rule"] == "valley"


def test_find_plot_writes_the_file(task_file, tmp_path):
    plot = tmp_path / "out" / "range.png"
    plot.parent.mkdir()
    result = CliRunner().invoke(
        app, ["find", str(task_file), "--json", "--num-steps", "30", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    _check_payload(result.stdout)
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_find_human_output(task_file):
    result = CliRunner().invoke(app, ["find", str(task_file), "--num-steps", "30"])
    assert result.exit_code == 0, result.output
    assert "suggested lr" in result.stdout and "200-step run" in result.stdout


def test_missing_task_file(tmp_path):
    result = CliRunner().invoke(app, ["find", str(tmp_path / "nope.py"), "--json"])
    assert result.exit_code == 2
    assert "Task file not found" in result.stderr and "nope.py" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "source,message",
    [
        ("x = 1\n", "must define a function task()"),
        ("def task():\n    return 42\n", "returned int, not lrpilot.Task"),
    ],
)
def test_task_file_without_task(tmp_path, source, message):
    path = tmp_path / "not_a_task.py"
    path.write_text(source)
    result = CliRunner().invoke(app, ["find", str(path), "--json"])
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


def test_bad_option_exits_2_with_a_message(task_file):
    result = CliRunner().invoke(
        app, ["find", str(task_file), "--json", "--start-lr", "1", "--end-lr", "0.1"]
    )
    assert result.exit_code == 2
    assert "start_lr must be below end_lr" in result.stderr


def test_console_script(task_file, tmp_path):
    script = Path(sys.executable).with_name("lrpilot")
    assert script.exists(), "the lrpilot console script is not installed in this environment"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(
        [str(script), "find", str(task_file), "--json", "--num-steps", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    _check_payload(done.stdout, num_steps=20)
    assert list(cwd.iterdir()) == []  # nothing written where it ran


REFUSING_TASK = (
    "def task():\n"
    '    raise AssertionError("the task was loaded before the plot path was checked")\n'
)


@pytest.mark.parametrize(
    "name,message",
    [
        ("nonexistent_dir/x.png", "does not exist"),
        ("x.xyz", "format 'xyz' is not one matplotlib writes"),
        ("x", "no file suffix"),
        ("", "no file suffix"),
    ],
)
def test_bad_plot_path_fails_before_the_sweep(tmp_path, name, message):
    path = tmp_path / "refusing.py"
    path.write_text(REFUSING_TASK)
    plot = str(tmp_path / name) if name else ""
    result = CliRunner().invoke(app, ["find", str(path), "--json", "--plot", plot])
    assert result.exit_code == 2
    assert result.stdout == "" and message in result.stderr
    assert "task was loaded" not in result.stderr


def test_a_plot_that_fails_after_the_sweep_keeps_the_result(task_file, tmp_path, monkeypatch):
    import lrpilot.report

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lrpilot.report, "plot_range_test", disk_full)
    plot = str(tmp_path / "lr.png")
    args = ["find", str(task_file), "--num-steps", "20", "--plot", plot]
    result = CliRunner().invoke(app, args + ["--json"])
    assert result.exit_code == 2
    _check_payload(result.stdout, num_steps=20)  # printed first
    assert "error: could not save the plot" in result.stderr
    assert "No space left on device" in result.stderr
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 2 and "suggested lr" in table.stdout
    assert "plot:" not in table.stdout and "No space left" in table.stderr


def test_defaults_come_from_find_lr():
    import inspect

    import typer.main

    import lrpilot

    params = {p.name: p for p in typer.main.get_command(app).commands["find"].params}
    signature = inspect.signature(lrpilot.find_lr).parameters
    for name in ("num_steps", "start_lr", "end_lr", "rule"):
        assert params[name].default == signature[name].default, name
    assert (
        params["seed"].default
        == inspect.signature(lrpilot.find_lr_for_task).parameters["seed"].default
        == 0
    )
    for rule in lrpilot.suggest.RULES:
        assert rule in params["rule"].help


def test_unknown_rule_lists_the_rules(task_file):
    import lrpilot

    result = CliRunner().invoke(app, ["find", str(task_file), "--rule", "nope"])
    assert result.exit_code == 2 and result.stderr.startswith("error: rule must be one of")
    assert all(repr(rule) in result.stderr for rule in lrpilot.suggest.RULES)


def test_seed_reaches_the_sweep(task_file):
    def losses(*extra):
        args = ["find", str(task_file), "--json", "--num-steps", "12", *extra]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["losses"]

    assert losses("--seed", "3") == losses("--seed", "3") != losses("--seed", "4")
    assert losses() == losses("--seed", "0")
    bad = CliRunner().invoke(app, ["find", str(task_file), "--seed", "-1"])
    assert bad.exit_code == 2 and "seed must be a whole number >= 0" in bad.stderr


def test_what_the_task_prints_stays_off_the_json(tmp_path):
    noisy = TASK_FILE.replace(
        "def task():", 'print("loading digits")\n\n\ndef task():\n    print("building")'
    )
    path = tmp_path / "noisy.py"
    path.write_text(noisy)
    result = CliRunner().invoke(app, ["find", str(path), "--json", "--num-steps", "20"])
    assert result.exit_code == 0, result.output
    _check_payload(result.stdout, num_steps=20)
    assert "loading digits" in result.stderr and "building" in result.stderr


NOISY_TASK_FILE = """
import torch
from torch import nn

import lrpilot


def task():
    # targets with noise 4x the signal: each batch's training loss is its own noise
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 4.0 * torch.randn(4096, 1, generator=g)
    data = torch.utils.data
    return lrpilot.Task(
        model_fn=lambda: nn.Linear(8, 1),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr),
        train_loader=data.DataLoader(
            data.TensorDataset(x[:3584], y[:3584]), batch_size=16, shuffle=True,
            generator=torch.Generator().manual_seed(1),
        ),
        val_loader=data.DataLoader(data.TensorDataset(x[3584:], y[3584:]), batch_size=128),
        loss_fn=nn.functional.mse_loss,
        steps=200,
    )
"""


def test_find_val_fallback_sweeps_a_noisy_task_again_on_validation_batches(tmp_path):
    path = tmp_path / "noisy_task.py"
    path.write_text(NOISY_TASK_FILE)
    common = [str(path), "--num-steps", "60", "--start-lr", "1e-4", "--json"]
    plain = json.loads(CliRunner().invoke(app, ["find", *common]).stdout)
    again = json.loads(CliRunner().invoke(app, ["find", *common, "--val-fallback"]).stdout)
    assert plain["loss_source"] == "train" and plain["cost_steps"] == plain["num_steps_run"]
    assert again["loss_source"] == "val"
    assert again["cost_steps"] == plain["num_steps_run"] + again["num_steps_run"]
    text = CliRunner().invoke(app, ["find", *common[:-1], "--val-fallback"]).stdout
    assert "on validation batches" in text and f"({again['cost_steps']} in all)" in text
