"""The monitor's detectors on scripted sequences: pure functions and small state objects."""

from __future__ import annotations

import math
import statistics

import pytest

from lrpilot.control._detectors import (
    LossPlateau,
    SpikeDetector,
    ZClip,
    declining,
    median_error,
    oscillating,
    overfitting,
    plateaued,
    relative_drop,
    relative_rise,
    too_slow,
)

NAN = math.nan
NOISY = [1.0 + 0.05 * ((i * 7919) % 11 - 5) / 5 for i in range(40)]  # level 1, +-5 % jitter


@pytest.mark.parametrize(
    ("values", "spike_at"),
    [
        (NOISY + [1.04, 0.97], []),  # noise is never a spike
        (NOISY + [9.3], [40]),  # 9.3x the median
        (NOISY + [1.3], []),  # many sigmas, but only 1.3x: below spike_ratio
        (NOISY[:5] + [50.0], []),  # during warmup nothing is judged
        (NOISY + [NAN, 1.0], []),  # non-finite values are not spikes (the monitor's NaN rule)
        (NOISY + [20.0, 20.0, 1.0], [40, 41]),  # a spike does not enter the window
        ([2.0 - 0.02 * i for i in range(60)], []),  # a falling loss: below the median
    ],
)
def test_spike_detector_on_scripted_losses(values, spike_at):
    detector = SpikeDetector(window=50, warmup=10, z=6.0, ratio=1.5)
    found = [i for i, v in enumerate(values) if detector.update(v) is not None]
    assert found == spike_at


def test_a_spike_reports_its_ratio_against_the_median():
    detector = SpikeDetector(window=50, warmup=10)
    for v in NOISY:
        detector.update(v)
    spike = detector.update(9.3)
    assert spike is not None
    assert spike.median == pytest.approx(detector.median())
    assert spike.ratio == pytest.approx(9.3 / spike.median)
    assert spike.z > 6


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.0, 2.0] * 15, True),  # period-2 swing at a constant level
        ([1.0, 1.6, 1.1, 1.7, 1.2, 1.8] * 5, True),  # swings around a level that comes back
        (NOISY[:30], False),  # jitter flips sign less often than a sustained swing
        ([3.0 - 0.05 * i for i in range(30)], False),  # steady progress
        ([1.0 + 0.2 * (-1) ** i - 0.03 * i for i in range(30)], False),  # swinging but improving
        ([1.0, 1.01] * 15, False),  # swings too small to matter (1 % of the level)
        ([1.0] * 30, False),  # flat
        ([1.0, 2.0] * 14 + [NAN, 1.0], False),  # a non-finite value is the NaN rule's business
        ([1.0, 2.0, 1.0], False),  # too short to call sustained
    ],
)
def test_oscillation_on_scripted_losses(values, expected):
    assert oscillating(values) is expected


def test_oscillation_thresholds_are_settings():
    swing = [1.0, 1.05] * 15
    assert not oscillating(swing)
    assert oscillating(swing, min_swing=0.04)


@pytest.mark.parametrize(
    ("values", "patience", "expected"),
    [
        ([0.1, 0.2, 0.3, 0.4], 2, False),  # improving
        ([0.1, 0.5, 0.5, 0.5], 2, True),  # no better than the best before the last two
        ([0.1, 0.5, 0.4, 0.6], 2, False),  # the last beats it
        ([0.1, 0.5, 0.4, 0.3, 0.2], 3, True),
        ([0.1, 0.5, 0.4], 3, False),  # not enough evaluations yet
        ([0.1, 0.5, NAN, NAN], 2, True),  # NaN is never an improvement
        ([NAN, NAN, 0.3], 1, False),  # nothing finite to compare with
    ],
)
def test_plateau_on_scripted_metrics(values, patience, expected):
    assert plateaued(values, patience=patience) is expected


def test_plateau_min_delta():
    assert plateaued([0.5, 0.505], patience=1, min_delta=0.01)
    assert not plateaued([0.5, 0.505], patience=1)


