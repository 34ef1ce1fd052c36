"""The range-test plots, drawn from a result's *data*: an :class:`~lrpilot.LRFinderResult`, its
``to_dict()``, or that dict read back from JSON. Nothing here reaches back into training or
recomputes what the result already stores.

Drawn with matplotlib's object API (:class:`matplotlib.figure.Figure`), never ``pyplot``: the
figure is not registered with pyplot, so a notebook's backend is left as it was, the figure is
shown once (as the cell's value) and nothing stays open when saving fails.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._validate import is_count, is_real
from ..errors import ConfigError
from ._save import check_plot_path, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["RangeTestData", "plot_range_test", "plot_range_tests", "range_test_data"]

_RULE_MARKERS = {"steepest": "v", "valley": "s", "minimum": "D", "pilot": "o"}
_REQUIRED = ("lr", "lrs", "losses")


@dataclass(frozen=True)
class RangeTestData:
    """What the plots read from a result, checked: ``losses`` as long as ``lrs``;
    ``smooth_losses`` at most as long (it is drawn at the first ``len(smooth_losses)`` LRs)."""

    lr: float
    lrs: list[float]
    losses: list[float]
    smooth_losses: list[float]
    band: tuple[float, float] | None
    bounds: tuple[float, float] | None
    candidates: dict[str, float]
    rule: str | None
    steps: int | None
    loss_source: str = "train"


def range_test_data(result: Any) -> RangeTestData:
    """The plotted fields of ``result`` (an :class:`~lrpilot.LRFinderResult` or its
    ``to_dict()``), checked; a :class:`~lrpilot.errors.ConfigError` names what is missing or
    malformed. Keys the plots do not read (``"version"``, ...) are ignored.

    ``smooth_losses`` is taken as stored; only a dict written before results stored it gets
    the smooth computed here, from its ``lrs`` and ``losses``.
    """
    data = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"A range-test result must be an LRFinderResult or its to_dict() (a dict), "
            f"got {type(data).__name__}."
        )
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ConfigError(
            "Not a range-test result: missing key(s) "
            + ", ".join(repr(k) for k in missing)
            + " (expected the JSON of `lrpilot find --json` or LRFinderResult.to_dict())."
        )
    lrs = _numbers("lrs", data["lrs"], positive=True)
    losses = _numbers("losses", data["losses"])
    if len(losses) != len(lrs):
        raise ConfigError(
            f"'lrs' and 'losses' differ in length ({len(lrs)} and {len(losses)} values)."
        )
    if not lrs:
        raise ConfigError("'lrs' is empty: the result holds no sweep to plot.")
    lr = _number("lr", data["lr"], positive=True)
    stored = data.get("smooth_losses")
    if stored:
        smooth = _numbers("smooth_losses", stored)
        if len(smooth) > len(lrs):  # shorter is fine: the smooth stops at a non-finite loss
            raise ConfigError(f"'smooth_losses' has {len(smooth)} values for {len(lrs)} LRs.")
    else:
        smooth = _smooth_of(lrs, losses)
    candidates = data.get("candidates") or {}
    if not isinstance(candidates, Mapping):
        raise ConfigError(f"'candidates' must map rule names to LRs, got {candidates!r}.")
    rule = data.get("rule")
    steps = data.get("steps")
    return RangeTestData(
        lr=lr,
        lrs=lrs,
        losses=losses,
        smooth_losses=smooth,
        band=_pair("band", data.get("band")),
        bounds=_pair("bounds", data.get("bounds")),
        candidates={
            str(name): _number(f"candidates[{name!r}]", value, positive=True)
            for name, value in candidates.items()
        },
        rule=rule if isinstance(rule, str) else None,
        steps=int(steps) if steps is not None and is_count(steps) else None,
        loss_source="val" if data.get("loss_source") == "val" else "train",
    )


def plot_range_test(
    result: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Loss against LR (log axis): the raw points, the stored lag-free smooth, the suggestion
    with its band, Smith's bounds and every other rule's pick.

    Args:
        result: an :class:`~lrpilot.LRFinderResult`, or its ``to_dict()`` (read back from
            JSON too).
        path: save the figure here; the format comes from the suffix, which must be one
            matplotlib writes. Checked before anything is drawn.
        title: the axes title (default: the suggestion and the run length it is for).
        ax: draw on these axes instead of a new figure.

    Returns:
        The :class:`matplotlib.figure.Figure` drawn on (not registered with pyplot: in a
        notebook it shows once, as the cell's value).

    Raises:
        ConfigError: ``result`` lacks the curve, or ``path`` cannot be written (no suffix, an
            unknown format, a missing or read-only folder).
    """
    curve = range_test_data(result)
    _check_target(path)
    axes = ax if ax is not None else _new_axes()
    axes.plot(curve.lrs, curve.losses, ".", color="0.65", ms=3, label="loss (raw)")
    axes.plot(_smooth_lrs(curve), curve.smooth_losses, color="C0", lw=1.8, label="loss (smoothed)")
    if curve.band is not None:
        lo, hi = curve.band
        axes.axvspan(lo, hi, color="C2", alpha=0.18, label=f"band {lo:.2g}–{hi:.2g}")
    rule = f" ({curve.rule})" if curve.rule else ""
    axes.axvline(curve.lr, color="C2", lw=2, label=f"suggestion {curve.lr:.3g}{rule}")
    for name, lr in curve.candidates.items():
        if name != curve.rule:
            axes.plot(
                [lr],
                [_value_at(curve, lr)],
                _RULE_MARKERS.get(name, "o"),
                color="C3",
                ms=6,
                label=f"{name} {lr:.2g}",
            )
    if curve.bounds is not None:
        base, top = curve.bounds
        axes.axvline(base, color="0.4", ls=":", lw=1)
        axes.axvline(top, color="0.4", ls=":", lw=1, label=f"bounds {base:.2g}–{top:.2g}")
    _style(axes, [curve])
    runs = f" for a {curve.steps}-step run" if curve.steps else ""
    axes.set_title(title or f"LR range test: suggest {curve.lr:.3g}{runs}")
    axes.legend(fontsize=7, loc="lower left")
    return _finish(axes, path)


