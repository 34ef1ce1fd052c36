"""``lrpilot tune TASK.py``: the whole pipeline from the command line, and its terminal summary.

Registered on the app by :mod:`lrpilot.cli`; kept apart so that ``cli.py`` stays a list of thin
commands.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

from ._json import json_safe

__all__ = ["print_summary", "tune_command"]


def tune_command(
    task_file: str = typer.Argument(..., help="A Python file defining task() -> lrpilot.Task."),
    no_train: bool = typer.Option(False, "--no-train", help="Stop after the choice."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    report: str | None = typer.Option(None, "--report", help="Write the HTML report here."),
    seed: int = typer.Option(0, help="Seed of every stage."),
    race: str = typer.Option(
        "adopt",
        "--race",
        help="adopt: take the race's best; check: the race only vetoes a pick that diverges "
        "(or replaces one the range test's noisy curve could not give); off: no race.",
    ),
    snapshots: str = typer.Option(
        "memory",
        "--snapshots",
        help="Where the monitor keeps its rollback snapshots: memory, cpu (host memory) or disk "
        "($LRPILOT_HOME/snapshots, for a model too big to hold twice).",
    ),
    no_monitor: bool = typer.Option(False, "--no-monitor", help="Train without the monitor."),
    show_traceback: bool = typer.Option(
        False, "--traceback", envvar="LRPILOT_TRACEBACK", help="Show full tracebacks."
    ),
) -> None:
    """Advice, range test, race, the full run under the monitor, and a report."""
    from .autopilot import tune
    from .cli import _reported
    from .control.monitor import Monitor
    from .task import load_task_file

    report_path = _checked_report(report)  # before any work: a bad --report costs nothing
    command = shlex.join(["lrpilot", "tune", *sys.argv[2:]]) if len(sys.argv) > 2 else None
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    try:
        with warnings.catch_warnings(record=True) as caught, quiet:
            warnings.simplefilter("always")
            with _reported(show_traceback, task_file):
                monitor = False if no_monitor else Monitor(snapshots=snapshots)
                task = load_task_file(task_file)
                result = tune(
                    task,
                    train=not no_train,
                    seed=seed,
                    progress=not json_out,
                    race=race,
                    monitor=monitor,
                    command=command,
                )
    except KeyboardInterrupt:
        from . import history

        kept = (
            " (the range test and runs it finished are in the history: lrpilot history list)"
            if history.enabled()
            else ""
        )
        typer.echo(f"interrupted: tune was stopped; no report was written{kept}", err=True)
        raise typer.Exit(code=130) from None
    notes = list(dict.fromkeys(str(w.message) for w in caught))
    report_error = _write_report(result, report_path, show_traceback)
    if json_out:
        data = result.to_dict()
        keys = ("lr", "schedule", "cost_steps", "run_steps", "metric", "events", "report")
        out = {k: data[k] for k in keys} | {"stages": data["stages"], "checks": data["checks"]}
        typer.echo(json.dumps(json_safe(out), allow_nan=False))
        for note in notes:
            typer.echo(f"warning: {note}", err=True)
    else:
        print_summary(result.to_dict(), notes)
    if report_error:  # the result is out first: a failed write does not lose the run
        from .cli import _fail

        _fail(report_error)


def _checked_report(report: str | None) -> Path | None:
    """``--report`` checked before any work (suffix, folder, a probe write into the folder),
    so a path that cannot be written fails at once, not after the full run; exit 2 if bad."""
    if report is None:
        return None
    from .cli import _fail
    from .errors import LRPilotError
    from .report import check_report_path

    try:
        return check_report_path(report)
    except LRPilotError as exc:
        _fail(str(exc))


def _write_report(result: Any, path: Path | None, show_traceback: bool) -> str:
    """Write ``result``'s HTML report to ``path`` and record it on ``result``; what went wrong
    (naming the user's path), or ``""``. Written here, not inside ``tune``, so that a write
    that fails after all (the folder changed meanwhile, a full disk) still prints the result."""
    if path is None:
        return ""
    from .errors import LRPilotError
    from .report._html import write_html_report

    try:
        write_html_report(result.to_dict(), path)
    except (LRPilotError, OSError) as exc:
        if show_traceback:
            raise
        return str(exc)
    result.report = str(path)
    return ""


CHECK_COLOURS = {"pass": "green", "fail": "red", "unknown": "dim"}
"""The colour of each check's mark: ✓ green, ✗ red, – (cannot tell) grey."""


def print_summary(data: dict[str, Any], notes: list[str]) -> None:
    """The choice, the cost of each stage, the run's events and the checks, with rich."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    stages = Table(title="lrpilot tune", show_header=True)
    for column in ("stage", "optimizer steps", "seconds"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for s in data["stages"]:
        stages.add_row(escape(s["name"]), str(s["steps"]), f"{s['seconds']:.1f}")
    console.print(stages)
    share = data["cost_steps"] / max(1, data["run_steps"])
    console.print(
        f"[bold green]lr {data['lr']:.3g}[/], schedule {escape(str(data['schedule']))}, chosen "
        f"for {data['cost_steps']} steps ({share:.0%} of the {data['run_steps']}-step run)"
    )
    race = data.get("race") or {}
    if race.get("note"):
        console.print(escape(race["note"]))
    if data.get("run"):
        from .report._checks import final_metric_text

        shown = final_metric_text(data["run"], data.get("metric_is"))
        console.print(f"final metric {escape(shown)}")
    for event in data.get("events", []):
        console.print(f"[yellow]event[/] {escape(str(event.get('message', '')))}")
    from .report._checks import label_of, mark_of, state_of

    for c in data.get("checks", []):
        mark = f"[{CHECK_COLOURS[state_of(c)]}]{mark_of(c)}[/]"
        console.print(f"{mark} {escape(label_of(c))}: {escape(c['message'])}")
    for note in notes:
        console.print(f"[yellow]warning:[/] {escape(note)}")
    if data.get("report"):
        console.print(f"report: {escape(data['report'])}", highlight=False)
