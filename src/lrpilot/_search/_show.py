"""The rich tables of a search and of an impact table, for the command line."""

from __future__ import annotations

import math
from typing import Any

from ._result import ImpactResult, SearchResult

__all__ = ["print_search", "print_impact"]


def print_search(result: SearchResult, plot: str | None = None) -> None:
    """The trials (LR, metric, state, steps) and the best, on stdout."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result.method} search · study {escape(result.study)}")
    for name, justify in (
        ("#", "right"),
        ("lr", "right"),
        ("metric", "right"),
        ("state", "left"),
        ("steps", "right"),
        ("note", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in result.trials:
        best = t.state == "COMPLETE" and t.lr == result.lr and t.metric == result.metric
        state = "diverged" if t.diverged else t.state.lower()
        extra = {k: v for k, v in t.params.items() if k != "lr"}
        note = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()
        )
        if t.state != "COMPLETE" and t.reason:
            note = "; ".join(x for x in (note, t.reason) if x)
        table.add_row(
            str(t.number),
            "-" if t.lr is None else f"{t.lr:.3g}",
            "-" if t.metric is None else f"{t.metric:.5g}",
            ("[bold green]best[/] " if best else "") + state,
            str(t.steps),
            escape(note),
        )
    console.print(table)
    c = result.counts()
    console.print(
        f"[bold green]best lr {result.lr:.3g}[/] → metric {result.metric:.5g}   "
        f"({c['COMPLETE']} complete, {c['PRUNED']} pruned of which {c['diverged']} diverged, "
        f"{c['FAIL']} failed; {result.steps} optimizer steps)"
    )
    if result.range_test_lr is not None:
        low, high = result.space["lr"]
        console.print(
            f"range test ({result.range_test_steps} steps): suggested "
            f"{result.range_test_lr:.3g}{_first_note(result)}; LR space {low:.3g} to {high:.3g}",
            highlight=False,
        )
    console.print(f"storage: {escape(result.storage)}", highlight=False)
    if plot:
        console.print(f"plot: {escape(plot)}", highlight=False)


def _first_note(result: SearchResult) -> str:
    """What became of the range test's pick: ``", tried first"`` when the first trial tried it
    (clipped into the LR space, as the search queues it), else the LR the first trial tried
    (start LRs replace the pick, which then is not queued at all). Nothing for a grid, which
    tries its own points."""
    if result.method == "grid" or result.range_test_lr is None:
        return ""
    first = next((t.lr for t in sorted(result.trials, key=lambda t: t.number)), None)
    low, high = result.space["lr"]
    pick = min(max(result.range_test_lr, low), high)
    if first is not None and math.isclose(first, pick, rel_tol=1e-9):
        return ", tried first"
    if first is None:
        return ", not tried"
    return f", not tried (the first trial tried lr {first:.3g})"


def print_impact(result: ImpactResult) -> None:
    """One row per LR: time, final training loss, validation loss and metric, gap, diverged."""
    from rich.console import Console
    from rich.table import Table

    by = result.best_by
    caption = {
        "metric": "* the best validation metric",
        "training loss": "* the lowest final training loss (no validation metric)",
    }.get(by or "", None)
    table = Table(title="LR impact", caption=caption)
    for name in (
        "lr",
        "time (s)",
        "train loss",
        "val loss",
        "gap (val - train)",
        "val metric",
        "diverged",
    ):
        table.add_column(name, justify="right")
    best = result.best
    for row in result.rows:
        mark = "[bold green]*[/] " if best is not None and row is best else ""
        table.add_row(
            mark + f"{row.lr:.3g}",
            f"{row.seconds:.2f}",
            _num(row.train_loss),
            _num(row.val_loss),
            _num(row.gap),
            _num(row.metric),
            "[red]yes[/]" if row.diverged else "no",
        )
    Console().print(table)


def _num(value: Any) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"
