"""The shared divergence detector: a table of loss sequences and where each must stop, its NaN
policy, and its state as plain data."""

from __future__ import annotations

import json
import math

import pytest

from lrpilot import ConfigError
from lrpilot.control import DivergenceDetector, DivergenceState

NAN, INF = math.nan, math.inf


def _first_stop(detector: DivergenceDetector, losses: list[float]) -> int | None:
    state = detector.init()
    for i, loss in enumerate(losses):
        state, verdict = detector.update(state, loss)
        if verdict.diverged:
            return i
    return None


@pytest.mark.parametrize(
    ("settings", "losses", "stop"),
    [
        # growth over the best (the range test): 4x the best, raw loss
        (dict(smoothing=0.0), [2.0, 1.0, 3.9, 4.0], None),
        (dict(smoothing=0.0), [2.0, 1.0, 3.9, 4.01], 3),
        # over the start (a run): 5x the first, whatever the best
        (dict(threshold=5.0, smoothing=0.0, reference="start"), [2.0, 0.1, 9.9, 10.1], 3),
        # negative losses: growth measured against the size of the drop
        (dict(smoothing=0.0), [-1.0, -3.0, -2.0, 2.9], None),  # scale 2: stop past -3 + 3 * 2
        (dict(smoothing=0.0), [-1.0, -3.0, -2.0, 3.1], 3),
        # one NaN is skipped, three in a row stop; a finite loss resets the streak
        (dict(smoothing=0.0), [1.0, NAN, 1.0, NAN, NAN, 1.0], None),
        (dict(smoothing=0.0), [1.0, NAN, INF, -INF], 3),
        (dict(smoothing=0.0, max_nonfinite=1), [1.0, NAN], 1),
        # growth off: only the streak
        (dict(threshold=None, smoothing=0.0), [1.0, 1e9, NAN, NAN, NAN], 4),
    ],
)
def test_where_each_sequence_stops(settings, losses, stop):
    assert _first_stop(DivergenceDetector(**settings), losses) == stop


def test_the_ema_is_bias_corrected():
    detector = DivergenceDetector(smoothing=0.9)
    state = detector.init()
    state, verdict = detector.update(state, 2.0)
    assert verdict.smoothed == pytest.approx(2.0, rel=1e-15)  # the first value itself
    state, verdict = detector.update(state, 1.0)
    expected = (0.9 * 0.1 * 2.0 + 0.1 * 1.0) / (1 - 0.9**2)
    assert verdict.smoothed == pytest.approx(expected, rel=1e-15)
    assert state.best == pytest.approx(expected) and state.first == 2.0


def test_nan_never_enters_the_ema_and_is_counted():
    detector = DivergenceDetector(smoothing=0.5)
    state = detector.init()
    for loss in [1.0, NAN, 3.0]:
        state, verdict = detector.update(state, loss)
    clean = detector.init()
    for loss in [1.0, 3.0]:
        clean, _ = detector.update(clean, loss)
    assert state.smoothed == clean.smoothed and state.skipped == 1 and state.nonfinite == 0
    _, verdict = detector.update(state, NAN)
    assert not verdict.diverged and not verdict.finite and "skipped" in verdict.reason


def test_update_is_pure_and_state_round_trips():
    detector = DivergenceDetector()
    state = detector.init()
    for loss in [3.0, 2.0, NAN]:
        state, _ = detector.update(state, loss)
    copy = DivergenceState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    a, _ = detector.update(state, 1.0)
    b, _ = detector.update(state, 1.0)
    assert a == b and state == copy


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        (dict(threshold=1.0), "threshold"),
        (dict(threshold=NAN), "threshold"),
        (dict(smoothing=1.0), "smoothing"),
        (dict(reference="last"), "reference"),
        (dict(max_nonfinite=0), "max_nonfinite"),
        (dict(max_nonfinite=2.5), "max_nonfinite"),
    ],
)
def test_bad_settings_name_the_argument(settings, name):
    with pytest.raises(ConfigError, match=f"{name} must be"):
        DivergenceDetector(**settings)


def test_a_state_dict_must_be_complete():
    with pytest.raises(ConfigError, match="missing"):
        DivergenceState.from_dict({"ema": 0.0})