@pytest.mark.parametrize(
    ("val", "train", "patience", "expected"),
    [
        ([0.5, 0.7, 0.65, 0.6, 0.55], [1.0, 0.8, 0.7, 0.6, 0.5], 3, True),  # classic overfit
        ([0.5, 0.7, 0.65, 0.6, 0.55], [1.0, 0.8, 0.9, 1.0, 1.1], 3, False),  # train worse too
        ([0.5, 0.7, 0.65, 0.66, 0.55], [1.0, 0.8, 0.7, 0.6, 0.5], 3, False),  # not monotone
        ([0.5, 0.7, 0.75, 0.8], [1.0, 0.8, 0.7, 0.6], 2, False),  # still improving
        ([0.5, 0.7, 0.65], [1.0, 0.8, 0.7], 3, False),  # too few evaluations
        ([0.5, 0.7, 0.65, NAN], [1.0, 0.8, 0.7, 0.6], 2, False),  # NaN: not judged
        ([0.5, 0.7, 0.65, 0.6], [1.0, 0.8, 0.7, 0.6], 2, True),
    ],
)
def test_overfitting_on_scripted_metrics(val, train, patience, expected):
    assert overfitting(val, train, patience=patience) is expected


def test_overfitting_needs_aligned_sequences():
    with pytest.raises(ValueError, match="differ in length"):
        overfitting([0.1, 0.2], [1.0], patience=1)


NEGATIVE = [v - 3.0 for v in NOISY]  # a negative log-likelihood: level -2, +-0.05 jitter


@pytest.mark.parametrize(
    ("values", "spike_at"),
    [
        (NEGATIVE + [-1.96, -2.03], []),  # noise is never a spike
        (NEGATIVE + [-0.5], [40]),  # up by 0.75x the median's size: past spike_ratio's 0.5x
        (NEGATIVE + [-1.3], []),  # many sigmas, but up by only 0.35x its size
        (NEGATIVE + [-0.8, -0.8, -2.0], [40, 41]),  # a spike does not enter the window
        ([-2.0 - 0.02 * i for i in range(60)], []),  # a falling loss, further below zero
        ([-2.0, -2.01, 3.0], [2]),  # a blow-up in the warmup: 2.5x the first's size above it
    ],
)
def test_spike_detector_on_a_loss_below_zero(values, spike_at):
    """ "``ratio`` times the median" for a negative median is a rise of ``ratio - 1`` times its
    magnitude: -1.3 against -2 is no spike (it was one to a test that treated every rise
    above a negative median as infinitely many times it), -0.5 is."""
    detector = SpikeDetector(window=50, warmup=10, z=6.0, ratio=1.5, early_ratio=3.0)
    found = [i for i, v in enumerate(values) if detector.update(v) is not None]
    assert found == spike_at


def test_relative_rise_and_drop_read_a_negative_base_by_its_size() -> None:
    assert relative_rise(9.3, 1.0) == pytest.approx(9.3)  # value / base for a positive base
    assert relative_rise(-1.0, -2.0) == pytest.approx(1.5)  # up by half its size
    assert relative_rise(-3.0, -2.0) == pytest.approx(0.5)  # down by half its size
    assert relative_drop(2.0, 1.5) == pytest.approx(0.25)
    assert relative_drop(-2.0, -2.5) == pytest.approx(0.25)  # fell by a quarter of its size
    assert relative_drop(-2.0, -1.5) == pytest.approx(-0.25)  # rose
    assert math.isinf(relative_rise(1.0, 0.0)) and math.isnan(relative_drop(0.0, 1.0))


def test_a_spike_below_zero_is_described_by_how_far_it_rose_not_a_ratio() -> None:
    detector = SpikeDetector(window=50, warmup=10)
    for v in NEGATIVE:
        detector.update(v)
    spike = detector.update(-0.5)
    assert spike is not None
    text = spike.describe("loss")
    assert "above its running median" in text and "x its" not in text
    assert f"{spike.value - spike.median:.3g}" in text


