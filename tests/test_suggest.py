"""Suggestion rules against synthetic curves whose answer is known in closed form."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from lrpilot import ConfigError, suggest

LRS = np.logspace(-6, 1, 141)  # 0.05 decades apart, like a 141-step exponential sweep
X = np.log10(LRS)


def _near(lr: float, target: float, decades: float = 0.06) -> bool:
    """Within a small factor (0.06 decades is about 15%, barely more than one grid step)."""
    return abs(math.log10(lr) - math.log10(target)) <= decades


def sigmoid_curve(inflection: float, width: float = 0.3) -> np.ndarray:
    """Flat at 2, falls to 0.5 along a sigmoid in log-LR (steepest exactly at ``inflection``,
    in decades), then shoots up past 0.1."""
    fall = 1.5 / (1 + np.exp(-(X - inflection) / width))
    return 2.0 - fall + np.where(X > -1, 5 * (X + 1) ** 2, 0.0)


def piecewise_curve() -> np.ndarray:
    """Flat at 2 up to 1e-4, linear in log-LR down to 0.5 at 1e-2, then up with slope 3/decade.

    Closed-form landmarks: onset (10% of the drop made) at 10^-3.8, minimum at 1e-2, edge
    (back up by a quarter of the drop) at 10^-1.875.
    """
    return np.where(X < -4, 2.0, np.where(X < -2, 2.0 - 0.75 * (X + 4), 0.5 + 3 * (X + 2)))


def cliff_curve() -> np.ndarray:
    """A sharp drop just below 10^-2.4 and a cliff right after 10^-2.1: the minimum sits at the
    cliff's foot, so the middle of the descent is above a third of the edge."""
    drop = 1.5 / (1 + np.exp(-(X + 2.4) / 0.1))
    return 2.0 - drop + np.where(X > -2.1, 30 * (X + 2.1) ** 2, 0.0)


# ----------------------------------------------------------------------------- smooth


def test_smooth_is_exact_on_a_straight_line():
    line = 3.0 - 0.4 * X
    np.testing.assert_allclose(suggest.smooth(LRS, line), line, rtol=0, atol=1e-9)
    uneven = np.sort(np.random.default_rng(0).uniform(-6, 1, 60))
    np.testing.assert_allclose(
        suggest.smooth(10**uneven, 1 + 2 * uneven), 1 + 2 * uneven, atol=1e-9
    )


def test_smooth_has_no_lag_unlike_an_ema():
    centre = int(np.flatnonzero(np.isclose(X, -3))[0])
    bump = np.exp(-0.5 * ((X + 3) / 0.4) ** 2)
    assert int(np.argmax(suggest.smooth(LRS, bump))) == centre

    ema, value = [], 0.0  # what the peers read: a causal EMA, bias-corrected
    for n, v in enumerate(bump, start=1):
        value = 0.9 * value + 0.1 * v
        ema.append(value / (1 - 0.9**n))
    assert int(np.argmax(ema)) >= centre + 3  # the EMA's peak lags to the right


def test_smooth_averages_noise_and_drops_spikes():
    truth = sigmoid_curve(-3)
    rng = np.random.default_rng(0)
    noisy = truth + rng.normal(0, 0.1, X.size)
    noisy[70] += 50.0  # one wild batch
    s = suggest.smooth(LRS, noisy)
    assert np.max(np.abs(s - truth)[:100]) < 0.15
    assert np.std((s - truth)[:100]) < 0.5 * 0.1


# ----------------------------------------------------------------------------- rules


@pytest.mark.parametrize("inflection", [-4.0, -3.0, -2.5])
def test_steepest_finds_the_inflection(inflection):
    assert _near(suggest.steepest(LRS, sigmoid_curve(inflection)), 10**inflection)


@pytest.mark.parametrize("vertex", [-4.0, -2.5, -1.0])
def test_minimum_is_a_tenth_of_the_argmin(vertex):
    parabola = 1.0 + (X - vertex) ** 2
    assert suggest.minimum(LRS, parabola) == pytest.approx(10**vertex / 10, rel=1e-9)
    assert suggest.minimum(LRS, parabola, divisor=4) == pytest.approx(10**vertex / 4, rel=1e-9)


