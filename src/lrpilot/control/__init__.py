"""Controllers fed by what a run measures: reduce-on-plateau, the divergence detector and the
training monitor.

A schedule is a pure function of the step; a controller reads the loss or a metric, so it is a
separate type. Each has frozen settings, an explicit state that round-trips through a plain dict,
and a pure ``update(state, value) -> (state, decision)``.
"""

from __future__ import annotations

from .divergence import DivergenceDetector, DivergenceState, Verdict
from .monitor import Answer, Monitor
from .plateau import Decision, PlateauState, ReduceOnPlateau

__all__ = [
    "Answer",
    "Decision",
    "DivergenceDetector",
    "DivergenceState",
    "Monitor",
    "PlateauState",
    "ReduceOnPlateau",
    "Verdict",
]
