"""LR search on Optuna and the LR-impact table (``pip install 'lrpilot[search]'``).

Imported lazily by ``lrpilot.search`` / ``lrpilot.impact``: ``import lrpilot`` never loads
Optuna.
"""

from __future__ import annotations

from ._impact import impact
from ._result import ImpactResult, ImpactRow, SearchResult, TrialRecord
from ._runner import METHODS, search
from ._space import SearchSpace, log_grid

__all__ = [
    "METHODS",
    "ImpactResult",
    "ImpactRow",
    "SearchResult",
    "SearchSpace",
    "TrialRecord",
    "impact",
    "log_grid",
    "search",
]
