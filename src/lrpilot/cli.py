"""The ``lrpilot`` command line: thin wrappers over the library, one command per verb.

Every command fails the same way: a careless input (a bad path, option or task file, an error
raised by the model) prints one short ``error: ...`` on stderr and exits with code 2;
``--traceback`` (or ``LRPILOT_TRACEBACK=1``) shows the full Python traceback instead. Ctrl-C
exits with code 130 after saying what was stopped. ``--json`` prints exactly one JSON object
on stdout; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from ._cli_tune import tune_command
from ._json import json_safe
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


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Catch the Python warnings raised in the block and print each once, as
    ``warning: <message>`` on stderr when the block ends (as ``find`` and ``tune`` do), rather
    than Python's own two lines that point into typer's source."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for note in dict.fromkeys(str(w.message) for w in caught):
                typer.echo(f"warning: {note}", err=True)


def _echo_json(payload: dict[str, Any]) -> None:
    """``payload`` as strict JSON on stdout: NaN and infinities (a diverged trial's metric)
    as ``null``, which ``jq`` and JavaScript read, where they refuse ``NaN``."""
    typer.echo(json.dumps(json_safe(payload), allow_nan=False))


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
    val_fallback: bool = typer.Option(
        False,
        "--val-fallback",
        help="Sweep again on fixed validation batches when the training loss is too noisy.",
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
                result = find_lr_for_task(
                    task, seed=seed, progress=not json_out, val_fallback=val_fallback, **options
                )
        except KeyboardInterrupt:
            typer.echo(_INTERRUPTED_SWEEP if sweeping else _INTERRUPTED_LOAD, err=True)
            raise typer.Exit(code=130) from None
    notes = _notes(result, caught) + _val_fallback_note(task, val_fallback)
    plot_error = _save_range_plot(result, plot, show_traceback)
    if json_out:
        _echo_json(result.to_dict())
        for note in notes:
            typer.echo(f"warning: {note}", err=True)
    else:
        _print_result(result, None if plot_error else plot, notes)
    if plot_error:  # the result is out first: a failed save does not lose the sweep
        _fail(plot_error)


def _val_fallback_note(task: Any, val_fallback: bool) -> list[str]:
    """A warning when ``--val-fallback`` was asked for but cannot apply: the task has no
    validation data to sweep on, so the flag changed nothing."""
    if not val_fallback or task.val_loader is not None:
        return []
    return ["--val-fallback had no effect: the task has no val_loader to sweep on."]


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
        + (", on validation batches" if result.loss_source == "val" else "")
        + (f" ({result.cost_steps} in all)" if result.cost_steps > result.num_steps_run else "")
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
    out: str = typer.Option("lrpilot-demo", help="Folder for the report, plot and JSON results."),
    train: bool = typer.Option(True, help="Train at the choice, and at 1e-3 to compare."),
    seed: int = typer.Option(_SEED_DEFAULT, help="Seed of every stage and of both runs."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Run `lrpilot tune` on MNIST-1D (built locally), then the usual 1e-3 to compare.

    Advice, range test, race, the run under the monitor and the HTML report, with no download.
    """
    from rich.console import Console

    from ._cli_tune import print_summary
    from .autopilot import tune
    from .demo import DEMO_STEPS, mnist1d_task
    from .finder import LRFinderResult
    from .train import RunResult
    from .train import train as train_run

    console = Console()
    if not out.strip():  # Path("") is the current folder: never write there unasked
        _fail("--out is empty: give a folder for the demo's outputs, e.g. --out lrpilot-demo.")
    folder = Path(out)
    _make_folder(folder)  # before any work: a bad --out costs nothing
    with _reported(show_traceback):
        check.whole("seed", seed, 0)
    console.print(
        f"[bold]lrpilot demo[/]: lrpilot tune on MNIST-1D, Conv1d net, Adam, cosine schedule, "
        f"{DEMO_STEPS} steps"
    )
    try:
        with warnings.catch_warnings(record=True) as caught, _reported(show_traceback):
            warnings.simplefilter("always")
            task = mnist1d_task(seed)
            chosen = tune(
                task,
                train=train,
                report=folder / "report.html",
                seed=seed,
                command=f"lrpilot demo --out {out}" + ("" if train else " --no-train"),
            )
        data = chosen.to_dict()
        result = LRFinderResult.from_dict(data["range_test"])
        _save_range_plot(result, str(folder / "range_test.png"), show_traceback)
        result.save(folder / "range_test.json")
        (folder / "tune.json").write_text(json.dumps(data, default=str))
        # the report's line is printed once, last, below
        notes = list(dict.fromkeys(str(w.message) for w in caught))
        print_summary({**data, "report": None}, notes)
        if train and chosen.run is not None:
            ours = RunResult.from_dict(chosen.run)
            ours.save(folder / "run_suggested.json")
            with _reported(show_traceback):
                default = train_run(task, 1e-3, seed=seed)
            default.save(folder / "run_default.json")
            console.print(
                f"test accuracy after {DEMO_STEPS} steps: lrpilot {chosen.lr:.3g} -> "
                f"{ours.metric:.1%} ({ours.seconds:.0f} s); the usual 1e-3 -> "
                f"{default.metric:.1%}"
            )
    except KeyboardInterrupt:
        typer.echo("interrupted: the demo was stopped", err=True)
        raise typer.Exit(code=130) from None
    console.print(f"report: {folder / 'report.html'}", highlight=False)
    console.print(
        "next: write a task file (see examples/) and run [bold]lrpilot tune TASK.py "
        "--report report.html[/]; or, in your own loop, [bold]lrpilot.find_lr(model, optimizer, "
        "loader, loss_fn, steps=N)[/]."
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
    with _reported(show_traceback):  # named as typed: --lr, not the library's peak
        peak = 1.0 if lr is None else check.real("--lr", lr, 0.0, open_low=True, open_high=True)
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
        _echo_json({"lr": lrs})
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


# --------------------------------------------------------------------------------------------
# lrpilot advise, lrpilot history
# --------------------------------------------------------------------------------------------


@app.command("advise")
def advise_cmd(
    task_file: str = typer.Argument(..., help="A Python file defining task() -> lrpilot.Task."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Advice before the first step: LR, range, schedule, clipping, and lint findings.

    Every piece of advice names its reason and its source.
    """
    from .advisor import advise
    from .task import load_task_file

    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as caught, quiet:
        try:
            with _reported(show_traceback, task_file):
                advice = advise(load_task_file(task_file))
        except KeyboardInterrupt:
            typer.echo("interrupted: stopped while reading the task file", err=True)
            raise typer.Exit(code=130) from None
    if json_out:
        _echo_json(advice.to_dict())
    else:
        _print_advice(advice)
    for note in dict.fromkeys(str(w.message) for w in caught):
        typer.echo(f"warning: {note}", err=True)


def _print_advice(advice: Any) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    lo, hi = advice.range
    console.print(f"[bold green]lr {advice.lr:.3g}[/]  (range {lo:.2g}–{hi:.2g})")
    warmup = (
        f"warmup {advice.warmup_steps} steps"
        if advice.warmup_steps is not None
        else "warmup: a share of the run, laid out by its length"
    )
    console.print(f"schedule {escape(advice.schedule)}  ({warmup})")
    console.print(f"clip {advice.clip if advice.clip else 'no'}")
    for group in advice.param_groups:
        console.print(
            f"  group {escape(group.name)}: lr {group.lr:.3g}, {len(group.params)} tensors"
        )
    console.print("[bold]reasons[/]")
    for item in advice.reasons:
        console.print(f"  - {escape(item.text)}\n    [dim]source: {escape(item.source)}[/]")
    for what, why in advice.assumed.items():
        console.print(f"  assumed {escape(what)}: {escape(why)}")
    if advice.findings:
        console.print("[bold]findings[/]")
    for finding in advice.findings:
        colour = "yellow" if finding.severity == "warning" else "cyan"
        console.print(
            f"  [{colour}]{finding.severity}[/] {escape(finding.message)}\n"
            f"    {escape(finding.advice)}"
        )


history_app = typer.Typer(
    help="The history store of range tests, runs and trials (under $LRPILOT_HOME).",
    no_args_is_help=False,
)
app.add_typer(history_app, name="history")


def _url_option() -> Any:
    return typer.Option(
        None, "--url", help="The store's URL (default $LRPILOT_HISTORY_URL or $LRPILOT_HOME)."
    )


def _history_store(url: str | None, show_traceback: bool) -> Any:
    """The history store a ``history`` subcommand reads: the default one, or ``--url``'s,
    checked first (:func:`lrpilot.history.checked_url`: exit 2 naming the flag)."""
    from .history import History, checked_url

    if url is not None:
        try:
            url = checked_url(url, "--url")
        except LRPilotError as exc:
            _fail(str(exc))
    with _reported(show_traceback):
        return History(url)


@history_app.callback(invoke_without_command=True)
def _history_main(
    ctx: typer.Context,
    url: str | None = _url_option(),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """List the history (as `lrpilot history list`) when no subcommand is given.

    ``--url``, ``--json`` and ``--traceback`` given here, before a subcommand, apply to it
    (``lrpilot history --url U show 3`` reads U), as they do after it."""
    ctx.obj = _HistoryOptions(url, json_out, show_traceback)
    if ctx.invoked_subcommand is None:
        history_list(ctx, url=None, kind=None, limit=None, json_out=False, show_traceback=False)


@dataclasses.dataclass(frozen=True)
class _HistoryOptions:
    """The ``history`` group's own ``--url``, ``--json`` and ``--traceback``, passed down to
    its subcommand (typer gives each command only the options typed after its name)."""

    url: str | None = None
    json_out: bool = False
    show_traceback: bool = False

    def merged(
        self, url: str | None, json_out: bool, show_traceback: bool
    ) -> tuple[str | None, bool, bool]:
        """The subcommand's options with the group's filled in; two different ``--url``
        (one before the subcommand, one after) are refused rather than one silently read."""
        if url is not None and self.url is not None and url != self.url:
            _fail(
                f"--url given twice, {self.url!r} before the subcommand and {url!r} after it: "
                "give it once."
            )
        return (
            url if url is not None else self.url,
            json_out or self.json_out,
            show_traceback or self.show_traceback,
        )


def _group_options(ctx: typer.Context) -> _HistoryOptions:
    """The options given to ``lrpilot history`` itself (none when called directly)."""
    return ctx.obj if isinstance(ctx.obj, _HistoryOptions) else _HistoryOptions()


@history_app.command("list")
def history_list(
    ctx: typer.Context,
    url: str | None = _url_option(),
    kind: str | None = typer.Option(None, "--kind", help="range_test, run or trial."),
    limit: int | None = typer.Option(None, "--limit", help="Only the last N records."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """List the stored records, oldest first."""
    url, json_out, show_traceback = _group_options(ctx).merged(url, json_out, show_traceback)
    store = _history_store(url, show_traceback)
    with _reported(show_traceback):
        found = store.records(kind=kind, limit=limit)
    if json_out:
        _echo_json({"url": store.shown_url, "records": [r.to_dict() for r in found]})
        return
    _print_records(store.shown_url, found)


def _print_records(shown_url: str, found: list[Any]) -> None:
    import time as _time

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    if not found:
        console.print(f"no records in the history {escape(shown_url)}")
        return
    table = Table(title=f"history {escape(shown_url)}")
    for name in ("id", "kind", "when", "task", "family", "lr", "metric", "diverged"):
        table.add_column(name, justify="right" if name in ("id", "lr", "metric") else "left")
    for rec in found:
        when = _time.strftime("%m-%d %H:%M", _time.localtime(rec.created))
        table.add_row(
            str(rec.id),
            rec.kind,
            when,
            escape(rec.task_name or rec.task_id or "-"),
            rec.family or "-",
            "-" if rec.lr is None else f"{rec.lr:.3g}",
            "-" if rec.metric is None else f"{rec.metric:.4g}",
            {True: "yes", False: "no", None: "-"}[rec.diverged],
        )
    console.print(table)


@history_app.command("show")
def history_show(
    ctx: typer.Context,
    record_id: int = typer.Argument(..., help="The record's id (see `lrpilot history list`)."),
    url: str | None = _url_option(),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Show one record in full."""
    url, json_out, show_traceback = _group_options(ctx).merged(url, json_out, show_traceback)
    store = _history_store(url, show_traceback)
    with _reported(show_traceback):
        rec = store.get(record_id)
    if json_out:
        _echo_json(rec.to_dict())
    else:
        typer.echo(json.dumps(rec.to_dict(), indent=2, sort_keys=True))


@history_app.command("export")
def history_export(
    ctx: typer.Context,
    csv_out: bool = typer.Option(False, "--csv", help="CSV, one row per record (default)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object holding every record."),
    out: str | None = typer.Option(None, "--out", "-o", help="Write here instead of stdout."),
    url: str | None = _url_option(),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Export every record as CSV or JSON."""
    url, json_out, show_traceback = _group_options(ctx).merged(url, json_out, show_traceback)
    if csv_out and json_out:
        _fail("give --csv or --json, not both.")
    store = _history_store(url, show_traceback)
    with _reported(show_traceback):
        if json_out:
            text = json.dumps({"url": store.shown_url, "records": store.to_json()}) + "\n"
        else:
            text = store.to_csv()
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out!r}: {exc.strerror or exc}.")
    typer.echo(f"exported to {out}", err=True)


# --------------------------------------------------------------------------------------------
# lrpilot search, lrpilot impact
# --------------------------------------------------------------------------------------------

_INTERRUPTED_SEARCH = (
    "interrupted: the search was stopped; its finished trials are kept in the study: rerun the "
    "same command to continue it"
)


@app.command("search")
def search_cmd(
    task_file: str = typer.Argument(..., help="A Python file defining task() -> lrpilot.Task."),
    method: str = typer.Option("bayes", "--method", help="grid, random or bayes (TPE)."),
    trials: int = typer.Option(
        20,
        "--trials",
        help="Finished trials the study should hold in total: rerun to continue a study, or "
        "raise N (random, bayes); a grid's N is fixed when its study is made.",
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="A SQLAlchemy URL (postgresql://user:pw@host/db) or a .journal file; default: "
        "$LRPILOT_HOME/search.journal.",
    ),
    study: str | None = typer.Option(
        None, "--study", help="Study name (default: from the task and the method)."
    ),
    lr_min: float | None = typer.Option(None, "--lr-min", help="Lowest LR (default: range test)."),
    lr_max: float | None = typer.Option(
        None, "--lr-max", help="Highest LR (default: range test)."
    ),
    prune: str = typer.Option("fair", "--prune", help="fair (lrpilot's), median or none."),
    seed: int = typer.Option(0, "--seed", help="Seed of every trial's run and the samplers."),
    heartbeat: int = typer.Option(
        10, "--heartbeat", help="Seconds between heartbeats; silent 2x this = dead, retried."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    plot: str | None = typer.Option(None, "--plot", help="Save the metric-vs-LR plot here."),
    start: str | None = typer.Option(
        None,
        "--start",
        help="Comma-separated LRs to try first: 3e-3,1e-3 (each once per study). Default: the "
        "range test's suggestion when the search runs one (no --lr-min/--lr-max).",
    ),
    from_history: bool = typer.Option(
        False, "--from-history", help="Try the history's recommended LR first (if it has one)."
    ),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Search the peak LR of a task file on Optuna (resumable; many workers share a study)."""
    from . import _search
    from ._search._show import print_search
    from .task import load_task_file

    _checked_plot_path(plot)
    space = _lr_bounds(lr_min, lr_max)
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    try:
        with _warnings_as_lines(), quiet, _reported(show_traceback, task_file):
            task = load_task_file(task_file)
            starts = _start_lrs(start, task, from_history)
            result = _search.search(
                task,
                method,
                trials,
                storage,
                study,
                space=space,
                prune=prune,
                seed=seed,
                heartbeat=heartbeat,
                progress=not json_out,
                start=starts,
            )
    except KeyboardInterrupt:
        typer.echo(_INTERRUPTED_SEARCH, err=True)
        raise typer.Exit(code=130) from None
    plot_error = ""
    if plot:
        try:
            result.plot(plot)
        except (LRPilotError, OSError, ValueError) as exc:
            if show_traceback:
                raise
            plot_error = f"could not save the plot to {plot!r}: {exc}"
    if json_out:
        _echo_json(result.to_dict())
    else:
        print_search(result, None if plot_error else plot)
    if plot_error:
        _fail(plot_error)


def _lr_bounds(lr_min: float | None, lr_max: float | None) -> tuple[float, float] | None:
    """``--lr-min``/``--lr-max`` as the search's LR space (``None``: a range test sets it),
    checked here so that an error names the flags, not the library's ``space``."""
    if (lr_min is None) != (lr_max is None):
        _fail("give both --lr-min and --lr-max, or neither (then a range test sets them).")
    if lr_min is None or lr_max is None:
        return None
    with _reported(False):
        low = check.real("--lr-min", lr_min, 0.0, open_low=True, open_high=True)
        high = check.real("--lr-max", lr_max, 0.0, open_low=True, open_high=True)
    if not low < high:
        _fail(f"--lr-min must be below --lr-max, got --lr-min {low:g} and --lr-max {high:g}.")
    return (low, high)


def _start_lrs(text: str | None, task: Any, from_history: bool) -> list[float] | None:
    """``--start``'s LRs, then (``--from-history``) the history's recommendation for ``task``;
    says on stderr what the history answered."""
    starts: list[float] = []
    if text:
        try:
            starts = [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            _fail(f"--start {text!r}: give comma-separated LRs, e.g. 3e-3,1e-3.")
        _positive_lrs("--start", starts)
    if from_history:
        from .history import recommend

        answer = recommend(task)
        if answer.lr is None:
            typer.echo(f"--from-history: no recommendation ({answer.reason})", err=True)
        else:
            typer.echo(
                f"--from-history: trying lr {answer.lr:.3g} first ({answer.reason})", err=True
            )
            starts.append(float(f"{answer.lr:.6g}"))
    return starts or None


def _positive_lrs(flag: str, values: list[float]) -> None:
    """Exit 2, naming ``flag``, unless every LR in ``values`` is positive and finite."""
    with _reported(False):
        for value in values:
            check.real(flag, value, 0.0, open_low=True, open_high=True)


@app.command("impact")
def impact_cmd(
    task_file: str = typer.Argument(..., help="A Python file defining task() -> lrpilot.Task."),
    lrs: str = typer.Option(..., "--lrs", help="Comma-separated peak LRs: 1e-4,1e-3,1e-2."),
    steps: int | None = typer.Option(None, "--steps", help="Each run's length (default: task's)."),
    seed: int = typer.Option(0, "--seed", help="Every run's seed."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    show_traceback: bool = _traceback_option(),
) -> None:
    """Train a task file at each LR and tabulate time, losses, metric, gap and divergence."""
    from ._search import impact
    from ._search._show import print_impact
    from .task import load_task_file

    try:
        values = [float(x) for x in lrs.split(",") if x.strip()]
    except ValueError:
        _fail(f"--lrs {lrs!r}: give comma-separated numbers, e.g. 1e-4,1e-3,1e-2.")
    if not values:
        _fail(f"--lrs {lrs!r}: give at least one LR, e.g. 1e-4,1e-3,1e-2.")
    _positive_lrs("--lrs", values)
    values = list(dict.fromkeys(values))  # an LR given twice trains once: the run is the same
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    try:
        with _warnings_as_lines(), quiet, _reported(show_traceback, task_file):
            task = load_task_file(task_file)
            result = impact(task, values, steps=steps, seed=seed, progress=not json_out)
    except KeyboardInterrupt:
        typer.echo("interrupted: the impact table was stopped", err=True)
        raise typer.Exit(code=130) from None
    if json_out:
        _echo_json(result.to_dict())
    else:
        print_impact(result)


# --------------------------------------------------------------------------------------------
# lrpilot tune (its body lives in _cli_tune)
# --------------------------------------------------------------------------------------------

app.command("tune")(tune_command)
