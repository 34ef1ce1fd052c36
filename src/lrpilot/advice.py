"""Rules of thumb known before any step runs, each with its source.

Today: the optimizer family and the LR known to be a safe start for it. The advisor
(``lrpilot.advise``) will grow here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ADAM_FAMILY", "PRIOR_LRS", "optimizer_family", "prior_lr_for"]

ADAM_FAMILY = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adafactor", "Lamb")
"""Class names of Adam-family optimizers (adaptive per-parameter step sizes)."""


def task_family(task: Any) -> str:
    """:func:`optimizer_family` of a :class:`~lrpilot.Task`'s recipe, read off its fingerprint
    (which builds the model once, the RNGs put back)."""
    return _family_of_class(str(task.fingerprint()["optimizer"]))


def optimizer_family(optimizer: Any) -> str:
    """``"adam"`` for the Adam family, else the optimizer class's lower-cased name.

    Wrappers (Accelerate's ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``, HF's
    wrappers) are looked through: their ``.optimizer`` attribute is the real one.
    """
    from ._state import inner_optimizer

    return _family_of_class(type(inner_optimizer(optimizer)).__name__)


def _family_of_class(name: str) -> str:
    """The family of an optimizer class called ``name``."""
    return "adam" if name in ADAM_FAMILY else name.lower()


PRIOR_LRS = {"adam": 1e-3, "sgd": 1e-2}
"""The plain default LR of each optimizer family that has one: 1e-3 for the Adam family (Kingma
& Ba, 2015, and every framework's default), 1e-2 for SGD (Keras' default, and the usual
starting point of the guides)."""


def prior_lr_for(optimizer: Any) -> float | None:
    """The LR known to be a reasonable start before any measurement, for the optimizer's
    family (:data:`PRIOR_LRS`); ``None`` for families without one (RMSprop, Adagrad, ...)."""
    return PRIOR_LRS.get(optimizer_family(optimizer))
