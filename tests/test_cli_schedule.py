"""The ``lrpilot schedule`` command: JSON output, the table and plot, and spec errors."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from lrpilot import schedules as S
from lrpilot.cli import app

runner = CliRunner()


def test_cli_json_prints_only_the_lrs() -> None:
    result = runner.invoke(
        app, ["schedule", "warmup(0.05)+cosine(min=0.01)", "--steps", "200", "--json"]
    )
    assert result.exit_code == 0, result.output
    lrs = json.loads(result.stdout)["lr"]
    expected = S.values(S.parse_schedule("warmup(0.05)+cosine(min=0.01)", 200), 200)
    assert lrs == expected and lrs[0] == 0.0 and lrs[10] == 1.0
    with_lr = runner.invoke(app, ["schedule", "exp(0.9)", "--steps", "3", "--lr", "0.1", "--json"])
    assert json.loads(with_lr.stdout) == {"lr": pytest.approx([0.1, 0.09, 0.081], rel=1e-12)}


def test_cli_table_and_plot(tmp_path) -> None:
    path = tmp_path / "s.png"
    result = runner.invoke(
        app, ["schedule", "onecycle(pct=0.3)", "--steps", "100", "--plot", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "OneCycle(steps=100" in result.stdout and "max 1 at step 29" in result.stdout
    assert path.stat().st_size > 1000


def test_cli_malformed_spec_exits_2_with_a_caret() -> None:
    result = runner.invoke(app, ["schedule", "cosine(min=2)", "--steps", "10", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "min must be a number in [0, 1]" in result.stderr and "^" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("warmup(0.05)+warmup(0.05)", "would all run at LR 0"),
        ("restarts(period=0.0001)", "rounds to 0 steps"),
    ],
)
def test_cli_refuses_the_specs_that_waste_steps(spec: str, message: str) -> None:
    """D25: both were accepted with rc 0 before."""
    result = runner.invoke(app, ["schedule", spec, "--steps", "1000", "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert message in result.stderr and "^" in result.stderr


def test_cli_inclusive_warmup() -> None:
    result = runner.invoke(
        app, ["schedule", "warmup(0.1, inclusive=true)+cosine", "--steps", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    lrs = json.loads(result.stdout)["lr"]
    assert lrs[:3] == [0.5, 1.0, 1.0]  # (t + 1)/W for t < W = 2, then the cosine from 1
    assert lrs[3] == pytest.approx(0.5 * (1 + math.cos(math.pi / 18)), rel=1e-12)


def test_an_infinite_peak_is_refused_naming_the_flag():
    result = runner.invoke(app, ["schedule", "cosine", "--steps", "3", "--lr", "inf", "--json"])
    assert result.exit_code == 2
    assert "--lr" in result.output and "Infinity" not in result.output