def test_valley_is_the_middle_of_the_longest_descent():
    # falls over [1e-4, 1e-2] (two decades) and over [1, 10] (one decade); rises in between
    curve = np.cos(np.pi * (X + 4) / 2)
    assert suggest.valley(LRS, curve) == pytest.approx(1e-3, rel=1e-9)
    # a short descent first, then a long one over [10^-4.5, 10^-1.5]: the long one wins
    zigzag = np.interp(X, [-6, -5.5, -4.5, -1.5, 1], [0.5, 0.0, 1.0, -2.0, 0.5])
    assert suggest.valley(LRS, zigzag) == pytest.approx(1e-3, rel=1e-9)


def test_landmarks_on_a_constructed_curve():
    m = suggest.landmarks(LRS, piecewise_curve())
    assert _near(m.onset, 10**-3.8)
    assert _near(m.minimum, 1e-2, decades=0.15)  # the smooth rounds the corner
    assert m.edge is not None and _near(m.edge, 10**-1.875)
    assert m.start_loss == pytest.approx(2.0)
    assert m.min_loss == pytest.approx(0.5, abs=0.2)
    assert m.onset < m.minimum < m.edge


def test_landmarks_without_a_cliff_has_no_edge():
    falling = 2.0 - 1.5 / (1 + np.exp(-(X + 3) / 0.3))
    assert suggest.landmarks(LRS, falling).edge is None


def double_dip_curve(second_deeper_by: float) -> np.ndarray:
    """Flat at 2 up to 1e-5, a fall to 0.7 by 10^-4.5, two dips to 0.5 at 1e-4 and to
    ``0.5 - second_deeper_by`` at 1e-2 with 0.7 between them, then a cliff past 10^-1.5: the
    two dips' depths differ from seed to seed in real sweeps of recurrent models."""
    base = np.interp(X, [-6, -5, -4.5], [2.0, 2.0, 0.7])
    base -= 0.2 * np.exp(-0.5 * ((X + 4) / 0.25) ** 2)
    base -= (0.2 + second_deeper_by) * np.exp(-0.5 * ((X + 2) / 0.25) ** 2)
    return base + np.where(X > -1.5, 8 * (X + 1.5) ** 2, 0.0)


def test_a_wide_floor_spans_both_dips_so_its_centre_does_not_jump_between_them():
    """A narrow floor (3 % of the drop) holds only the deeper dip: its centre jumps two
    decades when the other dip becomes the deeper by 0.08. A floor reaching 30 % of the drop
    holds both dips and the hump between them: its centre moves by less than a tenth of a
    decade."""
    narrow, wide = [
        [
            suggest.landmarks(LRS, double_dip_curve(d), floor_fraction=f).floor_centre
            for d in (-0.08, 0.08)
        ]
        for f in (0.03, 0.3)
    ]
    assert _near(narrow[0], 1e-4, decades=0.3) and _near(narrow[1], 1e-2, decades=0.3)
    assert abs(math.log10(wide[1] / wide[0])) < 0.1
    assert 10**-4.5 < wide[0] < 10**-2  # between the two dips, in log-LR
    for d in (-0.08, 0.08):  # the rule reads its floor with its own fraction
        constants = dataclasses.replace(
            suggest.DEFAULT_CONSTANTS, floor_fraction=0.3, prior_weight=0.0
        )
        marks = suggest.landmarks(LRS, double_dip_curve(d), floor_fraction=0.3)
        assert suggest.pilot(LRS, double_dip_curve(d), constants=constants) == pytest.approx(
            marks.floor_centre, rel=1e-9
        )


# ----------------------------------------------------------------------------- pilot


