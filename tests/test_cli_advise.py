"""``lrpilot advise TASK.py`` and ``lrpilot history``, through typer's test runner."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrpilot import history
from lrpilot.cli import app

TASK_FILE = """
import torch
from torch import nn

import lrpilot


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(self.rnn(x)[0][:, -1])


def task():
    g = torch.Generator().manual_seed(0)
    x = 50 + 20 * torch.randn(128, 5, 4, generator=g)   # not normalized
    y = (x.sum((1, 2)) > 50 * 20).long()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    return lrpilot.Task(
        model_fn=Net,
        optimizer_fn=lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(0.9, 0.98)),
        train_loader=loader,
        loss_fn=nn.functional.cross_entropy,
        steps=3000,
    )
"""


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    monkeypatch.delenv("LRPILOT_HISTORY", raising=False)


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "lstm_task.py"
    path.write_text(TASK_FILE)
    return path


def _one_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got {stdout!r}"
    return json.loads(lines[0])


def test_advise_json(task_file):
    result = CliRunner().invoke(app, ["advise", str(task_file), "--json"])
    assert result.exit_code == 0, result.output
    data = _one_json(result.stdout)
    assert data["lr"] == 1e-3 and data["range"] == [1e-4, 1e-2]
    assert data["schedule"] == "warmup(100)+cosine" and data["warmup_steps"] == 100
    assert data["clip"] == 1.0  # an LSTM
    assert data["reasons"] and all(r["source"] for r in data["reasons"])
    codes = {f["code"] for f in data["findings"]}
    assert {"inputs-not-normalized", "rnn-without-clipping", "no-validation-data"} <= codes


def test_advise_table_prints_reasons_with_sources_and_findings(task_file):
    result = CliRunner().invoke(app, ["advise", str(task_file)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "lr 0.001" in out and "warmup(100)+cosine" in out
    assert "source: Ma & Yarats, AAAI 2021" in out
    assert "rnn-without-clipping" not in out and "no clipping" in out  # messages, not codes


def test_advise_a_missing_file_fails_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["advise", str(tmp_path / "nope.py"), "--json"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "Task file not found" in result.stderr


def test_history_on_an_empty_store():
    runner = CliRunner()
    listed = runner.invoke(app, ["history", "--json"])
    assert listed.exit_code == 0 and _one_json(listed.stdout)["records"] == []
    assert "no records" in runner.invoke(app, ["history", "list"]).stdout
    exported = runner.invoke(app, ["history", "export", "--csv"])
    assert exported.exit_code == 0
    assert list(csv.reader(io.StringIO(exported.stdout)))[0][:3] == ["id", "kind", "created"]
    assert len(exported.stdout.splitlines()) == 1
    as_json = runner.invoke(app, ["history", "export", "--json"])
    assert _one_json(as_json.stdout)["records"] == []


def test_history_list_show_export(tmp_path):
    for i in range(3):
        history.record_trial(1e-3 * (i + 1), float(i), fingerprint={"id": "t", "optimizer": "SGD"})
    runner = CliRunner()
    listed = _one_json(runner.invoke(app, ["history", "list", "--json"]).stdout)
    assert [r["lr"] for r in listed["records"]] == pytest.approx([1e-3, 2e-3, 3e-3])
    table = runner.invoke(app, ["history"]).stdout
    assert "trial" in table and "0.003" in table
    shown = _one_json(runner.invoke(app, ["history", "show", "2", "--json"]).stdout)
    assert shown["id"] == 2 and shown["metric"] == 1.0
    out = tmp_path / "h.csv"
    done = runner.invoke(app, ["history", "export", "--csv", "--out", str(out)])
    assert done.exit_code == 0 and len(out.read_text().splitlines()) == 4
    missing = runner.invoke(app, ["history", "show", "99"])
    assert missing.exit_code == 2 and "No record 99" in missing.stderr
    both = runner.invoke(app, ["history", "export", "--csv", "--json"])
    assert both.exit_code == 2


def test_history_shows_a_server_url_masked():
    url = "postgresql://alice:s3cret@127.0.0.1:1/runs"
    result = CliRunner().invoke(app, ["history", "list", "--url", url])
    assert result.exit_code == 2
    assert "s3cret" not in result.stderr and "alice:***@" in result.stderr


def test_the_sgd_default_cites_its_own_source_not_the_adam_paper(tmp_path):
    from test_search import TASK_FILE as SGD_TASK

    path = tmp_path / "sgd_task.py"
    path.write_text(SGD_TASK)
    result = CliRunner().invoke(app, ["advise", str(path), "--json"])
    assert result.exit_code == 0, result.output
    (prior,) = [r for r in _one_json(result.stdout)["reasons"] if r["rule"] == "prior_lr"]
    assert prior["text"] == "0.01: the plain default of the sgd family."
    sgd = prior["source"].split("SGD:", 1)[1]  # the part of the source that speaks of SGD
    assert "Keras' SGD default (0.01)" in sgd and "Kingma" not in sgd
