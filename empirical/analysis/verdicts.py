"""The claim model and its verdict rules: every measurable claim with its kind, its relation written out, its numbers and a
verdict in {held, failed, inconclusive, not applicable} with a one-line reason.

Kinds (counted separately on every page; sanity checks apart from the rest):

- ``prediction``: a number from theory with a tolerance, |m̄ − p| ≤ tol. With seeds the 95 % interval
  [lo, hi] of the mean m̄ decides: inside [p − tol, p + tol] → held, disjoint from it → failed,
  straddling an edge → inconclusive (and the number of seeds that would make the interval narrow
  enough is given). One seed gives no interval: inconclusive (run ≥ 2 seeds).
- ``bound``: m ≤ b(1 + tol), a one-sided inequality predicted by theory.
- ``ordering``: a predicted order or trend (a rank, a monotone profile), by its stated test.
- ``hypothesis``: a claim from the seeds, tested across seeds paired by seed: one-sided exact test of
  effect > 0, Holm-corrected over the study's family of hypotheses; held iff p_Holm ≤ α, failed iff the
  opposite one-sided p_Holm ≤ α, inconclusive otherwise — in particular whenever the n seeds cannot
  reach α at all (2⁻ⁿ > α), with the number of seeds that could.
- ``sanity``: a theorem the code must satisfy (a bound that cannot fail unless the code is wrong, a
  quantity that is 0 by construction). Held/failed; a failure is a bug, not evidence about theory.

``not applicable`` means a precondition is unmet (a model that never learned, a degenerate fit,
missing data); it is never used for "cannot tell", which is ``inconclusive``, and "cannot tell" is
never ``failed``.

Tolerances, fixed before looking at any data (N = narrowest hidden width, L = depth): gradient slope
|Δ| ≤ 0.05 + 5/N (``grad_tolerance``); q profile |mean log ratio| ≤ 0.1 + √(L/N) (``q_tolerance``);
saturated fraction 0.02 + 0.1·p at init, 0.05 + 0.25·p after training; dead fraction one unit 1/N.
Statistics: ``empirical.analysis.stats``. Gradient norms below ``TINY`` (1e-30, fp32 subnormal) are
left out of fits and bounds, and the records say how many were.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from empirical.analysis import stats as S

__all__ = ["KINDS", "VERDICTS", "HELD", "FAILED", "INCONCLUSIVE", "NOT_APPLICABLE", "FIELDS", "TINY", "ALPHA",
           "Claim", "Prediction", "make", "record", "tolerance_verdict", "bound_verdict", "paired_verdict",
           "seeds_for_interval", "apply_holm", "counts", "interval", "grad_tolerance", "q_tolerance", "mean_std",
           "slope", "to_frame", "RELATIONS"]

KINDS = ("prediction", "bound", "ordering", "hypothesis", "sanity")
HELD, FAILED, INCONCLUSIVE, NOT_APPLICABLE = "held", "failed", "inconclusive", "not applicable"
VERDICTS = (HELD, FAILED, INCONCLUSIVE, NOT_APPLICABLE)
TINY = 1e-30
ALPHA = S.ALPHA
RELATIONS = {
    "prediction": "|m − p| ≤ tol (95 % interval of m̄ over seeds)",
    "bound": "m ≤ b(1 + tol)",
    "ordering": "the stated order holds (test in the reason)",
    "hypothesis": "effect > 0, exact one-sided paired test across seeds, Holm over the study, α = 0.05",
    "sanity": "a theorem: m ≤ b(1 + tol) or m = 0",
}
FIELDS = ("study", "kind", "claim", "activation", "setting", "relation", "predicted", "measured", "lo", "hi",
          "measured_std", "tolerance", "n", "p_value", "p_adjusted", "verdict", "reason", "detail")


@dataclass(frozen=True)
class Claim:
    """One claim checked against one measurement.

    ``relation`` is the tested relation in symbols (m the measured value, p the prediction, b a bound);
    ``lo``/``hi`` a 95 % interval of m (nan if none); ``n`` the seeds behind m; ``p_value`` the test's
    one-sided p where there is a test, ``p_adjusted`` after Holm; ``reason`` one line for the verdict;
    ``detail`` the numbers behind it.
    """

    study: str
    kind: str
    claim: str
    activation: str
    setting: str
    relation: str
    predicted: float = math.nan
    measured: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    measured_std: float = math.nan
    tolerance: float = math.nan
    n: int = 0
    p_value: float = math.nan
    p_adjusted: float = math.nan
    verdict: str = NOT_APPLICABLE
    reason: str = ""
    detail: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; allowed: {', '.join(VERDICTS)}")

    def row(self) -> dict:
        return asdict(self)


def interval(values: Sequence[float]) -> tuple[float, float, float, float, int]:
    """(mean, sd, lo, hi, n) of finite per-seed values with the Student-t 95 % interval of the mean."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    lo, hi = S.mean_ci(v)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, lo, hi, len(v)


