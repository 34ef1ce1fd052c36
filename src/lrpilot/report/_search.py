"""The plot of a search: each trial's final metric against its LR (log axis), pruned and
diverged trials marked along the bottom, drawn from :meth:`SearchResult.to_dict` data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._save import check_plot_path, save_figure

__all__ = ["plot_search"]


def plot_search(
    result: Mapping[str, Any] | Any,
    path: str | Path | None = None,
    *,
    title: str | None = None,
    ax: Any = None,
    dpi: int = 100,
) -> Any:
    """Plot metric vs LR for every trial of a search; save it to ``path`` when given.

    Complete trials are dots (the best a star); pruned trials are triangles and diverged
    trials crosses, drawn at the bottom of the axes since they have no final metric.

    Args:
        result: A :class:`~lrpilot.SearchResult` or its ``to_dict()`` output.
        path: File to save to (format from the suffix; checked before drawing).
        title: Axes title (default: method and study).
        ax: Draw on these axes instead of a new figure.
        dpi: Resolution of the saved file.

    Returns:
        The figure drawn on.
    """
    data = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(data, Mapping) or "trials" not in data:
        raise ConfigError("plot_search needs a SearchResult or its to_dict() output.")
    if path is not None and not hasattr(path, "write"):
        check_plot_path(path)
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(5.5, 3.4), layout="constrained").subplots()
    groups = _groups(data["trials"])
    complete = groups["complete"]
    if complete:
        ax.plot(*zip(*complete, strict=True), "o", color="C0", label="complete")
    if data.get("lr") is not None and data.get("metric") is not None:
        ax.plot([data["lr"]], [data["metric"]], "*", color="C3", ms=14, label="best")
    floor = _floor(ax, complete)
    for key, marker, color in (("pruned", "v", "C1"), ("diverged", "x", "C3")):
        if groups[key]:
            ax.plot(groups[key], [floor] * len(groups[key]), marker, color=color, label=key)
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("validation metric (higher is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or f"{data.get('method', 'search')} search: {data.get('study', '')}")
    fig = ax.get_figure()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def _groups(trials: Any) -> dict[str, Any]:
    out: dict[str, list[Any]] = {"complete": [], "pruned": [], "diverged": []}
    for t in trials:
        lr = t.get("lr")
        if lr is None:
            continue
        metric = t.get("metric")
        if t.get("diverged"):
            out["diverged"].append(lr)
        elif t.get("state") == "COMPLETE" and metric is not None and math.isfinite(metric):
            out["complete"].append((lr, metric))
        elif t.get("state") == "PRUNED":
            out["pruned"].append(lr)
    return out


def _floor(ax: Any, complete: list[tuple[float, float]]) -> float:
    """Where trials without a final metric are drawn: just below the lowest complete one."""
    if not complete:
        return 0.0
    values = [m for _, m in complete]
    low, high = min(values), max(values)
    return low - 0.08 * ((high - low) or abs(low) or 1.0)