def test_horizon_factor_closed_form():
    ref = suggest.DEFAULT_CONSTANTS.reference_steps
    beta = suggest.DEFAULT_CONSTANTS.horizon_exponent
    assert suggest.horizon_factor(None) == 1.0
    for steps in [1, 100, ref]:
        assert suggest.horizon_factor(steps) == 1.0
    for steps in [ref + 1, 4 * ref, 30_000, 10**7]:
        expected = (ref / steps) ** beta
        assert suggest.horizon_factor(steps) == pytest.approx(expected, rel=1e-12)
    assert suggest.horizon_factor(1_000, reference_steps=100, exponent=1.0) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "curve", [piecewise_curve(), sigmoid_curve(-3), sigmoid_curve(-4), cliff_curve()]
)
def test_pilot_stays_between_onset_and_half_the_edge(curve):
    m = suggest.landmarks(LRS, curve)
    for steps in [None, 1_000, 100_000]:
        lr = suggest.pilot(LRS, curve, steps=steps)
        assert lr >= m.onset * (1 - 1e-9)
        assert lr <= m.edge / 2 * (1 + 1e-9)


@pytest.mark.parametrize("growth", [1.01, 1.063, 1.122, 1.2, 1.585, 3.0])
def test_overshoot_is_where_the_unstable_modes_growth_reaches_the_visible_level(growth):
    """``growth**K``: the product of ``2 g^k - 1`` over the steps past the threshold crosses
    ``EDGE_VISIBLE_GROWTH`` between steps ``floor(K)`` and ``ceil(K)``."""
    k = math.log(suggest.overshoot(growth)) / math.log(growth)
    below = math.prod(2 * growth**i - 1 for i in range(1, math.floor(k) + 1))
    above = math.prod(2 * growth**i - 1 for i in range(1, math.ceil(k) + 1))
    assert below <= suggest.EDGE_VISIBLE_GROWTH <= above


def test_overshoot_grows_with_the_sweeps_speed():
    speeds = [1.0, 1.001, 1.02, 1.2, 1.6, 3.0]
    values = [suggest.overshoot(g) for g in speeds]
    assert values[0] == 1.0
    assert all(a < b for a, b in itertools.pairwise(values)), values
    assert 3.0 < suggest.overshoot(10 ** (8 / 99)) < 3.6  # the default sweep: 100 steps, 8 decades


def test_pilot_cap_is_the_edge_over_the_sweeps_overshoot():
    """On the cliff curve (minimum at the cliff's foot) the pick is capped at the edge over
    the overshoot of a sweep rising 0.05 decades a step; a coarser sweep of the same curve
    (0.1 decades a step) overshoots more and is held further below its edge."""
    fine = cliff_curve()
    m = suggest.landmarks(LRS, fine)
    fine_pick = suggest.pilot(LRS, fine)
    assert fine_pick == pytest.approx(m.edge / suggest.overshoot(10**0.05), rel=1e-9)
    coarse_lrs, coarse = LRS[::2], fine[::2]
    mc = suggest.landmarks(coarse_lrs, coarse)
    coarse_pick = suggest.pilot(coarse_lrs, coarse)
    assert coarse_pick == pytest.approx(mc.edge / suggest.overshoot(10**0.1), rel=1e-9)
    assert coarse_pick / mc.edge < fine_pick / m.edge


def test_pilot_never_above_half_the_edge_however_slow_the_sweep():
    """A very slow sweep (0.005 decades a step) overshoots little: the cap stays at half the
    edge."""
    lrs = np.logspace(-2.6, -1.6, 201)
    x = np.log10(lrs)
    curve = 2.0 - 1.5 / (1 + np.exp(-(x + 2.4) / 0.1)) + np.where(x > -2.1, 30 * (x + 2.1) ** 2, 0)
    assert suggest.overshoot(10**0.005) < 2.0
    edge = suggest.landmarks(lrs, curve).edge
    assert suggest.pilot(lrs, curve) == pytest.approx(edge / 2, rel=1e-9)


def test_pilot_without_an_edge_stays_below_the_last_lr_swept():
    """A loss still falling at the sweep's end says nothing about what lies beyond: the last LR
    stands in for the edge, so the pick is the sweep's overshoot below it rather than at the
    bottom of the curve."""
    still_falling = 2.0 - 1.5 / (1 + np.exp(-(X - 0.5) / 0.3))  # steepest at 10^0.5
    assert suggest.landmarks(LRS, still_falling).edge is None
    assert suggest.pilot(LRS, still_falling) == pytest.approx(
        LRS[-1] / suggest.overshoot(10**0.05), rel=1e-9
    )


