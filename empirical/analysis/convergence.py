"""Convergence of one loss curve, measured the way the seeds mean it, with honest intervals.

Per run (inputs: the per-batch losses of steps.csv, the per-epoch losses and accuracies of epochs.csv):

- steps (epochs) to remove a fraction f of the initial loss L₀ (the first batch's loss, taken at the
  initial weights): the first step at which the trailing mean of the last ``SMOOTH`` batch losses is
  ≤ (1 − f)·L₀ (the first epoch whose mean train loss is); ``None`` when never (a censored time);
- epochs to reach a target test accuracy (``None`` when never);
- area under the log-loss curve: the mean of log L_t over the steps, in nats (lower = faster;
  never censored);
- a straight line through the per-epoch train or test loss (seed 002's regression lines): slope,
  intercept, R² and a 95 % interval for the slope;
- an exponential a·e^(−k(t−t₀)) + c with c ≥ 0 and k > 0 (a cross-entropy cannot be negative), and
  "degenerate" (not usable for a verdict) when the interval of k contains 0, there is no decay to fit
  (the interval of a contains 0) or k sits at the edge of the searched range.

Residuals of a loss curve are strongly autocorrelated (lag-1 ρ ≈ 0.65–0.85 on the shipped studies),
so the ordinary least-squares standard error, which assumes independent residuals, is too small by
about √((1 + ρ)/(1 − ρ)). Every interval from a single curve here is inflated by that factor with
ρ estimated from the residuals (an AR(1) effective sample size, n_eff = n(1 − ρ)/(1 + ρ)); the
coverage of the corrected intervals on simulated AR(1) curves is checked in the tests. Across
seeds, the seed is the unit of replication (``stats.mean_ci`` of per-seed values).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["SMOOTH", "CHANCE_MARGIN", "LinFit", "ExpFit", "steps_to_fraction", "epochs_to_fraction",
           "epochs_to_accuracy", "area_under_log_loss", "lag1_autocorrelation", "linear_fit", "fit_exp",
           "flatness", "flat_band", "never_learned"]

SMOOTH = 5
CHANCE_MARGIN = 0.05


def _clean(t, y) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, float)
    y = np.asarray(y, float)
    ok = np.isfinite(t) & np.isfinite(y)
    return t[ok], y[ok]


def steps_to_fraction(steps: Sequence[float], loss: Sequence[float], frac: float,
                      smooth: int = SMOOTH) -> int | None:
    """First step whose trailing mean over ``smooth`` batch losses is ≤ (1 − frac)·L₀ (L₀ = first loss)."""
    t, y = _clean(steps, loss)
    if len(y) == 0 or not y[0] > 0:
        return None
    c = np.cumsum(np.insert(y, 0, 0.0))
    i = np.arange(1, len(y) + 1)
    w = np.minimum(i, smooth)
    trail = (c[i] - c[i - w]) / w
    hit = np.flatnonzero(trail <= (1.0 - frac) * y[0])
    return int(t[hit[0]]) if len(hit) else None


def epochs_to_fraction(epochs: Sequence[float], train_loss: Sequence[float], initial_loss: float,
                       frac: float) -> int | None:
    """First epoch whose mean train loss is ≤ (1 − frac)·L₀."""
    e, y = _clean(epochs, train_loss)
    hit = np.flatnonzero(y <= (1.0 - frac) * initial_loss)
    return int(e[hit[0]]) if len(hit) and initial_loss > 0 else None


def epochs_to_accuracy(epochs: Sequence[float], acc: Sequence[float], target: float) -> int | None:
    """First epoch whose test accuracy is ≥ ``target``."""
    e, a = _clean(epochs, acc)
    hit = np.flatnonzero(a >= target)
    return int(e[hit[0]]) if len(hit) else None


def area_under_log_loss(loss: Sequence[float]) -> float:
    """Mean of log L_t over the recorded steps (nats): the area under the log-loss curve per step."""
    y = np.asarray(loss, float)
    y = y[np.isfinite(y) & (y > 0)]
    return float(np.mean(np.log(y))) if len(y) else math.nan


def never_learned(test_acc: float, num_classes: int = 10, margin: float = CHANCE_MARGIN) -> bool:
    """True when the (final) test accuracy is within ``margin`` of chance 1/C, or missing: the run did not learn."""
    return not (np.isfinite(test_acc) and test_acc > 1.0 / num_classes + margin)


def lag1_autocorrelation(r: Sequence[float]) -> float:
    """Lag-1 autocorrelation of a residual series (nan below 3 points)."""
    r = np.asarray(r, float)
    if len(r) < 3:
        return math.nan
    r = r - r.mean()
    den = float(r @ r)
    return float(r[1:] @ r[:-1]) / den if den > 0 else 0.0


def _inflation(resid: np.ndarray, n_params: int) -> tuple[float, float]:
    """(ρ, variance factor (1 + ρ)/(1 − ρ)) with ρ the residuals' lag-1 autocorrelation corrected for
    its small-sample bias, E ρ̂ ≈ ρ − (1 + 3ρ + 2p)/n for residuals of p fitted parameters
    (Marriott & Pope 1954, plus the residuals' own 2p/n), clipped to [0, 0.99]."""
    n = len(resid)
    rho = lag1_autocorrelation(resid)
    rho = rho + (1 + 3 * rho + 2 * n_params) / n if np.isfinite(rho) else 0.0
    rho = min(max(rho, 0.0), 0.99)
    return rho, (1 + rho) / (1 - rho)


def _t95(n: int, f: float, n_params: int) -> float:
    """The 97.5 % Student-t quantile with n_eff − p degrees of freedom (at least 1), n_eff = max(n/f, 3): the
    AR(1)-corrected sample size of ``_inflation``'s factor f."""
    from scipy.stats import t as student

    return float(student.ppf(0.975, max(max(n / f, 3.0) - n_params, 1.0)))


@dataclass(frozen=True)
class LinFit:
    """y ≈ intercept + slope·x. [slope_lo, slope_hi] is the 95 % interval with the AR(1) correction
    (t with n_eff − 2 degrees of freedom); ``naive_lo/hi`` the uncorrected OLS interval; ``rho`` the
    residuals' lag-1 autocorrelation."""

    slope: float
    intercept: float
    slope_lo: float
    slope_hi: float
    r2: float
    n: int
    rho: float
    naive_lo: float
    naive_hi: float


def linear_fit(x: Sequence[float], y: Sequence[float]) -> LinFit | None:
    """Least-squares line with an autocorrelation-corrected 95 % interval for its slope (None below 4 points)."""
    from scipy.stats import t as student

    x, y = _clean(x, y)
    n = len(x)
    if n < 4 or np.ptp(x) == 0:
        return None
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    slope = float(((x - xm) * (y - ym)).sum()) / sxx
    intercept = float(ym - slope * xm)
    resid = y - intercept - slope * x
    sse = float(resid @ resid)
    sst = float(((y - ym) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0)
    se = math.sqrt(sse / (n - 2) / sxx)
    rho, f = _inflation(resid, 2)
    h_naive = float(student.ppf(0.975, n - 2)) * se
    h = _t95(n, f, 2) * se * math.sqrt(f)
    return LinFit(slope, intercept, slope - h, slope + h, r2, n, rho, slope - h_naive, slope + h_naive)


def flat_band(initial_loss: float, span: float, fraction: float = 0.1) -> float:
    """The slope δ below which a line is 'flat': it changes the loss by at most ``fraction``·L₀ over ``span``."""
    return fraction * initial_loss / span if span > 0 else math.nan


def flatness(lo: float, hi: float, band: float) -> str:
    """'flat' when the slope interval lies inside [−band, band], 'not flat' when it lies wholly outside
    that band, 'undetermined' when it straddles an edge (an equivalence test, not absence of evidence)."""
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(band)):
        return "undetermined"
    if -band <= lo and hi <= band:
        return "flat"
    if hi < -band or lo > band:
        return "not flat"
    return "undetermined"


@dataclass(frozen=True)
class ExpFit:
    """y ≈ a·e^(−k(t − t₀)) + c, c ≥ 0, k > 0; intervals are 95 % with the AR(1) correction.

    ``degenerate`` is '' for a usable fit, else the reason it cannot carry a verdict."""

    a: float
    k: float
    c: float
    k_lo: float
    k_hi: float
    a_lo: float
    a_hi: float
    rho: float
    k_naive_lo: float
    k_naive_hi: float
    degenerate: str

    @property
    def ok(self) -> bool:
        return not self.degenerate


def _profile(k: np.ndarray, t0: np.ndarray, y: np.ndarray):
    """For each k, the least-squares (a, c) with c ≥ 0 and the residual sum of squares.

    Two parameters and one bound: if the free solution has c < 0 the optimum lies on c = 0 (KKT),
    where a = ⟨e, y⟩/⟨e, e⟩."""
    E = np.exp(-np.outer(k, t0))                        # (K, n)
    n = len(t0)
    se, see, sy, sey = E.sum(1), (E * E).sum(1), y.sum(), E @ y
    det = n * see - se * se
    with np.errstate(all="ignore"):
        a = (n * sey - se * sy) / det
        c = (see * sy - se * sey) / det
        bad = ~(c >= 0) | ~np.isfinite(a)
        a = np.where(bad, sey / see, a)
        c = np.where(bad, 0.0, c)
    r = y[None, :] - a[:, None] * E - c[:, None]
    return a, c, (r * r).sum(1)


def fit_exp(t: Sequence[float], y: Sequence[float]) -> ExpFit | None:
    """Fit a·e^(−k(t − t₀)) + c with c ≥ 0, k > 0 (None below 5 points).

    k is searched on a log grid over [10⁻³, 10³]/span (profiling out a and c), refined by a bounded
    scalar search; the Gauss–Newton covariance at the optimum, inflated for AR(1) residuals, gives the
    intervals of k and a (Student t with n_eff − p degrees of freedom, as in ``linear_fit``).
    """
    from scipy import optimize
    from scipy.stats import t as student

    t, y = _clean(t, y)
    if len(t) < 5:
        return None
    t0 = t - t[0]
    span = max(float(t0[-1]), 1.0)
    lo_k, hi_k = 1e-3 / span, 1e3 / span
    grid = np.geomspace(lo_k, hi_k, 241)
    sse = _profile(grid, t0, y)[2]
    i = int(np.argmin(sse))
    a_, b_ = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(lambda lk: float(_profile(np.array([math.exp(lk)]), t0, y)[2][0]),
                                   bounds=(math.log(a_), math.log(b_)), method="bounded",
                                   options={"xatol": 1e-10})
    k = math.exp(res.x)
    a, c, s = (v[0] for v in _profile(np.array([k]), t0, y))
    e = np.exp(-k * t0)
    cols = [e, -a * t0 * e] + ([np.ones_like(t0)] if c > 0 else [])
    J = np.column_stack(cols)
    dof = len(t0) - J.shape[1]
    resid = y - a * e - c
    rho, f = _inflation(resid, J.shape[1])
    try:
        cov = np.linalg.inv(J.T @ J) * (float(s) / max(dof, 1))
    except np.linalg.LinAlgError:
        cov = np.full((J.shape[1], J.shape[1]), math.inf)
    var_a, var_k = float(cov[0, 0]), float(cov[1, 1])
    if not (np.isfinite(var_k) and var_k >= 0 and np.isfinite(var_a) and var_a >= 0):
        var_a = var_k = math.inf
    sk, sa = math.sqrt(var_k), math.sqrt(var_a)
    q = _t95(len(t0), f, J.shape[1])
    q_naive = float(student.ppf(0.975, max(dof, 1)))
    k_lo, k_hi = k - q * sk * math.sqrt(f), k + q * sk * math.sqrt(f)
    a_lo, a_hi = a - q * sa * math.sqrt(f), a + q * sa * math.sqrt(f)
    if not k_lo > 0:
        why = f"the 95 % interval of k [{k_lo:.3g}, {k_hi:.3g}] contains 0"
    elif a_lo <= 0 <= a_hi:
        why = f"no decay to fit: the 95 % interval of the amplitude a [{a_lo:.3g}, {a_hi:.3g}] contains 0"
    elif k <= grid[1] or k >= grid[-2]:
        why = f"k = {k:.3g} at the edge of the searched range [{lo_k:.3g}, {hi_k:.3g}]"
    else:
        why = ""
    return ExpFit(float(a), k, float(c), k_lo, k_hi, a_lo, a_hi, rho,
                  k - q_naive * sk, k + q_naive * sk, why)
