"""The text spec: what parses to what, every error with its caret, the fuzzed parser, the
rounding of fractions, and the table the parser derives from the factories' signatures."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrpilot import schedules as S
from lrpilot.errors import ConfigError, SpecError
from lrpilot.schedules import _base, _table

ISSUE_SPECS = {
    "constant": S.constant(),
    "cosine": S.cosine(steps=1000),
    "warmup(0.05)+cosine(min=0.01)": S.warmup(S.cosine(steps=950, min=0.01), steps=50),
    "step(every=0.3, gamma=0.1)": S.step_decay(every=300, gamma=0.1),
    "exp(gamma=0.999)": S.exponential(gamma=0.999),
    "onecycle(pct=0.3)": S.onecycle(steps=1000, pct=0.3),
    "cyclic(period=0.2, mode=triangular)": S.cyclic(period=200, mode="triangular"),
    "warmup(100)+invsqrt": S.warmup(S.inverse_sqrt(timescale=100), steps=100),
    "wsd(warmup=0.05, decay=0.2)": S.wsd(steps=1000, warmup=50, decay=200),
    # more of the grammar
    "multistep(milestones=[0.5, 0.75], gamma=0.2)": S.multi_step(milestones=[500, 750], gamma=0.2),
    " warmup( 10 , mode = exp ) + constant ": S.warmup(S.constant(), steps=10, mode="exp"),
    "warmup(100)": S.warmup(S.constant(), steps=100),
    "warmup(0)+cosine": S.cosine(steps=1000),
    "constant(steps=0.25)+linear(steps=250)+cosine(min=0.1)": S.join(
        [S.constant(), S.linear(steps=250), S.cosine(steps=500, min=0.1)], [250, 500]
    ),
    "sgdr(0.1, mult=2)": S.cosine_restarts(period=100, mult=2),
    "onecycle(pct=0.25, three_phase=true, anneal=linear)": S.onecycle(
        steps=1000, pct=0.25, three_phase=True, anneal="linear"
    ),
    "exponential(0.99)+poly(power=2)": None,  # exp has no length, so it cannot be followed
    "poly(power=2, min=1e-3)": S.polynomial(steps=1000, power=2, min=1e-3),
    "invsqrt(timescale=50)": S.inverse_sqrt(timescale=50),
}


@pytest.mark.parametrize("spec", [s for s, v in ISSUE_SPECS.items() if v is not None])
def test_specs_parse_to_step_schedules(spec: str) -> None:
    assert S.parse_schedule(spec, total_steps=1000) == ISSUE_SPECS[spec]


@pytest.mark.parametrize(
    ("spec", "message", "column", "width"),
    [
        ("", "expected a schedule name", 0, 1),
        ("cosin", "did you mean 'cosine'", 0, 5),
        ("cosine(min=0.01", "expected ',' or ')'", 15, 1),
        ("warmup(0.05)+", "expected a schedule name", 13, 1),
        ("warmup(0.05)+cosine(min=2)", "min must be a number in [0, 1], got min=2.0", 24, 1),
        ("cosine(0.5)", "named arguments only", 7, 3),
        ("step(every=1.5)", "neither a fraction below 1 nor a whole number", 11, 3),
        ("step(every=-3)", "every must be a number of steps", 11, 2),
        ("warmup(0.05)+cosine+constant", "cosine needs steps=", 13, 6),
        ("cyclic(period=0.2, mode=triangle)", "mode must be one of", 24, 8),
        ("exp(gamma=0.999) cosine", "expected '+' or the end", 17, 6),
        ("cosine(min=0.01,,)", "expected a number, a name or a [list]", 16, 1),
        ("warmup(2000)+cosine", "past total_steps=1000", 7, 4),
        ("cosine(minimum=0.1)", "did you mean 'min'", 7, 7),
        ("onecycle(three_phase=maybe)", "three_phase must be true or false", 21, 5),
        ("cosine(min=0.1, min=0.2)", "min is given twice", 16, 3),
        ("warmup(steps=10, 0.3)", "positional argument cannot follow", 17, 3),
        ("multistep(milestones=[0.5, 0.4])", "strictly increasing", 21, 10),
        ("cosine(min=0.01)*2", "unexpected character '*'", 16, 1),
        ("wsd(decay=0.9, warmup=0.2)", "decay must be at most", 10, 3),
        ("step", "step needs every=", 0, 4),
        ("warmup(mode=exp)+cosine", "warmup needs a length", 0, 6),
        ("constant(steps=0)+cosine", "needs at least one step", 15, 1),
        ("onecycle(pct=0.0005)", "pct * steps > 1", 13, 6),
        ("cosine(steps=abc)", "steps must be a number of steps", 13, 3),
        ("cosine(min=[0.1])", "min must be a number", 11, 5),
        ("exponential(0.99)+poly(power=2)", "exp needs steps=", 0, 11),
    ],
)
def test_malformed_specs_point_at_the_token(
    spec: str, message: str, column: int, width: int
) -> None:
    with pytest.raises(SpecError) as info:
        S.parse_schedule(spec, total_steps=1000)
    lines = str(info.value).split("\n")
    assert message in lines[0]
    assert lines[1] == "  " + spec
    assert lines[2] == "  " + " " * column + "^" * width


def test_spec_without_total_steps() -> None:
    assert S.parse_schedule("warmup(100)+invsqrt") == S.warmup(
        S.inverse_sqrt(timescale=100), steps=100
    )
    assert S.parse_schedule("exp(0.99)") == S.exponential(gamma=0.99)
    with pytest.raises(SpecError, match="give total_steps") as info:
        S.parse_schedule("warmup(0.1)+cosine")
    assert str(info.value).endswith("         ^^^")  # under 0.1
    with pytest.raises(SpecError, match="cosine runs to the end of the run"):
        S.parse_schedule("cosine")
    with pytest.raises(ConfigError, match="spec="):
        S.parse_schedule(42)  # type: ignore[arg-type]


SPEC_TOKENS = [
    *"()+,=[]",
    "-",
    " ",
    "cosine",
    "warmup",
    "step",
    "exp",
    "onecycle",
    "cyclic",
    "wsd",
    "invsqrt",
    "multistep",
    "restarts",
    "constant",
    "poly",
    "linear",
    "min",
    "steps",
    "every",
    "gamma",
    "pct",
    "period",
    "mode",
    "decay",
    "milestones",
    "three_phase",
    "true",
    "triangular",
    "inclusive",
    "0",
    "0.05",
    "1",
    "100",
    "1.5",
    "1e3",
    "-2",
    "1e999",
    "x",
    "é",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(SPEC_TOKENS), max_size=12), st.sampled_from([None, 1, 1000]))
def test_parser_fuzz_raises_only_spec_errors(tokens: list[str], total: int | None) -> None:
    spec = "".join(tokens)
    try:
        schedule = S.parse_schedule(spec, total_steps=total)
    except SpecError as err:
        caret = str(err).split("\n")[-1]
        assert caret.strip() and set(caret.strip()) == {"^"}
        assert len(caret) - 2 <= len(spec) + 1
    else:
        assert 0.0 <= schedule(0) <= 1.0 and 0.0 <= schedule(10**6) <= 1.0


def _caret(err: SpecError) -> tuple[str, int, int]:
    """(first line, caret column, caret width) of a spec error."""
    lines = str(err).split("\n")
    caret = lines[2][2:]
    return lines[0], len(caret) - len(caret.lstrip()), len(caret.strip())


@pytest.mark.parametrize(
    ("spec", "message", "column", "width"),
    [
        # D25: a fraction that rounds below what the schedule needs is not bumped to 1 step
        ("restarts(period=0.0001)", "period=0.0001 of total_steps=1000 rounds to 0 steps", 16, 6),
        ("cyclic(0.0004)", "rounds to 0 steps", 7, 6),
        ("onecycle(steps=0.001)", "steps must be a whole number >= 2", 15, 5),
        ("cosine(steps=0.0001)", "needs at least one step", 13, 6),
        ("multistep(milestones=[0.0001, 0.5])", "milestones are [0, 500] steps", 21, 13),
        # D25: two warmups in a row would run the first at LR 0
        ("warmup(0.05)+warmup(0.05)", "its 50 steps would all run at LR 0; use one warmup", 13, 6),
        ("warmup(0.05)+cyclic(0.2, min=0)", "where cyclic starts, which is 0", 13, 6),
        ("warmup(0.05, inclusive=maybe)", "inclusive must be true or false", 23, 5),
    ],
)
def test_specs_that_would_waste_steps_are_errors(
    spec: str, message: str, column: int, width: int
) -> None:
    with pytest.raises(SpecError) as info:
        S.parse_schedule(spec, total_steps=1000)
    first, col, wide = _caret(info.value)
    assert message in first and (col, wide) == (column, width), str(info.value)


def test_fractions_round_to_the_nearest_step() -> None:
    assert S.parse_schedule("restarts(period=0.0006)", 1000) == S.cosine_restarts(period=1)
    assert S.parse_schedule("warmup(0.05)+cosine", 9) == S.cosine(steps=9)  # 0.45: no warmup
    start_high = S.parse_schedule("warmup(0.05)+warmup(0.05, start=0.5)", 1000)
    assert start_high(0) == 0 and start_high(50) == 0.5  # a ramp into a ramp that starts > 0


@pytest.mark.parametrize("total", [40, 150, 1500])
def test_inclusive_warmup_spec_matches_the_benchmark_recipe(total: int) -> None:
    """``warmup(0.05, inclusive=true)+cosine`` is ``(t+1)/W``, then a cosine to 0."""
    s = S.parse_schedule("warmup(0.05, inclusive=true)+cosine", total_steps=total)
    w = round(0.05 * total)
    t = np.arange(total + 10)
    cos = 0.5 * (1 + np.cos(np.pi * np.minimum(1, (t - w) / max(1, total - w))))
    expected = np.where(t < w, (t + 1) / w, cos)
    np.testing.assert_allclose([s(int(k)) for k in t], expected, rtol=1e-12, atol=0)
    assert S.from_dict(S.to_dict(s)) == s and S.to_dict(s)["inclusive"] is True


def test_invsqrt_after_warmup_takes_its_length_as_timescale() -> None:
    assert S.parse_schedule("warmup(100)+invsqrt") == S.warmup(
        S.inverse_sqrt(timescale=100), steps=100
    )
    assert S.parse_schedule("warmup(100)+invsqrt(7)") == S.warmup(
        S.inverse_sqrt(timescale=7), steps=100
    )
    assert S.parse_schedule("warmup(0)+invsqrt") == S.inverse_sqrt()


# --------------------------------------------------------------------------------------------
# The table is derived from the factories
# --------------------------------------------------------------------------------------------


def _keywords(entry: _table.Entry) -> set[str]:
    params = list(inspect.signature(entry.decl.make).parameters.values())
    return {p.name for p in params[1 if entry.decl.wraps else 0 :]}


@pytest.mark.parametrize("name", list(_table.table()))
def test_each_spec_name_takes_its_factorys_keywords(name: str) -> None:
    """The spec accepts exactly the factory's keywords, plus ``steps`` as the segment length
    where the factory has no ``steps`` of its own."""
    entry = _table.table()[name]
    own, accepted = _keywords(entry), set(entry.params)
    if entry.own_steps:
        assert "steps" in own and own == accepted, name
    else:
        assert "steps" not in own and own == accepted - {"steps"}, name
    assert set(entry.required) <= own
    assert entry.decl.positional is None or entry.decl.positional in own


def test_the_table_knows_the_documented_names_and_aliases() -> None:
    assert set(_table.table()) == {
        "constant",
        "step",
        "multistep",
        "exp",
        "poly",
        "linear",
        "cosine",
        "restarts",
        "cyclic",
        "onecycle",
        "invsqrt",
        "wsd",
        "warmup",
    }
    assert _table.aliases() == {
        "step_decay": "step",
        "multi_step": "multistep",
        "exponential": "exp",
        "polynomial": "poly",
        "cosine_restarts": "restarts",
        "sgdr": "restarts",
        "one_cycle": "onecycle",
        "inverse_sqrt": "invsqrt",
    }
    kinds = {k: _table.table()["onecycle"].params[k] for k in ("steps", "pct", "anneal")}
    assert kinds == {"steps": "length", "pct": "real", "anneal": "name"}
    assert _table.table()["onecycle"].params["three_phase"] == "bool"
    assert _table.table()["multistep"].params["milestones"] == "lengths"
    assert _table.table()["warmup"].params["start"] == "real"  # float | None


def test_a_new_schedule_is_a_class_a_factory_and_its_declaration() -> None:
    """Nothing else: the parser, to_dict and from_dict pick it up."""

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Halving(S.BaseSchedule):
        kind: ClassVar[str] = "test_halving"
        every: int

        def _at(self, step: int) -> float:
            return 0.5 ** (step // self.every)

    @_base.in_spec("halve", positional="every")
    def halve(*, every: _base.Length) -> S.BaseSchedule:  # annotations resolve at module level
        return Halving(every=every)

    try:
        s = S.parse_schedule("warmup(0.1)+halve(0.2)", total_steps=100)
        assert s == S.warmup(Halving(every=20), steps=10)
        assert S.from_dict(S.to_dict(s)) == s
        with pytest.raises(SpecError, match="did you mean 'halve'"):
            S.parse_schedule("halv(3)")
        with pytest.raises(ConfigError, match="declared twice"):
            _base.in_spec("halve")(halve)
    finally:
        del _base.SPEC_NAMES["halve"], S.BaseSchedule._kinds["test_halving"]
    assert "halve" not in _table.table()


def test_a_declaration_that_disagrees_with_its_factory_is_refused() -> None:
    def bad(*, every: object = 1) -> S.Schedule:
        return S.constant()

    with pytest.raises(ConfigError, match="cannot be written in a spec"):
        _table.derive(_base.SpecName("bad", bad))
    with pytest.raises(ConfigError, match="positional does not match"):
        _table.derive(_base.SpecName("bad", S.cosine, positional="period"))
    with pytest.raises(ConfigError, match="after_warmup does not match"):
        _table.derive(_base.SpecName("bad", S.cosine, after_warmup="min"))


def test_spec_lengths_are_rounded_like_fraction() -> None:
    for total in (40, 999):
        for p in (0.05, 0.3, 0.5, 0.95):
            s = S.parse_schedule(f"constant(steps={p})+cosine", total_steps=total)
            assert s.boundaries == (S.fraction(p, total_steps=total),)  # type: ignore[attr-defined]
            assert math.isclose(p * total, s.boundaries[0], abs_tol=0.5)  # type: ignore[attr-defined]
