"""The ``lrpilot`` command line: thin wrappers over the library, one command per verb.

Every command fails the same way: a careless input (a bad path, option or task file, an error
raised by the model) prints one short ``error: ...`` on stderr and exits with code 2;
``--traceback`` (or ``LRPILOT_TRACEBACK=1``) shows the full Python traceback instead. Ctrl-C
exits with code 130 after saying what was stopped. ``--json`` prints exactly one JSON object
on stdout; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from . import __version__
from . import _validate as check
from .errors import LRPilotError
from .finder import find_lr, find_lr_for_task
from .suggest import RULES

if TYPE_CHECKING:
    from .finder import LRFinderResult

app = typer.Typer(
    name="lrpilot",
    help="Measured learning rates and schedules for PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals can hold tensors, data, credentials
)

_FIND_DEFAULTS: dict[str, Any] = {
    name: param.default
    for name, param in inspect.signature(find_lr).parameters.items()
    if param.default is not inspect.Parameter.empty
}
"""``find_lr``'s defaults, read from its signature so the command line cannot drift from it."""

_SEED_DEFAULT = inspect.signature(find_lr_for_task).parameters["seed"].default

_INTERRUPTED_SWEEP = "interrupted: the range test was stopped; model and RNG state were restored"
_INTERRUPTED_LOAD = "interrupted: stopped while loading the task file; no sweep ran"


def _traceback_option() -> Any:
    return typer.Option(
        False,
        "--traceback",
        envvar="LRPILOT_TRACEBACK",
        help="On an error, show the full Python traceback (also LRPILOT_TRACEBACK=1).",
    )


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"lrpilot {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Measured learning rates and schedules for PyTorch."""


# --------------------------------------------------------------------------------------------
# Failing well
# --------------------------------------------------------------------------------------------


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _describe(exc: BaseException, source: str | None = None) -> str:
    """One short account of ``exc``: lrpilot's own message as it is; any other error as its
    type and message, with the line of ``source`` (the task file) it came from, if any."""
    if isinstance(exc, LRPilotError):
        return str(exc)
    text = str(exc).strip()
    lines = [f"{type(exc).__name__}: {text}" if text else type(exc).__name__]
    if isinstance(exc, SyntaxError) and exc.filename:
        lines = [f"{type(exc).__name__}: {exc.msg}"]
        code = (exc.text or "").strip()
        lines.append(f"  at {exc.filename}, line {exc.lineno}" + (f": {code}" if code else ""))
    elif source is not None:
        frame = _last_frame_in(exc, source)
        if frame is not None:
            code = (frame.line or "").strip()
            lines.append(
                f"  at {frame.filename}, line {frame.lineno}" + (f": {code}" if code else "")
            )
    lines.append("  (run with --traceback for the full traceback)")
    return "\n".join(lines)


def _last_frame_in(exc: BaseException, source: str) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc``'s traceback that runs code of the file ``source``."""
    target = os.path.realpath(source)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.realpath(frame.filename) == target:
            return frame
    return None


@contextlib.contextmanager
def _reported(show_traceback: bool, source: str | None = None) -> Iterator[None]:
    """Turn any error in the block into ``error: ...`` and exit code 2 (unless the full
    traceback was asked for)."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if show_traceback:
            raise
        _fail(_describe(exc, source))


def _checked_plot_path(plot: str | None) -> None:
    """Refuse a plot path that cannot be written, before any work is done."""
    if plot is None:
        return
    from .report import check_plot_path

    try:
        check_plot_path(plot)
    except LRPilotError as exc:
        _fail(str(exc))


def _make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) for the command's output, or fail with exit 2."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        _fail(f"--out {str(folder)!r} exists and is not a folder.")
    except OSError as exc:
        _fail(f"cannot create the folder --out {str(folder)!r}: {exc.strerror or exc}.")
    if not os.access(folder, os.W_OK | os.X_OK):
        _fail(f"the folder --out {str(folder)!r} is not writable.")


def _echo_json(payload: dict[str, Any]) -> None:
    typer.echo(json.dumps(payload))


def _notes(result: LRFinderResult, caught: list[warnings.WarningMessage]) -> list[str]:
    """The result's warnings, then any other warning raised during the command, each once."""
    notes = list(dict.fromkeys(result.warnings))
    for item in caught:
        text = str(item.message)
        if text not in notes:
            notes.append(text)
    return notes


