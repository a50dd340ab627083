"""The claim record and its statistics: a number, a tolerance, a verdict; the fixed tolerance rules and tests.

A ``Prediction`` is one claim checked against one measurement, tidy (``FIELDS``). ``verdict`` is "held"
(|measured − predicted| ≤ tolerance, or the stated rule), "failed", or "not applicable" (the data needed
are missing; ``detail`` says why / what to run). ``kind`` is "theorem" (must hold; a failure is a bug or
fp32 underflow), "prediction" (mean-field theory, approximate: finite width, Gaussian assumption) or
"hypothesis" (the seeds' claims, tested across seeds paired by seed).

Tolerance rules, fixed before looking at any data (N = narrowest hidden width, L = depth):

- gradient slope (mean backward log-factor per layer, log ‖∂L/∂z_{l−1}‖² − log ‖∂L/∂z_l‖², fitted over
  hidden layers 2..L−2): |Δ| ≤ 0.05 + 5/N (finite width biases E log ratio by O(1/N) per layer);
- pre-activation q profile (mean over layers of log(q_measured/q_predicted)): |Δ| ≤ 0.1 + √(L/N)
  (log q performs a random walk with variance O(l/N) at finite width);
- saturated fraction at init: |Δ| ≤ 0.02 + 0.1·predicted; after training (weights no longer random,
  the Gaussian assumption only approximate): |Δ| ≤ 0.05 + 0.25·predicted;
- dead fraction: 0 exactly where φ has no interval on which φ ≡ 0; ReLU-like at init: ≤ 1/2 + 2/√N;
- Lipschitz backprop bound: measured/bound ≤ 1 + 1e-4 (fp32);
- hypotheses: a stated rule each, e.g. direction in every seed pair and a one-sided paired test
  p < 0.05 (see ``claims.hypotheses``); with 2 seeds such tests have little power and the detail says so.

Gradient norms below ``TINY`` (1e-30: fp32 gradient entries would be subnormal, their relative error
unbounded) are excluded from fits and bounds, and the records say how many were.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["FIELDS", "HELD", "FAILED", "NOT_APPLICABLE", "TINY", "ALPHA", "Prediction", "grad_tolerance",
           "q_tolerance", "mean_std", "verdict", "record", "slope", "ExpFit", "fit_exp_decay", "one_sided_t",
           "power_note", "to_frame"]

HELD, FAILED, NOT_APPLICABLE = "held", "failed", "not applicable"
FIELDS = ("study", "kind", "claim", "activation", "setting", "predicted", "measured", "measured_std",
          "tolerance", "verdict", "detail")
TINY = 1e-30
ALPHA = 0.05


@dataclass(frozen=True)
class Prediction:
    """One claim checked against one measurement (see the module docstring for the fields)."""

    study: str
    kind: str
    claim: str
    activation: str
    setting: str
    predicted: float
    measured: float
    measured_std: float
    tolerance: float
    verdict: str
    detail: str

    def row(self) -> dict:
        return asdict(self)


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


def verdict(measured: float, predicted: float, tol: float) -> str:
    """held iff |measured − predicted| ≤ tol; not applicable when either is not finite."""
    if not (np.isfinite(measured) and np.isfinite(predicted)):
        return NOT_APPLICABLE
    return HELD if abs(measured - predicted) <= tol else FAILED


def record(study, kind, claim, act, setting, predicted=math.nan, measured=math.nan, std=math.nan, tol=math.nan,
           verdict=NOT_APPLICABLE, detail="") -> Prediction:
    """A ``Prediction`` of ``study`` (anything with ``.name``); missing numbers become nan."""
    f = lambda v: float(v) if v is not None else math.nan  # noqa: E731
    return Prediction(study.name, kind, claim, act, setting, f(predicted), f(measured), f(std), f(tol),
                      verdict, detail)


def slope(ls: Sequence[int], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against ls."""
    return float(np.polyfit(np.asarray(ls, float), np.asarray(ys, float), 1)[0])


@dataclass(frozen=True)
class ExpFit:
    """y ≈ a·e^(−k (t − t₀)) + c; [k_lo, k_hi] the 95 % interval k ± 1.96·√cov_kk."""

    k: float
    k_lo: float
    k_hi: float
    a: float
    c: float


def fit_exp_decay(t: Sequence[float], y: Sequence[float]) -> ExpFit | None:
    """Fit y ≈ a·e^(−k (t − t₀)) + c by least squares (t₀ the first t), with a 95 % interval for k.

    For fixed k the model is linear in (a, c), so k is first found by minimising the profiled residual
    over a log-grid of k (robust start), then ``scipy.optimize.curve_fit`` refines all three and gives
    the covariance. None when there are fewer than 5 points, the fit fails or its covariance is not finite.
    """
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    if len(t) < 5:
        return None
    t0 = t - t[0]
    span = max(float(t0[-1]), 1.0)

    def profile(k):
        X = np.column_stack([np.exp(-k * t0), np.ones_like(t0)])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        return float(np.sum((X @ coef - y) ** 2)), coef

    ks = np.geomspace(1e-3 / span, 1e3 / span, 121)
    sse = [profile(k)[0] for k in ks]
    i = int(np.argmin(sse))
    lo_k, hi_k = ks[max(i - 1, 0)], ks[min(i + 1, len(ks) - 1)]
    res = optimize.minimize_scalar(lambda lk: profile(math.exp(lk))[0], bounds=(math.log(lo_k), math.log(hi_k)),
                                   method="bounded")
    k0 = math.exp(res.x)
    _, (a0, c0) = profile(k0)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            popt, pcov = optimize.curve_fit(lambda s, a, k, c: a * np.exp(-k * s) + c, t0, y, p0=(a0, k0, c0),
                                            maxfev=5000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    if not (np.all(np.isfinite(pcov)) and pcov[1, 1] >= 0 and popt[1] > 0):
        return None
    k, se = float(popt[1]), math.sqrt(pcov[1, 1])
    return ExpFit(k, k - 1.96 * se, k + 1.96 * se, float(popt[0]), float(popt[2]))



def one_sided_t(d: Sequence[float]) -> float:
    """One-sided p of the paired t-test that mean(d) > 0 (nan with fewer than 2 pairs; with no spread,
    the limit t → ±∞: 0 if every d > 0, else 1)."""
    d = np.asarray(d, float)
    if len(d) < 2:
        return math.nan
    if float(np.std(d, ddof=1)) == 0.0:
        return 0.0 if d[0] > 0 else 1.0
    return float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def power_note(n: int) -> str:
    return (f"with {n} seed pair(s) a paired test has little power (a sign test cannot go below p = {0.5 ** n:.2g})"
            if n < 5 else "")



def to_frame(preds: Iterable[Prediction]) -> pd.DataFrame:
    """The tidy table (columns ``FIELDS``)."""
    return pd.DataFrame([p.row() for p in preds], columns=list(FIELDS))
