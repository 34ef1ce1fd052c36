"""The divergence detector that the range test and every training run share.

A loss *diverges* when its smoothed value grows far past a reference, or when it stays
non-finite for several steps in a row. One non-finite loss is not divergence: a single bad
batch or an fp16 overflow gives one NaN, and the loop that meets it skips that optimizer step
(its gradients are NaN too) and goes on. Only a streak of them, which is what a model whose
weights have become non-finite produces, counts.

:class:`DivergenceDetector` holds the settings (frozen); :class:`DivergenceState` everything
that changes, explicitly, round-tripping through a plain dict; the update is pure:

    >>> detector = DivergenceDetector(threshold=4.0, smoothing=0.0)
    >>> state = detector.init()
    >>> for loss in [2.0, 1.0, float("nan"), 1.5, 4.5]:
    ...     state, verdict = detector.update(state, loss)
    >>> verdict.diverged, state.skipped
    (True, 1)

**The growth rule** (the sweep's since Smith 2017, and Lightning's): with ``e`` the
bias-corrected EMA of the finite losses and ``r`` the reference, divergence is
``e - r > (threshold - 1) * scale``, where ``scale = |r|`` for a positive reference (so the
rule reads "``e`` above ``threshold`` times ``r``") and the size of the drop so far otherwise
(losses that can be negative, such as minus a log-likelihood). The reference is the best EMA
so far (``reference="best"``: the range test, whose LR keeps rising) or the first one
(``reference="start"``: a training run, which has diverged when it is far worse than where it
started).

**NaN policy.** A non-finite loss never enters the EMA. ``max_nonfinite`` of them in a row is
divergence; any finite loss resets the streak; ``state.skipped`` counts them all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from lrpilot import _validate as check
from lrpilot.errors import ConfigError

__all__ = ["DivergenceDetector", "DivergenceState", "Verdict"]


class DivergenceState(NamedTuple):
    """Everything :class:`DivergenceDetector` remembers between losses.

    Attributes:
        ema: The EMA accumulator, before bias correction.
        seen: Finite losses seen.
        smoothed: The bias-corrected EMA after the last finite loss (NaN before any).
        best: The lowest bias-corrected EMA so far (``inf`` before any).
        first: The first bias-corrected EMA, the first finite loss itself (NaN before any).
        nonfinite: Non-finite losses in a row, up to now.
        skipped: Non-finite losses in all.
    """

    ema: float = 0.0
    seen: int = 0
    smoothed: float = math.nan
    best: float = math.inf
    first: float = math.nan
    nonfinite: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, float | int]:
        """The state as a plain dict (``json`` writes NaN and inf as ``NaN`` / ``Infinity``)."""
        return dict(self._asdict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DivergenceState:
        """Rebuild a state from :meth:`to_dict`'s output."""
        missing = set(cls._fields) - set(data)
        if missing:
            raise ConfigError(
                f"not a DivergenceState dict: missing {sorted(missing)}, got {data=}"
            )
        ints = ("seen", "nonfinite", "skipped")
        counts = [check.whole(k, data[k], 0) for k in ints]
        ema, smoothed, best, first = (float(data[k]) for k in ("ema", "smoothed", "best", "first"))
        return cls(ema, counts[0], smoothed, best, first, counts[1], counts[2])


class Verdict(NamedTuple):
    """What one loss told the detector.

    Attributes:
        diverged: The run has diverged: stop it.
        finite: The loss was finite (a non-finite one means its step must be skipped).
        smoothed: The bias-corrected EMA after this loss (NaN before any finite loss).
        reason: One sentence for logs and reports ("" when nothing happened).
    """

    diverged: bool
    finite: bool
    smoothed: float
    reason: str


@dataclass(frozen=True)
class DivergenceDetector:
    """Stop on a smoothed loss far above its reference, or a streak of non-finite losses.

    Args:
        threshold: Growth factor over the reference that counts as divergence (``> 1``);
            ``None`` switches the growth rule off (the non-finite streak still counts).
        smoothing: EMA factor in ``[0, 1)`` (``0``: the raw loss).
        reference: ``"best"`` (the lowest EMA so far; the range test) or ``"start"`` (the
            first loss; a training run).
        max_nonfinite: Non-finite losses in a row that count as divergence (``>= 1``).
    """

    threshold: float | None = 4.0
    smoothing: float = 0.9
    reference: str = "best"
    max_nonfinite: int = 3

    def __post_init__(self) -> None:
        _set = object.__setattr__  # frozen: fields are normalised this way
        threshold = check.optional_real("threshold", self.threshold, 1.0, open_low=True)
        _set(self, "threshold", threshold)
        _set(self, "smoothing", check.real("smoothing", self.smoothing, 0.0, 1.0, open_high=True))
        _set(self, "reference", check.choice("reference", self.reference, ("best", "start")))
        _set(self, "max_nonfinite", check.whole("max_nonfinite", self.max_nonfinite, 1))

    def init(self) -> DivergenceState:
        """The state before any loss."""
        return DivergenceState()

    def update(self, state: DivergenceState, loss: float) -> tuple[DivergenceState, Verdict]:
        """Feed one loss; return the new state and the verdict. Pure: ``state`` is unchanged."""
        value = _as_float(loss)
        if not math.isfinite(value):
            return self._nonfinite(state, value)
        seen = state.seen + 1
        ema = self.smoothing * state.ema + (1.0 - self.smoothing) * value
        smoothed = ema / (1.0 - self.smoothing**seen)
        first = smoothed if seen == 1 else state.first
        best = min(state.best, smoothed)
        new = DivergenceState(ema, seen, smoothed, best, first, 0, state.skipped)
        reference = best if self.reference == "best" else first
        if self.threshold is not None and _exceeds(
            smoothed, reference, self.threshold, first, best
        ):
            reason = (
                f"smoothed loss {smoothed:.4g} is past {self.threshold:g}x its "
                f"{'best' if self.reference == 'best' else 'start'} ({reference:.4g})"
            )
            return new, Verdict(True, True, smoothed, reason)
        return new, Verdict(False, True, smoothed, "")

    def _nonfinite(self, state: DivergenceState, value: float) -> tuple[DivergenceState, Verdict]:
        streak = state.nonfinite + 1
        new = state._replace(nonfinite=streak, skipped=state.skipped + 1)
        if streak >= self.max_nonfinite:
            reason = f"the loss was {value} for {streak} steps in a row"
            return new, Verdict(True, False, state.smoothed, reason)
        reason = f"loss {value}: step skipped ({streak} of {self.max_nonfinite} in a row allowed)"
        return new, Verdict(False, False, state.smoothed, reason)


def _exceeds(value: float, reference: float, threshold: float, first: float, best: float) -> bool:
    """Whether ``value`` is more than ``threshold`` times ``reference``, for losses of any sign:
    growth over the reference by ``threshold - 1`` times the scale of the curve."""
    scale = abs(reference) if reference > 0 else max(abs(first - best), 1e-12)
    return value - reference > (threshold - 1.0) * scale


def _as_float(loss: Any) -> float:
    try:
        return float(loss)
    except (TypeError, ValueError):
        raise ConfigError(f"loss must be a number, got loss={loss!r}") from None