# --------------------------------------------------------------------------------------------
# lrpilot find
# --------------------------------------------------------------------------------------------


@app.command()
def find(
    task_file: str = typer.Argument(..., help="A Python file defining task() -> lrpilot.Task."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    plot: str | None = typer.Option(None, "--plot", help="Save the loss-vs-LR plot here."),
    steps: int | None = typer.Option(None, help="Length of the real run (default: the task's)."),
    num_steps: int = typer.Option(
        _FIND_DEFAULTS["num_steps"], help="Optimizer steps in the sweep."
    ),
    start_lr: float = typer.Option(_FIND_DEFAULTS["start_lr"], help="Lowest LR of the sweep."),
    end_lr: float = typer.Option(_FIND_DEFAULTS["end_lr"], help="Highest LR of the sweep."),
    rule: str = typer.Option(
        _FIND_DEFAULTS["rule"], help="Suggestion rule: " + ", ".join(RULES) + "."
    ),
    seed: int = typer.Option(
        _SEED_DEFAULT,
        help="Seed of the model's initialisation and the sweep (same seed, same curve).",
    ),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Run the LR range test on a task file and suggest a peak LR."""
    from .task import load_task_file

    with _reported(show_traceback):
        check.choice("rule", rule, list(RULES))
        check.whole("seed", seed, 0)
    _checked_plot_path(plot)
    options: dict[str, Any] = {
        "num_steps": num_steps,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "rule": rule,
    }
    if steps is not None:
        options["steps"] = steps
    sweeping = False
    # find_lr also emits each note as a Python warning: shown once, below, not twice; with
    # --json, whatever the task file prints goes to stderr, so stdout holds only the JSON
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as caught, quiet:
        try:
            with _reported(show_traceback, task_file):
                task = load_task_file(task_file)
                sweeping = True
                result = find_lr_for_task(task, seed=seed, progress=not json_out, **options)
        except KeyboardInterrupt:
            typer.echo(_INTERRUPTED_SWEEP if sweeping else _INTERRUPTED_LOAD, err=True)
            raise typer.Exit(code=130) from None
    notes = _notes(result, caught)
    plot_error = _save_range_plot(result, plot, show_traceback)
    if json_out:
        _echo_json(result.to_dict())
        for note in notes:
            typer.echo(f"warning: {note}", err=True)
    else:
        _print_result(result, None if plot_error else plot, notes)
    if plot_error:  # the result is out first: a failed save does not lose the sweep
        _fail(plot_error)


def _save_range_plot(result: LRFinderResult, plot: str | None, show_traceback: bool) -> str:
    """Save the plot of ``result`` to ``plot``; what went wrong, or ``""``."""
    if plot is None:
        return ""
    from .report import plot_range_test

    try:
        plot_range_test(result, plot)
    except (LRPilotError, OSError, ValueError) as exc:
        if show_traceback:
            raise
        return f"could not save the plot to {plot!r}: {exc}"
    return ""


def _print_result(
    result: LRFinderResult, plot: str | None, notes: list[str] | None = None
) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title="LR range test", show_header=True)
    table.add_column("rule")
    table.add_column("lr", justify="right")
    for name, lr in result.candidates.items():
        mark = " (suggested)" if name == result.rule else ""
        table.add_row(escape(name + mark), f"{lr:.3g}")
    console.print(table)
    lo, hi = result.band
    runs = f" for a {result.steps}-step run" if result.steps else ""
    console.print(f"[bold green]suggested lr {result.lr:.3g}[/]{runs}  (band {lo:.2g}–{hi:.2g})")
    base, top = result.bounds
    console.print(f"cyclical / one-cycle bounds: base {base:.2g}, max {top:.2g}")
    console.print(
        f"{result.num_steps_run} sweep steps"
        + (", stopped on divergence" if result.diverged else "")
    )
    for note in result.warnings if notes is None else notes:
        console.print(f"[yellow]warning:[/] {escape(note)}")
    if plot:
        console.print(f"plot: {escape(plot)}", highlight=False)


# --------------------------------------------------------------------------------------------
# lrpilot plot
# --------------------------------------------------------------------------------------------


_RESULTS_ARGUMENT = typer.Argument(
    ...,
    help="Saved results: the JSON `lrpilot find --json` prints or to_dict() holds "
    "(- reads stdin). Several are drawn on one axis.",
)
_LABEL_OPTION = typer.Option(
    None, "--label", help="Legend label of each result, in order (default: file names)."
)


@app.command("plot")
def plot_cmd(
    results: list[str] = _RESULTS_ARGUMENT,
    out: str = typer.Option(..., "--out", "-o", help="The image to write (format from suffix)."),
    label: list[str] | None = _LABEL_OPTION,
    title: str | None = typer.Option(None, "--title", help="The plot's title."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Replot saved range-test results; several files overlay on one axis."""
    from .report import plot_range_test, plot_range_tests, range_test_data

    _checked_plot_path(out)
    if results.count("-") > 1:
        _fail("stdin (-) can be read only once.")
    labels = list(label) if label else _labels_for(results)
    if len(labels) != len(results):
        _fail(f"{len(labels)} --label for {len(results)} results: give one per result.")
    datas = []
    for name in results:
        data = _read_result(name)
        try:
            curve = range_test_data(data)
        except LRPilotError as exc:
            _fail(f"{name}: {exc}")
        datas.append(data)
        typer.echo(f"{labels[len(datas) - 1]}: suggested lr {curve.lr:.3g}")
    try:
        if len(datas) == 1 and not label:
            plot_range_test(datas[0], out, title=title)
        else:
            plot_range_tests(datas, out, labels=labels, title=title)
    except (LRPilotError, OSError, ValueError) as exc:
        if show_traceback:
            raise
        _fail(f"could not save the plot to {out!r}: {exc}")
    typer.echo(f"plot: {out}")


def _labels_for(names: list[str]) -> list[str]:
    """Each result's file name without its suffix; the whole path where two share a name."""
    stems = ["stdin" if n == "-" else Path(n).stem for n in names]
    return stems if len(set(stems)) == len(stems) else list(names)


def _read_result(name: str) -> dict[str, Any]:
    """The JSON object in file ``name`` (``-``: stdin), or exit 2 saying what is wrong."""
    if name == "-":
        text = sys.stdin.read()
    else:
        path = Path(name)
        if path.is_dir():
            _fail(f"{name} is a folder: give a JSON result file.")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            _fail(f"result file not found: {name}")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read {name}: {exc}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{name} is not valid JSON ({exc}); give the output of `lrpilot find --json`.")
    if not isinstance(data, dict):
        _fail(f"{name} holds a JSON {type(data).__name__}, not a range-test result (an object).")
    return data


# --------------------------------------------------------------------------------------------
# lrpilot demo
# --------------------------------------------------------------------------------------------


@app.command()
def demo(
    out: str = typer.Option("lrpilot-demo", help="Folder for the plot and the JSON results."),
    train: bool = typer.Option(True, help="Train once at the suggestion and at 1e-3 to compare."),
    seed: int = typer.Option(_SEED_DEFAULT, help="Seed of the sweep and of both runs."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """The range test on MNIST-1D (built locally, no download), then a run at the suggestion."""
    from rich.console import Console

    from .demo import DEMO_STEPS, mnist1d_task
    from .train import train as train_run

    console = Console()
    folder = Path(out)
    _make_folder(folder)  # before any work: a bad --out costs nothing
    with _reported(show_traceback):
        check.whole("seed", seed, 0)
    console.print(
        f"[bold]lrpilot demo[/]: MNIST-1D, Conv1d net, Adam, cosine schedule, {DEMO_STEPS} steps"
    )
    try:
        with warnings.catch_warnings(record=True) as caught, _reported(show_traceback):
            task = mnist1d_task(seed)
            result = find_lr_for_task(task, seed=seed)
        plot_path = folder / "range_test.png"
        _save_range_plot(result, str(plot_path), show_traceback)
        result.save(folder / "range_test.json")
        _print_result(result, str(plot_path), _notes(result, caught))
        if train:
            with _reported(show_traceback):
                ours = train_run(task, result.lr, seed=seed)
                default = train_run(task, 1e-3, seed=seed)
            ours.save(folder / "run_suggested.json")
            default.save(folder / "run_default.json")
            console.print(
                f"test accuracy after {DEMO_STEPS} steps: lrpilot {result.lr:.3g} -> "
                f"{ours.metric:.1%} ({ours.seconds:.0f} s); the usual 1e-3 -> "
                f"{default.metric:.1%}"
            )
    except KeyboardInterrupt:
        typer.echo("interrupted: the demo was stopped", err=True)
        raise typer.Exit(code=130) from None
    console.print(
        "next: in your own loop, [bold]lrpilot.find_lr(model, optimizer, loader, loss_fn, "
        "steps=N)[/]; or write a task file (see examples/) and run [bold]lrpilot find TASK.py[/]."
    )


# --------------------------------------------------------------------------------------------
# lrpilot schedule
# --------------------------------------------------------------------------------------------


@app.command("schedule")
def schedule_cmd(
    spec: str = typer.Argument(..., help='Schedule spec, e.g. "warmup(0.05)+cosine(min=0.01)".'),
    steps: int = typer.Option(..., "--steps", min=1, help="Steps in the run (for fractions)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak LR (default 1.0: the multiplier)."),
    json_out: bool = typer.Option(False, "--json", help='Print only {"lr": [...]} on stdout.'),
    plot: str | None = typer.Option(None, "--plot", help="Save a plot of the schedule here."),
    log: bool = typer.Option(False, "--log", help="Logarithmic y axis in the plot."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Show the learning rate at steps 0..N-1 of a schedule spec (table, JSON or plot)."""
    from . import schedules

    _checked_plot_path(plot)
    peak = 1.0 if lr is None else lr
    with _reported(show_traceback):
        sched = schedules.parse_schedule(spec, total_steps=steps)
        lrs = schedules.values(sched, steps, peak=peak)
    plot_error = ""
    if plot:
        try:
            schedules.plot(sched, steps, plot, peak=peak, title=spec, log=log)
        except (LRPilotError, OSError, ValueError) as exc:
            if show_traceback:
                raise
            plot_error = f"could not save the plot to {plot!r}: {exc}"
    if json_out:
        typer.echo(json.dumps({"lr": lrs}))
    else:
        _print_schedule(sched, lrs, None if plot_error else plot)
    if plot_error:
        _fail(plot_error)


def _print_schedule(sched: object, lrs: list[float], plot: str | None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{escape(repr(sched))}[/]", highlight=False)
    table = Table(show_header=True)
    table.add_column("step", justify="right")
    table.add_column("lr", justify="right")
    n = len(lrs)
    for t in sorted({round(i * (n - 1) / 10) for i in range(11)}):
        table.add_row(str(t), f"{lrs[t]:.4g}")
    console.print(table)
    top = max(range(n), key=lrs.__getitem__)
    console.print(f"max {lrs[top]:.4g} at step {top}; min {min(lrs):.4g}; last {lrs[-1]:.4g}")
    if plot:
        console.print(f"plot: {plot}")