def plot_range_tests(
    results: Sequence[Any],
    path: str | os.PathLike[str] | None = None,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Several sweeps on one axis: each one's raw points, smoothed loss and suggestion in
    its own colour (to compare seeds, batch sizes, optimizers or recipes).

    Args:
        results: :class:`~lrpilot.LRFinderResult` objects or their ``to_dict()``.
        path: save the figure here (see :func:`plot_range_test`).
        labels: one legend label per result (default ``run 1``, ``run 2``, ...).
        title: the axes title.
        ax: draw on these axes instead of a new figure.

    Returns:
        The :class:`matplotlib.figure.Figure` drawn on.
    """
    if isinstance(results, (str, bytes, Mapping)) or not isinstance(results, Sequence):
        raise ConfigError(
            f"results must be a list of results, got {type(results).__name__}; "
            "plot_range_test draws a single one."
        )
    if not results:
        raise ConfigError("results is empty: give at least one range-test result.")
    curves = [range_test_data(r) for r in results]
    names = [f"run {i + 1}" for i in range(len(curves))] if labels is None else list(labels)
    if len(names) != len(curves):
        raise ConfigError(f"{len(names)} labels for {len(curves)} results.")
    _check_target(path)
    axes = ax if ax is not None else _new_axes()
    for i, (curve, name) in enumerate(zip(curves, names, strict=True)):
        color = f"C{i % 10}"
        axes.plot(curve.lrs, curve.losses, ".", color=color, alpha=0.35, ms=2.5)
        axes.plot(
            _smooth_lrs(curve),
            curve.smooth_losses,
            color=color,
            lw=1.7,
            label=f"{name}: suggest {curve.lr:.3g}",
        )
        axes.axvline(curve.lr, color=color, ls="--", lw=1.2)
    _style(axes, curves)
    axes.set_title(title or f"LR range tests ({len(curves)} sweeps)")
    axes.legend(fontsize=7, loc="lower left")
    return _finish(axes, path)


def _check_target(path: Any) -> None:
    if path is not None and not hasattr(path, "write"):
        check_plot_path(path)


def _new_axes() -> Axes:
    from matplotlib.figure import Figure

    return Figure(figsize=(7, 4.2), dpi=110, layout="constrained").subplots()


def _finish(axes: Axes, path: Any) -> Figure:
    fig = axes.get_figure()
    assert fig is not None
    if path is not None:
        save_figure(fig, path)  # type: ignore[arg-type]
    return fig  # type: ignore[return-value]


def _style(axes: Axes, curves: list[RangeTestData]) -> None:
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    sources = {c.loss_source for c in curves}
    axes.set_ylabel("validation loss" if sources == {"val"} else "loss")
    axes.grid(True, which="both", alpha=0.25)
    finite = [[v for v in c.losses if math.isfinite(v)] for c in curves]
    finite = [f for f in finite if f]
    if finite:
        low = min(min(f) for f in finite)
        start = max(f[0] for f in finite)
        span = max(start - low, 1e-12)  # keep the divergence tail from squashing the rest
        axes.set_ylim(low - 0.1 * span, max(start, low) + 0.6 * span)


def _smooth_lrs(curve: RangeTestData) -> list[float]:
    return curve.lrs[: len(curve.smooth_losses)]


def _value_at(curve: RangeTestData, lr: float) -> float:
    """The smoothed loss (the raw one past the smooth's end) at the sweep step nearest to
    ``lr`` in log distance."""
    i = min(range(len(curve.lrs)), key=lambda k: abs(math.log(curve.lrs[k] / lr)))
    return curve.smooth_losses[i] if i < len(curve.smooth_losses) else curve.losses[i]


def _smooth_of(lrs: list[float], losses: list[float]) -> list[float]:
    """The lag-free smooth, for a result saved before results stored it."""
    from ..suggest import smooth

    try:
        return [float(v) for v in smooth(lrs, losses)]
    except ValueError:  # too short or too broken a curve to smooth: draw the raw one
        return list(losses)


def _number(key: str, value: Any, *, positive: bool = False) -> float:
    if not is_real(value) or (positive and not (math.isfinite(value) and value > 0)):
        must = "a positive finite number" if positive else "a number"
        raise ConfigError(f"{key!r} must be {must}, got {value!r}.")
    return float(value)


def _numbers(key: str, values: Any, *, positive: bool = False) -> list[float]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise ConfigError(f"{key!r} must be a list of numbers, got {type(values).__name__}.")
    bad = [v for v in values if not is_real(v)]
    if positive:
        bad += [v for v in values if is_real(v) and not (math.isfinite(v) and v > 0)]
    if bad:
        must = "positive finite numbers" if positive else "numbers"
        raise ConfigError(f"{key!r} must hold only {must}; it holds {bad[0]!r}.")
    return [float(v) for v in values]


def _pair(key: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if (
        isinstance(value, (str, bytes, Mapping))
        or not isinstance(value, Sequence)
        or len(value) != 2
    ):
        raise ConfigError(f"{key!r} must be a pair of LRs [low, high], got {value!r}.")
    low, high = value
    return _number(f"{key}[0]", low, positive=True), _number(f"{key}[1]", high, positive=True)
