"""The exact paired tests against scipy.stats, Holm against a hand computation, the power rule."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from empirical.analysis import stats as S

SAMPLES = [
    [0.3, 1.2, -0.4, 2.5, 0.9],
    [1.0, 2.0, 3.0, 4.0, 5.0, -0.5],
    [-0.2, -1.1, 0.7, -0.3, -2.2, 0.05, -0.9],
    [0.11, 0.52, 0.33, -0.07, 0.91, 0.64, 0.28, -0.15],
]


@pytest.mark.parametrize("d", SAMPLES)
@pytest.mark.parametrize("alt", ["greater", "less", "two-sided"])
def test_sign_flip_equals_scipy_exact_permutation(d, alt):
    ref = sps.permutation_test((np.asarray(d),), np.mean, permutation_type="samples",
                               alternative=alt, n_resamples=np.inf).pvalue
    assert S.sign_flip_test(d, alt) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("d", SAMPLES)
@pytest.mark.parametrize("alt", ["greater", "less", "two-sided"])
def test_signed_rank_equals_scipy_exact_wilcoxon(d, alt):
    ref = sps.wilcoxon(d, alternative=alt, method="exact").pvalue
    assert S.signed_rank_test(d, alt) == pytest.approx(ref, abs=1e-12)


def test_sign_test_equals_binomial():
    d = [1, 2, -1, 3, 4, 0, 5]
    assert S.sign_test(d) == pytest.approx(sps.binomtest(5, 6, 0.5, alternative="greater").pvalue)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False).filter(lambda v: abs(v) > 1e-3), min_size=1, max_size=9))
def test_sign_flip_p_is_a_count_of_sign_patterns(d):
    """Independent reference: count the 2ⁿ sign patterns with sum ≥ observed by plain Python loops."""
    n = len(d)
    obs = sum(d)
    count = 0
    for mask in range(2 ** n):
        s = sum(v if (mask >> i) & 1 == 0 else -v for i, v in enumerate(d))
        count += s >= obs - 1e-9 * max(1.0, sum(abs(v) for v in d))
    assert S.sign_flip_test(d) == pytest.approx(count / 2 ** n)
    assert S.sign_flip_test(d) >= S.min_attainable_p(n) - 1e-15


def test_holm_against_hand_computation():
    # p sorted: 0.01 (×4 = 0.04), 0.02 (×3 = 0.06), 0.03 (×2 = 0.06, max with 0.06), 0.04 (×1 = 0.04 → 0.06)
    p = [0.03, 0.01, 0.04, 0.02]
    assert S.holm(p) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert S.holm([0.5, math.nan, 0.01]) == pytest.approx([0.5, math.nan, 0.02], nan_ok=True)
    assert S.holm([0.4, 0.9]) == pytest.approx([0.8, 0.9])


def test_power_rule_two_seeds_cannot_reach_alpha():
    assert not S.can_reach(2)
    t = S.paired_test([1.0, 2.0], "sign")
    assert t.p == pytest.approx(0.25) and t.p_min == 0.25 and not t.reachable
    assert S.seeds_needed(0.05) == 5
    assert S.seeds_needed(0.05, m=10) == 8          # 2⁻⁸ = 0.0039 ≤ 0.005 < 2⁻⁷


def test_power_rule_six_agreeing_seeds_can_hold():
    d = [0.4, 0.9, 0.2, 1.3, 0.7, 0.5]
    assert S.can_reach(6)
    for method in ("sign", "sign-flip", "signed-rank"):
        t = S.paired_test(d, method)
        assert t.p == pytest.approx(1 / 64) and t.p < S.ALPHA and t.n_pos == 6


def test_bootstrap_ci_covers_the_mean_and_is_reproducible():
    d = [0.4, 0.9, 0.2, 1.3, 0.7, 0.5]
    lo, hi = S.bootstrap_ci(d)
    assert lo < np.mean(d) < hi and (lo, hi) == S.bootstrap_ci(d)
    assert lo >= min(d) and hi <= max(d)
    assert all(math.isnan(v) for v in S.bootstrap_ci([1.0]))


def test_effect_size_is_mean_over_sd():
    d = [1.0, 2.0, 3.0]
    assert S.paired_test(d).effect_size == pytest.approx(2.0 / 1.0)


@pytest.mark.parametrize("x, y", [
    ([0, 0, 0, 0, 3, 0, 5, 0], [0.9, 0.1, 0.4, 0.7, 0.3, 0.8, 0.2, 0.6]),      # heavy ties, as plateau steps
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [2.0, 1.0, 4.0, 3.0, 7.0, 5.0, 6.0]),
])
def test_spearman_permutation_against_all_pairings(x, y):
    """ρ equals scipy's; the Monte Carlo one-sided p values are within 4 standard errors of the exact
    permutation p over all n! pairings."""
    import itertools

    rho, p_g, p_l = S.spearman_permutation(x, y, draws=20_000)
    assert rho == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    null = np.array([sps.spearmanr(x, perm).statistic for perm in itertools.permutations(y)])
    for p, exact in ((p_g, np.mean(null >= rho - 1e-12)), (p_l, np.mean(null <= rho + 1e-12))):
        assert abs(p - exact) <= 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4


def test_spearman_permutation_is_conservative_where_the_t_approximation_is_not():
    """31 of 35 values tied at 0 (the shipped edge-of-stability plateaus): the t approximation's one-sided p
    is about half the permutation p."""
    rng = np.random.default_rng(3)
    x = np.zeros(35)
    x[[2, 9, 17, 30]] = [120, 60, 300, 80]
    y = rng.normal(size=35)
    y[[2, 9, 17, 30]] -= 1.2
    rho, _, p_l = S.spearman_permutation(x, y)
    p_t = sps.spearmanr(x, y).pvalue / 2
    assert rho < 0 and p_t < p_l
