"""Rules of thumb known before any step runs, each with its source.

Today: the optimizer family and the LR known to be a safe start for it. The advisor
(``lrpilot.advise``) will grow here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ADAM_FAMILY", "PRIOR_LRS", "family_of_type", "optimizer_family", "prior_lr_for"]

ADAM_FAMILY = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adafactor", "Lamb")
"""Class names of Adam-family optimizers (adaptive per-parameter step sizes)."""


def task_family(task: Any) -> str:
    """:func:`optimizer_family` of a :class:`~lrpilot.Task`'s recipe, read off its fingerprint
    (which builds the model once, the RNGs put back)."""
    data = task.fingerprint()
    return str(data.get("optimizer_family") or _family_of_class(str(data["optimizer"])))


def optimizer_family(optimizer: Any) -> str:
    """``"adam"`` for the Adam family, else the optimizer class's lower-cased name.

    Wrappers (Accelerate's ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``, HF's
    wrappers) are looked through: their ``.optimizer`` attribute is the real one.
    """
    from ._state import inner_optimizer

    return family_of_type(type(inner_optimizer(optimizer)))


def family_of_type(cls: type) -> str:
    """The family of an optimizer class, read through its bases: a subclass of a known
    optimizer (a ``class MyAdamW(AdamW)`` that adds logging, a library's variant built on
    ``torch.optim.SGD``) keeps its base's family, its prior and its rules. The first class of
    the MRO that is in :data:`ADAM_FAMILY` or is one of torch's own optimizers decides;
    an optimizer built on neither is its own family (its lower-cased name)."""
    for base in cls.__mro__:
        if base.__name__ in ADAM_FAMILY:
            return "adam"
        if base.__module__.startswith("torch.optim.") and base.__name__ != "Optimizer":
            return base.__name__.lower()
    return _family_of_class(cls.__name__)


def _family_of_class(name: str) -> str:
    """The family of an optimizer class called ``name`` (where only its name is known)."""
    return "adam" if name in ADAM_FAMILY else name.lower()


PRIOR_LRS = {"adam": 1e-3, "sgd": 1e-2}
"""The plain default LR of each optimizer family that has one: 1e-3 for the Adam family (Kingma
& Ba, 2015, and every framework's default), 1e-2 for SGD (Keras' default, and the usual
starting point of the guides)."""


def prior_lr_for(optimizer: Any) -> float | None:
    """The LR known to be a reasonable start before any measurement, for the optimizer's
    family (:data:`PRIOR_LRS`); ``None`` for families without one (RMSprop, Adagrad, ...)."""
    return PRIOR_LRS.get(optimizer_family(optimizer))
