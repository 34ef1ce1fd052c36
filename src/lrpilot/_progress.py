"""The progress display of long work (a sweep, a run): a rich bar on stderr in a terminal
(stdout stays clean for ``--json`` and for the user's own output), one line rewritten in place
in a Jupyter notebook (where rich's live display asks for ipywidgets), or nothing (stderr is a
log or a pipe, where a live bar leaves only blank lines)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["progress_bar", "in_notebook"]

Update = Callable[[int, float, float], None]
"""``update(done, lr, loss)``: steps done so far, the current LR and loss."""


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half-imported: not a notebook we can tell
        return False
    return type(shell).__name__ == "ZMQInteractiveShell"


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Update]:
    """Show the progress of ``total`` steps of ``label``; yields ``update(done, lr, loss)``."""
    if not enabled:
        yield lambda done, lr, loss: None
        return
    if in_notebook():
        with _text_progress(label, total) as update:
            yield update
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lr {task.fields[lr]:.2e}  loss {task.fields[loss]:.4g}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True)
    if not console.is_terminal:  # a log or a pipe: a live bar would leave only a blank line
        yield lambda done, lr, loss: None
        return
    with Progress(*columns, console=console, transient=True) as bar:
        task_id = bar.add_task(label, total=total, lr=0.0, loss=float("nan"))
        yield lambda done, lr, loss: bar.update(task_id, completed=done, lr=lr, loss=loss)


@contextlib.contextmanager
def _text_progress(label: str, total: int) -> Iterator[Update]:
    """One line on stderr, rewritten in place (``\\r``), about fifty times in all."""
    every = max(1, total // 50)

    def update(done: int, lr: float, loss: float) -> None:
        if done % every == 0 or done == total:
            sys.stderr.write(f"\r{label} {done}/{total}  lr {lr:.2e}  loss {loss:.4g}   ")
            sys.stderr.flush()

    try:
        yield update
    finally:
        sys.stderr.write("\n")
        sys.stderr.flush()
