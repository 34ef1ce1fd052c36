"""Plots of one training run, drawn from :meth:`RunResult.to_dict() <lrpilot.RunResult>` data:
the training loss and validation metric with the run's events marked, and the gradient norm
with the steps that were clipped."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["plot_grad_norms", "plot_race", "plot_run"]

EVENT_COLOURS = {"rollback": "C3", "lr": "C1", "stop": "k"}


def _figure(height: float = 3.4) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(7.0, height), dpi=100, layout="constrained")


def smooth(values: Sequence[float], window: int = 0) -> list[float]:
    """A centred running mean over ``window`` steps (by default about 2 % of the run, at least
    1), skipping non-finite values: the trend of a noisy per-step loss."""
    n = len(values)
    window = window or max(1, n // 50)
    out = []
    for i in range(n):
        part = [v for v in values[max(0, i - window) : i + window + 1] if math.isfinite(v)]
        out.append(sum(part) / len(part) if part else math.nan)
    return out


def plot_run(run: Mapping[str, Any], *, title: str | None = None) -> Any:
    """Training loss per step (raw and smoothed, left axis) and the validation metric at each
    evaluation (right axis), with a vertical line at every event of the run."""
    fig = _figure()
    ax = fig.subplots()
    losses = [float(v) for v in run.get("losses", [])]
    steps = list(range(1, len(losses) + 1))
    ax.plot(steps, losses, color="0.75", lw=0.8, label="training loss")
    ax.plot(steps, smooth(losses), color="C0", lw=1.6, label="training loss (smoothed)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    evals = [(int(s), float(m)) for s, m in run.get("evals", []) if math.isfinite(float(m))]
    if evals:
        right = ax.twinx()
        right.plot(*zip(*evals, strict=True), "o-", color="C2", ms=3, label="validation metric")
        right.set_ylabel("validation metric (higher is better)")
    for event in run.get("events", []):
        kind = str(event.get("kind", ""))
        ax.axvline(int(event.get("step", 0)), color=EVENT_COLOURS.get(kind, "C4"), ls="--", lw=1)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title or f"training run at lr {float(run.get('lr', math.nan)):.3g}")
    return fig


def plot_grad_norms(run: Mapping[str, Any], clip: float | None = None) -> Any:
    """The gradient norm before clipping at every step (log axis), with the clipping
    threshold when there was one."""
    fig = _figure(3.0)
    ax = fig.subplots()
    norms = [float(v) for v in run.get("grad_norms", [])]
    finite = [(i + 1, v) for i, v in enumerate(norms) if math.isfinite(v) and v > 0]
    if finite:
        ax.plot(*zip(*finite, strict=True), color="C0", lw=0.9, label="gradient norm")
        ax.set_yscale("log")
    if clip is not None:
        ax.axhline(clip, color="C3", ls="--", lw=1.2, label=f"clip at {clip:g}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("global gradient norm")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def plot_race(candidates: Sequence[Mapping[str, Any]]) -> Any:
    """Each race candidate's validation metric against its steps, the winner drawn thick; or,
    where the race ran without validation data (its candidates carry ``loss_curve``), each
    one's training loss."""
    fig = _figure(3.2)
    ax = fig.subplots()
    by_loss = any("loss_curve" in c for c in candidates)
    for c in candidates:
        points = c.get("loss_curve", []) if by_loss else c.get("evals", [])
        evals = [(int(s), float(m)) for s, m in points if math.isfinite(float(m))]
        if not evals:
            continue
        won = bool(c.get("winner"))
        ax.plot(
            *zip(*evals, strict=True),
            "o-",
            lw=2.4 if won else 1.0,
            ms=3,
            label=f"lr {float(c['lr']):.3g}" + (" (chosen)" if won else ""),
        )
    ax.set_xlabel("optimizer step of the race run")
    ax.set_ylabel(
        "training loss (lower is better)" if by_loss else "validation metric (higher is better)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
