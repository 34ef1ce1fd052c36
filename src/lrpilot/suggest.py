"""Suggestion rules: pure functions from a range-test curve ``(lrs, losses)`` to a learning rate.

Every rule has the signature ``rule(lrs, losses) -> lr`` (extra knobs are keyword-only), so
users can pass their own. The curve is read in log-LR, where an exponential sweep is evenly
spaced, and smoothed without lag: a causal EMA (what the peers read) moves the minimum 1.4–3x
to the right, towards the divergence cliff.

Rules:
    steepest: where the smoothed loss falls fastest per decade (torch-lr-finder, Lightning).
    valley: the middle of the longest descending stretch (after fastai's ``valley``).
    minimum: a tenth of the LR at the smoothed minimum (fastai's old ``minimum/10``).
    pilot: lrpilot's default; see :func:`pilot`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

__all__ = [
    "Rule",
    "Landmarks",
    "RULES",
    "smooth",
    "landmarks",
    "steepest",
    "valley",
    "minimum",
    "pilot",
    "PilotConstants",
    "DEFAULT_CONSTANTS",
    "pilot_band",
    "pilot_from_landmarks",
    "horizon_exponent",
    "horizon_factor",
    "overshoot",
    "bootstrap_band",
]

Rule = Callable[[Sequence[float], Sequence[float]], float]

MIN_POINTS = 8
"""Fewer usable points than this and no rule can tell a valley from noise."""


def _as_curve(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(log10 lr, loss)`` arrays, cut at the first non-finite loss."""
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(losses, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ConfigError(
            f"lrs and losses must be 1-D and the same length, got {x.shape=} {y.shape=}"
        )
    if np.any(~np.isfinite(x)) or np.any(x <= 0):
        raise ConfigError("lrs must be finite and positive.")
    if np.any(np.diff(x) <= 0):
        raise ConfigError("lrs must be strictly increasing.")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        x, y = x[: bad[0]], y[: bad[0]]
    if x.size < MIN_POINTS:
        raise ConfigError(
            f"Only {x.size} usable points on the curve; the rules need at least {MIN_POINTS}. "
            "Run the range test with more steps (num_steps) or a lower start_lr."
        )
    return np.log10(x), y


def smooth(
    lrs: Sequence[float], losses: Sequence[float], *, bandwidth: float | None = None
) -> np.ndarray:
    """The loss curve smoothed without lag, at the given LRs.

    A running median of 5 removes isolated spikes; then a local-linear Gaussian-kernel fit in
    log10(LR) averages the noise symmetrically (no shift to the right, unlike an EMA) and
    without bias at the ends of the curve.

    Args:
        bandwidth: kernel width in decades; by default the one of :data:`BANDWIDTHS` (at
            least two sample spacings) that generalized cross-validation prefers.
    """
    x, y = _as_curve(lrs, losses)
    return _smooth_xy(x, y, bandwidth)


def _smooth_xy(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    return _fit(x, y, bandwidth)[0]


def _fit(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> tuple[np.ndarray, float]:
    """The smoothed curve and its standard error.

    The standard error is the raw noise (robust sd of the residuals) over the square root of
    the kernel's effective number of points. Memoised on the curve's bytes: the finder asks
    every rule, the landmarks, the band and the plot's smooth about the same curve, and the
    fit (a running median, five kernel widths scored) is most of what each costs.
    """
    smoothed, stderr = _fit_bytes(x.tobytes(), y.tobytes(), bandwidth)
    return smoothed.copy(), stderr


@functools.lru_cache(maxsize=8)
def _fit_bytes(
    x_bytes: bytes, y_bytes: bytes, bandwidth: float | None
) -> tuple[np.ndarray, float]:
    x = np.frombuffer(x_bytes, dtype=float)
    y = np.frombuffer(y_bytes, dtype=float)
    filtered = _running_median(y, 5)
    h = bandwidth if bandwidth is not None else _choose_bandwidth(x, filtered)
    smoothed = _smoother_matrix(x.tobytes(), h) @ filtered
    noise = 1.4826 * float(np.median(np.abs(y - smoothed)))
    spacing = float(np.median(np.diff(x)))
    return smoothed, noise / math.sqrt(2.0 * math.sqrt(math.pi) * h / spacing)


BANDWIDTHS = (0.1, 0.15, 0.2, 0.3, 0.4)
"""Kernel widths (decades) that generalized cross-validation chooses among."""


def _choose_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """The kernel width, in decades, that minimises generalized cross-validation on the part
    of the curve below its starting loss (the divergence tail would reward following the
    blow-up). Noisy curves get wider kernels, clean ones keep their detail.

    No width narrower than two sample spacings is considered.
    """
    spacing = float(np.median(np.diff(x)))
    start = float(np.median(y[: max(3, len(y) // 20)]))
    keep = y <= start
    widths = [h for h in BANDWIDTHS if h >= 2.0 * spacing] or [2.0 * spacing]
    return min(widths, key=lambda h: _gcv(_smoother_matrix(x.tobytes(), h), y, keep))


def _gcv(smoother: np.ndarray, y: np.ndarray, keep: np.ndarray) -> float:
    """Generalized cross-validation score of a linear smoother on the points ``keep``."""
    residual = (y - smoother @ y)[keep]
    dof = float(smoother.diagonal()[keep].sum()) / max(int(keep.sum()), 1)
    return float(np.mean(residual**2)) / max(1.0 - dof, 1e-3) ** 2


@functools.lru_cache(maxsize=16)
def _smoother_matrix(x_bytes: bytes, h: float) -> np.ndarray:
    """The local-linear Gaussian-kernel smoother as a matrix ``S`` (smoothed = ``S @ y``).

    Row ``i`` holds the weights of the weighted least-squares line fitted around ``x_i``,
    evaluated at ``x_i``; where that fit is degenerate, the plain kernel average. Cached,
    since every rule (and every bootstrap draw) smooths over the same LRs.
    """
    x = np.frombuffer(x_bytes, dtype=float)
    d = x[None, :] - x[:, None]  # d[i, j] = x_j - x_i
    w = np.exp(-0.5 * (d / h) ** 2)
    s0, s1, s2 = w.sum(1), (w * d).sum(1), (w * d * d).sum(1)
    det = s0 * s2 - s1 * s1
    ok = det > 1e-12
    linear = w * (s2[:, None] - s1[:, None] * d) / np.where(ok, det, 1.0)[:, None]
    average = w / s0[:, None]
    return np.where(ok[:, None], linear, average)


def _running_median(y: np.ndarray, width: int) -> np.ndarray:
    half = width // 2
    padded = np.pad(y, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return np.median(windows, axis=1)


@dataclass(frozen=True)
class Landmarks:
    """What a reader of the range-test plot looks for, measured on the smoothed curve.

    Attributes:
        onset: the LR where the loss has made 10% of its total drop (training starts to bite).
        minimum: the LR at the smoothed minimum.
        edge: the first LR past the minimum where the loss has climbed back a quarter of
            the drop (the divergence cliff); ``None`` when the sweep never got there.
        floor: ``(low, high)``, the lowest and highest LR between the onset and the edge
            whose smoothed loss cannot be told from the minimum: within two standard errors
            of the smoothed curve (at least 3% of the drop, for curves with almost no
            noise). Its geometric centre moves less between seeds than the argmin of a flat
            or double-dipped floor. :func:`landmarks` takes the fraction of the drop as
            ``floor_fraction``; the default rule reads a wider floor
            (:attr:`PilotConstants.floor_fraction`).
        start_loss: the smoothed loss at the lowest LRs.
        min_loss: the smoothed minimum.
        stderr: the standard error of the smoothed curve.
    """

    onset: float
    minimum: float
    edge: float | None
    floor: tuple[float, float]
    start_loss: float
    min_loss: float
    stderr: float

    @property
    def floor_centre(self) -> float:
        """The geometric centre of the valley's floor."""
        return math.sqrt(self.floor[0] * self.floor[1])

    @property
    def signal_to_noise(self) -> float:
        """The drop from the start to the minimum in standard errors of the smoothed curve:
        pure noise shows 2 to 6, a clear valley tens to hundreds."""
        return (self.start_loss - self.min_loss) / max(self.stderr, 1e-12)


FLOOR_MIN_FRACTION = 0.03
"""The valley floor reaches at least this fraction of the drop above the minimum (the
default of :func:`landmarks`; the default rule's own is :attr:`PilotConstants.floor_fraction`)."""


def landmarks(
    lrs: Sequence[float], losses: Sequence[float], *, floor_fraction: float = FLOOR_MIN_FRACTION
) -> Landmarks:
    """The onset, minimum, floor and divergence edge of a range-test curve.

    Args:
        floor_fraction: the floor holds the LRs whose smoothed loss lies within this fraction
            of the drop above the minimum (or within two standard errors, if more).
    """
    x, y = _as_curve(lrs, losses)
    return _landmarks_xy(x, *_fit(x, y), floor_fraction=floor_fraction)


def _landmarks_xy(
    x: np.ndarray, s: np.ndarray, stderr: float, *, floor_fraction: float = FLOOR_MIN_FRACTION
) -> Landmarks:
    i_min = int(np.argmin(s))
    start = float(np.median(s[: max(3, len(s) // 20)]))
    drop = max(start - float(s[i_min]), 1e-12)
    fallen = np.flatnonzero(s[: i_min + 1] <= start - 0.1 * drop)
    i_onset = int(fallen[0]) if fallen.size else i_min
    risen = np.flatnonzero(s[i_min:] >= s[i_min] + 0.25 * drop)
    edge = None
    if risen.size:
        j = i_min + int(risen[0])
        edge = 10 ** _interpolate_crossing(x[j - 1], x[j], s[j - 1], s[j], s[i_min] + 0.25 * drop)
    level = s[i_min] + max(floor_fraction * drop, 2.0 * stderr)
    last = len(s) - 1 if edge is None else int(np.searchsorted(x, math.log10(edge)))
    near = np.flatnonzero(s[i_onset : last + 1] <= level) + i_onset
    lo, hi = int(near[0]), int(near[-1])
    return Landmarks(
        onset=float(10 ** x[i_onset]),
        minimum=float(10 ** x[i_min]),
        edge=None if edge is None else float(edge),
        floor=(float(10 ** x[lo]), float(10 ** x[hi])),
        start_loss=start,
        min_loss=float(s[i_min]),
        stderr=stderr,
    )


def _interpolate_crossing(x0: float, x1: float, y0: float, y1: float, level: float) -> float:
    if y1 == y0:
        return x1
    return x0 + (level - y0) * (x1 - x0) / (y1 - y0)


def steepest(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The LR where the smoothed loss falls fastest per decade, before the minimum.

    This is what torch-lr-finder and Lightning suggest (they take the slope against the raw
    LR, which lets noise at tiny LRs win; here the slope is per decade).
    """
    x, y = _as_curve(lrs, losses)
    s = _smooth_xy(x, y)
    i_min = max(int(np.argmin(s)), 1)
    slope = np.gradient(s[: i_min + 1], x[: i_min + 1])
    return float(10 ** x[int(np.argmin(slope))])


def valley(lrs: Sequence[float], losses: Sequence[float]) -> float:
    """The middle (in log-LR) of the longest stretch over which the smoothed loss keeps falling.

    After fastai's ``valley``: a long descending stretch is a region where training works at
    every LR, and its middle keeps a margin from both the flat start and the cliff.
    """
    x, y = _as_curve(lrs, losses)
    s = _smooth_xy(x, y)
    falling = np.diff(s) < 0
    best_start, best_len, start = 0, 0, None
    for i, f in enumerate(np.append(falling, False)):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = None
    if best_len == 0:
        return float(10 ** x[int(np.argmin(s))])
    return float(10 ** (0.5 * (x[best_start] + x[best_start + best_len])))


def minimum(lrs: Sequence[float], losses: Sequence[float], *, divisor: float = 10.0) -> float:
    """A tenth (``1/divisor``) of the LR at the smoothed minimum: fastai's ``minimum/10``."""
    x, y = _as_curve(lrs, losses)
    return float(10 ** x[int(np.argmin(_smooth_xy(x, y)))] / divisor)


EVIDENCE_HALF_WEIGHT_Z = 20.0
"""The drop, in standard errors of the smoothed curve, at which curve and prior weigh the
same. Pure noise shows a "drop" of 2 to 6 (the minimum of ~100 correlated points of the
smooth); most real curves in the benchmark show 60 to 300. Chosen by the cross-validation
among 12, 20 and 30 once its objective counted the seed-spread target: at 12, a curve at 3 to
10 standard errors (MovieLens' noisy batches) moved the pick 4x between seeds."""


@dataclass(frozen=True)
class PilotConstants:
    """The constants of the default rule, :func:`pilot`.

    Each was chosen by leave-one-family-out cross-validation over the benchmark's stored
    sweeps (``python -m benchmarks.crossval``): the value that did best on the families it was
    *not* looking at. Pass other values to :func:`pilot` to try them (``benchmarks/replay.py``).

    Attributes:
        reference_steps: runs up to this many steps are "short": their best LR is read straight
            off the sweep's valley floor.
        horizon_exponent: past ``reference_steps``, the best LR falls as
            ``steps ** -horizon_exponent``. Noisy-SGD theory gives 1/2; LR-vs-horizon studies of
            large AdamW language models about 0.3; small models fall faster.
        adam_horizon_exponent: the same for Adam-family optimizers (``None``: the same
            ``horizon_exponent``). Their steps keep their size (about the LR per coordinate)
            however small the gradient gets, so they may want a steeper fall; tried by
            cross-validation and not shipped: held out it did no better than one exponent.
        decay_horizon_exponent: the same for a schedule that decays (mean multiplier below
            :data:`DECAYING_MEAN`; ``None``: the same ``horizon_exponent``). A constant LR
            leaves gradient noise in the final weights in proportion to the LR, which a longer
            run exposes; a decaying schedule anneals it away, so its peak may fall less.
        schedule_exponent: a schedule that spends the run below its peak (mean multiplier
            ``m < 1``: about 0.5 for warmup + cosine) may peak ``m ** -schedule_exponent``
            times higher than a constant LR: what matters is how far the run travels, and a
            decaying schedule anneals away the noise a constant LR leaves in the final weights.
        adam_factor: Adam-family optimizers take this multiple of what the curve says: their
            sweep makes fast early progress at LRs that a long run cannot sustain (the
            preconditioned sharpness keeps rising to the optimizer's stability limit).
        onset_margin: the pick never falls below the sweep's onset times this margin (where the
            loss had made a tenth of its drop: below it, the sweep saw no training at all).
        anchor: the short-run estimate read off the curve: ``"floor"``, the centre of the
            valley's floor, or ``"minimum"``, the LR at the smoothed minimum.
        floor_fraction: how far above the minimum, as a fraction of the sweep's drop, the
            valley's floor reaches (:attr:`Landmarks.floor`). A wide floor spans both dips of
            a double-dipped valley, so its centre does not jump from one dip to the other
            between seeds, as the argmin and a narrow floor do.
        evidence_half_weight_z: the curve's drop, in standard errors of its smooth
            (:attr:`Landmarks.signal_to_noise`), at which the curve and the optimizer family's
            prior weigh the same (:data:`EVIDENCE_HALF_WEIGHT_Z`).
        prior_weight: the least weight the optimizer family's prior LR keeps however clear
            the curve (in log-LR; it gets more as the curve's evidence weakens).
        band: ``(low, high)`` factors around the pick that held ~80% of the held-out tasks'
            near-best LRs.
    """

    reference_steps: int = 100
    horizon_exponent: float = 0.5
    adam_horizon_exponent: float | None = None
    decay_horizon_exponent: float | None = None
    schedule_exponent: float = 1.0
    adam_factor: float = 0.5
    onset_margin: float = 1.0
    anchor: str = "floor"
    floor_fraction: float = 0.3
    evidence_half_weight_z: float = EVIDENCE_HALF_WEIGHT_Z
    prior_weight: float = 0.0
    band: tuple[float, float] = (0.79, 3.16)


DEFAULT_CONSTANTS = PilotConstants()
HORIZON_REFERENCE_STEPS = DEFAULT_CONSTANTS.reference_steps
"""Runs up to this many steps are "short" (see :class:`PilotConstants`)."""


DECAYING_MEAN = 0.9
"""A schedule whose mean multiplier over the run is below this decays (warmup + cosine: about
0.5); a warmup alone before a constant LR stays above it."""


def horizon_exponent(
    family: str | None,
    constants: PilotConstants = DEFAULT_CONSTANTS,
    schedule_mean: float | None = None,
) -> float:
    """The exponent with which the best LR falls with the run's length for an optimizer
    ``family`` (:func:`lrpilot.advice.optimizer_family`) under a schedule whose mean
    multiplier is ``schedule_mean``: a decaying schedule and the Adam family may have their
    own (:class:`PilotConstants`; the schedule's comes first)."""
    decays = schedule_mean is not None and schedule_mean < DECAYING_MEAN
    if decays and constants.decay_horizon_exponent is not None:
        return constants.decay_horizon_exponent
    if family == "adam" and constants.adam_horizon_exponent is not None:
        return constants.adam_horizon_exponent
    return constants.horizon_exponent


def horizon_factor(
    steps: int | None,
    *,
    reference_steps: int = DEFAULT_CONSTANTS.reference_steps,
    exponent: float = DEFAULT_CONSTANTS.horizon_exponent,
) -> float:
    """How much lower than a short run's best LR a run of ``steps`` steps wants.

    The best LR falls as the run grows: a long run meets the instabilities a short sweep
    cannot see (the sharpness keeps rising as training goes on) and averages away less
    gradient noise per unit of progress. Runs no longer than ``reference_steps`` are short.

    Returns:
        ``(reference_steps / steps) ** exponent``, capped at 1.
    """
    if steps is None or steps <= reference_steps:
        return 1.0
    return (reference_steps / steps) ** exponent


def pilot(
    lrs: Sequence[float],
    losses: Sequence[float],
    *,
    steps: int | None = None,
    prior_lr: float | None = None,
    schedule_mean: float | None = None,
    family: str | None = None,
    constants: PilotConstants = DEFAULT_CONSTANTS,
) -> float:
    """lrpilot's default rule: a peak LR for the whole run, not for the sweep.

    1. Smooth without lag and read the landmarks: where training starts to bite (onset), the
       valley's floor, and the divergence edge.
    2. The short-run estimate is the centre of the valley's floor: the LR at which the sweep
       made the most progress, read off an interval whose ends lie on the two slopes, so it
       does not jump across a flat floor from seed to seed as the argmin does.
    3. Correct it for the run (:class:`PilotConstants`): lower for a long run
       (:func:`horizon_factor`), higher for a schedule that spends the run below its peak
       (``schedule_mean``), by the optimizer family's factor (``family``).
    4. Never above the edge over the sweep's :func:`overshoot` (the sweep sees an
       instability only some steps after it began, when its LR has grown well past it; where
       the sweep never reached the edge, its last LR stands in for it), never below the
       onset times ``onset_margin``.
    5. With a ``prior_lr`` (what is known before any step, e.g. 1e-3 for Adam), move
       towards it as far as the curve is uninformative: a drop small against the noise.

    Args:
        steps: the number of optimizer steps the real run will take (``None``: short).
        prior_lr: an LR believed good before the sweep, used only as a tie-breaker.
        schedule_mean: the run's mean LR multiplier over its steps (1 for a constant LR,
            about 0.5 for warmup + cosine; ``None``: taken as constant, the safe side).
        family: the optimizer family (:func:`lrpilot.advice.optimizer_family`), e.g.
            ``"adam"`` or ``"sgd"``.
        constants: the rule's constants; the defaults were chosen by cross-validation.
    """
    x, y = _as_curve(lrs, losses)
    marks = _landmarks_xy(x, *_fit(x, y), floor_fraction=constants.floor_fraction)
    return pilot_from_landmarks(
        marks,
        x[-1],
        _edge_step(x, marks.edge),
        steps=steps,
        prior_lr=prior_lr,
        schedule_mean=schedule_mean,
        family=family,
        constants=constants,
    )


def pilot_from_landmarks(
    marks: Landmarks,
    log_last_lr: float,
    edge_step: float,
    *,
    steps: int | None = None,
    prior_lr: float | None = None,
    schedule_mean: float | None = None,
    family: str | None = None,
    constants: PilotConstants = DEFAULT_CONSTANTS,
) -> float:
    """Steps 3-5 of :func:`pilot` from a curve's landmarks: the arithmetic that the constants
    enter, without smoothing the curve again (cross-validation replays it thousands of times).

    Args:
        marks: the curve's :func:`landmarks`.
        log_last_lr: log10 of the sweep's last LR.
        edge_step: the sweep's LR growth (log10 per step) just before its edge.
    """
    anchor = marks.minimum if constants.anchor == "minimum" else marks.floor_centre
    log_lr = math.log10(anchor) + _run_correction(steps, schedule_mean, family, constants)
    log_lr = min(log_lr, math.log10(_edge_cap(log_last_lr, marks.edge, edge_step)))
    if constants.onset_margin > 0:
        log_lr = max(log_lr, math.log10(marks.onset * constants.onset_margin))
    if prior_lr is not None:
        weight = _evidence_weight(marks, constants.evidence_half_weight_z)
        weight *= 1.0 - constants.prior_weight
        log_lr = weight * log_lr + (1.0 - weight) * math.log10(prior_lr)
    return float(10**log_lr)


def _run_correction(
    steps: int | None, schedule_mean: float | None, family: str | None, c: PilotConstants
) -> float:
    """log10 of the factor from the sweep's short-run estimate to the run's peak LR."""
    exponent = horizon_exponent(family, c, schedule_mean)
    horizon = horizon_factor(steps, reference_steps=c.reference_steps, exponent=exponent)
    log_factor = math.log10(horizon)
    if schedule_mean is not None and 0 < schedule_mean < 1:
        log_factor -= c.schedule_exponent * math.log10(schedule_mean)
    if family == "adam":
        log_factor += math.log10(c.adam_factor)
    return log_factor


def pilot_band(
    lr: float, lrs: Sequence[float], losses: Sequence[float], constants: PilotConstants
) -> tuple[float, float]:
    """Where the run's best LR is expected to lie around :func:`pilot`'s pick ``lr``: the
    constants' ``band`` factors (the spread of the rule's held-out errors), widened towards
    the prior's side as the curve's evidence weakens. Costs nothing beyond the landmarks."""
    low, high = constants.band
    marks = landmarks(lrs, losses)
    evidence = _evidence_weight(marks, constants.evidence_half_weight_z)
    widen = 1.0 + 3.0 * (1.0 - evidence)  # up to 4x wider on a flat curve
    return float(lr * low**widen), float(lr * high**widen)


EDGE_VISIBLE_GROWTH = 1e3
"""How much an unstable mode must grow, from the noise it starts as, before the sweep's loss
shows it (climbs back a quarter of its drop)."""


def overshoot(growth: float) -> float:
    """How far past an instability's threshold a sweep's LR has gone when its loss shows it.

    Past the threshold ``t`` of a mode (its curvature's stability limit ``2 / curvature``), a
    step at LR ``c * t`` multiplies the mode by ``2c - 1``. A sweep whose LR grows by ``growth``
    a step is at ``growth**k * t`` ``k`` steps after crossing, so the mode has grown by
    ``prod(2 * growth**k - 1)``; this returns ``growth**K`` for the (fractional) ``K`` at which
    that product reaches :data:`EDGE_VISIBLE_GROWTH`. Over 8 decades: 3.3x for the default
    100-step sweep (1.2x a step), 6.8x for 40 steps, 2.0x for 300, 1.4x for 1,000: a fast
    sweep sees the edge late.
    """
    if growth <= 1.0 + 1e-9:
        return 1.0
    target, total, k = math.log(EDGE_VISIBLE_GROWTH), 0.0, 0
    while True:
        k += 1
        gain = math.log(2.0 * growth**k - 1.0)
        if total + gain >= target:
            return growth ** (k - 1 + (target - total) / gain)
        total += gain


def _edge_step(log_lrs: np.ndarray, edge: float | None) -> float:
    """The sweep's LR growth per step (log10) over the ten steps before its edge (its last
    LR where it never reached one)."""
    log_edge = float(log_lrs[-1]) if edge is None else math.log10(edge)
    before = log_lrs[log_lrs <= log_edge][-11:]
    return float(np.median(np.diff(before))) if before.size > 1 else 0.0


def _edge_cap(log_last_lr: float, edge: float | None, edge_step: float) -> float:
    """The highest LR a pick may take: the sweep's edge over its :func:`overshoot` at the LR
    growth per step there (``edge_step``, log10), and never above half the edge. A sweep that
    never reached the edge (the loss still falling at its end) knows nothing safe beyond its
    last LR (``log_last_lr``, log10), which then stands in for the edge.
    """
    log_edge = log_last_lr if edge is None else math.log10(edge)
    return 10**log_edge / max(2.0, overshoot(10**edge_step))


def _evidence_weight(marks: Landmarks, half_weight_z: float = EVIDENCE_HALF_WEIGHT_Z) -> float:
    """How much to trust the curve over a prior, in [0, 1]: ``z^4 / (z^4 + h^4)`` where
    ``z`` is the curve's :attr:`Landmarks.signal_to_noise` and ``h`` is ``half_weight_z``."""
    z = marks.signal_to_noise
    return float(z**4 / (z**4 + half_weight_z**4))


RULES: dict[str, Rule] = {
    "pilot": pilot,
    "steepest": steepest,
    "valley": valley,
    "minimum": minimum,
}
"""The built-in rules by name; ``pilot`` is the default."""


def bootstrap_band(
    lrs: Sequence[float],
    losses: Sequence[float],
    rule: Rule,
    *,
    draws: int = 50,
    coverage: float = 0.68,
    seed: int = 0,
) -> tuple[float, float]:
    """An uncertainty band for ``rule`` on this curve: how far its pick moves under other
    draws of the noise.

    Curves are rebuilt from the smooth fit plus sign-flipped residuals (a wild bootstrap,
    which keeps each residual at its own LR, so the calm start and the noisy cliff keep their
    own noise levels). The band is the central ``coverage`` of the resampled picks' spread
    around their median, placed around the pick itself, so it always contains the pick.
    The band says nothing about the rule's own bias, nor about seed-to-seed variation (another
    data order or initialisation gives another curve).
    """
    x, y = _as_curve(lrs, losses)
    s = _smooth_xy(x, y)
    residuals = y - s
    rng = np.random.default_rng(seed)
    lr = (10**x).tolist()  # rules get lists, as from the finder
    pick = math.log10(rule(lr, y.tolist()))
    picks = [
        math.log10(
            rule(lr, (s + residuals * rng.choice((-1.0, 1.0), size=residuals.size)).tolist())
        )
        for _ in range(draws)
    ]
    lo, mid, hi = np.quantile(picks, [(1 - coverage) / 2, 0.5, (1 + coverage) / 2])
    return float(10 ** (pick + lo - mid)), float(10 ** (pick + hi - mid))
