"""A new user's command lines, run for real (typer's test runner, or a subprocess where Python's
own warning machinery is what is tested): every bad path or value fails at once with one
``error: ...`` line that names the flag typed, and nothing is silently ignored or misread."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrpilot import history
from lrpilot.cli import app
from test_search import TASK_FILE

MARKER = "lrpilot-task-was-loaded"


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    monkeypatch.delenv("LRPILOT_HISTORY", raising=False)


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    """The small search task (40 steps, a second or two to tune), which leaves a marker file
    beside itself when it is imported: a check made "before any work" leaves none."""
    path = tmp_path / "task.py"
    marker = tmp_path / MARKER
    path.write_text(f"open({str(marker)!r}, 'w').close()\n" + TASK_FILE)
    return path


def _no_val(folder: Path) -> Path:
    """The same task without validation data (its trials score minus the training loss)."""
    path = folder / "noval.py"
    path.write_text(TASK_FILE.replace("        val_loader=[(x[128:], y[128:])],\n", ""))
    return path


def _refused(result, *needles: str) -> str:
    """The one ``error:`` line of a failed command (exit 2, no traceback), checked to hold
    every needle."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    text = result.output[result.output.index("error:") :].replace("\n", " ")
    for needle in needles:
        assert needle in text, text
    return text


# ------------------------------------------------------------------ 1: tune --report


def test_tune_refuses_a_report_path_it_cannot_write_before_loading_the_task(
    task_file: Path,
) -> None:
    runner = CliRunner()
    cases = {
        "/proc/report.html": "not writable",  # root may write anywhere but here
        str(task_file / "r.html"): "is not a folder",
        str(task_file.parent / "missing" / "r.html"): "does not exist",
        str(task_file.parent): "ending in .html",
    }
    for report, why in cases.items():
        result = runner.invoke(app, ["tune", str(task_file), "--json", "--report", report])
        _refused(result, repr(report) if why != "ending in .html" else why, why)
    assert not (task_file.parent / MARKER).exists()  # no task loaded, nothing trained
    assert not list(task_file.parent.glob(".lrpilot-*"))  # the probe file went


def test_tune_prints_its_result_before_a_report_that_fails_at_the_end(
    task_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrpilot.report import _html

    def disk_full(data, path):  # the folder passed the check; the write fails later
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_html, "write_html_report", disk_full)
    report = task_file.parent / "r.html"
    args = ["tune", str(task_file), "--json", "--no-train", "--race", "off"]
    result = CliRunner().invoke(app, [*args, "--report", str(report)])
    _refused(result, "No space left on device")
    data = json.loads(result.stdout)
    assert data["lr"] > 0 and data["report"] is None


def test_a_report_that_cannot_be_written_names_the_users_path(tmp_path: Path) -> None:
    from lrpilot.errors import ConfigError
    from lrpilot.report._html import write_html_report

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".r.html.partial").mkdir()  # the hidden temporary file cannot be made
    with pytest.raises(ConfigError, match=r"cannot write the report to '.*/out/r\.html'"):
        write_html_report({"lr": 1e-3}, folder / "r.html")


# ------------------------------------------------------------------ 2, 8, 9: history --url


