"""The ``lrpilot`` command line: thin wrappers over the library, one command per verb."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    name="lrpilot",
    help="Measured learning rates and schedules for PyTorch.",
    no_args_is_help=True,
    add_completion=False,
)


def _echo_json(payload: dict) -> None:
    typer.echo(json.dumps(payload))


@app.command()
def find(
    task_file: str = typer.Argument(..., help="A Python file defining task() -> lrpilot.Task."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    plot: str | None = typer.Option(None, "--plot", help="Save the loss-vs-LR plot here."),
    steps: int | None = typer.Option(None, help="Length of the real run (default: the task's)."),
    num_steps: int = typer.Option(100, help="Optimizer steps in the sweep."),
    start_lr: float = typer.Option(1e-7, help="Lowest LR of the sweep."),
    end_lr: float = typer.Option(10.0, help="Highest LR of the sweep."),
    rule: str = typer.Option("pilot", help="Suggestion rule: pilot, valley, minimum, steepest."),
) -> None:
    """Run the LR range test on a task file and suggest a peak LR."""
    from .errors import LRPilotError
    from .finder import find_lr_for_task
    from .task import load_task_file

    try:
        task = load_task_file(task_file)
        options = {"num_steps": num_steps, "start_lr": start_lr, "end_lr": end_lr, "rule": rule}
        if steps is not None:
            options["steps"] = steps
        result = find_lr_for_task(task, progress=not json_out, **options)
    except LRPilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if plot:
        result.plot(plot)
    if json_out:
        _echo_json(result.to_dict())
        return
    _print_result(result, plot)


def _print_result(result, plot: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="LR range test", show_header=True)
    table.add_column("rule")
    table.add_column("lr", justify="right")
    for name, lr in result.candidates.items():
        mark = " (suggested)" if name == result.rule else ""
        table.add_row(name + mark, f"{lr:.3g}")
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
    for note in result.warnings:
        console.print(f"[yellow]warning:[/] {note}")
    if plot:
        console.print(f"plot: {plot}")


@app.command()
def demo(
    out: str = typer.Option("lrpilot-demo", help="Folder for the plot and the JSON result."),
    train: bool = typer.Option(True, help="Train once at the suggestion and at 1e-3 to compare."),
) -> None:
    """The range test on MNIST-1D (built locally, no download), then a run at the suggestion."""
    from pathlib import Path

    from rich.console import Console

    from .demo import DEMO_STEPS, mnist1d_task, train_and_score
    from .finder import find_lr_for_task

    console = Console()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    console.print(
        f"[bold]lrpilot demo[/]: MNIST-1D, Conv1d net, Adam, cosine schedule, {DEMO_STEPS} steps"
    )
    task = mnist1d_task()
    result = find_lr_for_task(task)
    plot_path = folder / "range_test.png"
    result.plot(plot_path)
    (folder / "range_test.json").write_text(json.dumps(result.to_dict(), indent=1))
    _print_result(result, str(plot_path))
    if train:
        with console.status("training at the suggestion and at the 1e-3 default ..."):
            ours = train_and_score(task, result.lr)
            default = train_and_score(task, 1e-3)
        console.print(
            f"test accuracy after {DEMO_STEPS} steps: lrpilot {result.lr:.3g} -> {ours:.1%};"
            f" the usual 1e-3 -> {default:.1%}"
        )
    console.print(
        "next: in your own loop, [bold]lrpilot.find_lr(model, optimizer, loader, loss_fn, "
        "steps=N)[/]; or write a task file (see examples/) and run [bold]lrpilot find TASK.py[/]."
    )


@app.command("schedule")
def schedule_cmd(
    spec: str = typer.Argument(..., help='Schedule spec, e.g. "warmup(0.05)+cosine(min=0.01)".'),
    steps: int = typer.Option(..., "--steps", min=1, help="Steps in the run (for fractions)."),
    lr: float | None = typer.Option(None, "--lr", help="Peak LR (default 1.0: the multiplier)."),
    json_out: bool = typer.Option(False, "--json", help='Print only {"lr": [...]} on stdout.'),
    plot: str | None = typer.Option(None, "--plot", help="Save a plot of the schedule here."),
    log: bool = typer.Option(False, "--log", help="Logarithmic y axis in the plot."),
) -> None:
    """Show the learning rate at steps 0..N-1 of a schedule spec (table, JSON or plot)."""
    from . import schedules
    from .errors import LRPilotError

    peak = 1.0 if lr is None else lr
    try:
        sched = schedules.parse_schedule(spec, total_steps=steps)
        lrs = schedules.values(sched, steps, peak=peak)
        if plot:
            schedules.plot(sched, steps, plot, peak=peak, title=spec, log=log)
    except (LRPilotError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if json_out:
        typer.echo(json.dumps({"lr": lrs}))
        return
    _print_schedule(sched, lrs, plot)


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
