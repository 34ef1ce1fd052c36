"""The text spec: ``"warmup(0.05)+cosine(min=0.01)"`` -> a schedule with every length in steps.

Three stages: a tokenizer, a recursive-descent parser into terms, and a builder that resolves
each term against the table derived from the factories (:mod:`._table`). Every error is a
:class:`~lrpilot.errors.SpecError` that shows the spec with carets under the offending token.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lrpilot._validate import ArgError, whole
from lrpilot.errors import ConfigError, SpecError

from ._base import Schedule
from ._combinators import Join
from ._shapes import constant
from ._table import Entry, aliases, table

_TOKEN = re.compile(
    r"(?P<num>-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[-+(),=\[\]])"
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "name", "op" or "end"
    text: str
    pos: int
    width: int = 0

    def show(self) -> str:
        return "the end of the spec" if self.kind == "end" else repr(self.text)


@dataclass(frozen=True)
class _Arg:
    key: _Tok | None
    value: Any  # float, str or tuple of floats
    where: _Tok


@dataclass(frozen=True)
class _Term:
    name: _Tok
    args: tuple[_Arg, ...]


def _spec_error(spec: str, tok: _Tok, message: str) -> SpecError:
    line = spec.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    width = max(tok.width or len(tok.text), 1)
    return SpecError(f"{message}\n  {line}\n  {' ' * tok.pos}{'^' * width}")


def _tokenize(spec: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(spec):
        if spec[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(spec, pos)
        if m is None:
            bad = _Tok("op", spec[pos], pos)
            raise _spec_error(spec, bad, f"unexpected character {spec[pos]!r}")
        toks.append(_Tok(str(m.lastgroup), m.group(), pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(spec)))
    return toks


class _Parser:
    """Recursive descent over ``term ('+' term)*``, ``term := NAME ['(' [arg (',' arg)*] ')']``."""

    def __init__(self, spec: str) -> None:
        self.spec, self.toks, self.i = spec, _tokenize(spec), 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, tok: _Tok, message: str) -> SpecError:
        return _spec_error(self.spec, tok, message)

    def take(self, kind: str, text: str | None, what: str) -> _Tok:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error(tok, f"expected {what}, found {tok.show()}")
        self.i += 1
        return tok

    def at(self, text: str) -> bool:
        return self.tok.kind == "op" and self.tok.text == text

    def terms(self) -> list[_Term]:
        terms = [self.term()]
        while self.at("+"):
            self.i += 1
            terms.append(self.term())
        if self.tok.kind != "end":
            raise self.error(
                self.tok, f"expected '+' or the end of the spec, found {self.tok.show()}"
            )
        return terms

    def term(self) -> _Term:
        name = self.take("name", None, "a schedule name such as 'cosine'")
        args: list[_Arg] = []
        if self.at("("):
            self.i += 1
            if not self.at(")"):
                args.append(self.arg())
                while self.at(","):
                    self.i += 1
                    args.append(self.arg())
            self.take("op", ")", "',' or ')'")
        return _Term(name, tuple(args))

    def arg(self) -> _Arg:
        key = None
        if self.tok.kind == "name" and self.toks[self.i + 1].text == "=":
            key = self.tok
            self.i += 2
        value, where = self.value()
        return _Arg(key, value, where)

    def value(self) -> tuple[Any, _Tok]:
        tok = self.tok
        if tok.kind in ("num", "name"):
            self.i += 1
            return (float(tok.text) if tok.kind == "num" else tok.text), tok
        if not self.at("["):
            raise self.error(tok, f"expected a number, a name or a [list], found {tok.show()}")
        self.i += 1
        items = [float(self.take("num", None, "a number").text)]
        while self.at(","):
            self.i += 1
            items.append(float(self.take("num", None, "a number").text))
        close = self.take("op", "]", "',' or ']'")
        return tuple(items), _Tok("op", "[", tok.pos, close.pos + 1 - tok.pos)


_BOOLS = {"true": True, "false": False, "yes": True, "no": False}


@dataclass
class _Piece:
    """One resolved term: its table entry, keyword arguments and segment length."""

    term: _Term
    entry: Entry
    kwargs: dict[str, Any]
    where: dict[str, _Tok]
    length: int | None


class _Builder:
    """Turn parsed terms into a schedule, resolving lengths against ``total``."""

    def __init__(self, spec: str, total: int | None) -> None:
        self.spec, self.total = spec, total
        self.notes: dict[int, str] = {}  # token position -> how its fraction was rounded

    def error(self, tok: _Tok, message: str) -> SpecError:
        return _spec_error(self.spec, tok, message + self.notes.get(tok.pos, ""))

    def build(self, terms: list[_Term]) -> Schedule:
        pieces: list[_Piece] = []
        offset = 0
        for i, term in enumerate(terms):
            before = pieces[-1] if pieces else None
            piece = self.piece(term, offset, last=i == len(terms) - 1, before=before)
            pieces.append(piece)
            offset += piece.length or 0
        return self.assemble(pieces)

    def assemble(self, pieces: list[_Piece]) -> Schedule:
        """Compose right to left: a wrapper wraps what follows, the rest are joined."""
        last = pieces[-1]
        sched = constant() if last.entry.decl.wraps else self.make(last)
        rest = pieces if last.entry.decl.wraps else pieces[:-1]
        for k in range(len(rest) - 1, -1, -1):
            piece = rest[k]
            if piece.entry.decl.wraps:
                self.check_ramp(piece, pieces[k + 1] if k + 1 < len(pieces) else None, sched)
                sched = self.make(piece, sched)
            else:
                sched = _prepend(self.make(piece), sched, piece.length or 0)
        return sched

    def check_ramp(self, wrapper: _Piece, after: _Piece | None, inner: Schedule) -> None:
        """A ramp into a schedule that starts at 0 would run all its steps at LR 0."""
        if after is None or not wrapper.length or inner(0) != 0:
            return
        outer, name = wrapper.entry.name, after.entry.name
        hint = f"; use one {name}" if name == outer else ""
        raise self.error(
            after.term.name,
            f"{outer} ramps up to where {name} starts, which is 0, so its {wrapper.length} "
            f"steps would all run at LR 0{hint}",
        )

    def piece(self, term: _Term, offset: int, *, last: bool, before: _Piece | None) -> _Piece:
        entry = self.entry(term)
        kwargs, where = self.arguments(term, entry)
        length = self.segment(term, entry, kwargs, offset, last=last)
        if length is not None:
            self.check_fits(term, where, offset, length, wraps=entry.decl.wraps)
        inherit = entry.decl.after_warmup
        if inherit and inherit not in kwargs and before and before.entry.decl.wraps:
            if before.length:  # warmup(0) is no warmup
                kwargs[inherit] = before.length
        missing = [p for p in entry.required if p not in kwargs]
        if missing:
            raise self.error(term.name, f"{entry.name} needs {missing[0]}=... (no default)")
        return _Piece(term, entry, kwargs, where, length)

    def entry(self, term: _Term) -> Entry:
        known, alias = table(), aliases()
        entry = known.get(alias.get(term.name.text, term.name.text))
        if entry is None:
            raise self.error(term.name, _unknown("schedule", term.name.text, [*known, *alias]))
        return entry

    def segment(
        self, term: _Term, entry: Entry, kwargs: dict[str, Any], offset: int, *, last: bool
    ) -> int | None:
        """The steps this term takes before the next one starts (``None``: to the end)."""
        name = entry.name
        length = kwargs.get("steps") if entry.own_steps else kwargs.pop("steps", None)
        if entry.decl.wraps and length is None:
            raise self.error(term.name, f"{name} needs a length: {name}(0.05) or {name}(100)")
        if length is None and not last:
            raise self.error(term.name, f"{name} needs steps=... because a schedule follows it")
        if length is None and entry.decl.finite:
            kwargs["steps"] = length = self.remaining(term, offset)
        return length

    def arguments(self, term: _Term, entry: Entry) -> tuple[dict[str, Any], dict[str, _Tok]]:
        kwargs: dict[str, Any] = {}
        where: dict[str, _Tok] = {}
        accepted = entry.params
        for k, arg in enumerate(term.args):
            if arg.key is None:
                if any(a.key is not None for a in term.args[:k]):
                    raise self.error(arg.where, "a positional argument cannot follow a named one")
                if k >= 1 or entry.decl.positional is None:
                    raise self.error(arg.where, _positional_hint(entry))
                key, key_tok = entry.decl.positional, arg.where
            else:
                key, key_tok = arg.key.text, arg.key
                if key not in accepted:
                    what = f"argument of {entry.name}"
                    raise self.error(key_tok, _unknown(what, key, list(accepted)))
            if key in kwargs:
                raise self.error(key_tok, f"{key} is given twice")
            kwargs[key] = self.convert(accepted[key], key, arg)
            where[key] = arg.where
        return kwargs, where

    def convert(self, kind: str, key: str, arg: _Arg) -> Any:
        value = arg.value
        if kind == "length":
            return self.length(key, value, arg.where)
        if kind == "lengths":
            return self.lengths(key, value, arg.where)
        if kind == "real" and isinstance(value, float):
            return value
        if kind == "name" and isinstance(value, str):
            return value
        if kind == "bool" and isinstance(value, str) and value.lower() in _BOOLS:
            return _BOOLS[value.lower()]
        want = {"real": "a number", "name": "a name", "bool": "true or false"}[kind]
        raise self.error(arg.where, f"{key} must be {want}, found {arg.where.text!r}")

    def lengths(self, key: str, value: Any, tok: _Tok) -> tuple[int, ...]:
        items = value if isinstance(value, tuple) else (value,)
        steps = tuple(self.length(key, v, tok) for v in items)
        if tok.pos in self.notes:
            self.notes[tok.pos] = f" ({key} are {list(steps)} steps of total_steps={self.total})"
        return steps

    def length(self, key: str, value: Any, tok: _Tok) -> int:
        """A step count, or a fraction of the run rounded to the nearest step.

        A positive fraction may round to 0 steps: the schedule's own check then says how many
        it needs, and the error notes the rounding (the spec never bumps it to 1 silently).
        """
        if not isinstance(value, float) or value < 0:
            raise self.error(tok, f"{key} must be a number of steps or a fraction of the run")
        if value >= 1:
            if not value.is_integer():
                raise self.error(
                    tok,
                    f"{key}={tok.text} is neither a fraction below 1 nor a whole number of steps",
                )
            return int(value)
        if value == 0:
            return 0
        if self.total is None:
            raise self.error(tok, f"{key}={tok.text} is a fraction of the run: give total_steps")
        steps = math.floor(value * self.total + 0.5)
        if value > 0:
            self.notes[tok.pos] = (
                f" ({key}={tok.text} of total_steps={self.total} rounds to "
                f"{steps} step{'' if steps == 1 else 's'})"
            )
        return steps

    def remaining(self, term: _Term, offset: int) -> int:
        name = term.name.text
        if self.total is None:
            raise self.error(term.name, f"{name} runs to the end of the run: give total_steps")
        if self.total - offset < 1:
            raise self.error(
                term.name,
                f"no steps left for {name}: the schedules before it take {offset} of "
                f"total_steps={self.total}",
            )
        return self.total - offset

    def check_fits(
        self, term: _Term, where: dict[str, _Tok], offset: int, length: int, *, wraps: bool
    ) -> None:
        tok = where.get("steps", term.name)
        if length < 1 and not wraps:
            raise self.error(tok, f"{term.name.text} needs at least one step, got steps={length}")
        if self.total is not None and offset + length > self.total:
            raise self.error(
                tok,
                f"{term.name.text} ends at step {offset + length}, past total_steps={self.total}",
            )

    def make(self, piece: _Piece, *schedule: Schedule) -> Schedule:
        try:
            return piece.entry.decl.make(*schedule, **piece.kwargs)
        except ArgError as err:
            raise self.error(piece.where.get(err.arg, piece.term.name), str(err)) from None
        except ConfigError as err:
            raise self.error(piece.term.name, str(err)) from None


def _prepend(first: Schedule, rest: Schedule, length: int) -> Join:
    """``join([first, rest], [length])``, flattening ``rest`` when it is a join."""
    if isinstance(rest, Join):
        bounds = (length, *(length + b for b in rest.boundaries))
        return Join(schedules=(first, *rest.schedules), boundaries=bounds)
    return Join(schedules=(first, rest), boundaries=(length,))


def _unknown(what: str, got: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(got, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {got!r}{hint} (known: {', '.join(sorted(set(known)))})"


def _positional_hint(entry: Entry) -> str:
    if entry.decl.positional is None:
        return f"{entry.name} takes named arguments only: {', '.join(entry.params)}"
    return f"{entry.name} takes one positional argument ({entry.decl.positional}); name the others"


def parse_schedule(spec: str, total_steps: int | None = None) -> Schedule:
    """Parse a text spec into a schedule with every length resolved to steps.

    A spec is schedules joined by ``+``, each a name with optional arguments:
    ``warmup(0.05)+cosine(min=0.01)``, ``step(every=0.3, gamma=0.1)``, ``onecycle(pct=0.3)``,
    ``cyclic(period=0.2, mode=triangular)``, ``warmup(100)+invsqrt``,
    ``wsd(warmup=0.05, decay=0.2)``, ``multistep(milestones=[0.5, 0.75])``,
    ``warmup(0.05, inclusive=true)+cosine``.

    * A length (``steps``, ``every``, ``period``, ``warmup``, ``decay``, ``milestones``,
      ``timescale``) below 1 is a fraction of the whole run (``total_steps``), rounded to the
      nearest step; a whole number ``>= 1`` is a count of steps. A fraction that rounds to fewer
      steps than the schedule needs is an error, not a silent 1. Other arguments are plain
      numbers, names or ``true``/``false``.
    * Each schedule after the first starts at step 0 of its own segment. ``warmup(W)`` ramps into
      whatever follows it (alone, into ``constant``), which must not start at 0 (two warmups in
      a row would run the first at LR 0); every other non-final schedule needs ``steps=``; the
      final one runs to the end of the run (finite schedules: ``cosine``, ``linear``, ``poly``,
      ``onecycle``, ``wsd``) or forever (the others).
    * ``invsqrt`` right after ``warmup(W)`` defaults to ``timescale=W`` (the Transformer schedule).

    Args:
        spec: The text spec.
        total_steps: Steps in the run; needed for fractions and for finite final schedules.

    Raises:
        SpecError: For a malformed spec or a bad argument; the message shows the spec with
            carets under the offending token.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"spec must be a str, got spec={spec!r}")
    total = None if total_steps is None else whole("total_steps", total_steps, 1)
    terms = _Parser(spec).terms()
    return _Builder(spec, total).build(terms)
