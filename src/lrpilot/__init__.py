"""lrpilot: measured learning rates for PyTorch.

>>> import lrpilot
>>> res = lrpilot.find_lr(model, optimizer, train_loader, loss_fn, steps=5_000)  # doctest: +SKIP
>>> res.lr, res.band, res.plot("lr.png")  # doctest: +SKIP
"""

from __future__ import annotations

from . import suggest
from .errors import ConfigError, DataError, LossError, LRPilotError, ModelError, SpecError
from .finder import LRFinderResult, find_lr, find_lr_for_task
from .task import Task, load_task_file

__all__ = [
    "ConfigError",
    "DataError",
    "LRFinderResult",
    "LRPilotError",
    "LossError",
    "ModelError",
    "SpecError",
    "Task",
    "find_lr",
    "find_lr_for_task",
    "load_task_file",
    "suggest",
]

__version__ = "0.1.0"

for _name in ("LRFinderResult", "Task", "find_lr", "find_lr_for_task", "load_task_file"):
    globals()[_name].__module__ = "lrpilot"
del _name
