"""Schedules as data: pickle and dict round trips over every kind (and a check that the
strategies cover every kind), compatibility with what lrpilot 0.1 wrote, the registry of kinds,
plotting and the docstring examples."""

from __future__ import annotations

import base64
import dataclasses
import doctest
import json
import pickle
from typing import ClassVar

import pytest
from hypothesis import given

from lrpilot import schedules as S
from lrpilot.errors import ConfigError
from test_schedules_support import FAST, KIND_STRATEGIES, kinds_in, schedules, schedules_of_kind


@FAST
@given(schedules())
def test_pickle_and_dict_round_trips(pair: tuple[S.Schedule, float]) -> None:
    schedule = pair[0]
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    data = json.loads(json.dumps(S.to_dict(schedule)))
    again = S.from_dict(data)
    assert again == schedule and hash(again) == hash(schedule)
    assert [again(t) for t in (0, 7, 1234)] == [schedule(t) for t in (0, 7, 1234)]


def _builtin_kinds() -> set[str]:
    return {k for k, cls in S.BaseSchedule._kinds.items() if cls.__module__ == "lrpilot.schedules"}


def test_the_strategies_cover_every_kind() -> None:
    """A new schedule kind without a Hypothesis strategy fails here."""
    assert _builtin_kinds() == set(KIND_STRATEGIES)
    assert {"scaled", "floored", "sqrt_decay"} <= set(KIND_STRATEGIES)


@pytest.mark.parametrize("kind", sorted(KIND_STRATEGIES))
def test_each_kinds_strategy_draws_that_kind(kind: str) -> None:
    @FAST
    @given(schedules_of_kind(kind))
    def check(pair: tuple[S.Schedule, float]) -> None:
        schedule, lo = pair
        data = S.to_dict(schedule)
        assert kind in kinds_in(data)
        assert S.from_dict(json.loads(json.dumps(data))) == schedule
        assert lo * (1 - 1e-12) <= schedule(3) <= 1.0 + 1e-12

    check()


# What lrpilot 0.1 (schedules.py as one module) wrote: a pickle of five schedules ...
OLD_PICKLE = "".join(
    [
        "gASVcQIAAAAAAABdlCiMEWxycGlsb3Quc2NoZWR1bGVzlIwGV2FybXVwlJOUKYGUfZQojAhzY2hlZHVsZZRoAYwGQ2"
        "9zaW5llJOUKYGUfZQojAVzdGVwc5RNtgOMA21pbpRHP4R64UeuFHt1YmgLSzKMBXN0YXJ0lEcAAAAAAAAAAIwEbW9k"
        "ZZSMBmxpbmVhcpR1YmgDKYGUfZQoaAZoAYwESm9pbpSTlCmBlH2UKIwJc2NoZWR1bGVzlGgBjAhDb25zdGFudJSTlC"
        "mBlH2UjAV2YWx1ZZRHP/AAAAAAAABzYmgBjAlTcXJ0RGVjYXmUk5QpgZR9lChoC0sUaAxHAAAAAAAAAAB1YoaUjApi"
        "b3VuZGFyaWVzlEtLhZR1YmgLSwVoDUcAAAAAAAAAAGgOaA91YmgBjAhPbmVDeWNsZZSTlCmBlH2UKGgLS2SMA3BjdJ"
        "RHP9MzMzMzMzOMA2RpdpRHQDkAAAAAAACMCWZpbmFsX2RpdpRHQMOIAAAAAACMBmFubmVhbJSMA2Nvc5SMC3RocmVl"
        "X3BoYXNllIl1YmgBjAdGbG9vcmVklJOUKYGUfZQoaAZoAYwGU2NhbGVklJOUKYGUfZQoaAZoAYwGQ3ljbGljlJOUKY"
        "GUfZQojAZwZXJpb2SUSwpoDEc/uZmZmZmZmmgOjAp0cmlhbmd1bGFylIwFZ2FtbWGURz/wAAAAAAAAjAJ1cJRHP+AA"
        "AAAAAAB1YowGZmFjdG9ylEc/4AAAAAAAAHViaAxHP7mZmZmZmZp1YmgBjAlNdWx0aVN0ZXCUk5QpgZR9lCiMCm1pbG"
        "VzdG9uZXOUSwNLBYaUaDtHP7mZmZmZmZp1YmUu"
    ]
)

