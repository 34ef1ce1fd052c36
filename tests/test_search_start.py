"""Seeding a search: ``lrpilot.search(..., start=[...])`` and ``lrpilot search --start`` /
``--from-history`` on the tiny real task of test_search.py (a trial takes ~20 ms)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import lrpilot
from lrpilot.cli import app
from lrpilot.history import History
from lrpilot.task import load_task_file
from test_search import TASK_FILE, tiny_task

SPACE = (1e-3, 1.0)


def test_the_start_lrs_are_the_first_trials_and_a_rerun_does_not_repeat_them(tmp_path):
    journal = str(tmp_path / "s.journal")
    kwargs = dict(space=SPACE, prune=False, progress=False, start=[0.05, 0.003])
    first = lrpilot.search(tiny_task(), "bayes", 3, journal, "seeded", **kwargs)
    assert [t.lr for t in first.trials[:2]] == pytest.approx([0.05, 0.003], rel=1e-12)
    assert all(t.state == "COMPLETE" for t in first.trials)
    again = lrpilot.search(tiny_task(), "bayes", 5, journal, "seeded", **kwargs)
    lrs = [t.lr for t in again.trials]
    assert len(lrs) == 5
    assert sum(lr == pytest.approx(0.05, rel=1e-12) for lr in lrs) == 1
    assert sum(lr == pytest.approx(0.003, rel=1e-12) for lr in lrs) == 1
    assert lrs[:3] == [t.lr for t in first.trials]  # the rerun continued the same study


def test_a_full_study_gets_no_leftover_queued_start(tmp_path):
    journal = str(tmp_path / "s.journal")
    lrpilot.search(tiny_task(), "random", 2, journal, "full", space=SPACE, progress=False)
    with pytest.warns(UserWarning, match=r"start LR 0\.02 not tried: .*already holds 2"):
        result = lrpilot.search(
            tiny_task(), "random", 2, journal, "full", space=SPACE, progress=False, start=[0.02]
        )
    assert len(result.trials) == 2 and all(t.state != "WAITING" for t in result.trials)
    assert all(t.lr != pytest.approx(0.02, rel=1e-12) for t in result.trials)


def test_a_start_lr_outside_the_space_is_refused_naming_the_space(tmp_path):
    journal = str(tmp_path / "s.journal")
    with pytest.raises(lrpilot.ConfigError, match=r"outside the search space: LR 0\.001 to 1"):
        lrpilot.search(tiny_task(), "bayes", 2, journal, "out", space=SPACE, start=[3.0])
    with pytest.raises(lrpilot.ConfigError, match="start"):
        lrpilot.search(tiny_task(), "bayes", 2, journal, "out", space=SPACE, start=[-1e-3])
    with pytest.raises(lrpilot.ConfigError, match="grid"):
        lrpilot.search(tiny_task(), "grid", 2, journal, "out", space=SPACE, start=[0.01])


def _cli_search(tmp_path, *extra: str) -> tuple[dict, str]:
    path = tmp_path / "task.py"
    path.write_text(TASK_FILE)
    args = ["search", str(path), "--method", "bayes", "--trials", "3", "--json"]
    args += ["--storage", str(tmp_path / "s.journal"), "--lr-min", "1e-3", "--lr-max", "1"]
    out = CliRunner().invoke(app, [*args, *extra])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout), out.output


def test_cli_start_lrs_are_tried_first(tmp_path):
    data, _ = _cli_search(tmp_path, "--start", "0.03,0.002")
    assert [t["lr"] for t in data["trials"][:2]] == pytest.approx([0.03, 0.002], rel=1e-12)
    bad = CliRunner().invoke(app, ["search", str(tmp_path / "task.py"), "--start", "fast"])
    assert bad.exit_code == 2 and "comma-separated LRs" in bad.output


def test_cli_from_history_with_an_empty_history_says_so_and_searches(tmp_path, monkeypatch):
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    data, output = _cli_search(tmp_path, "--from-history")
    assert "--from-history: no recommendation" in output and "the rules apply" in output
    assert len(data["trials"]) == 3


def test_cli_from_history_tries_the_recommended_lr_first(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("LRPILOT_HOME", str(home))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    (tmp_path / "task.py").write_text(TASK_FILE)
    fingerprint = load_task_file(str(tmp_path / "task.py")).fingerprint()
    store = History(f"sqlite:///{home / 'history.sqlite'}")
    for lr, metric in ((0.3, 0.5), (0.04, 0.9), (0.005, 0.7)):  # the same recipe trained before
        store.add("run", lr=lr, fingerprint=fingerprint, metric=metric, diverged=False)
    store.close()
    data, output = _cli_search(tmp_path, "--from-history")
    assert "--from-history: trying lr 0.04 first" in output
    assert data["trials"][0]["lr"] == pytest.approx(0.04, rel=1e-12)