@pytest.mark.parametrize(
    ("values", "window", "expected"),
    [
        ([-2.0 - 0.001 * i for i in range(40)], 10, pytest.approx(0.0155, abs=1e-3)),  # 1.5 %
        ([-2.0 - 0.02 * i for i in range(40)], 10, None),  # fell ~30 % of its size: fine
        ([-2.0 + 0.01 * i for i in range(40)], 10, pytest.approx(-0.155, abs=1e-2)),  # rose
    ],
)
def test_too_slow_reads_a_loss_below_zero_by_its_size(values, window, expected):
    assert too_slow(values, window=window) == expected


@pytest.mark.parametrize(
    ("values", "window", "expected"),
    [
        ([2.0] * 40, 10, 0.0),  # flat: 0 % drop
        ([2.0 - 0.001 * i for i in range(40)], 10, pytest.approx(0.0155, abs=1e-3)),  # 1.5 %
        ([2.0 - 0.02 * i for i in range(40)], 10, None),  # ~30 %: fine
        ([2.0] * 15, 10, None),  # too short to say
    ],
)
def test_too_slow_on_scripted_losses(values, window, expected):
    assert too_slow(values, window=window) == expected


def test_zclip_clips_outliers_to_mean_plus_z_std_and_is_not_dragged_up():
    clip = ZClip(alpha=0.9, z=2.5, warmup=10)
    norms = [1.0 + 0.1 * ((i * 13) % 5 - 2) for i in range(30)]
    assert all(math.isinf(clip.update(n)) for n in norms)  # nothing clipped in the bulk
    limit = clip.threshold()
    assert 1.0 < limit < 1.6
    assert clip.update(100.0) == pytest.approx(limit)  # clipped to the threshold
    assert clip.threshold() < 1.7  # the clipped value, not 100, entered the statistics
    assert clip.clipped == 1 and clip.seen == 31


def test_zclip_warmup_and_percentile_mode():
    clip = ZClip(mode="percentile", percentile=50.0, warmup=4)
    assert [clip.update(n) for n in (1.0, 2.0, 3.0, 4.0)] == [math.inf] * 4
    assert clip.threshold() == pytest.approx(2.5)  # median of 1..4
    assert clip.update(10.0) == pytest.approx(2.5)
    assert math.isinf(clip.update(NAN))  # a non-finite norm is not this rule's business


def test_noise_of_a_converged_loss_is_not_a_spike_at_the_runs_scale() -> None:
    from lrpilot.control._detectors import SpikeDetector

    # started at 2.3, converged near 0.01 with batches up to 0.012; then one at 0.04
    converged = [2.3] + [0.01 + 0.002 * (i % 2) for i in range(30)]
    plain, scaled = SpikeDetector(), SpikeDetector(min_excess=0.1)
    for v in converged:
        assert plain.update(v) is None and scaled.update(v) is None
    assert plain.update(0.04) is not None  # 4x the median: a spike to a scale-free test
    assert scaled.update(0.04) is None  # +0.03 is 1 % of the first loss: noise
    assert scaled.update(1.5) is not None  # +1.49, 65 % of it: a real spike


def test_a_converged_loss_swinging_by_its_own_size_is_no_oscillation() -> None:
    from lrpilot.control._detectors import oscillating

    swing = [0.01, 0.02] * 15
    assert oscillating(swing)  # judged against its own level: an oscillation
    assert not oscillating(swing, scale=0.23)  # against a tenth of a 2.3 start: noise
    assert oscillating([1.0, 2.0] * 15, scale=0.23)  # a real swing still is


def test_the_spike_detectors_running_median_is_the_windows_median():
    detector = SpikeDetector(window=7, warmup=3, ratio=1e9)  # nothing is a spike: all enter
    values = [((i * 7919) % 13) / 3 + 0.1 for i in range(40)]
    for i, v in enumerate(values):
        detector.update(v)
        window = values[max(0, i - 6) : i + 1]
        assert detector.median() == statistics.median(window)
        assert detector.ordered == sorted(window)