def test_pilot_decreases_with_run_length():
    curve = piecewise_curve()
    short = suggest.DEFAULT_CONSTANTS.reference_steps
    picks = [suggest.pilot(LRS, curve, steps=t) for t in [None, short, 1_200, 3_000, 10**6]]
    assert all(a >= b for a, b in itertools.pairwise(picks)), picks
    assert picks[0] == picks[1]  # a run no longer than the reference is "short"
    assert picks[-1] < picks[0]


FREE = suggest.PilotConstants(
    reference_steps=100, horizon_exponent=0.5, adam_horizon_exponent=1.0, schedule_exponent=1.0,
    adam_factor=0.3, onset_margin=0.0,
)  # fmt: skip


def test_pilot_corrections_multiply_in_closed_form():
    """Away from the caps, each fact multiplies the pick by its closed-form factor: the
    horizon (100 / steps) ** 0.5 (** 1.0 for the Adam family), the schedule mean ** -1, the
    Adam factor 0.3."""
    curve = sigmoid_curve(-3)
    base = suggest.pilot(LRS, curve, constants=FREE)
    assert suggest.pilot(LRS, curve, steps=100, constants=FREE) == base
    assert suggest.pilot(LRS, curve, steps=400, constants=FREE) == pytest.approx(base * 0.5)
    assert suggest.pilot(LRS, curve, steps=400, family="sgd", constants=FREE) == pytest.approx(
        base * 0.5
    )
    assert suggest.pilot(LRS, curve, family="adam", constants=FREE) == pytest.approx(base * 0.3)
    assert suggest.pilot(LRS, curve, family="sgd", constants=FREE) == base
    assert suggest.pilot(
        LRS, curve, steps=400, schedule_mean=0.8, family="adam", constants=FREE
    ) == pytest.approx(base * 0.25 * 0.3 / 0.8)
    assert suggest.pilot(LRS, curve, schedule_mean=1.0, constants=FREE) == base


def test_a_decaying_schedule_never_lifts_the_pick_past_the_edge_cap():
    curve = cliff_curve()
    m = suggest.landmarks(LRS, curve)
    cap = m.edge / suggest.overshoot(10**0.05)
    lifted = suggest.pilot(LRS, curve, schedule_mean=0.01, constants=FREE)
    assert lifted == pytest.approx(cap, rel=1e-9)


def test_the_onset_margin_bounds_how_far_below_the_onset_a_pick_may_fall():
    curve = sigmoid_curve(-3)
    onset = suggest.landmarks(LRS, curve).onset
    free = suggest.pilot(LRS, curve, steps=10**9, constants=FREE)
    assert free < onset / 10
    held = dataclasses.replace(FREE, onset_margin=0.3)
    assert suggest.pilot(LRS, curve, steps=10**9, constants=held) == pytest.approx(0.3 * onset)


def test_pilot_band_holds_the_pick_at_its_factors_and_widens_on_a_flat_curve():
    curve = sigmoid_curve(-3)
    pick = suggest.pilot(LRS, curve)
    low, high = suggest.DEFAULT_CONSTANTS.band
    band = suggest.pilot_band(pick, LRS, curve, suggest.DEFAULT_CONSTANTS)
    # widened by 1 + 3 (1 - w), w the curve's evidence weight: next to nothing on a clean curve
    weight = suggest._evidence_weight(
        suggest.landmarks(LRS, curve), suggest.DEFAULT_CONSTANTS.evidence_half_weight_z
    )
    widen = 1 + 3 * (1 - weight)
    assert widen < 1.001
    assert band[0] == pytest.approx(pick * low**widen, rel=1e-9)
    assert band[1] == pytest.approx(pick * high**widen, rel=1e-9)
    noise = 2.0 + np.random.default_rng(0).normal(0, 0.5, X.size)
    flat = suggest.pilot(LRS, noise)
    wide = suggest.pilot_band(flat, LRS, noise, suggest.DEFAULT_CONSTANTS)
    assert wide[0] < flat * low and wide[1] > flat * high


