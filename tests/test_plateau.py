"""Reduce-on-plateau: torch's ReduceLROnPlateau step by step, a table of cases, the NaN policy,
round trips of the state and invariants."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrpilot import schedules as S
from lrpilot.control.plateau import Decision, PlateauState, ReduceOnPlateau
from lrpilot.errors import ConfigError

NAN, INF = float("nan"), float("inf")


def _metrics(seed: int, n: int = 120) -> list[float]:
    """A loss that falls, stalls, wobbles and has exact ties, NaN and +inf in it (all > 0)."""
    rng = np.random.default_rng(seed)
    base = np.concatenate([np.linspace(2.0, 1.0, n // 3), np.full(n - n // 3, 1.0)])
    values = (base * (1 + 0.02 * rng.standard_normal(n))).round(3).tolist()
    values[n // 2] = NAN
    values[n // 2 + 7] = INF
    return values


SETTINGS = [
    {},
    {"patience": 3},
    {"patience": 2, "cooldown": 3, "factor": 0.5},
    {"patience": 1, "threshold": 0.01, "threshold_mode": "abs"},
    {"patience": 4, "threshold": 0.05},
    {"patience": 0, "factor": 0.3, "min_scale": 0.01},
    {"mode": "max", "patience": 2},
    {"mode": "max", "patience": 3, "threshold_mode": "abs", "threshold": 0.02, "cooldown": 1},
]


@pytest.mark.parametrize("kwargs", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_torch_reduce_lr_on_plateau(kwargs: dict, seed: int) -> None:
    metrics = _metrics(seed)
    if kwargs.get("mode") == "max":
        # a score that rises; +inf would be a (bogus) best for torch in max mode, so -inf
        metrics = [1 / m if math.isfinite(m) else (-INF if m == INF else m) for m in metrics]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    torch_kwargs = {("min_lr" if k == "min_scale" else k): v for k, v in kwargs.items()}
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **torch_kwargs)
    ctrl = ReduceOnPlateau(**kwargs)
    state = ctrl.init()
    for metric in metrics:
        opt.step()
        theirs.step(metric)
        state, _ = ctrl.update(state, metric)
        assert state.scale == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
    assert state.reductions > 0


# (settings, metrics, updates at which the scale is cut)
CASES = [
    ({"patience": 2}, [5, 4, 4, 4, 4, 4, 4, 4], [4, 7]),
    ({"patience": 2, "cooldown": 2}, [5, 4, 4, 4, 4, 4, 4, 4, 4, 4], [4, 9]),
    ({"patience": 0}, [3, 2, 2, 1, 1], [2, 4]),
    ({"patience": 1, "mode": "max"}, [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.69], [3, 6]),
    ({"patience": 1, "threshold": 0.1, "threshold_mode": "abs"}, [1.0, 0.95, 0.91, 0.85], [2]),
    ({"patience": 1}, [1.0, NAN, NAN, 0.5, NAN, INF], [2, 5]),  # non-finite: no improvement
    ({"patience": 1}, [1.0, -INF, 0.9, -INF, -INF], [4]),  # -inf never becomes best
]


@pytest.mark.parametrize(("kwargs", "metrics", "cuts"), CASES)
def test_reduction_table(kwargs: dict, metrics: list[float], cuts: list[int]) -> None:
    ctrl = ReduceOnPlateau(**kwargs)
    state, decisions = ctrl.replay(metrics)
    assert [i for i, d in enumerate(decisions) if d.reduced] == cuts
    assert state.reductions == len(cuts) and state.updates == len(metrics)
    assert state.scale == pytest.approx(ctrl.factor ** len(cuts), rel=1e-12)
    assert math.isfinite(state.best)


def test_nan_policy_and_reasons() -> None:
    ctrl = ReduceOnPlateau(patience=1, factor=0.5, cooldown=1, min_scale=0.5)
    state, decisions = ctrl.replay([1.0, NAN, NAN, 2.0, 3.0, 4.0])
    assert state.best == 1.0
    reasons = [d.reason for d in decisions]
    assert reasons[0] == "improved: best=1"
    assert reasons[1].startswith("metric=nan is not finite: no improvement; no improvement for 1")
    assert "scale 1 -> 0.5" in reasons[2] and decisions[2].reduced
    assert reasons[3] == "in cooldown (0 updates left)"
    assert "is at min_scale=0.5" in reasons[5] and not decisions[5].reduced


def test_relative_threshold_uses_the_magnitude_of_best() -> None:
    """A worse score never counts as an improvement, also when the metric is negative (torch's
    ``best * (1 + threshold)`` makes -1.00001 'better' than -1 in max mode)."""
    ctrl = ReduceOnPlateau(mode="max", patience=0, threshold=1e-4)
    state, decisions = ctrl.replay([-1.0, -1.00001, -0.9])
    assert [d.improved for d in decisions] == [True, False, True]
    assert decisions[1].reduced and state.best == -0.9


def test_state_round_trips_through_json_and_resumes() -> None:
    ctrl = ReduceOnPlateau(patience=2, cooldown=1)
    metrics = _metrics(3, 60)
    whole, _ = ctrl.replay(metrics)
    half, _ = ctrl.replay(metrics[:30])
    restored = PlateauState.from_dict(json.loads(json.dumps(half.to_dict())))
    assert restored == half
    resumed, _ = ctrl.replay(metrics[30:], state=restored)
    assert resumed == whole
    fresh = ctrl.init()
    assert PlateauState.from_dict(json.loads(json.dumps(fresh.to_dict()))) == fresh  # best=inf
    with pytest.raises(ConfigError, match="missing"):
        PlateauState.from_dict({"best": 1.0})


def test_a_nan_best_is_refused() -> None:
    # D11: with best=NaN no metric would ever improve on it, and the scale would be cut
    # every patience + 1 updates for good
    saved = {
        "best": math.nan,
        "bad_updates": 0,
        "cooldown": 0,
        "scale": 1.0,
        "updates": 3,
        "reductions": 0,
    }
    with pytest.raises(ConfigError, match="best must not be NaN"):
        PlateauState.from_dict(saved)


def test_settings_follow_the_one_argument_policy() -> None:
    import numpy as np

    assert ReduceOnPlateau(patience=np.int64(3)).patience == 3  # NumPy ints are whole numbers
    for bad in ({"factor": "0.5"}, {"patience": True}, {"cooldown": 1.5}, {"mode": "up"}):
        with pytest.raises(ConfigError, match=f"{next(iter(bad))} must be"):
            ReduceOnPlateau(**bad)


def test_update_is_pure() -> None:
    ctrl = ReduceOnPlateau(patience=0)
    state = ctrl.init()
    first = ctrl.update(state, 1.0)
    assert ctrl.update(state, 1.0) == first and state == ctrl.init()
    assert isinstance(first[1], Decision)
    assert ctrl.update(first[0], torch.tensor(2.0))[1].reduced  # 0-d tensors are metrics too
    with pytest.raises(ConfigError, match="metric='low'"):
        ctrl.update(state, "low")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "arg"),
    [
        ({"mode": "minimize"}, "mode"),
        ({"factor": 1.0}, "factor"),
        ({"patience": -1}, "patience"),
        ({"patience": 2.5}, "patience"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold_mode": "pct"}, "threshold_mode"),
        ({"cooldown": -2}, "cooldown"),
        ({"min_scale": 1.5}, "min_scale"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_bad_settings_name_the_argument(kwargs: dict, arg: str) -> None:
    with pytest.raises(ConfigError, match=f"{arg}="):
        ReduceOnPlateau(**kwargs)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-10, 10), st.just(NAN)), max_size=60),
    st.integers(0, 4),
    st.floats(0.05, 0.9),
    st.floats(0.0, 0.5),
    st.integers(0, 3),
)
def test_invariants(
    metrics: list[float], patience: int, factor: float, floor: float, cooldown: int
) -> None:
    ctrl = ReduceOnPlateau(patience=patience, factor=factor, min_scale=floor, cooldown=cooldown)
    state, decisions = ctrl.replay(metrics)
    scales = [1.0] + [d.scale for d in decisions]
    assert all(b <= a for a, b in zip(scales, scales[1:], strict=False))
    assert all(floor <= s <= 1.0 for s in scales)
    assert state.reductions == sum(d.reduced for d in decisions)
    assert state.bad_updates <= patience and state.cooldown <= cooldown
    finite = [m for m in metrics if math.isfinite(m)]
    if finite:
        assert state.best in finite and state.best >= min(finite)
    else:
        assert state.best == INF


def test_drives_a_scheduled_optimizer() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = S.attach(opt, S.cosine(steps=100, min=0.1))
    ctrl = ReduceOnPlateau(patience=0, factor=0.5)
    state = ctrl.init()
    for epoch, val_loss in enumerate([1.0, 1.0, 1.0]):
        for _ in range(10):
            opt.step()
            sched.step()
        state, _ = ctrl.update(state, val_loss)
        sched.scale = state.scale
        expected = 0.1 * S.cosine(steps=100, min=0.1)(10 * (epoch + 1)) * 0.5**epoch
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
    assert sched.state_dict()["scale"] == 0.25
