"""Loss-curve measures and fits: recovery on synthetic curves, degenerate fits, interval coverage
under autocorrelated residuals (the reason for the correction)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from empirical.analysis import convergence as C


def ar1(n, rho, sd, rng):
    e = np.empty(n)
    e[0] = rng.normal(0, sd / math.sqrt(1 - rho ** 2))
    for i in range(1, n):
        e[i] = rho * e[i - 1] + rng.normal(0, sd)
    return e


def test_exponential_with_noise_recovers_k_within_its_interval():
    rng = np.random.default_rng(3)
    t = np.arange(1, 301)
    y = 2.0 * np.exp(-0.02 * (t - 1)) + 0.25 + 0.03 * rng.standard_normal(len(t))
    f = C.fit_exp(t, y)
    assert f.ok, f.degenerate
    assert f.k_lo < 0.02 < f.k_hi and abs(f.k - 0.02) < 0.002
    assert f.c == pytest.approx(0.25, abs=0.02) and f.a == pytest.approx(2.0, abs=0.1)


def test_flat_curve_is_a_degenerate_fit():
    rng = np.random.default_rng(4)
    t = np.arange(300)
    f = C.fit_exp(t, 2.3026 + 0.01 * rng.standard_normal(300))
    assert not f.ok and f.degenerate


def test_fit_keeps_the_plateau_non_negative():
    """A straight decline would be fitted best by a huge plateau below zero; c ≥ 0 forbids it."""
    t = np.arange(100)
    y = 2.3 - 0.01 * t
    f = C.fit_exp(t, y)
    assert f.c == 0.0 and f.k > 0
    free = np.polyfit(t, y, 1)                       # the unconstrained limit k → 0 is this line, c → −∞
    assert free[0] < 0


def test_intervals_cover_under_autocorrelated_residuals():
    """On curves with AR(1) residuals (ρ = 0.8, as measured on real loss curves) the corrected 95 %
    intervals cover the true k and slope in ≥ 88 % of draws; the naive OLS intervals do not."""
    rng = np.random.default_rng(1)
    t, x = np.arange(150), np.arange(30)
    cov = naive = cov_l = naive_l = 0
    n = 120
    for _ in range(n):
        f = C.fit_exp(t, 2 * np.exp(-0.03 * t) + 0.3 + ar1(150, 0.8, 0.02, rng))
        cov += f.k_lo <= 0.03 <= f.k_hi
        naive += f.k_naive_lo <= 0.03 <= f.k_naive_hi
        line = C.linear_fit(x, 1 - 0.01 * x + ar1(30, 0.8, 0.05, rng))
        cov_l += line.slope_lo <= -0.01 <= line.slope_hi
        naive_l += line.naive_lo <= -0.01 <= line.naive_hi
    assert cov / n >= 0.88 and cov_l / n >= 0.88
    assert naive / n < 0.75 and naive_l / n < 0.75


def test_linear_fit_matches_scipy_linregress_and_flatness():
    from scipy.stats import linregress

    rng = np.random.default_rng(0)
    x = np.arange(1, 41, dtype=float)
    y = 2.0 - 0.03 * x + 0.01 * rng.standard_normal(40)
    f = C.linear_fit(x, y)
    ref = linregress(x, y)
    assert f.slope == pytest.approx(ref.slope) and f.intercept == pytest.approx(ref.intercept)
    assert f.r2 == pytest.approx(ref.rvalue ** 2)
    band = C.flat_band(2.3, 39)
    assert C.flatness(f.slope_lo, f.slope_hi, band) == "not flat"
    flat = C.linear_fit(x, 2.3 + 0.001 * rng.standard_normal(40))
    assert C.flatness(flat.slope_lo, flat.slope_hi, band) == "flat"
    assert C.flatness(-0.01, 0.001, band) == "undetermined"


def test_steps_and_epochs_to_fraction_and_accuracy():
    steps = np.arange(1, 101)
    loss = 2.0 * np.exp(-0.05 * (steps - 1))
    # trailing mean over 5 ≤ 1.0 ⇔ first t with mean(L_{t-4..t}) ≤ 1
    trail = [np.mean(loss[max(0, i - 4):i + 1]) for i in range(100)]
    assert C.steps_to_fraction(steps, loss, 0.5) == steps[np.flatnonzero(np.array(trail) <= 1.0)[0]]
    assert C.steps_to_fraction(steps, np.full(100, 2.0), 0.5) is None
    assert C.epochs_to_fraction([1, 2, 3], [1.5, 0.9, 0.1], 2.0, 0.9) == 3
    assert C.epochs_to_accuracy([1, 2, 3], [0.5, 0.91, 0.95], 0.9) == 2
    assert C.epochs_to_accuracy([1, 2], [0.5, 0.6], 0.9) is None
    assert C.area_under_log_loss([1.0, math.e]) == pytest.approx(0.5)


def test_never_learned_is_accuracy_at_chance():
    assert C.never_learned(0.099) and C.never_learned(0.14) and not C.never_learned(0.2)
    assert C.never_learned(float("nan"))


def test_short_strongly_autocorrelated_curves_keep_their_coverage():
    """40 points with ρ = 0.9 leave about 3 effective ones: the interval of k needs Student t with n_eff − p
    degrees of freedom, not the normal quantile (which covered the true k in 86 % of these draws)."""
    rng = np.random.default_rng(2)
    t = np.arange(40)
    n = 200
    cov = 0
    for _ in range(n):
        f = C.fit_exp(t, 2 * np.exp(-0.05 * t) + 0.3 + ar1(40, 0.9, 0.03, rng))
        cov += f.k_lo <= 0.05 <= f.k_hi
    assert cov / n >= 0.9
