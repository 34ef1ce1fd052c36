"""Rules of thumb known before any step runs, each with its source.

Today: the optimizer family and the LR known to be a safe start for it. The advisor
(``lrpilot.advise``) will grow here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ADAM_FAMILY", "optimizer_family", "prior_lr_for"]

ADAM_FAMILY = ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adafactor", "Lamb")
"""Class names of Adam-family optimizers (adaptive per-parameter step sizes)."""


def optimizer_family(optimizer: Any) -> str:
    """``"adam"`` for the Adam family, else the optimizer class's lower-cased name.

    Wrappers (Accelerate's ``AcceleratedOptimizer``, Lightning's ``LightningOptimizer``, HF's
    wrappers) are looked through: their ``.optimizer`` attribute is the real one.
    """
    from ._state import inner_optimizer

    optimizer = inner_optimizer(optimizer)
    name = type(optimizer).__name__
    return "adam" if name in ADAM_FAMILY else name.lower()


def prior_lr_for(optimizer: Any) -> float | None:
    """The LR known to be a safe start before any measurement, for the optimizer's family.

    Adam-family optimizers: 1e-3 (Kingma & Ba, 2015; the most robust single default in the
    tasks DESIGN.md describes). Other families have no default safe across tasks: ``None``.
    """
    return 1e-3 if optimizer_family(optimizer) == "adam" else None
