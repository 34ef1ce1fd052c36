"""The spec parser's table, derived from the factories themselves.

Each factory declared with :func:`~._base.in_spec` becomes an :class:`Entry`: the argument
names, their order and which are required come from its signature; how each is written in a
spec comes from its annotation (``Length``/``Lengths``: a step count or a fraction of the run;
``float``/``int``: a number; ``str``: a name; ``bool``: true or false); the rest comes from the
declaration. Nothing here names a particular schedule.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lrpilot.errors import ConfigError

# Importing the shapes declares every built-in factory.
from . import _shapes  # noqa: F401
from ._base import SPEC_NAMES, SpecName, Unit

_PLAIN = {bool: "bool", int: "real", float: "real", str: "name"}
"""Spec kind of a plain annotation; an ``int`` is written as a number, the factory checks it."""


@dataclass(frozen=True)
class Entry:
    """One spec name: its declaration and what the factory's signature says.

    Attributes:
        decl: The :func:`~._base.in_spec` declaration.
        params: Accepted argument -> kind (``"length"``, ``"lengths"``, ``"real"``, ``"name"``,
            ``"bool"``), in signature order; every term also accepts ``steps``, which for a
            schedule without its own is the length of its segment.
        required: The factory's arguments without a default (the wrapped schedule excluded).
    """

    decl: SpecName
    params: Mapping[str, str]
    required: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.decl.name

    @property
    def own_steps(self) -> bool:
        """Whether ``steps`` is the factory's own argument rather than the segment's length."""
        return self.decl.finite or self.decl.wraps


_cache: dict[tuple[int, ...], dict[str, Entry]] = {}


def table() -> dict[str, Entry]:
    """Spec name -> :class:`Entry`, for every declared factory (derived once per set of
    declarations, so a factory declared later is picked up too)."""
    key = tuple(id(decl) for decl in SPEC_NAMES.values())
    if key not in _cache:
        _cache.clear()
        _cache[key] = {name: derive(decl) for name, decl in SPEC_NAMES.items()}
    return _cache[key]


def aliases() -> dict[str, str]:
    """Alias -> spec name (the factories' own names among them)."""
    return {alias: name for name, decl in SPEC_NAMES.items() for alias in decl.aliases}


def derive(decl: SpecName) -> Entry:
    """Read a declared factory's signature and annotations into an :class:`Entry`."""
    params = list(inspect.signature(decl.make).parameters.values())
    if decl.wraps:
        params = params[1:]  # the schedule that follows in the spec
    hints = typing.get_type_hints(decl.make, include_extras=True)
    kinds = {p.name: spec_kind(hints[p.name], decl.name, p.name) for p in params}
    required = tuple(p.name for p in params if p.default is inspect.Parameter.empty)
    entry = Entry(decl, {**kinds, "steps": kinds.get("steps", "length")}, required)
    _check(entry, kinds)
    return entry


def spec_kind(hint: Any, name: str, arg: str) -> str:
    """How an argument annotated ``hint`` is written in a spec."""
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Unit):
            return meta.name
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return spec_kind(rest[0], name, arg)
    if hint in _PLAIN:
        return _PLAIN[hint]
    raise ConfigError(f"{name}'s argument {arg}: {hint!r} cannot be written in a spec")


def _check(entry: Entry, kinds: Mapping[str, str]) -> None:
    """A declaration must agree with its factory's signature."""
    decl = entry.decl
    problems = {
        "positional": decl.positional is not None and decl.positional not in kinds,
        "steps": entry.own_steps and kinds.get("steps") != "length",
        "after_warmup": decl.after_warmup is not None and kinds.get(decl.after_warmup) != "length",
    }
    for what, bad in problems.items():
        if bad:
            raise ConfigError(f"spec name {decl.name!r}: {what} does not match {decl.make}")