@pytest.mark.parametrize(
    ("values", "falling"),
    [
        ([2.0 * (1 - 0.0003 * i) for i in range(50)], True),  # slow, steady: an LR too low
        ([2.0 * (1 - 0.0003 * i) + 0.02 * (-1) ** i for i in range(50)], True),  # and noisy
        ([2.0 + 0.05 * (-1) ** i for i in range(50)], False),  # flat and bouncing
        ([2.31 - 0.00002 * i for i in range(50)], False),  # a knocked-out net creeping down
        ([2.0 + 0.001 * i for i in range(50)], False),  # climbing
        ([2.0, 1.0, NAN], False),  # too few values
    ],
)
def test_declining_tells_a_slow_descent_from_a_stall(values, falling):
    assert declining(values) is falling


def _blocks(*medians: float, size: int = 10) -> list[float]:
    """Blocks of ``size`` steps whose median is each of ``medians`` (a +-1 % jitter around it)."""
    jitter = [1.0 + 0.01 * ((i * 7) % 5 - 2) / 2 for i in range(size)]  # median exactly 1
    return [m * j for m in medians for j in jitter]


@pytest.mark.parametrize(
    ("medians", "lrs", "fires_at_block"),
    [
        ((2.0, 1.5, 1.2, 1.2, 1.2, 1.2), None, [6]),  # falls, then flat for 3 blocks
        ((2.0, 1.5, 1.2, 1.1982, 1.1964, 1.1946), None, [6]),  # 0.15 % a block: too little
        ((2.0, 1.5, 1.2, 1.19, 1.18, 1.17, 1.16), None, []),  # 0.8 % a block: improving
        ((2.0, 1.5, 1.2, 1.197, 1.19, 1.187, 1.18), None, []),  # 0.5 % every other block
        ((2.0, 1.5, 1.2, 1.3, 1.25, 1.21, 1.19), None, [6]),  # worse, then back: not below
        ((2.0, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2), None, [5, 8]),  # counts again after one
        ((2.0, 1.2, 1.2, 1.2, 1.2), "decay", []),  # the schedule moves the LR: never judged
    ],
)
def test_loss_plateau_on_scripted_blocks(medians, lrs, fires_at_block):
    detector = LossPlateau(block=10, patience=3, min_drop=0.005)
    losses = _blocks(*medians)
    rates = [0.1 * (1 - i / len(losses)) if lrs == "decay" else 0.1 for i in range(len(losses))]
    found = [
        (i + 1) // 10
        for i, (v, lr) in enumerate(zip(losses, rates, strict=True))
        if detector.update(v, lr) is not None
    ]
    assert found == fires_at_block


def test_loss_plateau_threshold_is_relative_to_the_best_s_size_for_a_negative_loss() -> None:
    """A loss can be negative (a log-likelihood bound, a contrastive score): a block improves
    only when it lies 0.5 % of |best| below the best, as torch's relative threshold has it. A
    floor at -10 after a fall from -5 is a plateau like a floor at 10 after a fall from 15."""
    for sign in (1.0, -1.0):
        detector = LossPlateau(block=10, patience=3, min_drop=0.005)
        losses = _blocks(
            *(15.0 if sign > 0 else -5.0, 10.0 * sign, 10.0 * sign, 10.0 * sign, 10.0 * sign)
        )
        fired = [i for i, v in enumerate(losses) if detector.update(v, 0.1) is not None]
        assert [(i + 1) // 10 for i in fired] == [5], sign


def test_median_error_is_the_mad_sigma_times_root_pi_over_2n() -> None:
    # median 3, absolute deviations 2 1 0 1 2: MAD 1; an outlier moves neither
    expected = 1.4826 * math.sqrt(math.pi / 10)
    assert median_error([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(expected)
    assert median_error([1.0, 2.0, 3.0, 4.0, 500.0]) == pytest.approx(expected)