# ... and the to_dict output of these specs over 1,000 steps.
OLD_DICTS = {
    "warmup(0.05)+cosine(min=0.01)": {
        "type": "warmup",
        "schedule": {"type": "cosine", "steps": 950, "min": 0.01},
        "steps": 50,
        "start": 0.0,
        "mode": "linear",
    },
    "wsd(warmup=0.05, decay=0.2, shape=sqrt)": {
        "type": "warmup",
        "schedule": {
            "type": "join",
            "schedules": [
                {"type": "constant", "value": 1.0},
                {"type": "sqrt_decay", "steps": 200, "min": 0.0},
            ],
            "boundaries": [750],
        },
        "steps": 50,
        "start": 0.0,
        "mode": "linear",
    },
    "onecycle(pct=0.3)": {
        "type": "onecycle",
        "steps": 1000,
        "pct": 0.3,
        "div": 25.0,
        "final_div": 10000.0,
        "anneal": "cos",
        "three_phase": False,
    },
    "restarts(0.1, mult=2, min=0.01)": {
        "type": "cosine_restarts",
        "period": 100,
        "mult": 2,
        "min": 0.01,
        "decay": 1.0,
    },
    "multistep(milestones=[0.5, 0.75], gamma=0.1)": {
        "type": "multi_step",
        "milestones": [500, 750],
        "gamma": 0.1,
    },
    "warmup(100)+invsqrt": {
        "type": "warmup",
        "schedule": {"type": "inverse_sqrt", "timescale": 100},
        "steps": 100,
        "start": 0.0,
        "mode": "linear",
    },
    "constant(steps=0.25)+linear(steps=250)+cosine(min=0.1)": {
        "type": "join",
        "schedules": [
            {"type": "constant", "value": 1.0},
            {"type": "linear", "steps": 250, "start": 1.0, "end": 0.0},
            {"type": "cosine", "steps": 500, "min": 0.1},
        ],
        "boundaries": [250, 500],
    },
}


def test_old_pickles_load_and_equal_todays_schedules() -> None:
    old = pickle.loads(base64.b64decode(OLD_PICKLE))
    assert old == [
        S.parse_schedule("warmup(0.05)+cosine(min=0.01)", 1000),
        S.wsd(steps=100, warmup=5, decay=20, shape="sqrt"),
        S.onecycle(steps=100),
        S.floor(S.scale(S.cyclic(period=10), 0.5), 0.1),
        S.multi_step(milestones=[3, 5]),
    ]
    assert old[0].inclusive is False and old[0](25) == 0.5
    assert type(pickle.loads(pickle.dumps(old[0]))).__module__ == "lrpilot.schedules"


@pytest.mark.parametrize("spec", list(OLD_DICTS))
def test_to_dict_output_is_unchanged(spec: str) -> None:
    schedule = S.parse_schedule(spec, total_steps=1000)
    assert S.to_dict(schedule) == OLD_DICTS[spec]
    assert S.from_dict(OLD_DICTS[spec]) == schedule


def test_a_new_field_at_its_default_is_left_out_of_to_dict() -> None:
    plain = S.to_dict(S.warmup(S.constant(), steps=5))
    assert "inclusive" not in plain
    assert S.to_dict(S.warmup(S.constant(), steps=5, inclusive=True))["inclusive"] is True
    assert S.from_dict({**plain, "inclusive": True}) == S.warmup(
        S.constant(), steps=5, inclusive=True
    )


