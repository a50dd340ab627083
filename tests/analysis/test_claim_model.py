"""The claim model's verdict rules on constructed numbers: each verdict is reachable and only
for its own reason."""
from __future__ import annotations

import math

import pytest

from empirical.analysis import verdicts as V
from empirical.analysis import stats as S


def test_tolerance_rule_uses_the_interval_of_the_mean():
    m, sd, lo, hi, n = V.interval([1.00, 1.01, 0.99, 1.00, 1.02])
    assert V.tolerance_verdict(m, 1.0, 0.1, lo, hi, sd)[0] == V.HELD
    assert V.tolerance_verdict(m, 2.0, 0.1, lo, hi, sd)[0] == V.FAILED
    m, sd, lo, hi, n = V.interval([0.8, 1.3])                 # 2 seeds: wide interval over the edge
    v, why = V.tolerance_verdict(m, 1.0, 0.1, lo, hi, sd)
    assert v == V.INCONCLUSIVE and "straddles" in why
    assert V.tolerance_verdict(math.nan, 1.0, 0.1)[0] == V.NOT_APPLICABLE
    for m in (1.05, 3.0):                                    # one seed: no interval, neither held nor failed
        v, why = V.tolerance_verdict(m, 1.0, 0.1)
        assert v == V.INCONCLUSIVE and "run ≥ 2 seeds" in why


def test_seeds_for_interval_is_the_first_n_that_fits():
    from scipy.stats import t
    n = V.seeds_for_interval(1.0, 0.5)
    assert t.ppf(0.975, n - 1) / math.sqrt(n) <= 0.5 < t.ppf(0.975, n - 2) / math.sqrt(n - 1)


def test_bound_rule():
    assert V.bound_verdict(0.97, 1.0, 1e-4)[0] == V.HELD
    assert V.bound_verdict(1.001, 1.0, 1e-4)[0] == V.FAILED


def _claim(name):
    return V.Claim("s", "hypothesis", name, "relu vs sigmoid", "x", "effect > 0 at α (Holm)")


def test_hypothesis_verdicts_held_failed_inconclusive():
    held = S.paired_test([0.5, 0.7, 0.4, 0.9, 0.6, 0.8, 0.3, 0.75])     # 8 seeds: 2⁻⁸·4 < α
    failed = S.paired_test([-0.5, -0.7, -0.4, -0.9, -0.6, -0.8, -0.3, -0.75])
    mixed = S.paired_test([0.5, -0.7, 0.4, -0.9, 0.6, 0.1])
    two = S.paired_test([0.5, 0.7])
    out = V.apply_holm([(_claim("a"), held), (_claim("b"), failed), (_claim("c"), mixed), (_claim("d"), two),
                        (V.Claim("s", "hypothesis", "e", "-", "x", "r", reason="never learned"), None)])
    assert [c.verdict for c in out] == [V.HELD, V.FAILED, V.INCONCLUSIVE, V.INCONCLUSIVE, V.NOT_APPLICABLE]
    assert "smallest attainable p is 0.25" in out[3].reason and "5 seeds could" in out[3].reason
    assert out[0].p_adjusted == pytest.approx(min(1.0, 4 * held.p))       # smallest of 4 tested p's
    assert out[4].reason == "never learned"
    six = V.apply_holm([(_claim("a"), S.paired_test([0.5, 0.7, 0.4, 0.9, 0.6, 0.8])), (_claim("b"), two),
                        (_claim("c"), two), (_claim("d"), two)])
    assert six[0].verdict == V.INCONCLUSIVE and "needs 7" in six[0].reason   # 6 agreeing seeds, Holm over 4
    alone = V.apply_holm([(_claim("a"), S.paired_test([0.5, 0.7, 0.4, 0.9, 0.6, 0.8]))])
    assert alone[0].verdict == V.HELD                                        # 6 agreeing seeds, α = 0.05


def test_counts_cover_every_kind_and_verdict():
    c = V.counts([_claim("a"), V.Claim("s", "sanity", "b", "-", "x", "r", verdict=V.HELD)])
    assert c["hypothesis"][V.NOT_APPLICABLE] == 1 and c["sanity"][V.HELD] == 1
    assert set(c) == set(V.KINDS) and all(set(v) == set(V.VERDICTS) for v in c.values())
    with pytest.raises(ValueError):
        V.Claim("s", "theorem", "b", "-", "x", "r")


def test_one_sided_and_equivalence_claims_say_how_many_seeds_would_decide():
    """An interval across the edge names the fewest seeds whose t-interval half-width is below |m − edge|."""
    from scipy.stats import t

    from empirical.analysis.claims.curvature import _side
    m, sd, lo, hi, n = V.interval([0.6, 1.4, 1.2, 0.8])
    v, why = _side(lo, hi, 0.9, above=True, what="peak", m=m, sd=sd)
    need = next(k for k in range(2, 1000) if t.ppf(0.975, k - 1) * sd / math.sqrt(k) <= abs(m - 0.9))
    assert v == V.INCONCLUSIVE and f"about {need} seeds would decide" in why and need > n
