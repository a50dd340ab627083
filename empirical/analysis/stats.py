"""Paired tests across seeds with their power: exact sign-flip and signed-rank tests, effect sizes,
bootstrap intervals, Holm's correction, and how many seeds a test needs to be able to reach α.

A seed hypothesis compares two activations trained from the same seed (same batches, same data
subset): the unit of replication is the seed, the data are the n paired differences d_i.

- Sign-flip permutation test (Fisher–Pitman): under H₀ each d_i is symmetric about 0, so the 2ⁿ sign
  patterns of (±d_1, …, ±d_n) are equally likely; the one-sided p is the fraction of patterns whose
  sum is ≥ the observed Σd_i. Exact by enumeration for n ≤ ``EXACT_MAX_N``.
- Wilcoxon signed-rank test: the sign-flip test applied to the signed ranks of |d_i| (zero
  differences dropped, ties given mid-ranks), exact by the same enumeration.
- Power rule: with n non-zero differences the smallest p either test can reach is 2⁻ⁿ (every
  difference of the claimed sign). If 2⁻ⁿ > α no outcome can reject: the verdict must be
  inconclusive, and ⌈log₂(1/α)⌉ seeds are needed (⌈log₂(m/α)⌉ for the first step of Holm over m).
- Holm (1979): sort p_(1) ≤ … ≤ p_(m); adjusted p_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["ALPHA", "EXACT_MAX_N", "PairedTest", "sign_flip_test", "signed_rank_test", "sign_test",
           "spearman_permutation", "min_attainable_p", "seeds_needed", "can_reach", "bootstrap_ci", "paired_test",
           "holm", "mean_ci"]

ALPHA = 0.05
EXACT_MAX_N = 16
MC_DRAWS = 200_000


def _signs(n: int) -> np.ndarray:
    """All 2ⁿ sign patterns as an (2ⁿ, n) array of ±1."""
    return np.array(list(itertools.product((1.0, -1.0), repeat=n))) if n else np.ones((1, 0))


def _flip_p(values: np.ndarray, alternative: str, seed: int = 0) -> float:
    """P(Σ s_i v_i ≥ Σ v_i) over uniform random signs s (one-sided 'greater'), or ≤ for 'less',
    or |·| ≥ |·| for 'two-sided'. Exact enumeration up to EXACT_MAX_N, Monte Carlo above."""
    v = np.asarray(values, float)
    n = len(v)
    if n == 0:
        return 1.0
    obs = v.sum()
    if n <= EXACT_MAX_N:
        s = _signs(n)
    else:
        s = np.random.default_rng(seed).choice((-1.0, 1.0), size=(MC_DRAWS, n))
    null = s @ v
    tol = 1e-9 * max(1.0, float(np.abs(v).sum()))
    if alternative == "greater":
        hits = null >= obs - tol
    elif alternative == "less":
        hits = null <= obs + tol
    elif alternative == "two-sided":
        hits = np.abs(null) >= abs(obs) - tol
    else:
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    if n <= EXACT_MAX_N:
        return float(hits.mean())
    return float((hits.sum() + 1) / (len(null) + 1))


def sign_flip_test(d: Sequence[float], alternative: str = "greater") -> float:
    """Exact one-sided p of the paired sign-flip permutation test of mean(d) > 0 (or < 0, ≠ 0)."""
    d = np.asarray(d, float)
    return _flip_p(d[np.isfinite(d)], alternative)


def _signed_ranks(d: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    d = d[np.isfinite(d) & (d != 0)]
    return np.sign(d) * rankdata(np.abs(d)) if len(d) else d


def signed_rank_test(d: Sequence[float], alternative: str = "greater") -> float:
    """Exact p of the Wilcoxon signed-rank test (zeros dropped, mid-ranks for ties): the sign-flip
    test on the signed ranks, so W⁺ = Σ_{d_i>0} rank_i and its null law are enumerated exactly."""
    return _flip_p(_signed_ranks(np.asarray(d, float)), alternative)


def sign_test(d: Sequence[float], alternative: str = "greater") -> float:
    """Exact binomial sign test on the non-zero d: P(Bin(n, ½) ≥ #positive) for 'greater'."""
    from scipy.stats import binomtest

    d = np.asarray(d, float)
    d = d[np.isfinite(d) & (d != 0)]
    if len(d) == 0:
        return 1.0
    return float(binomtest(int((d > 0).sum()), len(d), 0.5, alternative=alternative).pvalue)


def min_attainable_p(n: int) -> float:
    """The smallest one-sided p of the sign, sign-flip or signed-rank test with n non-zero pairs: 2⁻ⁿ."""
    return 0.5 ** n if n > 0 else 1.0


def seeds_needed(alpha: float = ALPHA, m: int = 1) -> int:
    """Fewest seeds n with 2⁻ⁿ ≤ α/m: the first Holm step over m hypotheses can then be passed."""
    return max(1, math.ceil(math.log2(m / alpha) - 1e-12))


def can_reach(n: int, alpha: float = ALPHA) -> bool:
    """Whether any outcome of n paired seeds can give p ≤ α (the power rule, before testing)."""
    return min_attainable_p(n) <= alpha


def mean_ci(x: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of x (seeds as independent replicates); (nan, nan) for n < 2."""
    from scipy.stats import t

    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan
    m, se = float(x.mean()), float(x.std(ddof=1)) / math.sqrt(len(x))
    h = float(t.ppf(0.5 + level / 2, len(x) - 1)) * se
    return m - h, m + h


def bootstrap_ci(x: Sequence[float], stat=np.mean, level: float = 0.95, draws: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over resamples of x with replacement (fixed seed).

    With n seeds the resample space has C(2n−1, n) points; for n ≤ 3 the interval is coarse and
    the page says so through n. (nan, nan) for n < 2.
    """
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(draws, len(x)))
    vals = stat(x[idx], axis=1)
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


@dataclass(frozen=True)
class PairedTest:
    """A one-sided paired test of 'effect > 0' over n seeds.

    ``effect`` the mean difference, ``effect_size`` Cohen's d_z = mean/sd (nan for n < 2 or sd = 0),
    [ci_lo, ci_hi] its 95 % percentile bootstrap interval, ``p`` the exact p of ``method``,
    ``p_min`` the smallest p this n can give, ``n_pos`` / ``n_neg`` the counts of each sign.
    """

    n: int
    n_pos: int
    n_neg: int
    effect: float
    effect_size: float
    ci_lo: float
    ci_hi: float
    p: float
    p_opposite: float
    p_min: float
    method: str

    @property
    def reachable(self) -> bool:
        return self.p_min <= ALPHA

    def describe(self) -> str:
        return (f"{self.n_pos}/{self.n} seeds in the claimed direction, mean effect {self.effect:.3g} "
                f"[{self.ci_lo:.3g}, {self.ci_hi:.3g}] (bootstrap 95 %), d_z = {self.effect_size:.2g}, "
                f"{self.method} p = {self.p:.3g}")


def paired_test(d: Sequence[float], method: str = "sign-flip") -> PairedTest:
    """The one-sided test of mean(d) > 0 by ``method`` ('sign-flip', 'signed-rank' or 'sign'), with
    the opposite one-sided p (evidence that the effect has the other sign) and the effect size."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    tests = {"sign-flip": sign_flip_test, "signed-rank": signed_rank_test, "sign": sign_test}
    if method not in tests:
        raise ValueError(f"method must be one of {', '.join(tests)}, got {method!r}")
    f = tests[method]
    n_nonzero = int((d != 0).sum())
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    lo, hi = bootstrap_ci(d)
    return PairedTest(
        n=len(d), n_pos=int((d > 0).sum()), n_neg=int((d < 0).sum()),
        effect=float(d.mean()) if len(d) else math.nan,
        effect_size=float(d.mean()) / sd if len(d) > 1 and sd > 0 else math.nan,
        ci_lo=lo, ci_hi=hi, p=f(d, "greater"), p_opposite=f(d, "less"),
        p_min=min_attainable_p(n_nonzero), method=method)


def spearman_permutation(x: Sequence[float], y: Sequence[float], draws: int = 20_000,
                         seed: int = 0) -> tuple[float, float, float]:
    """(ρ, p_greater, p_less): Spearman's ρ (average ranks for ties) and its one-sided permutation p values,
    P(ρ* ≥ ρ) and P(ρ* ≤ ρ) over ``draws`` random pairings, (hits + 1)/(draws + 1).

    Valid with heavy ties, where the t approximation of ``scipy.stats.spearmanr`` is anti-conservative."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if den == 0:
        return math.nan, math.nan, math.nan
    rho = float(rx @ ry) / den
    rng = np.random.default_rng(seed)
    null = np.empty(draws)
    for i in range(0, draws, 2000):
        k = min(2000, draws - i)
        null[i:i + k] = rng.permuted(np.broadcast_to(ry, (k, len(ry))), axis=1) @ rx / den
    tol = 1e-12
    return (rho, float(((null >= rho - tol).sum() + 1) / (draws + 1)),
            float(((null <= rho + tol).sum() + 1) / (draws + 1)))


def holm(p: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p values (same order as ``p``); nan entries stay nan and do not count."""
    p = np.asarray(p, float)
    out = np.full(len(p), math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()
