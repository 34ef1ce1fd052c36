"""lrpilot: measured learning rates for PyTorch.

>>> import lrpilot
>>> res = lrpilot.find_lr(model, optimizer, train_loader, loss_fn, steps=5_000)  # doctest: +SKIP
>>> res.lr, res.band, res.plot("lr.png")  # doctest: +SKIP
"""

from __future__ import annotations

import types

from . import schedules, suggest
from .control import DivergenceDetector, ReduceOnPlateau
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
from .schedules import attach, parse_schedule
from .task import Task, load_task_file
from .train import RunResult, train

__all__ = [
    "Action",
    "Callback",
    "ConfigError",
    "DataError",
    "DivergenceDetector",
    "LRFinderResult",
    "LRPilotError",
    "LossError",
    "MissingDependencyError",
    "ModelError",
    "ReduceOnPlateau",
    "RunResult",
    "SpecError",
    "Task",
    "attach",
    "find_lr",
    "find_lr_for_task",
    "load_task_file",
    "parse_schedule",
    "schedules",
    "suggest",
    "train",
]

__version__ = "0.1.0"

# Reprs and docs show ``lrpilot.find_lr``, not its private home; pickle still finds every
# object, since each is importable from here.
for _name in __all__:
    if not isinstance(globals()[_name], types.ModuleType):
        globals()[_name].__module__ = "lrpilot"
del _name