def test_pilot_falls_back_on_the_prior_when_the_curve_is_noise():
    prior = 1e-3
    for seed in range(5):
        noise = 2.0 + np.random.default_rng(seed).normal(0, 0.5, X.size)
        with_prior = suggest.pilot(LRS, noise, prior_lr=prior)
        without = suggest.pilot(LRS, noise)
        assert abs(math.log10(with_prior / prior)) < math.log10(2)
        assert abs(math.log10(with_prior / prior)) <= abs(math.log10(without / prior))


def test_pilot_keeps_the_curve_when_the_evidence_is_clear():
    """A clear curve keeps all but the least prior weight: in log-LR the pick moves exactly
    ``prior_weight`` of the way to the prior."""
    curve = piecewise_curve()
    free = dataclasses.replace(suggest.DEFAULT_CONSTANTS, prior_weight=0.0)
    assert suggest.pilot(LRS, curve, prior_lr=1e-6, constants=free) == pytest.approx(
        suggest.pilot(LRS, curve, constants=free), rel=0.05
    )
    w = suggest.DEFAULT_CONSTANTS.prior_weight
    alone = suggest.pilot(LRS, curve)
    blended = suggest.pilot(LRS, curve, prior_lr=1e-6)
    expected = (1 - w) * math.log10(alone) + w * -6.0
    assert math.log10(blended) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("half_weight_z", [6.0, 12.0, 30.0])
def test_the_curve_and_the_prior_weigh_as_the_evidence_half_weight_says(half_weight_z):
    """In log-LR the pick lies ``w = z^4 / (z^4 + h^4)`` of the way from the prior to the
    curve's own pick, ``z`` the curve's drop in standard errors, ``h`` the half-weight drop."""
    curve = piecewise_curve() + np.random.default_rng(0).normal(0, 0.3, X.size)
    z = suggest.landmarks(LRS, curve).signal_to_noise
    c = dataclasses.replace(
        suggest.DEFAULT_CONSTANTS, prior_weight=0.0, evidence_half_weight_z=half_weight_z
    )
    alone = suggest.pilot(LRS, curve, constants=c)
    blended = suggest.pilot(LRS, curve, prior_lr=1e-6, constants=c)
    w = z**4 / (z**4 + half_weight_z**4)
    assert 0.05 < w < 0.999  # the curve is neither noise nor perfectly clear
    expected = w * math.log10(alone) + (1 - w) * -6.0
    assert math.log10(blended) == pytest.approx(expected, abs=1e-9)


def test_pilot_is_robust_to_noise():
    picks = [
        suggest.pilot(LRS, sigmoid_curve(-3) + np.random.default_rng(s).normal(0, 0.05, X.size))
        for s in range(5)
    ]
    assert max(picks) / min(picks) < 2.0, picks


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", sorted(suggest.RULES))
def test_rules_ignore_the_losses_scale_and_offset(name):
    rule = suggest.RULES[name]
    for seed in range(3):
        walk = np.random.default_rng(seed).normal(size=X.size).cumsum()
        assert rule(LRS, 3.0 * walk + 1.0) == pytest.approx(rule(LRS, walk), rel=1e-9)


@pytest.mark.parametrize("name", sorted(suggest.RULES))
def test_rules_pick_inside_the_swept_range(name):
    for seed in range(3):
        walk = np.random.default_rng(seed).normal(size=X.size).cumsum()
        lr = suggest.RULES[name](LRS, walk)
        low = LRS[0] / (10 if name == "minimum" else 1)
        assert low * (1 - 1e-9) <= lr <= LRS[-1] * (1 + 1e-9)


