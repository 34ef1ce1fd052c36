"""Learning-rate schedules as pure functions of the optimizer step.

A schedule maps the optimizer step ``t = 0, 1, 2, ...`` to a multiplier of the peak learning rate:
optimizer step ``t`` runs at ``peak_lr * schedule(t)``. Schedules are small frozen dataclasses, so
they compare, hash, pickle and turn into plain dicts (:func:`to_dict`); they compose with
:func:`warmup`, :func:`join`, :func:`scale` and :func:`floor`; :func:`attach` drives any torch
optimizer with one and :func:`from_scheduler` reads a live torch scheduler into one;
:func:`parse_schedule` reads a short text spec such as ``"warmup(0.05)+cosine(min=0.01)"``.

Conventions shared by every schedule here:

* time is counted in optimizer steps; :func:`epochs` and :func:`fraction` convert other units once;
* multipliers lie in ``[0, 1]`` (``1`` is the peak); :func:`scale` is the one way above it;
* past its end a finite schedule holds its final value; a step below 0 raises ``ConfigError``;
* out-of-range arguments raise :class:`~lrpilot.errors.ConfigError` naming the argument and value.

Example:
    >>> from lrpilot import schedules as S
    >>> s = S.warmup(S.cosine(steps=900, min=0.1), steps=100)
    >>> [round(s(t), 3) for t in (0, 50, 100, 550, 1000, 10**9)]
    [0.0, 0.5, 1.0, 0.55, 0.1, 0.1]
    >>> s == S.parse_schedule("warmup(0.1)+cosine(min=0.1)", total_steps=1000)
    True
"""

from __future__ import annotations

from ._base import BaseSchedule, Schedule
from ._combinators import (
    ByFraction,
    Floored,
    Join,
    Scaled,
    Warmup,
    by_fraction,
    epochs,
    floor,
    fraction,
    join,
    scale,
    warmup,
)
from ._io import from_dict, plot, to_dict, values
from ._shapes import (
    Constant,
    Cosine,
    CosineRestarts,
    Cyclic,
    Exponential,
    InverseSqrt,
    Linear,
    MultiStep,
    OneCycle,
    Polynomial,
    SqrtDecay,
    StepDecay,
    constant,
    cosine,
    cosine_restarts,
    cyclic,
    exponential,
    inverse_sqrt,
    linear,
    multi_step,
    onecycle,
    polynomial,
    step_decay,
    wsd,
)
from ._spec import parse_schedule
from ._tabulated import Tabulated, from_scheduler
from ._torch import ScheduleLR, attach

__all__ = [
    "Schedule",
    "BaseSchedule",
    # schedules
    "constant",
    "step_decay",
    "multi_step",
    "exponential",
    "polynomial",
    "linear",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "onecycle",
    "inverse_sqrt",
    "wsd",
    # combinators
    "warmup",
    "join",
    "scale",
    "floor",
    "by_fraction",
    # lengths
    "epochs",
    "fraction",
    # text spec, serialization, sampling
    "parse_schedule",
    "to_dict",
    "from_dict",
    "values",
    "plot",
    # torch
    "attach",
    "ScheduleLR",
    "from_scheduler",
    # the dataclasses the factories return
    "Constant",
    "StepDecay",
    "MultiStep",
    "Exponential",
    "Polynomial",
    "Linear",
    "Cosine",
    "CosineRestarts",
    "Cyclic",
    "OneCycle",
    "InverseSqrt",
    "SqrtDecay",
    "Warmup",
    "Join",
    "Scaled",
    "Floored",
    "ByFraction",
    "Tabulated",
]

# Reprs, docs and pickles name ``lrpilot.schedules.Cosine``, not its private module, so the
# layout under this package can change without breaking a saved schedule.
for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _obj.__module__.startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
