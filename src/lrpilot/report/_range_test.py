"""Plots of what lrpilot measured. Reads results; never reaches back into training."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..finder import LRFinderResult

__all__ = ["plot_range_test"]

_RULE_STYLES = {"steepest": "v", "valley": "s", "minimum": "D"}


def plot_range_test(
    result: LRFinderResult, path: str | Path | None = None, *, title: str | None = None
) -> Any:
    """Loss against LR (log axis): raw points, the zero-lag smooth, the suggestion with its
    uncertainty band, Smith's bounds and every other rule's pick. Returns the Figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..suggest import smooth

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(result.lrs, result.losses, ".", color="0.65", ms=3, label="loss (raw)")
    ax.plot(
        result.lrs, smooth(result.lrs, result.losses), color="C0", lw=1.8, label="loss (smoothed)"
    )
    lo, hi = result.band
    ax.axvspan(lo, hi, color="C2", alpha=0.18, label=f"band {lo:.2g}–{hi:.2g}")
    ax.axvline(result.lr, color="C2", lw=2, label=f"suggestion {result.lr:.3g} ({result.rule})")
    for name, lr in result.candidates.items():
        if name != result.rule:
            y = _loss_at(result, lr)
            ax.plot(
                [lr], [y], _RULE_STYLES.get(name, "o"), color="C3", ms=6, label=f"{name} {lr:.2g}"
            )
    base, top = result.bounds
    ax.axvline(base, color="0.4", ls=":", lw=1)
    ax.axvline(top, color="0.4", ls=":", lw=1, label=f"bounds {base:.2g}–{top:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    _clip_y(ax, result.losses)
    runs = f" for a {result.steps}-step run" if result.steps else ""
    ax.set_title(title or f"LR range test: suggest {result.lr:.3g}{runs}")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
        plt.close(fig)
    return fig


def _loss_at(result: LRFinderResult, lr: float) -> float:
    """The raw loss recorded nearest to ``lr`` (in log distance)."""
    import math

    i = min(range(len(result.lrs)), key=lambda k: abs(math.log(result.lrs[k] / lr)))
    return result.losses[i]


def _clip_y(ax: Any, losses: list[float]) -> None:
    """Keep the divergence tail from squashing the interesting part of the curve."""
    low, start = min(losses), losses[0]
    span = max(start - low, 1e-12)
    ax.set_ylim(low - 0.1 * span, max(start, low) + 0.6 * span)
