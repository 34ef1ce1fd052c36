"""How the command line fails: one short ``error: ...`` line and exit code 2 for careless input,
the full traceback only on request, and a clear word on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lrpilot
from lrpilot.cli import app

SRC = Path(lrpilot.__file__).resolve().parents[1]

GOOD_TASK = """
import os
import time

import torch
from torch import nn

import lrpilot

MARKER = os.environ.get("LRPILOT_TEST_MARKER")
PAUSE = float(os.environ.get("LRPILOT_TEST_PAUSE", "0"))


def loss_fn(outputs, targets):
    if MARKER and not os.path.exists(MARKER):
        open(MARKER, "w").close()  # the sweep has started
    time.sleep(PAUSE)
    return nn.functional.cross_entropy(outputs, targets)


def task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = (x @ torch.randn(8, 3, generator=g)).argmax(1)
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr),
        train_loader=[(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)],
        loss_fn=loss_fn,
        steps=300,
    )
"""

SHAPE_ERROR_TASK = """
import torch
from torch import nn

import lrpilot


def task():
    x = torch.randn(64, 5)
    y = torch.randint(0, 3, (64,))
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(8, 3)),
        optimizer_fn=lambda params, lr: torch.optim.SGD(params, lr=lr),
        train_loader=[(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)],
        loss_fn=nn.functional.cross_entropy,
        steps=300,
    )
"""

runner = CliRunner()


def _task(tmp_path: Path, source: str, name: str = "task.py") -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


@pytest.mark.parametrize(
    "source,first_line,at",
    [
        (
            'raise RuntimeError("boom at import time")\n',
            "RuntimeError: boom at import time",
            'line 1: raise RuntimeError("boom at import time")',
        ),
        (
            "import nonexistent_pkg_xyz_123\n",
            "ModuleNotFoundError: No module named 'nonexistent_pkg_xyz_123'",
            "line 1: import nonexistent_pkg_xyz_123",
        ),
        ("x = 1\ndef task(:\n    pass\n", "SyntaxError: ", "line 2: def task(:"),
        (
            'def task():\n    raise ValueError("task() itself failed")\n',
            "ValueError: task() itself failed",
            'line 2: raise ValueError("task() itself failed")',
        ),
    ],
    ids=["import-time", "missing-module", "syntax", "task-raises"],
)
def test_errors_in_the_task_file_are_one_short_message(tmp_path, source, first_line, at):
    path = _task(tmp_path, source)
    result = runner.invoke(app, ["find", str(path), "--json"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: " + first_line)
    assert lines[1] == f"  at {path}, {at}"
    assert "--traceback" in lines[-1] and len(lines) == 3
    assert "Traceback" not in result.stderr


def test_an_error_raised_by_the_model_during_the_sweep(tmp_path):
    path = _task(tmp_path, SHAPE_ERROR_TASK)
    result = runner.invoke(app, ["find", str(path), "--json", "--num-steps", "20"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        "error: RuntimeError: mat1 and mat2 shapes cannot be multiplied (16x5 and 8x3)"
    )
    assert len(result.stderr.splitlines()) <= 3 and "Traceback" not in result.stderr


def test_traceback_on_request(tmp_path):
    path = _task(tmp_path, 'raise RuntimeError("boom at import time")\n')
    for args, env in (
        (["find", str(path), "--traceback"], {}),
        (["find", str(path)], {"LRPILOT_TRACEBACK": "1"}),
    ):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 1
        assert isinstance(result.exception, RuntimeError)  # re-raised as it was, in full
        assert "error:" not in result.stderr


def test_a_folder_is_called_a_folder(tmp_path):
    result = runner.invoke(app, ["find", str(tmp_path)])
    assert result.exit_code == 2
    assert "is a folder" in result.stderr and "not found" not in result.stderr


def test_demo_out_under_a_file_fails_before_any_work(tmp_path):
    afile = tmp_path / "good.py"
    afile.write_text("x = 1\n")
    for out in (afile / "sub", afile):
        started = time.monotonic()
        result = runner.invoke(app, ["demo", "--no-train", "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and str(out) in result.stderr
        assert "Traceback" not in result.stderr
        assert time.monotonic() - started < 5  # no sweep ran
    assert afile.read_text() == "x = 1\n"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"lrpilot {lrpilot.__version__}"


def _cli(*args: str) -> list[str]:
    """The command line of a fresh interpreter running this checkout's ``lrpilot``, with
    Ctrl-C raising KeyboardInterrupt even where the test runner ignores SIGINT."""
    boot = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from lrpilot.cli import app; app()"
    )
    return [sys.executable, "-c", boot, *args]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def test_ctrl_c_during_the_sweep_says_so_and_exits_130(tmp_path):
    path = _task(tmp_path, GOOD_TASK)
    marker = tmp_path / "sweep-started"
    args = ["find", str(path), "--num-steps", "2000", "--json"]
    proc = subprocess.Popen(
        _cli(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(LRPILOT_TEST_MARKER=str(marker), LRPILOT_TEST_PAUSE="0.02"),
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep never started"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        "interrupted: the range test was stopped; model and RNG state were restored"
    )
    assert "Traceback" not in stderr
    assert stdout == ""


def test_each_warning_is_printed_once_and_json_stays_one_object(tmp_path):
    path = _task(tmp_path, GOOD_TASK)
    done = subprocess.run(
        _cli("find", str(path), "--json", "--num-steps", "20"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    payload = json.loads(line)
    assert payload["warnings"], "this short sweep should warn"
    assert done.stderr.splitlines() == [f"warning: {note}" for note in payload["warnings"]]
    assert "finder.py" not in done.stderr


def test_schedule_plot_format_and_folder_checked_first(tmp_path):
    for plot, message in (
        (tmp_path / "x.xyz", "format 'xyz' is not one matplotlib writes"),
        (tmp_path / "no" / "x.png", "does not exist"),
    ):
        result = runner.invoke(
            app, ["schedule", "cosine", "--steps", "10", "--json", "--plot", str(plot)]
        )
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr.startswith("error: Plot path") and message in result.stderr
        assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_schedule_plot_failing_at_save_keeps_the_output(tmp_path, monkeypatch):
    from lrpilot import schedules

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(schedules, "plot", disk_full)
    result = runner.invoke(
        app, ["schedule", "cosine", "--steps", "10", "--json", "--plot", str(tmp_path / "s.png")]
    )
    assert result.exit_code == 2
    assert len(json.loads(result.stdout)["lr"]) == 10
    assert "could not save the plot" in result.stderr and "No space left" in result.stderr