def seeds_for_interval(sd: float, margin: float, cap: int = 1000) -> int | None:
    """Fewest seeds n whose t-interval half-width t_{0.975, n−1}·sd/√n is ≤ margin (None if > cap)."""
    from scipy.stats import t

    if not (np.isfinite(sd) and margin > 0):
        return None
    if sd == 0:
        return 2
    for n in range(2, cap + 1):
        if float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n) <= margin:
            return n
    return None


def tolerance_verdict(m: float, p: float, tol: float, lo: float = math.nan, hi: float = math.nan,
                      sd: float = math.nan) -> tuple[str, str]:
    """Verdict of |m − p| ≤ tol from the interval [lo, hi] of m when there is one (see module docstring)."""
    if not (np.isfinite(m) and np.isfinite(p) and np.isfinite(tol)):
        return NOT_APPLICABLE, "no finite measurement or prediction"
    a, b = p - tol, p + tol
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE, (f"one seed gives no interval; run ≥ 2 seeds (|m − p| = {abs(m - p):.3g}, "
                              f"tol = {tol:.3g})")
    if a <= lo and hi <= b:
        return HELD, f"95 % interval of m [{lo:.3g}, {hi:.3g}] lies within p ± tol [{a:.3g}, {b:.3g}]"
    if hi < a or lo > b:
        return FAILED, f"95 % interval of m [{lo:.3g}, {hi:.3g}] lies outside p ± tol [{a:.3g}, {b:.3g}]"
    margin = tol - abs(m - p)
    need = seeds_for_interval(sd, abs(margin)) if margin != 0 else None
    return INCONCLUSIVE, (f"95 % interval of m [{lo:.3g}, {hi:.3g}] straddles an edge of p ± tol "
                          f"[{a:.3g}, {b:.3g}]" + (f"; about {need} seeds would decide" if need else ""))


def bound_verdict(m: float, b: float, tol: float, what: str = "m") -> tuple[str, str]:
    """Verdict of m ≤ b(1 + tol)."""
    if not (np.isfinite(m) and np.isfinite(b)):
        return NOT_APPLICABLE, "no finite measurement"
    lim = b * (1 + tol)
    ok = m <= lim
    return (HELD if ok else FAILED), f"{what} = {m:.4g} {'≤' if ok else '>'} b(1 + tol) = {lim:.4g}"


def paired_verdict(test: S.PairedTest, p_adj: float, p_opp_adj: float, alpha: float = S.ALPHA,
                 m: int = 1) -> tuple[str, str]:
    """Verdict of a one-sided paired test after Holm over m hypotheses, with the power rule first."""
    if test.n == 0:
        return NOT_APPLICABLE, "no seed pair with both measurements"
    if test.n_pos + test.n_neg == 0:
        return INCONCLUSIVE, f"the difference is 0 in all {test.n} seeds: no direction to test"
    if not test.reachable:
        return INCONCLUSIVE, (f"{test.n} seed(s): the smallest attainable p is {test.p_min:.3g} > α = {alpha:g}, "
                              f"so no outcome could decide; {S.seeds_needed(alpha)} seeds could "
                              f"({S.seeds_needed(alpha, m)} under Holm over {m})")
    if p_adj <= alpha:
        return HELD, f"{test.method} p = {test.p:.3g}, Holm-adjusted {p_adj:.3g} ≤ α = {alpha:g}"
    if p_opp_adj <= alpha:
        return FAILED, (f"the opposite direction is significant: {test.method} p = {test.p_opposite:.3g}, "
                        f"Holm-adjusted {p_opp_adj:.3g} ≤ α = {alpha:g}")
    need = S.seeds_needed(alpha, m)
    return INCONCLUSIVE, (f"{test.method} p = {test.p:.3g} (Holm {p_adj:.3g}) and opposite p = "
                          f"{test.p_opposite:.3g} (Holm {p_opp_adj:.3g}) both > α = {alpha:g}: the effect "
                          f"[{test.ci_lo:.3g}, {test.ci_hi:.3g}] is not decided by {test.n} seeds"
                          + (f" (under Holm over {m} a unanimous result needs {need})" if test.n < need else ""))


