"""One argument-checking policy for every public function and class.

Every check returns the normalised value or raises :class:`ArgError`, a
:class:`~lrpilot.errors.ConfigError` whose message names the argument and the value it got
(``"num_steps must be a whole number >= 8, got num_steps='100'"``) and which carries the
argument's name, so callers such as the schedule-spec parser can point at it. The same types
pass everywhere:

* a *whole number* is an ``int``, a NumPy integer or an integral float (``100.0``), never a
  bool or a string;
* a *real number* is any ``numbers.Real`` but a bool; NaN never passes; infinities pass only
  where the interval allows them;
* a *choice* is one of a fixed set of strings.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ConfigError

__all__ = [
    "ArgError",
    "whole",
    "real",
    "optional_real",
    "choice",
    "boolean",
    "function",
    "arity",
    "is_count",
    "is_real",
]


class ArgError(ConfigError):
    """A :class:`ConfigError` naming the argument at fault (``.arg``) and its value."""

    def __init__(self, arg: str, value: object, must: str) -> None:
        super().__init__(f"{arg} must be {must}, got {arg}={value!r}")
        self.arg = arg
        self.value = value


def is_real(value: object) -> bool:
    """Whether ``value`` is a real number (NumPy scalars included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_count(value: object) -> bool:
    """Whether ``value`` is a whole number by this module's policy (see :func:`whole`)."""
    if isinstance(value, numbers.Integral):
        return not isinstance(value, bool)
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def whole(arg: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; integral floats such as ``100.0`` pass."""
    if is_count(value) and value >= low and (high is None or value <= high):
        return int(value)
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ArgError(arg, value, f"a whole number {bound}")


def real(
    arg: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a float inside the interval (closed unless ``open_*``); NaN never passes."""
    if is_real(value) and not math.isnan(value):
        above = low < value if open_low else low <= value
        below = value < high if open_high else value <= high
        if above and below:
            return float(value)
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    raise ArgError(arg, value, f"a number in {interval}")


def optional_real(
    arg: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float | None:
    """:func:`real`, with ``None`` passed through (an option that is off)."""
    if value is None:
        return None
    return real(arg, value, low, high, open_low=open_low, open_high=open_high)


def choice(arg: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if isinstance(value, str) and value in choices:
        return value
    raise ArgError(arg, value, "one of " + ", ".join(repr(c) for c in choices))


def boolean(arg: str, value: Any) -> bool:
    """``value`` if it is a bool (``0`` and ``1`` are not)."""
    if isinstance(value, bool):
        return value
    raise ArgError(arg, value, "True or False")


def function(arg: str, value: Any, what: str = "a callable") -> Callable[..., Any]:
    """``value`` if it is callable; ``what`` says which signature is expected."""
    if callable(value):
        return value
    raise ArgError(arg, value, what)


def arity(arg: str, fn: Callable[..., Any], count: int, signature: str) -> None:
    """Raise unless ``fn`` can be called with ``count`` positional arguments.

    Why: a function of the wrong shape (``metric_fn=lambda model: ...``) otherwise fails as a
    raw TypeError in the middle of a run, far from where it was given. ``signature`` is the
    expected one, for the message (``"(model, val_loader) -> float"``). A callable whose
    signature cannot be read (some builtins) passes.
    """
    try:
        found = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        found.bind(*([None] * count))
    except TypeError:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ConfigError(
            f"{arg} must be a function {signature}, called with {count} positional "
            f"argument{'' if count == 1 else 's'}; got {name}{found}. Change its parameters to "
            f"match (extra ones need defaults)."
        ) from None
