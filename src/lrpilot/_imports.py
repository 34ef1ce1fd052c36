"""Optional dependencies, imported only when the feature that needs them is used.

``import lrpilot`` loads torch and NumPy and nothing heavier: matplotlib, rich and typer are
imported inside the functions that draw, show progress or parse a command line, and the heavy
parts (Optuna for search, Lightning, ``transformers``, TensorBoard) come as extras. A missing
extra raises :class:`~lrpilot.errors.MissingDependencyError` naming the pip command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["EXTRAS", "require"]

EXTRAS = {
    "optuna": "search",
    "sqlalchemy": "search",
    "lightning": "lightning",
    "pytorch_lightning": "lightning",
    "transformers": "transformers",
    "tensorboard": "tensorboard",
}
"""The extra that brings each optional top-level module."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` ("search", "the Lightning callback", ...), or say
    which extra to install.

    Raises:
        MissingDependencyError: the module (or one it needs) is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.partition(".")[0]
        extra = EXTRAS.get(top)
        how = f"pip install 'lrpilot[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependencyError(
            f"{purpose} needs the {top!r} package, which is not installed ({exc}): {how}"
        ) from exc
