"""The plot of a schedule: learning rate against optimizer step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._save import check_plot_path, save_figure

__all__ = ["plot_schedule"]


def plot_schedule(
    lrs: Sequence[float],
    path: str | Path | None = None,
    *,
    peak: float = 1.0,
    title: str | None = None,
    log: bool = False,
    ax: Any = None,
    dpi: int = 100,
) -> Any:
    """Plot the LR of every step (``lrs[t]`` at step ``t``); save it to ``path`` when given.

    Uses matplotlib's object API (no pyplot, no display needed, a notebook's backend left
    alone).

    Args:
        lrs: The learning rate (or multiplier) at each step, from step 0.
        path: File to save the figure to; the format comes from the suffix, which must be one
            matplotlib writes. Checked before anything is drawn (a
            :class:`~lrpilot.errors.ConfigError` names the path and says why).
        peak: The peak LR the values were drawn for; 1.0 labels the y axis as the multiplier.
        title: Axes title.
        log: Logarithmic y axis.
        ax: Draw on these axes instead of a new figure (``path`` then saves their figure).
        dpi: Resolution of the saved file.

    Returns:
        The figure drawn on.
    """
    if path is not None and not hasattr(path, "write"):
        check_plot_path(path)
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(5.0, 3.0), layout="constrained").subplots()
    ax.plot(range(len(lrs)), list(lrs), linewidth=1.6)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate" if peak != 1.0 else "multiplier of peak LR")
    ax.set_yscale("log" if log else "linear")
    if not log:
        ax.set_ylim(bottom=0.0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig = ax.get_figure()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
