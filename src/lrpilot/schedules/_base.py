"""What every schedule shares: the ``Schedule`` type, the base class and its registry of kinds,
the step check, the ``Length`` annotations and the declaration that puts a factory in the spec.

A factory's own signature says most of what the text-spec parser needs: its argument names,
which have defaults, and (through the annotations ``Length``/``Lengths``, ``float``, ``str``,
``bool``) how each argument is written in a spec. :func:`in_spec` declares the rest, once, on
the factory: its spec name and aliases, its positional argument, whether it runs to the end of
the run by default, whether it wraps the schedule after it, and which argument defaults to the
length of a warmup right before it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeAlias, TypeVar

from lrpilot._validate import ArgError
from lrpilot.errors import ConfigError

Schedule: TypeAlias = Callable[[int], float]
"""Any callable from an optimizer step (``int >= 0``) to a multiplier of the peak LR."""


@dataclass(frozen=True)
class Unit:
    """Marks a step-count argument in a factory's annotations: ``"length"`` (one count) or
    ``"lengths"`` (a sequence of counts). In a spec such an argument may be a fraction of the
    run (``0.05``) as well as a whole number of steps (``100``)."""

    name: str


Length: TypeAlias = Annotated[int, Unit("length")]
"""A number of steps; in a spec also a fraction of the run below 1."""

Lengths: TypeAlias = Annotated[Sequence[int], Unit("lengths")]
"""Steps (such as milestones); in a spec each may also be a fraction of the run below 1."""


def schedule_arg(arg: str, value: Any) -> Schedule:
    """``value`` if it is callable (a schedule), else :class:`ArgError` naming ``arg``."""
    if callable(value):
        return value
    raise ArgError(arg, value, "a schedule (a callable from step to multiplier)")


def check_step(step: Any) -> int:
    """``step`` as an int ``>= 0`` (NumPy integers pass; floats and negatives raise)."""
    try:
        t = operator.index(step)
    except TypeError:
        raise ConfigError(f"step must be an int, got step={step!r}") from None
    if t < 0:
        raise ConfigError(f"step must be >= 0, got step={t}")
    return t


def set_field(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass from its ``__post_init__``."""
    object.__setattr__(obj, name, value)


OMIT_AT_DEFAULT = {"omit_at_default": True}
"""Field metadata for a field added after a schedule's first release: :func:`to_dict` leaves it
out while it holds its default, so older dicts, fingerprints and caches stay the same."""


class BaseSchedule:
    """Base class of lrpilot's schedules.

    A subclass is a frozen, keyword-only dataclass that sets ``kind`` (its ``"type"`` in
    :func:`~lrpilot.schedules.to_dict`), validates and normalises its fields in
    ``__post_init__`` and implements ``_at(step)``. Any plain callable ``step -> multiplier`` is
    a schedule too; subclassing only adds step checking and ``to_dict`` support.

    ``_kinds`` maps each ``kind`` to its class for ``from_dict``. A class registers only a
    ``kind`` it declares itself (a subclass of ``Cosine`` does not inherit ``"cosine"``), and a
    ``kind`` that another class already holds raises ``ConfigError``: a user's subclass must not
    silently replace a built-in when dicts are read back.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[BaseSchedule]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind", "")
        if kind:
            _register(kind, cls)

    def __call__(self, step: int) -> float:
        """Return the multiplier of the peak LR at optimizer step ``step`` (an int ``>= 0``)."""
        return self._at(check_step(step))

    def _at(self, step: int) -> float:
        raise NotImplementedError


def _register(kind: str, cls: type[BaseSchedule]) -> None:
    held = BaseSchedule._kinds.get(kind)
    if held is not None and _qualified(held) != _qualified(cls):  # the same name: a reload
        raise ConfigError(
            f"schedule kind {kind!r} is already registered by {_qualified(held)}; "
            f"give {cls.__qualname__} another kind"
        )
    BaseSchedule._kinds[kind] = cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# --------------------------------------------------------------------------------------------
# The spec declaration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecName:
    """What a factory's signature cannot say about its place in the text spec.

    Attributes:
        name: The spec name (``"cosine"``, ``"step"``).
        make: The factory.
        aliases: Other names; the factory's own name is always one.
        positional: The one argument that may be given without its name, if any.
        finite: The schedule has its own ``steps`` and, last in a spec, runs to the end of the
            run by default (without it, the last term runs forever).
        wraps: The factory's first argument is the schedule that follows it in the spec
            (``warmup``); alone, it wraps ``constant``.
        after_warmup: An argument that defaults to the length of a wrapper right before it
            (``invsqrt``'s ``timescale``: ``warmup(W)+invsqrt`` is the Transformer schedule).
    """

    name: str
    make: Callable[..., Schedule]
    aliases: tuple[str, ...] = ()
    positional: str | None = None
    finite: bool = False
    wraps: bool = False
    after_warmup: str | None = None


SPEC_NAMES: dict[str, SpecName] = {}
"""Every declared spec name, in declaration order; :mod:`._spec` derives its table from it."""

_F = TypeVar("_F", bound=Callable[..., Any])


def in_spec(
    name: str,
    *,
    aliases: tuple[str, ...] = (),
    positional: str | None = None,
    finite: bool = False,
    wraps: bool = False,
    after_warmup: str | None = None,
) -> Callable[[_F], _F]:
    """Declare the decorated factory as the spec term ``name`` (see :class:`SpecName`)."""

    def declare(make: _F) -> _F:
        if name in SPEC_NAMES:
            raise ConfigError(f"spec name {name!r} is declared twice")
        own = () if make.__name__ == name else (make.__name__,)
        SPEC_NAMES[name] = SpecName(
            name, make, own + aliases, positional, finite, wraps, after_warmup
        )
        return make

    return declare
