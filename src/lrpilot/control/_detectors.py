"""The monitor's detectors: small state objects and pure functions over scripted sequences.

Each detector reads one stream (the training loss, the gradient norm, the validation metric)
and says whether something is wrong, with the numbers behind the verdict. None of them acts:
:class:`lrpilot.Monitor` turns verdicts into rollbacks, LR cuts, clipping and stops. Keeping
them apart means each can be tested on a scripted sequence (``tests/test_monitor_detectors.py``).

Conventions: the loss and the gradient norm are lower-is-better and may be non-finite; the
validation metric is higher-is-better (as :class:`lrpilot.Task`'s metric is). A non-finite
value never enters a running statistic.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .plateau import ReduceOnPlateau

__all__ = [
    "LossPlateau",
    "Spike",
    "SpikeDetector",
    "ZClip",
    "declining",
    "median_error",
    "oscillating",
    "overfitting",
    "plateaued",
    "relative_drop",
    "relative_rise",
    "too_slow",
]

MAD_TO_SIGMA = 1.4826
"""Scales a median absolute deviation to a standard deviation for Gaussian noise."""
STEADY_LR = 0.9
"""A block of steps holds its LR steady when its lowest LR is at least this share of its
highest (:class:`LossPlateau`)."""


def relative_rise(value: float, base: float) -> float:
    """How many times ``base`` a ``value`` is, read so that it means the same for a stream
    that can go negative (a continuous negative log-likelihood): ``1 + (value - base) / |base|``,
    which is ``value / base`` for a positive base. ``inf`` or ``-inf`` (or ``nan`` for equal
    values) at a base of 0."""
    if base == 0:
        return math.copysign(math.inf, value) if value else math.nan
    return 1.0 + (value - base) / abs(base)


def relative_drop(start: float, now: float) -> float:
    """The share of ``|start|`` by which ``now`` lies below ``start`` (negative when it rose):
    ``(start - now) / |start|``, the same for a loss below zero as above; ``nan`` at 0."""
    return (start - now) / abs(start) if start else math.nan


@dataclass(frozen=True)
class Spike:
    """A value far above its running median: ``ratio`` times it (:func:`relative_rise`), ``z``
    robust sigmas above."""

    value: float
    median: float
    ratio: float
    z: float

    def describe(self, what: str) -> str:
        """``what`` and how far above its median (its first value in the warmup) it was."""
        against = "its running median" if math.isfinite(self.z) else "its first value"
        if self.median > 0:
            return f"{what} {self.ratio:.3g}x {against} ({self.value:.4g} vs {self.median:.4g})"
        return f"{what} {self.value:.4g}, {self.value - self.median:.3g} above {against} " + (
            f"{self.median:.4g}"
        )


@dataclass
class SpikeDetector:
    """A value far above the running median of the last ``window`` values (median/MAD).

    A value is a spike when it is more than ``z`` robust standard deviations
    (``1.4826 * MAD``) above the median **and** more than ``ratio`` times the median, once
    ``warmup`` values have been seen. Spikes and non-finite values do not enter the window, so
    a run of bad steps does not teach the detector that bad is normal. Works for a positive
    stream (a loss, a gradient norm) and for one that goes below zero: "``ratio`` times" is
    read as a rise of ``ratio - 1`` times the median's magnitude (:func:`relative_rise`).
    During warmup, a value above ``early_ratio`` times the first one is a spike (a blow-up in
    the first steps; ``z`` is then ``inf``). With
    ``min_excess``, the value must also exceed the median by that fraction of the first value:
    near convergence a loss of 0.01 whose batches swing to 0.04 is noise at the scale of the
    run (it started at 2.3), not a spike worth a rollback.
    """

    window: int = 50
    warmup: int = 10
    z: float = 6.0
    ratio: float = 1.5
    early_ratio: float = math.inf
    min_excess: float = 0.0
    values: deque[float] = field(default_factory=deque)
    first: float = math.nan
    ordered: list[float] = field(default_factory=list, repr=False)
    """The window's values in sorted order, kept alongside ``values``: the median is read at
    every step, and keeping the order costs two ``bisect`` moves instead of a sort."""

    def __post_init__(self) -> None:
        self.values = deque(self.values, maxlen=self.window)
        self.ordered = sorted(self.values)

    def median(self) -> float:
        """The running median (NaN before any value)."""
        n = len(self.ordered)
        if not n:
            return math.nan
        mid = n // 2
        return self.ordered[mid] if n % 2 else (self.ordered[mid - 1] + self.ordered[mid]) / 2

    def _push(self, value: float) -> None:
        if len(self.values) == self.window:
            old = self.values[0]
            del self.ordered[bisect.bisect_left(self.ordered, old)]
        self.values.append(value)
        bisect.insort(self.ordered, value)

    def update(self, value: float) -> Spike | None:
        """Feed one value; the :class:`Spike` it is, or ``None``."""
        if not math.isfinite(value):
            return None
        if math.isnan(self.first):
            self.first = value
        elif len(self.values) < self.warmup and self.first:
            early = relative_rise(value, self.first)
            if early > self.early_ratio:
                return Spike(value, self.first, early, math.inf)
        if len(self.values) >= self.warmup:
            median = self.median()
            ratio = relative_rise(value, median)
            if not ratio > self.ratio:  # cannot be a spike: spare the MAD (every step)
                self._push(value)
                return None
            mad = statistics.median([abs(v - median) for v in self.values])
            sigma = MAD_TO_SIGMA * mad + 1e-12 * max(abs(median), 1.0)
            z = (value - median) / sigma
            big = value - median > self.min_excess * abs(self.first)
            if z > self.z and ratio > self.ratio and big:
                return Spike(value, median, ratio, z)
        self._push(value)
        return None


@dataclass
class ZClip:
    """Adaptive gradient clipping from the norms observed (ZClip: z-score against an EMA).

    Keeps an exponential moving mean and variance of the gradient norm (factor ``alpha``).
    After ``warmup`` norms, the threshold is ``mean + z * std``; a norm above it is clipped to
    it, and the clipped value (not the raw one) updates the statistics, so one huge norm does
    not raise the threshold. ``mode="percentile"`` uses AutoClip's rule instead: the
    ``percentile``-th percentile of the norms seen so far (at most ``history`` of them).
    """

    mode: str = "zscore"
    alpha: float = 0.97
    z: float = 2.5
    percentile: float = 90.0
    warmup: int = 25
    history: int = 10_000
    mean: float = 0.0
    var: float = 0.0
    seen: int = 0
    clipped: int = 0
    norms: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.norms = deque(self.norms, maxlen=self.history)

    def threshold(self) -> float:
        """The clipping threshold now (``inf`` during warmup)."""
        if self.seen < self.warmup:
            return math.inf
        if self.mode == "percentile":
            ordered = sorted(self.norms)
            rank = (len(ordered) - 1) * self.percentile / 100.0
            low, high = math.floor(rank), math.ceil(rank)
            return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
        return self.mean + self.z * math.sqrt(max(self.var, 0.0))

    def update(self, norm: float) -> float:
        """Feed one finite norm; the norm to clip to (``inf``: leave the gradient alone)."""
        if not math.isfinite(norm):
            return math.inf
        limit = self.threshold()
        clip = norm > limit
        self.clipped += clip
        kept = limit if clip else norm
        if self.seen == 0:
            self.mean, self.var = kept, 0.0
        else:
            delta = kept - self.mean
            self.mean += (1 - self.alpha) * delta
            self.var = self.alpha * (self.var + (1 - self.alpha) * delta * delta)
        self.seen += 1
        self.norms.append(norm)
        return limit if clip else math.inf


@dataclass
class LossPlateau:
    """The training loss no longer improving while the LR holds steady: reduce-on-plateau on
    the training loss, for runs that are evaluated too rarely for the metric's plateau to show.

    The loss is read in blocks of ``block`` steps, each summed up by its median (robust to the
    odd outlier batch). A block improves when its median lies ``min_drop`` (relative) below the
    best block so far (torch's ``ReduceLROnPlateau`` with ``threshold_mode="rel"``). After
    ``patience`` blocks in a row that do not, :meth:`update` returns the last block's median: a
    plateau. Only blocks whose LR held steady (its lowest at least ``STEADY_LR`` of its
    highest) count against the patience: where the schedule moves the LR (a warmup, a decay),
    the schedule is already doing what a plateau cut would, and a block that is not steady
    starts the count again. ``first`` keeps the first block's median: whether the loss fell at
    all (a floor reached after a fall, not a loss that never moved) is the caller's judgement.
    """

    block: int
    patience: int
    min_drop: float = 0.005
    best: float = math.inf
    first: float = math.nan
    bad: int = 0
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)

    def update(self, loss: float, lr: float) -> float | None:
        """Feed one healthy step; the block's median at a plateau, else ``None``."""
        self.losses.append(loss)
        self.lrs.append(lr)
        if len(self.losses) < self.block:
            return None
        median = statistics.median(self.losses)
        if math.isnan(self.first):
            self.first = median
        steady = min(self.lrs) >= STEADY_LR * max(self.lrs)
        self.losses, self.lrs = [], []
        if not steady or ReduceOnPlateau(threshold=self.min_drop).is_better(median, self.best):
            self.best, self.bad = min(self.best, median), 0
            return None
        self.bad += 1
        if self.bad < self.patience:
            return None
        self.bad = 0
        return median


def median_error(values: Sequence[float]) -> float:
    """The standard error of the median of ``values`` (batch losses): ``sqrt(pi / 2n)`` times
    their spread, ``MAD_TO_SIGMA`` times their median absolute deviation (robust to the odd
    outlier batch, as :class:`SpikeDetector`'s sigma is)."""
    level = statistics.median(values)
    spread = MAD_TO_SIGMA * statistics.median(abs(v - level) for v in values)
    return spread * math.sqrt(math.pi / (2 * len(values)))


def oscillating(
    values: Sequence[float], *, min_flips: float = 0.9, min_swing: float = 0.1, scale: float = 0.0
) -> bool:
    """Whether ``values`` oscillate without progress: a sustained up-down pattern.

    True when, over the whole sequence: at least ``min_flips`` of the consecutive differences
    change sign (a period-2 swing flips every time; independent noise flips about 2/3 of the
    time), the mean absolute step is at least ``min_swing`` of the median level, and the
    second half's median is not below the first half's (no progress). ``scale`` floors the
    level the swing is judged against (the run's own loss scale): a converged loss near zero
    swinging by its own size is not an oscillation worth an LR cut.
    """
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 6 or len(finite) < len(values):
        return False
    diffs = [b - a for a, b in zip(finite, finite[1:], strict=False)]
    flips = sum(1 for a, b in zip(diffs, diffs[1:], strict=False) if a * b < 0)
    level = statistics.median(finite)
    swing = statistics.fmean(abs(d) for d in diffs)
    half = len(finite) // 2
    no_progress = statistics.median(finite[half:]) >= statistics.median(finite[:half])
    return (
        flips >= min_flips * (len(diffs) - 1)
        and swing >= min_swing * max(abs(level), scale)
        and no_progress
    )


def declining(values: Sequence[float], *, min_drop: float = 0.0025, t: float = 2.0) -> bool:
    """Whether ``values`` (a loss, lower is better) are still falling: the mean of the second
    half is below the first half's by more than ``t`` standard errors (Welch's statistic) and
    by at least ``min_drop`` of the first half's level.

    Tells a run that learns slowly (an LR too low, or a slow start) from one that is stuck:
    a flat, noisy loss passes the first test about 2 % of the time (a one-sided ``t = 2``), and
    a knocked-out network creeping down by a few thousandths does not pass the second.
    """
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 8:
        return False
    half = len(finite) // 2
    a, b = finite[:half], finite[half:]
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    error = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    drop = mean_a - mean_b
    return drop > t * error and drop >= min_drop * abs(mean_a)


def plateaued(values: Sequence[float], *, patience: int, min_delta: float = 0.0) -> bool:
    """Whether the last ``patience`` values (higher is better) failed to beat the best before
    them by more than ``min_delta``. Non-finite values never count as an improvement."""
    if len(values) <= patience:
        return False
    before = [v for v in values[:-patience] if math.isfinite(v)]
    if not before:
        return False
    recent = [v for v in values[-patience:] if math.isfinite(v)]
    return not any(v > max(before) + min_delta for v in recent)


def overfitting(
    val: Sequence[float], train_loss: Sequence[float], *, patience: int, min_delta: float = 0.0
) -> bool:
    """Validation worsening while training improves, at the last ``patience`` evaluations.

    ``val`` is the validation metric (higher is better) and ``train_loss`` the training loss
    (lower is better) at the same evaluations. True when each of the last ``patience``
    metrics is below the one before it and below the best earlier metric by more than
    ``min_delta``, while the training loss at the last evaluation is below its value at that
    best one (the playbook's "problematic overfitting": the validation error rises).
    """
    if len(val) != len(train_loss):
        raise ValueError(f"val and train_loss differ in length: {len(val)} != {len(train_loss)}")
    if len(val) <= patience or not all(math.isfinite(v) for v in val[-patience - 1 :]):
        return False
    head = val[:-patience]
    best_at = max(range(len(head)), key=lambda i: head[i] if math.isfinite(head[i]) else -1e300)
    recent = val[-patience - 1 :]
    worsening = all(b < a for a, b in zip(recent, recent[1:], strict=False))
    below_best = all(v < head[best_at] - min_delta for v in val[-patience:])
    training_improved = train_loss[-1] < train_loss[best_at]
    return worsening and below_best and training_improved


def too_slow(values: Sequence[float], *, window: int, min_drop: float = 0.02) -> float | None:
    """The relative drop of the loss (:func:`relative_drop`) from the median of the first
    ``window`` values to that of the last ``window``, when it is below ``min_drop`` (progress
    so slow that the LR is likely too low); else ``None``. Needs at least ``2 * window``
    finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2 * window:
        return None
    first = statistics.median(finite[:window])
    last = statistics.median(finite[-window:])
    if first == 0:
        return None
    drop = relative_drop(first, last)
    return drop if drop < min_drop else None