def _store_with_two_trials(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    for i in range(2):
        history.record_trial(0.1 * (i + 1), float(i), fingerprint={"id": "t"}, history=url)
    return url


def test_history_options_before_the_subcommand_apply_to_it(tmp_path: Path) -> None:
    url = _store_with_two_trials(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(app, ["history", "--url", url, "--json", "list"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert data["url"] == url and [r["lr"] for r in data["records"]] == [0.1, 0.2]
    shown = runner.invoke(app, ["history", "--url", url, "show", "2", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["lr"] == 0.2
    exported = runner.invoke(app, ["history", "--url", url, "export", "--json"])
    assert json.loads(exported.stdout)["url"] == url
    table = runner.invoke(app, ["history", "--url", url, "list"])
    assert "0.2" in table.stdout and "no records" not in table.stdout  # not the default store
    twice = runner.invoke(app, ["history", "--url", url, "list", "--url", "b.sqlite"])
    _refused(twice, "--url given twice")


def test_history_url_takes_a_plain_sqlite_path_and_refuses_a_missing_store(
    tmp_path: Path,
) -> None:
    url = _store_with_two_trials(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(app, ["history", "list", "--json", "--url", url[len("sqlite:///") :]])
    assert plain.exit_code == 0 and len(json.loads(plain.stdout)["records"]) == 2
    missing = "sqlite:////nonexistent/dir/h.sqlite"
    _refused(
        runner.invoke(app, ["history", "list", "--url", missing]),
        "no history store",
        "'/nonexistent/dir' does not exist",
    )
    _refused(
        runner.invoke(app, ["history", "show", "1", "--url", str(tmp_path / "typo.sqlite")]),
        "no history store",
        "no such file",
    )
    _refused(runner.invoke(app, ["history", "list", "--url", "foo://bar"]), "--url", "'foo'")
    _refused(runner.invoke(app, ["history", "list", "--url", str(tmp_path)]), "is a folder")
    assert not Path("/nonexistent").exists()


def test_history_url_on_an_existing_empty_sqlite_file_lists_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()  # a real, empty SQLite file
    result = CliRunner().invoke(app, ["history", "list", "--url", str(path)])
    assert result.exit_code == 0 and "no records" in result.stdout


# ------------------------------------------------------------------ 3: search --storage


@pytest.mark.parametrize("prefix", ["", "journal:"])
def test_search_refuses_a_journal_in_a_missing_folder(task_file: Path, prefix: str) -> None:
    folder = task_file.parent / "nowhere" / "dir"
    args = ["search", str(task_file), "--trials", "1", "--lr-min", "1e-3", "--lr-max", "1"]
    result = CliRunner().invoke(app, [*args, "--storage", f"{prefix}{folder / 'x.journal'}"])
    _refused(result, f"the folder {str(folder)!r} does not exist")
    assert not (task_file.parent / "nowhere").exists()


# ------------------------------------------------------------------ 6: search --seed


def test_search_refuses_another_seed_for_an_existing_study(task_file: Path) -> None:
    args = ["search", str(task_file), "--method", "random", "--lr-min", "1e-3", "--lr-max", "1"]
    args += ["--storage", str(task_file.parent / "s.journal")]
    first = CliRunner().invoke(app, [*args, "--trials", "2", "--json"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, [*args, "--trials", "3", "--seed", "5"])
    _refused(again, "seed 0", "seed 5", "--seed 0")
    same = CliRunner().invoke(app, [*args, "--trials", "3", "--json"])
    assert same.exit_code == 0 and len(json.loads(same.stdout)["trials"]) == 3


# ------------------------------------------------------------------ 7: warnings


def _lrpilot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command line in a child process (so Python's warning display is the real one)."""
    env = {**os.environ, "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR", "/tmp/mplcfg")}
    code = "from lrpilot.cli import app; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def test_impact_prints_warnings_as_warning_lines(task_file: Path) -> None:
    done = _lrpilot(
        "impact", str(task_file), "--lrs", "1e3", "--steps", "10", cwd=task_file.parent
    )
    assert done.returncode == 0, done.stderr
    assert "warning: LR 1e+03 is" in done.stderr
    assert "Warning:" not in done.stderr and "typer" not in done.stderr


# ------------------------------------------------------------------ 11: find (10, 14: test_demo)


def test_find_says_val_fallback_has_no_effect_without_validation_data(tmp_path: Path) -> None:
    path = _no_val(tmp_path)
    result = CliRunner().invoke(
        app, ["find", str(path), "--val-fallback", "--num-steps", "20", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: --val-fallback had no effect" in result.stderr
    json.loads(result.stdout)  # stdout still holds only the JSON


# ------------------------------------------------------------------ 12: a grid's size


def test_a_grid_study_says_its_size_is_fixed(task_file: Path) -> None:
    args = ["search", str(task_file), "--method", "grid", "--lr-min", "1e-3", "--lr-max", "1e-1"]
    args += ["--storage", str(task_file.parent / "s.journal"), "--study", "mine"]
    assert CliRunner().invoke(app, [*args, "--trials", "1"]).exit_code == 0
    more = CliRunner().invoke(app, [*args, "--trials", "2"])
    _refused(more, "a grid of 1 LRs", "cannot be extended", "random or bayes")
    helped = CliRunner().invoke(app, ["search", "--help"])
    assert "grid's N is fixed" in " ".join(helped.output.split())


# ------------------------------------------------------------------ 16: flags named as typed


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["schedule", "cosine", "--steps", "10", "--lr", "-1"], "--lr must be"),
        (["search", "TASK", "--lr-min", "1e-1", "--lr-max", "1e-3"], "--lr-min must be below"),
        (["search", "TASK", "--lr-min", "0", "--lr-max", "1e-3"], "--lr-min must be"),
        (["search", "TASK", "--start", "0", "--lr-min", "1e-3", "--lr-max", "1"], "--start must"),
        (["impact", "TASK", "--lrs", "1e-3,0"], "--lrs must be"),
    ],
)
def test_errors_name_the_flag_typed(task_file: Path, args: list[str], needle: str) -> None:
    args = [str(task_file) if a == "TASK" else a for a in args]
    result = CliRunner().invoke(app, args)
    text = _refused(result, needle)
    assert "peak" not in text and "lr=(" not in text and "start[0]" not in text


def test_json_output_is_strict_json_with_nan_as_null(capsys):
    from lrpilot.cli import _echo_json

    _echo_json({"lr": 0.1, "metric": math.nan, "trials": [{"metric": -math.inf}, {"metric": 1.0}]})
    text = capsys.readouterr().out

    def refuse(token: str) -> object:
        raise ValueError(f"not strict JSON: {token}")

    data = json.loads(text, parse_constant=refuse)
    assert data == {"lr": 0.1, "metric": None, "trials": [{"metric": None}, {"metric": 1.0}]}