def test_bootstrap_band_is_ordered_and_narrows_with_less_noise():
    widths = []
    for sd in [0.2, 0.05, 0.01]:
        noisy = sigmoid_curve(-3) + np.random.default_rng(1).normal(0, sd, X.size)
        lo, hi = suggest.bootstrap_band(LRS, noisy, suggest.pilot)
        pick = suggest.pilot(LRS, noisy)
        assert 0 < lo <= pick <= hi  # the band is placed around the pick itself
        widths.append(math.log10(hi / lo))
    assert widths[0] > widths[1] > widths[2]
    again = suggest.bootstrap_band(LRS, noisy, suggest.pilot)
    assert again == (lo, hi)  # seeded


# ----------------------------------------------------------------------------- input checks


RULE_FUNCS = [*suggest.RULES.values(), suggest.smooth, suggest.landmarks]


@pytest.mark.parametrize("fn", RULE_FUNCS, ids=lambda f: f.__name__)
def test_bad_curves_raise_config_error(fn):
    y = sigmoid_curve(-3)
    with pytest.raises(ConfigError, match="same length"):
        fn(LRS, y[:-1])
    with pytest.raises(ConfigError, match="strictly increasing"):
        fn(LRS[::-1], y)
    repeated = LRS.copy()
    repeated[5] = repeated[4]
    with pytest.raises(ConfigError, match="strictly increasing"):
        fn(repeated, y)
    with pytest.raises(ConfigError, match="positive"):
        fn(np.linspace(0.0, 1.0, 20), np.ones(20))
    with pytest.raises(ConfigError, match="at least 8"):
        fn(LRS[:7], y[:7])
    cut = y.copy()
    cut[5] = np.nan  # only five usable points before it
    with pytest.raises(ConfigError, match="at least 8"):
        fn(LRS, cut)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("name", sorted(suggest.RULES))
def test_non_finite_tail_is_cut(name, bad):
    y = sigmoid_curve(-3)
    tailed = y.copy()
    tailed[110:] = bad
    tailed[120] = 0.0  # a finite value after the first bad one is cut too
    rule = suggest.RULES[name]
    assert rule(LRS, tailed) == rule(LRS[:110], y[:110])


def test_bootstrap_band_checks_its_input():
    with pytest.raises(ConfigError):
        suggest.bootstrap_band(LRS[:5], np.ones(5), suggest.pilot)


def test_the_adam_family_shares_the_run_length_exponent_unless_given_its_own():
    shipped = suggest.PilotConstants()
    assert shipped.adam_horizon_exponent is None
    assert suggest.horizon_exponent("adam", shipped) == shipped.horizon_exponent
    own = dataclasses.replace(shipped, adam_horizon_exponent=0.75)
    assert suggest.horizon_exponent("adam", own) == 0.75
    assert suggest.horizon_exponent("sgd", own) == shipped.horizon_exponent
    assert suggest.horizon_exponent(None, own) == shipped.horizon_exponent


def test_a_decaying_schedule_takes_its_own_run_length_exponent_only_when_given_one():
    shipped = suggest.PilotConstants()
    assert shipped.decay_horizon_exponent is None
    assert suggest.horizon_exponent("sgd", shipped, 0.5) == shipped.horizon_exponent
    own = dataclasses.replace(shipped, decay_horizon_exponent=0.1, adam_horizon_exponent=0.75)
    assert suggest.horizon_exponent("adam", own, 0.5) == 0.1  # warmup + cosine: it decays
    assert suggest.horizon_exponent("adam", own, 0.95) == 0.75  # a warmup alone: constant
    assert suggest.horizon_exponent("adam", own, None) == 0.75  # unknown: not decaying
    # the pick for a long cosine run moves by the exponent's difference: (100 / 10^4)^-(0.5 - 0.1)
    curve = sigmoid_curve(-3)
    args = dict(steps=10_000, schedule_mean=0.5, family="sgd")
    base = suggest.pilot(LRS, curve, **args, constants=FREE)
    decayed = suggest.pilot(
        LRS, curve, **args, constants=dataclasses.replace(FREE, decay_horizon_exponent=0.1)
    )
    assert decayed / base == pytest.approx(
        (100 / 10_000) ** (0.1 - FREE.horizon_exponent), rel=1e-6
    )