def apply_holm(pending: Sequence[tuple[Claim, S.PairedTest | None]], alpha: float = S.ALPHA) -> list[Claim]:
    """Finish a study's family of tested claims: Holm over the tests in each direction, then verdicts.

    ``pending`` pairs each claim with its test (None for claims already decided, e.g. not applicable);
    only claims with a test enter the family, and m is their number.
    """
    tested = [(i, t) for i, (_, t) in enumerate(pending) if t is not None and t.n > 0]
    m = max(len(tested), 1)
    p_adj = S.holm([t.p for _, t in tested])
    q_adj = S.holm([t.p_opposite for _, t in tested])
    out = [c for c, _ in pending]
    for (i, t), pa, qa in zip(tested, p_adj, q_adj):
        v, why = paired_verdict(t, pa, qa, alpha, m)
        c = out[i]
        out[i] = replace(c, p_value=t.p, p_adjusted=pa, verdict=v, n=t.n,
                         reason=why if not c.reason else f"{why}; {c.reason}",
                         detail=(t.describe() + ("; " + c.detail if c.detail else "")))
    return out


def counts(claims: Iterable[Claim | dict]) -> dict[str, dict[str, int]]:
    """kind → verdict → number of claims (every kind and verdict present, zeros included)."""
    out = {k: {v: 0 for v in VERDICTS} for k in KINDS}
    for c in claims:
        kind, verdict = (c["kind"], c["verdict"]) if isinstance(c, dict) else (c.kind, c.verdict)
        out[kind][verdict] += 1
    return out


Prediction = Claim


def make(study, kind: str, claim: str, act: str, setting: str, relation: str | None = None, **kw) -> Claim:
    """A ``Claim`` of ``study`` (anything with ``.name``); numbers given as None become nan."""
    kw = {k: (math.nan if v is None and k not in ("verdict", "reason", "detail") else v) for k, v in kw.items()}
    for k in ("predicted", "measured", "lo", "hi", "measured_std", "tolerance", "p_value", "p_adjusted"):
        if k in kw:
            kw[k] = float(kw[k])
    return Claim(study.name, kind, claim, act, setting, relation or RELATIONS[kind], **kw)


def record(study, kind, claim, act, setting, predicted=math.nan, measured=math.nan, std=math.nan, tol=math.nan,
           verdict=NOT_APPLICABLE, detail="") -> Claim:
    """The earlier record signature, for claim families not yet written against ``make``: 'theorem' is a
    sanity check; the first clause of ``detail`` becomes the reason."""
    kind = "sanity" if kind == "theorem" else kind
    reason = str(detail).split(";")[0]
    return make(study, kind, claim, act, setting, predicted=predicted, measured=measured, measured_std=std,
                tolerance=tol, verdict=verdict, reason=reason, detail=detail)


def grad_tolerance(width: int) -> float:
    """|Δ| allowed between the mean backward log-factors per layer: 0.05 + 5/N."""
    return 0.05 + 5.0 / width


def q_tolerance(depth: int, width: int) -> float:
    """|mean log(q_measured/q_predicted)| allowed: 0.1 + √(L/N)."""
    return 0.1 + math.sqrt(depth / width)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1; 0 for one value) of the finite values; (nan, nan) if none."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def slope(ls: Sequence[int], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against ls."""
    return float(np.polyfit(np.asarray(ls, float), np.asarray(ys, float), 1)[0])


def to_frame(claims: Iterable[Claim]):
    """The tidy table (columns ``FIELDS``)."""
    import pandas as pd

    return pd.DataFrame([c.row() for c in claims], columns=list(FIELDS))
