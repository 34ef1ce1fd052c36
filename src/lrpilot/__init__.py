"""lrpilot: measured learning rates for PyTorch.

>>> import lrpilot
>>> res = lrpilot.find_lr(model, optimizer, train_loader, loss_fn, steps=5_000)  # doctest: +SKIP
>>> res.lr, res.band, res.plot("lr.png")  # doctest: +SKIP
"""

from __future__ import annotations

import types
from typing import Any

from . import schedules, suggest
from .advisor import Advice, advise
from .autopilot import TuneResult, tune
from .control import DivergenceDetector, Monitor, ReduceOnPlateau
from .control.callbacks import Action, Callback
from .errors import (
    ConfigError,
    DataError,
    LossError,
    LRPilotError,
    MissingDependencyError,
    ModelError,
    SpecError,
)
from .finder import LRFinderResult, find_lr, find_lr_for_task
from .rules import scale_lr
from .schedules import attach, parse_schedule
from .task import Task, load_task_file
from .train import RunResult, train

__all__ = [
    "Action",
    "Advice",
    "Callback",
    "ConfigError",
    "DataError",
    "DivergenceDetector",
    "ImpactResult",
    "LRFinderResult",
    "LRPilotError",
    "LossError",
    "MissingDependencyError",
    "ModelError",
    "Monitor",
    "ReduceOnPlateau",
    "RunResult",
    "SearchResult",
    "SpecError",
    "Task",
    "TuneResult",
    "advise",
    "attach",
    "find_lr",
    "find_lr_for_task",
    "impact",
    "load_task_file",
    "parse_schedule",
    "scale_lr",
    "schedules",
    "search",
    "suggest",
    "train",
    "tune",
]

__version__ = "0.1.0"

# Reprs and docs show ``lrpilot.find_lr``, not its private home; pickle still finds every
# object, since each is importable from here.
for _name in __all__:
    if _name in globals() and not isinstance(globals()[_name], types.ModuleType):
        globals()[_name].__module__ = "lrpilot"
del _name

_LAZY = {
    "search": "._search",
    "impact": "._search",
    "SearchResult": "._search",
    "ImpactResult": "._search",
}
"""Names loaded on first use, so ``import lrpilot`` stays light (search brings Optuna)."""


def __getattr__(name: str) -> Any:
    """Load a name of :data:`_LAZY` on first use, keeping it as ``lrpilot.<name>``."""
    if name not in _LAZY:
        raise AttributeError(f"module 'lrpilot' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    value.__module__ = "lrpilot"
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