def test_from_dict_rejects_what_it_cannot_build() -> None:
    with pytest.raises(ConfigError, match="unknown or missing 'type'"):
        S.from_dict({"type": "nope"})
    with pytest.raises(ConfigError, match="bad fields for a 'cosine'"):
        S.from_dict({"type": "cosine", "steps": 3, "height": 1})
    with pytest.raises(ConfigError, match="min="):
        S.from_dict({"type": "cosine", "steps": 3, "min": 2})


# --------------------------------------------------------------------------------------------
# The registry of kinds
# --------------------------------------------------------------------------------------------


def test_a_subclass_cannot_take_a_registered_kind() -> None:
    with pytest.raises(ConfigError, match="'cosine' is already registered by lrpilot.schedules"):

        @dataclasses.dataclass(frozen=True, kw_only=True)
        class MyCosine(S.Cosine):
            kind: ClassVar[str] = "cosine"

    assert S.BaseSchedule._kinds["cosine"] is S.Cosine
    assert S.from_dict({"type": "cosine", "steps": 10}) == S.cosine(steps=10)


def test_a_subclass_does_not_inherit_its_parents_kind() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Shifted(S.Cosine):
        def _at(self, step: int) -> float:
            return super()._at(step + 1)

    assert S.BaseSchedule._kinds["cosine"] is S.Cosine
    assert Shifted(steps=10)(9) == 0.0


def test_a_subclass_with_its_own_kind_round_trips() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Half(S.BaseSchedule):
        kind: ClassVar[str] = "test_half"

        def _at(self, step: int) -> float:
            return 0.5

    try:
        assert S.from_dict(S.to_dict(Half())) == Half()
    finally:
        del S.BaseSchedule._kinds["test_half"]


# --------------------------------------------------------------------------------------------
# Pictures and docs
# --------------------------------------------------------------------------------------------


def test_plot_writes_a_png(tmp_path) -> None:
    path = tmp_path / "s.png"
    fig = S.plot(
        S.onecycle(steps=100), 100, str(path), peak=0.1, title="onecycle", log=True, dpi=40
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.axes[0].get_yscale() == "log"


def _examples() -> list[doctest.DocTest]:
    """The examples in the package's docstrings and in each public object's: doctest's own
    search skips the objects whose ``__module__`` names the package, not their private home."""
    finder = doctest.DocTestFinder()
    found = [t for t in finder.find(S) if t.examples]
    for name in S.__all__:
        obj = getattr(S, name)
        if callable(obj) and obj.__doc__:
            found += [t for t in finder.find(obj, name, globs=vars(S)) if t.examples]
    return found


def test_docstring_examples() -> None:
    from lrpilot.control import plateau

    examples = _examples()
    assert {t.name for t in examples} >= {"lrpilot.schedules", "attach"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in examples:
        runner.run(test)
    assert runner.failures == 0
    assert doctest.testmod(plateau, optionflags=doctest.ELLIPSIS).failed == 0


PUBLIC_NAMES = sorted(
    """
    BaseSchedule ByFraction Constant Cosine CosineRestarts Cyclic Exponential Floored InverseSqrt
    Join Linear MultiStep OneCycle Polynomial Scaled Schedule ScheduleLR SqrtDecay StepDecay
    Warmup attach by_fraction constant cosine cosine_restarts cyclic epochs exponential floor
    fraction from_dict inverse_sqrt join linear multi_step onecycle parse_schedule plot
    polynomial scale step_decay to_dict values warmup wsd
""".split()
)
"""``schedules.__all__`` before the split into a package."""

ADDED_NAMES = ["Tabulated", "from_scheduler"]
"""Public names added since: a torch scheduler read into a schedule."""


def test_public_names_are_unchanged_and_report_the_package() -> None:
    assert sorted(S.__all__) == sorted(PUBLIC_NAMES + ADDED_NAMES)
    for name in S.__all__:
        obj = getattr(S, name)
        if hasattr(obj, "__qualname__") and name != "Schedule":
            assert obj.__module__ in ("lrpilot.schedules", "lrpilot"), name
