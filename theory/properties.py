"""Properties of an activation φ, derived from its sympy expression.

``derive(act, eps)`` returns a frozen ``Properties``: derivatives, values at 0, limits at ±∞, range,
minimum, monotonicity, symmetry, Lipschitz constant sup|φ′|, smoothness class C^k, saturation per side
and dead regions. Definitions follow ``THEORY_NOTES.md`` ("Properties the registry derives").

Method. φ is split at its Piecewise breakpoints b₁ < … < b_n into smooth pieces, one per open interval
(−∞, b₁), …, (b_n, ∞). On each piece:

- limits and one-sided values come from ``sympy.limit`` / substitution (exact);
- extrema of φ^(k) (range for k = 0, Lipschitz for k = 1) are the largest/smallest of: constant pieces,
  one-sided values at the ends, limits at ±∞ and values at the interior zeros of φ^(k+1). The zeros are
  located on a dense grid (sign changes, refined by ``brentq``) and then identified exactly where possible
  (``nsimplify`` candidates and ``sympy.solve`` solutions, each verified by substitution to be an exact
  zero). A value obtained at a zero that could not be identified is numeric, and its field is listed in
  ``Properties.numeric``;
- smoothness compares left and right limits of φ^(k) at each breakpoint, k = 0, 1, …;
- the sign of φ′ (monotonicity) is proved with sympy's assumptions where it can be, otherwise read off
  the grid (flagged numeric); a sign change on the grid is a witness, so "none" is never a guess;
- saturation thresholds are roots of |φ′| = ε (numeric); the decay rate of φ′ (exponential or
  polynomial) is read from log|φ′| at |x| = 100, 200, 400 evaluated in high precision (mpmath).

The grid spans |x| ≤ 1e4 (sinh-spaced: step 1e-3 near 0). Features outside it are found only through
the limits at ±∞.
"""
from __future__ import annotations

import contextlib
import functools
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from sympy.core.evalf import PrecisionExhausted
from sympy.series.gruntz import gruntz

from theory.activations import Activation, x

__all__ = ["Properties", "Extremum", "Saturation", "derive", "saturation_threshold", "to_json",
           "SYMBOLIC_BUDGET_S", "STEP_BUDGET_S"]

SYMBOLIC_BUDGET_S = 12.0   # sympy time per activation; past it every symbolic step falls back to numbers
STEP_BUDGET_S = 3.0        # one sympy call (limit, solve, simplify, a sign proof) at most
_REFIRE_S = 0.05
_SOON_S = 0.001


class _Timeout(BaseException):
    """A sympy step ran out of its budget (BaseException: sympy's own ``except Exception`` cannot eat it)."""


_STATE = {"deadline": math.inf, "timed_out": False}


@contextlib.contextmanager
def _budget(seconds: float = STEP_BUDGET_S):
    """Raise _Timeout if the block runs longer than ``seconds`` or past the activation's deadline.

    Counts CPU time (ITIMER_PROF / SIGPROF), so the outcome does not depend on how busy the machine
    is. Main thread only (elsewhere the per-activation deadline still skips steps that would start
    after it). Not re-entrant: nested blocks run under the outer timer.
    """
    left = _STATE["deadline"] - time.process_time()
    if left <= 0:
        _STATE["timed_out"] = True
        raise _Timeout
    limit = min(seconds, left)
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "ITIMER_PROF")
    if not main or signal.getitimer(signal.ITIMER_PROF)[0] > 0:
        yield
        return

    armed = [True]

    def on_alarm(signum, frame):
        if not _inside_timed(frame):  # the block was left without disarming: stop, never raise elsewhere
            signal.setitimer(signal.ITIMER_PROF, 0)
        elif armed[0]:
            _STATE["timed_out"] = True
            raise _Timeout

    old = signal.signal(signal.SIGPROF, on_alarm)
    old_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_drop_timeouts, old_hook)
    # re-fires every _REFIRE_S of CPU time: a _Timeout swallowed by a bare ``except:`` is raised again
    signal.setitimer(signal.ITIMER_PROF, limit, _REFIRE_S)
    try:
        yield
    finally:
        _disarm(armed, old, old_hook)


def _drop_timeouts(hook, unraisable) -> None:
    """A _Timeout raised where Python cannot propagate it (a gc callback) is dropped, not reported (a reporting
    hook, pytest's formats a traceback, would itself be interrupted), and the timer fires again after _SOON_S
    of CPU: a long collection would otherwise take every periodic firing into its own callbacks."""
    if not isinstance(unraisable.exc_value, _Timeout):
        hook(unraisable)
    elif signal.getitimer(signal.ITIMER_PROF)[0] > 0:
        signal.setitimer(signal.ITIMER_PROF, _SOON_S, _REFIRE_S)


def _disarm(armed: list, old, old_hook) -> None:
    """Stop the timer and restore the old handlers, even if a last SIGPROF lands during the cleanup."""
    while True:
        try:
            armed[0] = False
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, old)
            sys.unraisablehook = old_hook
            return
        except _Timeout:
            continue


def _inside_timed(frame) -> bool:
    while frame is not None:
        if frame.f_code is _timed.__code__:
            return True
        frame = frame.f_back
    return False


def _timed(fn, default, seconds: float = STEP_BUDGET_S):
    """fn() under ``_budget``; ``default`` when it runs out of time."""
    try:
        with _budget(seconds):
            return fn()
    except _Timeout:
        return default

_T = sp.Symbol("t", positive=True)
_GRID = np.sinh(np.linspace(-np.arcsinh(1e4), np.arcsinh(1e4), 20001))
_K_MAX = 8
_MAX_ROOTS = 200
_NONSMOOTH = (sp.Abs, sp.Max, sp.Min, sp.Heaviside, sp.sign)


@dataclass(frozen=True)
class Extremum:
    """An extreme value of a function and where it is reached.

    ``at`` may be ±oo (a limit) or a breakpoint approached from one side; ``attained`` says whether the
    value is taken at ``at`` itself; ``exact`` whether ``value`` is a closed form.
    """

    value: sp.Expr
    at: sp.Expr
    exact: bool = True
    attained: bool = True


@dataclass(frozen=True)
class Saturation:
    """Saturation of φ on one side: ``saturates`` iff φ′ → 0 there.

    ``rate``: "exponential" (|φ′| ≤ C e^{−a|x|}, φ′ ≡ 0 included), "polynomial" (slower), or "none"
    (no saturation). ``threshold``: x_ε beyond which |φ′| < ε holds for good (None if not saturating;
    −inf/+inf when |φ′| < ε holds on the whole line).
    """

    saturates: bool
    rate: str
    threshold: float | None


@dataclass(frozen=True)
class Properties:
    """Everything ``derive`` finds about one activation (see the module docstring for the method).

    Numbers are sympy numbers: exact closed forms, or Floats for the fields named in ``numeric``;
    ``None`` means unknown or nonexistent (e.g. f′(0) where f′ jumps at 0, or φ itself jumps).

    Definitions: ``zero_centered`` — φ takes both signs; ``mean_output`` — E[φ(u)], u ~ N(0, 1);
    ``monotonic`` — "strictly increasing", "non-decreasing", "strictly decreasing", "non-increasing",
    "not monotone" or "constant"; ``symmetry`` — "odd", "point" (about (0, φ(0)), e.g. sigmoid),
    "even" or "none"; ``lipschitz`` = sup|φ′| with ``lipschitz_at`` (a point or ±oo if only
    approached) and ``lipschitz_on`` (the intervals on which |φ′| equals it, e.g. relu (0, oo));
    ``curvature`` = sup|φ″| (oo when φ′ jumps); ``smoothness_at_least``: C^k only known to be ≥ k.
    The TeLU paper's properties (Fernandez & Mali 2024): ``near_identity_right`` — φ(x) − x → 0 as
    x → ∞, at ``near_identity_rate`` ("identical" past a breakpoint, "exponential", "polynomial");
    ``grad_at_minus3``/``grad_at_minus5`` = |φ′(−3)|, |φ′(−5)| (persistent gradient on the left);
    ``relu_distance`` = sup_x |φ(x) − max(x, 0)| (inf if unbounded) at ``relu_distance_at``;
    ``analytic`` — real-analytic on ℝ (no breakpoints, built from functions analytic where used).
    """

    name: str
    label: str
    formula: str
    expr: sp.Expr
    eps: float
    derivative: sp.Expr
    second_derivative: sp.Expr
    derivative_str: str
    derivative_latex: str
    second_derivative_str: str
    second_derivative_latex: str
    breakpoints: tuple[sp.Expr, ...]
    f0: sp.Expr | None
    df0: sp.Expr | None
    limits_f: tuple[sp.Expr | None, sp.Expr | None]
    limits_df: tuple[sp.Expr | None, sp.Expr | None]
    range: tuple[sp.Expr, sp.Expr]
    range_attained: tuple[bool, bool]
    minimum: Extremum | None
    monotonic: str
    zero_centered: bool
    symmetry: str
    bounded_below: bool
    bounded_above: bool
    lipschitz: sp.Expr
    lipschitz_exact: bool
    lipschitz_at: sp.Expr
    lipschitz_attained: bool
    smoothness: int | float
    saturation_left: Saturation
    saturation_right: Saturation
    dead_region: tuple[tuple[sp.Expr, sp.Expr], ...]
    numeric: tuple[str, ...]
    mean_output: float = math.nan
    curvature: sp.Expr | None = None
    curvature_exact: bool = True
    curvature_at: sp.Expr | None = None
    curvature_attained: bool = True
    lipschitz_on: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    smoothness_at_least: bool = False
    near_identity_right: bool = False
    near_identity_rate: str = "none"
    grad_at_minus3: float = math.nan
    grad_at_minus5: float = math.nan
    relu_distance: float = math.nan
    relu_distance_at: float = math.nan
    analytic: bool = False


# ----------------------------------------------------------------------------------------- helpers

def _num(v) -> float:
    if v is None:
        return math.nan
    try:
        return float(sp.N(v, 30))
    except (TypeError, ValueError):
        return math.nan


def _num_exact(v) -> float:
    """float(v) with every printed digit right, where 30-digit evaluation cancels catastrophically.

    1 − tanh(200)² evaluated at 30 digits leaves noise (1e-165); its value is 7.66e-174. sympy's
    strict evaluation raises instead of guessing; it is retried with more working precision (2,000
    bits, then 60,000 under the step budget). A value that is exactly zero but not visibly so never
    settles: the 30-digit value is kept.
    """
    if v is None:
        return math.nan
    steps = (lambda: sp.N(v, 30, strict=True, maxn=2000),
             lambda: _timed(lambda: sp.N(v, 30, strict=True, maxn=60000), None))
    for step in steps:
        try:
            value = step()
        except PrecisionExhausted:
            continue
        except (TypeError, ValueError):
            return math.nan
        if value is not None:
            return float(value)
    return _num(v)


def _finite_number(v) -> bool:
    return v is not None and v.is_number and v.is_finite is True and v.is_extended_real is not False


def _tidy(v: sp.Expr, like: sp.Expr) -> sp.Expr:
    if like.has(sp.Float) and v.is_Rational and not v.is_Integer:
        return sp.Float(v, 30)
    return v


def _limit(g: sp.Expr, point, direction: str = "+") -> sp.Expr | None:
    if not g.has(x):
        return g
    return _timed(lambda: _limit_raw(g, point, direction), None)


def _limit_raw(g: sp.Expr, point, direction: str) -> sp.Expr | None:
    v = None
    if point in (sp.oo, -sp.oo):
        try:  # gruntz directly: about twice as fast as limit() for these expressions
            v = gruntz(g, x, point)
        except Exception:  # noqa: BLE001 - sympy raises many kinds; try limit()
            v = None
    if v is None or not v.is_number or v.has(sp.nan, sp.zoo, sp.AccumBounds, sp.Limit):
        try:
            v = sp.limit(g, x, point, direction)
        except Exception:  # noqa: BLE001 - sympy raises many kinds; unknown limit
            return None
    if v.has(sp.Limit, sp.AccumBounds, sp.nan, sp.zoo) or not v.is_number:
        return None
    return _tidy(v, g)


def _lambdify(g: sp.Expr):
    from scipy import special

    f = sp.lambdify(x, g, modules=[{"erf": special.erf, "erfc": special.erfc}, "numpy"])

    def fn(v):
        v = np.asarray(v, dtype=float)
        with np.errstate(all="ignore"):
            try:
                out = np.asarray(f(v), dtype=float)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError):
                out = np.full(v.shape, np.nan)
        return np.broadcast_to(out, v.shape).copy()

    return fn


def _relations(cond) -> list:
    if isinstance(cond, sp.core.relational.Relational):
        return [cond]
    if isinstance(cond, sp.logic.boolalg.BooleanFunction):  # And, Or, Not, ITE, Xor, ...
        return [r for a in cond.args for r in _relations(a)]
    return []


_MAX_BPS = 64


def _snap_root(branch: sp.Expr, r: float) -> sp.Expr:
    """An exact zero of ``branch`` near r (0, a rational, a rational multiple of π) if substitution
    proves it, else the Float r."""
    for cand in ([sp.Integer(0)] if abs(r) < 1e-12 else []) + [sp.nsimplify(r, [sp.pi], tolerance=1e-12)]:
        try:
            if abs(float(cand) - r) <= 1e-9 * (1 + abs(r)) and branch.subs(x, cand) == 0:
                return cand
        except (TypeError, ValueError):
            continue
    return sp.Float(r, 17)


def _exact_breakpoints(e: sp.Expr) -> tuple[tuple[sp.Expr, ...], bool]:
    """Real zeros of lhs − rhs of every relation in a Piecewise condition (Piecewise sides folded),
    and whether the list is complete and exact.

    sympy's solutions are used where it finds them and they account for every sign change of the
    difference on the grid; otherwise (max(tanh(x), x/2), the periodic zeros of abs(sin(x))) the
    zeros are the sign changes on the grid polished by brentq (Floats, flagged numeric), at most
    _MAX_BPS of them nearest 0 (then the pieces beyond carry the whole expression)."""
    from scipy.optimize import brentq

    pts: dict[float, sp.Expr] = {}
    exact = True
    for pw in e.atoms(sp.Piecewise):
        for _, cond in pw.args:
            for rel in _relations(cond):
                d = sp.piecewise_fold(rel.lhs - rel.rhs)
                for branch in ([a for a, _ in d.args] if isinstance(d, sp.Piecewise) else [d]):
                    if not branch.has(x):
                        continue
                    try:
                        sols = _timed(lambda: sp.solve(branch, x), None)
                    except (NotImplementedError, ValueError, TypeError):
                        sols = None
                    found = [float(v) for v in (sols or []) if v.is_real]
                    grid = np.union1d(_GRID, _centres(branch))
                    vals = _lambdify(branch)(grid)
                    ok = np.isfinite(vals)
                    g, v = grid[ok], vals[ok]
                    change = np.flatnonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)
                    covered = all(any(g[c] <= r <= g[c + 1] for r in found) for c in change)
                    if sols is not None and covered:
                        for v_ in sols:
                            if v_.is_real:
                                pts.setdefault(round(float(v_), 12), v_)
                        continue
                    exact = False
                    fn = _lambdify(branch)
                    change = change[np.argsort(np.abs(g[change]), kind="stable")]
                    if len(change) > _MAX_BPS:
                        change = change[:_MAX_BPS]
                        _SEG_EXACT[1] = True
                    for c in change:
                        try:
                            r = brentq(lambda t: float(fn(t)), g[c], g[c + 1], xtol=1e-15, rtol=1e-15)
                        except (ValueError, RuntimeError):
                            continue
                        pts.setdefault(round(r, 12), _snap_root(branch, r))
    return tuple(pts[k] for k in sorted(pts)), exact


def _branch_at(e: sp.Expr, m: sp.Expr) -> sp.Expr:
    def pick(pw):
        for val, cond in pw.args:
            c = cond if cond in (True, sp.true) else cond.subs(x, m)
            if c == sp.true:
                return val
        return sp.nan

    return e.replace(lambda a: isinstance(a, sp.Piecewise), pick)


def _is_zero(e: sp.Expr) -> bool | None:
    """True if e ≡ 0 (proved by simplification), False if clearly not, None if undecided."""
    if e == 0:
        return True
    z = e.is_zero
    if z is not None:
        return z
    try:
        s = _timed(lambda: sp.simplify(e), None)
    except Exception:  # noqa: BLE001
        return None
    if s == 0:
        return True
    return None


def _same(a: sp.Expr | None, b: sp.Expr | None) -> bool | None:
    if a is None or b is None:
        return None
    if a.has(sp.oo, -sp.oo, sp.zoo) or b.has(sp.oo, -sp.oo, sp.zoo):
        return a == b and a.is_finite is True
    d = _num(a - b)
    scale = 1 + abs(_num(a))
    tol = 1e-12 if a.has(sp.Float) or b.has(sp.Float) else 1e-20   # numeric breakpoints: rounding
    if not math.isfinite(d) or abs(d) > tol * scale:
        return False
    z = _is_zero(a - b)
    return True if z is None or a.has(sp.Float) or b.has(sp.Float) else z


class _Seg:
    """The smooth piece of φ on the open interval (lo, hi)."""

    def __init__(self, lo: sp.Expr, hi: sp.Expr, expr: sp.Expr, extra: np.ndarray | None = None):
        self.lo, self.hi, self.expr = lo, hi, expr
        self.flo, self.fhi = float(lo), float(hi)
        self._d = [expr]
        self._fn: dict[int, object] = {}
        self._vals: dict[int, tuple] = {}
        self._side: dict[tuple, sp.Expr | None] = {}
        self._roots: dict[int, list[float]] = {}
        grid = _GRID[(_GRID > self.flo) & (_GRID < self.fhi)]
        if math.isfinite(self.flo) and math.isfinite(self.fhi):
            grid = np.union1d(grid, np.linspace(self.flo, self.fhi, 203)[1:-1])
        if extra is not None and len(extra):
            grid = np.union1d(grid, extra[(extra > self.flo) & (extra < self.fhi)])
        self.grid = grid

    @property
    def rep(self) -> sp.Expr:
        if self.lo == -sp.oo and self.hi == sp.oo:
            return sp.Integer(0)
        if self.lo == -sp.oo:
            return self.hi - 1
        if self.hi == sp.oo:
            return self.lo + 1
        return (self.lo + self.hi) / 2

    def d(self, k: int) -> sp.Expr:
        while len(self._d) <= k:
            self._d.append(sp.diff(self._d[-1], x))
        return self._d[k]

    def fn(self, k: int):
        if k not in self._fn:
            self._fn[k] = _lambdify(self.d(k))
        return self._fn[k]

    def values(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._vals:
            v = self.fn(k)(self.grid)
            ok = np.isfinite(v)
            self._vals[k] = (self.grid[ok], v[ok])
        return self._vals[k]

    def side(self, k: int, end: sp.Expr) -> sp.Expr | None:
        """One-sided limit of φ^(k) at an end of the interval (±oo included)."""
        key = (k, end)
        if key not in self._side:
            g = self.d(k)
            if end in (sp.oo, -sp.oo):
                v = _limit(g, end)
            else:
                v = g.subs(x, end)
                if not _finite_number(v):
                    v = _limit(g, end, "+" if end == self.lo else "-")
            self._side[key] = v
        return self._side[key]

    def roots(self, k: int) -> list[float]:
        """Zeros of φ^(k) in (lo, hi): sign changes on the grid refined by brentq."""
        if k in self._roots:
            return self._roots[k]
        from scipy.optimize import brentq

        out: list[float] = []
        g = self.d(k)
        if g.has(x):
            pts, vals = self.values(k)
            if len(vals):
                tol = 1e-10 * float(np.max(np.abs(vals)))
                sig = np.where(np.abs(vals) > tol, np.sign(vals), 0.0)
                nz = np.flatnonzero(sig)
                change = np.flatnonzero(sig[nz[:-1]] != sig[nz[1:]])
                change = change[np.argsort(np.abs(pts[nz[change]]), kind="stable")[:_MAX_ROOTS]]
                f = self.fn(k)
                for c in change:
                    a, b = pts[nz[c]], pts[nz[c + 1]]
                    try:
                        out.append(brentq(lambda t: float(f(t)), a, b, xtol=1e-14, rtol=1e-14))
                    except (ValueError, RuntimeError):
                        continue
        self._roots[k] = out
        return out


_LOCAL = np.sinh(np.linspace(-np.arcsinh(1e4), np.arcsinh(1e4), 4001))


def _centres(e: sp.Expr) -> np.ndarray:
    """Extra grid points around the real zeros c of every function's argument (tanh(x − 20000):
    c = 20000; sigmoid(1000x): c = 0), scaled by 1/|arg′(c)|: features far from 0 or much
    narrower than the base grid are sampled too."""
    pts = []
    for f in e.atoms(sp.Function, sp.Pow):
        if isinstance(f, sp.Piecewise):
            continue
        for arg in f.args:
            if not isinstance(arg, sp.Expr) or not arg.has(x) or arg == x:
                continue
            try:
                poly = sp.Poly(arg, x)
            except Exception:  # noqa: BLE001 - not a polynomial in x
                continue
            if poly.degree() > 4:
                continue
            for r in np.roots([float(c) for c in poly.all_coeffs()]):
                if abs(r.imag) < 1e-12 and math.isfinite(r.real):
                    slope = abs(float(sp.diff(arg, x).subs(x, float(r.real))))
                    if abs(r.real) <= 1.0 and 0.2 <= slope <= 5.0:
                        continue                 # the base grid already resolves it
                    pts.append(r.real + _LOCAL / max(slope, 1e-3))
    return np.unique(np.concatenate(pts)) if pts else np.empty(0)


def _segments(expr: sp.Expr) -> tuple[sp.Expr, list[_Seg]]:
    e = expr.rewrite(sp.Piecewise) if expr.has(*_NONSMOOTH) else expr
    _SEG_EXACT[1] = False
    bps, exact = _exact_breakpoints(e)
    ends = [-sp.oo, *bps, sp.oo]
    extra = _centres(e)
    segs = []
    for lo, hi in zip(ends[:-1], ends[1:]):
        probe = sp.Integer(0) if lo == -sp.oo and hi == sp.oo else (
            hi - 1 if lo == -sp.oo else lo + 1 if hi == sp.oo else (lo + hi) / 2)
        piece = _branch_at(e, probe) if bps or e.has(sp.Piecewise) else e
        if _SEG_EXACT[1] and (lo == -sp.oo or hi == sp.oo):
            piece = e                  # beyond the last breakpoint found: the whole expression
        segs.append(_Seg(lo, hi, piece, extra))
    _SEG_EXACT[0] = exact
    return e, segs


_SEG_EXACT = [True, False]     # (breakpoints exact, list truncated at _MAX_BPS) of the last _segments


def _pieces_agree(e: sp.Expr, segs: list[_Seg]) -> bool:
    """Whether each piece equals φ on its interval (at grid points): False if breakpoints were missed."""
    if len(segs) == 1 and not e.has(sp.Piecewise):
        return True
    full = _lambdify(e)
    for s in segs:
        pts = s.grid[:: max(1, len(s.grid) // 400)]
        a, b = full(pts), s.fn(0)(pts)
        ok = np.isfinite(a) & np.isfinite(b)
        if np.any(np.abs(a[ok] - b[ok]) > 1e-9 * (1 + np.abs(a[ok]))):
            return False
    return True


# ------------------------------------------------------------------------------- exact identification

_SOLVE_CACHE: dict = {}
_SOLVE_MAX_OPS = 12


def _solutions(g: sp.Expr) -> list[sp.Expr]:
    """sympy's solutions of g = 0, tried on the numerator of g when it has at most _SOLVE_MAX_OPS
    operations (larger ones make ``solve`` slow and, for the activations here, unsuccessful)."""
    key = sp.srepr(g)
    if key not in _SOLVE_CACHE:
        sols = []
        num = sp.numer(sp.together(g))
        if sp.count_ops(num) <= _SOLVE_MAX_OPS:
            try:
                sols = _timed(lambda: [s for s in sp.solve(num, x) if s.is_number], [])
            except Exception:  # noqa: BLE001 - solve raises NotImplementedError and others
                sols = []
        _SOLVE_CACHE[key] = sols
    return _SOLVE_CACHE[key]


def _identify(g: sp.Expr, r: float, seconds: float = 2 * STEP_BUDGET_S) -> sp.Expr | None:
    """An exact zero of g equal to the numeric zero r, or None."""
    return _timed(lambda: _identify_raw(g, r), None, seconds)


def _identify_raw(g: sp.Expr, r: float) -> sp.Expr | None:
    cands = [sp.Integer(0)] if abs(r) < 1e-9 else []
    try:
        cands.append(sp.nsimplify(sp.Float(r, 15), tolerance=1e-10, rational=False))
    except Exception:  # noqa: BLE001
        pass
    for c in cands:
        if abs(_num(c) - r) > 1e-8 * (1 + abs(r)):
            continue
        v = g.subs(x, c)
        if abs(_num(v)) < 1e-25 and _is_zero(v):
            return c
    for s in _solutions(g):
        if abs(_num(s) - r) < 1e-8 * (1 + abs(r)) and abs(complex(sp.N(s)).imag) < 1e-12:
            return s
    return None


# ------------------------------------------------------------------------------------ extrema


@dataclass(frozen=True)
class _Cand:
    value: sp.Expr
    at: sp.Expr
    exact: bool
    attained: bool
    seg: object = None
    root: float | None = None


def _candidates(segs: list[_Seg], k: int) -> list[_Cand]:
    cands = []
    for i, s in enumerate(segs):
        g = s.d(k)
        if not g.has(x):
            cands.append(_Cand(g, s.rep, True, True))
            continue
        for end, other in ((s.lo, segs[i - 1] if i else None), (s.hi, segs[i + 1] if i + 1 < len(segs) else None)):
            if k >= 2 and end in (sp.oo, -sp.oo):      # φ″ at ±∞: read off far out (cheap, numeric)
                far = s.fn(k)(np.array([float(end.evalf()) * 0 + (1e4 if end == sp.oo else -1e4)]))
                if np.isfinite(far).all():
                    cands.append(_Cand(sp.Float(float(far[0]), 17), end, False, False))
                continue
            v = s.side(k, end)
            if v is None:
                continue
            attained = other is not None and _same(v, other.side(k, end)) is True
            cands.append(_Cand(v, end, True, attained))
        f = s.fn(k)
        for r in s.roots(k + 1):
            cands.append(_Cand(sp.Float(float(f(r)), 17), sp.Float(r, 17), False, True, s, r))
    return cands


def _pick(cands: list[_Cand], sign: int) -> _Cand:
    vals = [sign * _num(c.value) for c in cands]
    vals = [v if not math.isnan(v) else -math.inf for v in vals]
    best = max(vals)
    tol = 1e-12 * (1 + abs(best)) if math.isfinite(best) else 0.0
    tied = [c for c, v in zip(cands, vals) if v >= best - tol]
    tied.sort(key=lambda c: (not c.attained, not c.exact, abs(_num(c.at))))
    return tied[0]


def _grid_extreme(segs: list[_Seg], k: int, sign: int) -> _Cand | None:
    from scipy.optimize import minimize_scalar

    best, where = -math.inf, None
    for s in segs:
        if not s.d(k).has(x):
            continue
        pts, vals = s.values(k)
        if len(vals):
            i = int(np.argmax(sign * vals))
            if sign * vals[i] > best:
                best, where = sign * vals[i], (s, pts, i)
    if where is None:
        return None
    s, pts, i = where
    a, b = pts[max(i - 1, 0)], pts[min(i + 1, len(pts) - 1)]
    f = s.fn(k)
    res = minimize_scalar(lambda t: -sign * float(f(t)), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-12})
    r, v = (float(res.x), -float(res.fun)) if -res.fun >= best else (float(pts[i]), best)
    return _Cand(sp.Float(sign * v, 17), sp.Float(r, 17), False, True, s, r)


def _extreme(segs: list[_Seg], k: int, sign: int, identify_s: float = 2 * STEP_BUDGET_S) -> _Cand:
    """sup (sign = +1) or inf (sign = −1) of φ^(k) over the real line."""
    cands = _candidates(segs, k)
    best = _pick(cands, sign) if cands else None
    grid = _grid_extreme(segs, k, sign)
    if grid is not None and (best is None or sign * _num(grid.value) > sign * _num(best.value)
                             + 1e-9 * (1 + abs(_num(best.value)))):
        best = grid
    if not best.exact and best.seg is not None and identify_s > 0:
        c = _identify(best.seg.d(k + 1), best.root, identify_s)
        if c is not None:
            v = best.seg.d(k).subs(x, c)
            if sp.count_ops(v) < 40:
                v = _timed(lambda: sp.simplify(v), v)
            best = _Cand(v, c, True, True)
    return best


# ----------------------------------------------------------------------------------- monotonicity

def _interval_param(lo: sp.Expr, hi: sp.Expr) -> sp.Expr:
    if lo == -sp.oo and hi == sp.oo:
        return x
    if lo == -sp.oo:
        return hi - _T
    if hi == sp.oo:
        return lo + _T
    return lo + (hi - lo) * _T / (1 + _T)


def _prove_sign(g: sp.Expr, lo, hi, positive: bool) -> bool:
    return bool(_timed(lambda: _prove_sign_raw(g, lo, hi, positive), False))


def _prove_sign_raw(g: sp.Expr, lo, hi, positive: bool) -> bool:
    sub = g.subs(x, _interval_param(lo, hi))
    forms = [sub]
    try:
        forms.append(sp.factor(sp.together(sub.rewrite(sp.exp))))
    except Exception:  # noqa: BLE001
        pass
    for f in forms:
        if (f.is_nonnegative if positive else f.is_nonpositive) is True:
            return True
    return False


def _sign_class(s: _Seg) -> tuple[str, bool]:
    """'pos' (φ′ ≥ 0), 'neg', 'zero' (φ′ ≡ 0) or 'mixed' on the piece, and whether that is proved."""
    g = s.d(1)
    if not g.has(x):
        v = _num(g)
        return ("zero" if v == 0 else "pos" if v > 0 else "neg"), True
    _, vals = s.values(1)
    tol = 1e-10 * float(np.max(np.abs(vals))) if len(vals) else 0.0
    has_pos, has_neg = bool(np.any(vals > tol)), bool(np.any(vals < -tol))
    if has_pos and has_neg:
        return "mixed", True
    positive = not has_neg
    return ("pos" if positive else "neg"), _prove_sign(g, s.lo, s.hi, positive)


def _monotonic(segs: list[_Seg]) -> tuple[str, bool]:
    """"strictly increasing", "non-decreasing" (φ′ ≥ 0 with φ′ ≡ 0 on some interval), "strictly
    decreasing", "non-increasing" or "not monotone"; from the sign of φ′ on every piece and the
    direction of every jump of φ; and whether that is proved (isolated zeros of φ′ keep it strict)."""
    classes = [_sign_class(s) for s in segs]
    for left, right in zip(segs[:-1], segs[1:]):
        jump = _num(right.side(0, right.lo)) - _num(left.side(0, left.hi))
        if jump != 0 and not math.isnan(jump):
            classes.append(("pos" if jump > 0 else "neg", True))
    flat = any(c == "zero" for c, _ in classes)
    kinds = {c for c, _ in classes} - {"zero"}
    exact = all(e for _, e in classes)
    if kinds == {"pos"}:
        return ("non-decreasing" if flat else "strictly increasing"), exact
    if kinds == {"neg"}:
        return ("non-increasing" if flat else "strictly decreasing"), exact
    if not kinds:
        return "constant", True
    return "not monotone", True


# ------------------------------------------------------------------------------------- symmetry

def _symmetry(e: sp.Expr, segs: list[_Seg]) -> tuple[str, bool]:
    """"odd" (φ(−x) = −φ(x)), "point" (point-symmetric about (0, φ(0)): φ(−x) + φ(x) = 2φ(0), e.g.
    sigmoid), "even" (φ(−x) = φ(x)) or "none", tested about 0 on every grid point of every piece
    (|x| up to 1e4 and around shifted features, so tanh(x − 200) is not "even"); proved where sympy can."""
    f = _lambdify(e)
    p = np.unique(np.abs(np.concatenate([s.grid for s in segs])))
    p = p[p > 0]
    fp, fm = f(p), f(-p)
    ok = np.isfinite(fp) & np.isfinite(fm)
    fp, fm = fp[ok], fm[ok]
    if not len(fp):
        return "none", False
    scale = 1 + float(np.max(np.abs(np.concatenate([fp, fm]))))
    f0 = float(f(np.array(0.0)))
    tol = 1e-9 * scale
    if np.max(np.abs(fp + fm)) < tol and abs(f0) < 1e-12:
        return "odd", _prove_symmetry(e, segs, 1)
    if math.isfinite(f0) and np.max(np.abs(fp + fm - 2 * f0)) < tol and abs(f0) >= 1e-12:
        c0 = e.subs(x, 0) if not e.has(sp.Piecewise) and e.subs(x, 0).is_number else sp.nsimplify(f0)
        return "point", _prove_symmetry(e - c0, segs, 1)
    if np.max(np.abs(fp - fm)) < tol:
        return "even", _prove_symmetry(e, segs, -1)
    return "none", True


def _prove_symmetry(e: sp.Expr, segs: list[_Seg], sgn: int) -> bool:
    cuts = sorted({abs(float(s.lo)) for s in segs if s.lo != -sp.oo} - {0.0})
    exact = {abs(float(s.lo)): sp.Abs(s.lo) for s in segs if s.lo != -sp.oo}
    ends = [sp.Integer(0), *[exact[c] for c in cuts], sp.oo]
    for lo, hi in zip(ends[:-1], ends[1:]):
        m = lo + 1 if hi == sp.oo else (lo + hi) / 2
        pos = _branch_at(e, m) if e.has(sp.Piecewise) else e
        neg = _branch_at(e, -m) if e.has(sp.Piecewise) else e
        if _is_zero(pos + sgn * neg.subs(x, -x)) is not True:
            return False
    return True


# ------------------------------------------------------------------------------------ smoothness

def _smoothness(e: sp.Expr, segs: list[_Seg]) -> tuple[int | float, bool]:
    """Largest k with φ^(k) continuous everywhere (−1: φ itself jumps), and whether that is proved.

    At a breakpoint where φ^(0..K) all match (K = 8) but the pieces are not proved identical the
    answer is K with exact = False: "at least C^K (numeric)", never a silent C∞."""
    k_min: int | float = math.inf
    exact = True
    for left, right in zip(segs[:-1], segs[1:]):
        b = left.hi
        at_b = None
        for k in range(_K_MAX + 1):
            lv, rv = left.side(k, b), right.side(k, b)
            same = _same(lv, rv)
            if same is True and k == 0:
                val = e.subs(x, b)
                same = _same(val, lv) if _finite_number(val) else same
            if same is not True:
                at_b = k - 1
                if same is None:
                    exact = False
                break
        if at_b is None and _is_zero(left.expr - right.expr) is not True:
            exact = False
            at_b = _K_MAX
        if at_b is not None:
            k_min = min(k_min, at_b)
    return k_min, exact


# ------------------------------------------------------------------------------------ saturation

def _decay_rate(g: sp.Expr, side: int) -> str:
    """'exponential' if log|g| falls at least linearly in |x| (read at |x| = 100, 200, 400), else 'polynomial'."""
    if not g.has(x):
        return "exponential"
    import mpmath

    try:
        f = sp.lambdify(x, g, "mpmath")
        with mpmath.workdps(500):
            logs = []
            for X in (100, 200, 400):
                v = abs(f(mpmath.mpf(side * X)))
                if v == 0:
                    return "exponential"
                logs.append(float(mpmath.log(v)))
    except Exception:  # noqa: BLE001
        fn = _lambdify(g)
        vals = np.abs(fn(np.array([10.0, 20.0, 40.0]) * side))
        if np.any(vals == 0):
            return "exponential"
        logs = list(np.log(vals))
    d1, d2 = logs[1] - logs[0], logs[2] - logs[1]
    return "exponential" if d1 < 0 and d2 <= 1.5 * d1 else "polynomial"


def _hp_abs(g: sp.Expr, t: float) -> float:
    import mpmath

    f = sp.lambdify(x, g, "mpmath")
    with mpmath.workdps(60 + min(int(abs(t)), 2000)):
        return float(abs(f(mpmath.mpf(t))))


def _polish_threshold(g: sp.Expr, r: float, eps: float, a: float, b: float) -> float:
    """The root of log|φ′(x)| = log ε near r in 50-digit arithmetic (1 − tanh² at small ε loses
    every digit in double precision); r itself if that fails or leaves [a, b]."""
    import mpmath

    try:
        f = sp.lambdify(x, g, "mpmath")
        with mpmath.workdps(50):
            le = mpmath.log(mpmath.mpf(eps))
            root = mpmath.findroot(lambda t: mpmath.log(abs(f(t))) - le, mpmath.mpf(r), tol=mpmath.mpf(10) ** -40)
        root = float(root)
    except Exception:  # noqa: BLE001 - keep the double-precision root
        return r
    return root if a - 1e-9 * (1 + abs(a)) <= root <= b + 1e-9 * (1 + abs(b)) else r


def _threshold(segs: list[_Seg], side: int, eps: float) -> tuple[float, bool]:
    """x_ε on the right (side = +1: sup{x : |φ′(x)| ≥ ε}) or left (side = −1: inf{…}); and exactness."""
    from scipy.optimize import brentq

    order = segs[::-1] if side > 0 else segs
    for s in order:
        g = s.d(1)
        near, far = (s.hi, s.lo) if side > 0 else (s.lo, s.hi)
        v = s.side(1, near) if near not in (sp.oo, -sp.oo) else None
        if v is not None and abs(_num(v)) >= eps:
            return float(near), True
        if not g.has(x):
            if abs(_num(g)) >= eps:
                return float(near), True
            continue
        pts, vals = s.values(1)
        hit = np.flatnonzero(np.abs(vals) >= eps)
        if not len(hit):
            v = s.side(1, far) if far not in (sp.oo, -sp.oo) else None
            if v is not None and abs(_num(v)) >= eps:
                return float(far), True
            continue
        i = hit[-1] if side > 0 else hit[0]
        j = i + side
        f = s.fn(1)
        if 0 <= j < len(pts):
            a, b = sorted((pts[i], pts[j]))
            r = brentq(lambda t: abs(float(f(t))) - eps, a, b, xtol=1e-13)
            return _polish_threshold(g, r, eps, a, b), False
        if near not in (sp.oo, -sp.oo):
            return float(near), True
        a = float(pts[i])
        step, b = max(1.0, abs(a)), a
        for _ in range(60):  # walk out until |φ′| < ε, then bisect
            b = a + side * step
            if _hp_abs(g, b) < eps:
                break
            step *= 2
        for _ in range(80):
            m = (a + b) / 2
            a, b = (m, b) if _hp_abs(g, m) >= eps else (a, m)
        return (a + b) / 2, False
    return (-math.inf if side > 0 else math.inf), True


# ---------------------------------------------------------------------------------------- derive

_ANALYSIS: dict = {}
_DERIVED: dict = {}


def _key(act: Activation) -> tuple:
    return (act.name, act.params, sp.srepr(act.expr))


def _point_value(segs: list[_Seg], k: int, p: sp.Expr, e_k: sp.Expr) -> sp.Expr | None:
    for i, s in enumerate(segs):
        if s.flo < float(p) < s.fhi:
            v = s.d(k).subs(x, p)
            return v if _finite_number(v) else _limit(s.d(k), p)
        if float(p) == s.fhi and i + 1 < len(segs):
            if k > 0 and _same(s.side(0, p), segs[i + 1].side(0, p)) is not True:
                return None                      # φ jumps at p: no derivative there
            lv, rv = s.side(k, p), segs[i + 1].side(k, p)
            if _same(lv, rv) is True:
                return lv
            if k == 0:
                v = e_k.subs(x, p)
                return v if _finite_number(v) else None
            return None
    return None


def _analyse(act: Activation) -> tuple[list[_Seg], dict]:
    key = _key(act)
    if key in _ANALYSIS:
        return _ANALYSIS[key]
    e, segs = _segments(act.expr)
    numeric: list[str] = [] if _pieces_agree(e, segs) and _SEG_EXACT[0] else ["breakpoints"]
    d1 = sp.diff(act.expr, x)
    d2 = sp.diff(d1, x)

    lim_f = (segs[0].side(0, -sp.oo), segs[-1].side(0, sp.oo))
    lim_df = (segs[0].side(1, -sp.oo), segs[-1].side(1, sp.oo))
    if None in lim_f or None in lim_df:
        numeric.append("limits")

    lo, hi = _extreme(segs, 0, -1), _extreme(segs, 0, +1)
    if (lim_f[0] is None or lim_f[1] is None) and _grows_without_bound(e, 0, +1):
        hi = _Cand(sp.oo, sp.oo, False, False)
    if (lim_f[0] is None or lim_f[1] is None) and _grows_without_bound(e, 0, -1):
        lo = _Cand(-sp.oo, -sp.oo, False, False)
    if not (lo.exact and hi.exact):
        numeric.append("range")
    monotonic, mono_exact = _monotonic(segs)
    if not mono_exact:
        numeric.append("monotonic")
    minimum = None
    if monotonic == "not monotone":
        minimum = Extremum(lo.value, lo.at, lo.exact, lo.attained)
        if not lo.exact:
            numeric.append("minimum")

    smooth, smooth_exact = _smoothness(e, segs)
    if not smooth_exact:
        numeric.append("smoothness")

    if smooth < 0:  # φ jumps: no finite Lipschitz constant
        jump_at = next(a.hi for a, b in zip(segs[:-1], segs[1:])
                       if _same(a.side(0, a.hi), b.side(0, a.hi)) is not True)
        lip = _Cand(sp.oo, jump_at, True, True)
    else:
        dlo, dhi = _extreme(segs, 1, -1), _extreme(segs, 1, +1)
        lip = dhi if _num(dhi.value) >= -_num(dlo.value) else _Cand(-dlo.value, dlo.at, dlo.exact, dlo.attained)
    if lim_df[0] is None or lim_df[1] is None:
        if lip.value.is_finite and _grows_without_bound(e, 1):
            lip = _Cand(sp.oo, sp.oo if lim_df[1] is None else -sp.oo, False, False)
    if not lip.exact:
        numeric.append("lipschitz")
    symmetry, sym_exact = _symmetry(e, segs)
    if not sym_exact:
        numeric.append("symmetry")

    sat = []
    for side, s, lim in ((-1, segs[0], lim_df[0]), (1, segs[-1], lim_df[1])):
        saturates = lim is not None and _is_zero(lim) is True
        rate = _decay_rate(s.d(1), side) if saturates else "none"
        if saturates and not s.d(1).has(x):
            rate = "dead"
        if saturates and s.d(1).has(x) and "saturation.rate" not in numeric:
            numeric.append("saturation.rate")
        sat.append((saturates, rate))

    dead = []
    for s in segs:
        g = s.d(1)
        if not g.has(x) and _num(g) == 0:
            if dead and dead[-1][1] == s.lo:
                dead[-1] = (dead[-1][0], s.hi)
            else:
                dead.append((s.lo, s.hi))

    f0 = _point_value(segs, 0, sp.Integer(0), e)
    df0 = _point_value(segs, 1, sp.Integer(0), sp.diff(e, x))
    if smooth < 1:                       # φ′ jumps: φ″ has a Dirac mass, no finite curvature bound
        at = next((a.hi for a, b in zip(segs[:-1], segs[1:])
                   if _same(a.side(1, a.hi), b.side(1, a.hi)) is not True), sp.nan)
        curv = _Cand(sp.oo, at, True, True)
    else:
        clo, chi = _extreme(segs, 2, -1, 0.0), _extreme(segs, 2, +1, 0.0)
        best, sign = (chi, 1) if _num(chi.value) >= -_num(clo.value) else (clo, -1)
        if not best.exact and best.seg is not None:
            c = _identify(best.seg.d(3), best.root, 1.5)
            if c is not None:
                best = _Cand(best.seg.d(2).subs(x, c), c, True, True)
        curv = best if sign > 0 else _Cand(-best.value, best.at, best.exact, best.attained)
        # the largest |φ″| at the sampling grid's edge (x³: 6·9999.99) is a lower bound of an unbounded sup
        if (curv.value.is_finite and not curv.exact and abs(_num(curv.at)) >= 1e3
                and _grows_without_bound(e, 2)):
            curv = _Cand(sp.oo, sp.oo if _num(curv.at) > 0 else -sp.oo, False, False)
    if not curv.exact:
        numeric.append("curvature")
    lip_on = tuple((s.lo, s.hi) for s in segs if not s.d(1).has(x) and lip.value.is_finite
                   and _same(sp.Abs(s.d(1)), lip.value) is True)
    paper, paper_numeric = _paper_properties(act, e, segs, lim_f, smooth)
    numeric += paper_numeric
    fields = dict(
        derivative=d1, second_derivative=d2,
        derivative_str=sp.sstr(d1), derivative_latex=sp.latex(d1),
        second_derivative_str=sp.sstr(d2), second_derivative_latex=sp.latex(d2),
        breakpoints=tuple(s.lo for s in segs[1:]),
        f0=f0, df0=df0, limits_f=lim_f, limits_df=lim_df,
        range=(lo.value, hi.value), range_attained=(lo.attained, hi.attained),
        minimum=minimum, monotonic=monotonic,
        zero_centered=_num(lo.value) < 0 < _num(hi.value),
        mean_output=_mean_output(act),
        curvature=curv.value, curvature_exact=curv.exact, curvature_at=curv.at, curvature_attained=curv.attained,
        lipschitz_on=lip_on, smoothness_at_least=not smooth_exact and smooth == _K_MAX,
        **paper,
        symmetry=symmetry,
        bounded_below=_num(lo.value) > -math.inf, bounded_above=_num(hi.value) < math.inf,
        lipschitz=lip.value, lipschitz_exact=lip.exact, lipschitz_at=lip.at, lipschitz_attained=lip.attained,
        smoothness=smooth, dead_region=tuple(dead),
        _sat=tuple(sat), _numeric=tuple(numeric),
    )
    _ANALYSIS[key] = (segs, fields)
    return _ANALYSIS[key]


def _hp_tail(g: sp.Expr, points) -> list[float]:
    """|g| at the given x in 60-digit arithmetic (inf where it cannot be evaluated)."""
    out = []
    for t in points:
        try:
            out.append(_hp_abs(g, t))
        except Exception:  # noqa: BLE001
            out.append(math.inf)
    return out


def _grows_without_bound(e: sp.Expr, k: int, sign: int = 0) -> bool:
    """Whether sup of φ^(k) (sign +1), of −φ^(k) (−1) or of |φ^(k)| (0) over |x| ≤ R keeps growing:
    M(R) from 200 001 points in R/2 ≤ |x| ≤ R, for R = 1e2, 1e3, 1e4, rises by ≥ 3× per decade
    (x·sin(x), sin(x²)′): the supremum is ∞, not the grid's largest value. Numeric."""
    f = _lambdify(sp.diff(e, x, k) if k else e)
    rng = np.random.default_rng(0)
    ms = []
    for r in (1e2, 1e3, 1e4):
        t = rng.uniform(r / 2, r, 100_001)
        v = f(np.concatenate([t, -t]))
        v = v if sign > 0 else -v if sign < 0 else np.abs(v)
        v = v[np.isfinite(v)]
        ms.append(float(v.max()) if len(v) else math.nan)
    return bool(ms[0] > 0 and ms[1] >= 3 * ms[0] and ms[2] >= 3 * ms[1])


def _mean_output(act: Activation) -> float:
    from theory.meanfield import gaussian_mean

    try:
        return float(gaussian_mean(act, 0, 1.0))
    except (ValueError, ZeroDivisionError, OverflowError):
        return math.nan


_ANALYTIC = (sp.exp, sp.log, sp.tanh, sp.sinh, sp.cosh, sp.sin, sp.cos, sp.atan, sp.erf, sp.erfc)


def _paper_properties(act: Activation, e: sp.Expr, segs: list[_Seg], lim_f, smooth) -> tuple[dict, list[str]]:
    """The TeLU paper's claims as numbers, for any φ (see ``Properties``)."""
    from scipy.optimize import minimize_scalar

    numeric: list[str] = []
    last = segs[-1]
    diff = last.expr - x
    tail = _hp_tail(diff, (20.0, 40.0, 80.0, 1e3, 1e4))
    if not diff.has(x) and _num(diff) == 0:
        near, rate = True, "identical"
    else:
        near = bool(tail[2] < 1e-8 and 1 > tail[0] >= tail[1] >= tail[2])
        rate = _decay_rate(diff, 1) if near else "none"
        numeric.append("near_identity_rate")
    grads = []
    for p in (-3, -5):
        v = _point_value(segs, 1, sp.Integer(p), sp.diff(e, x))
        grads.append(abs(_num_exact(v)) if v is not None else math.nan)
    # sup |φ − relu|
    if near:
        right = sp.Integer(0)
    elif tail[4] > 10 * tail[3] or not math.isfinite(tail[4]):
        right = sp.oo
    else:
        right = sp.Float(tail[4], 15) if abs(tail[4] - tail[3]) < 1e-9 * (1 + tail[4]) else None
    left = lim_f[0]
    if right is None or left is None or not (_finite_number(right) and _finite_number(left)):
        dist, at = math.inf, (math.inf if right is None or not _finite_number(right) else -math.inf)
        if right is None or left is None:
            numeric.append("relu_distance")
    else:
        f = _lambdify(e)
        pts = np.unique(np.concatenate([s.grid for s in segs] + [np.array([0.0])]))
        vals = np.abs(f(pts) - np.maximum(pts, 0.0))
        ok = np.isfinite(vals)
        i = int(np.argmax(np.where(ok, vals, -1)))
        dist, at = float(vals[i]), float(pts[i])
        a, b = pts[max(i - 1, 0)], pts[min(i + 1, len(pts) - 1)]
        if b > a:
            res = minimize_scalar(lambda t: -abs(float(f(t)) - max(t, 0.0)), bounds=(a, b), method="bounded",
                                  options={"xatol": 1e-12})
            if -res.fun > dist:
                dist, at = float(-res.fun), float(res.x)
        tails = [abs(_num(right)), abs(_num(left))]
        if dist == 0.0:
            at = math.nan
        elif max(tails) >= dist * (1 - 1e-9):
            dist, at = max(tails), (math.inf if tails[0] >= tails[1] else -math.inf)
        numeric.append("relu_distance")
    analytic = len(segs) == 1 and smooth == math.inf and not e.has(sp.Piecewise, *_NONSMOOTH)
    if analytic:
        for pw in e.atoms(sp.Pow):
            if pw.exp.is_Integer or not pw.base.has(x):
                continue
            base = _lambdify(pw.base)(segs[0].grid)
            if np.any(np.abs(base[np.isfinite(base)]) < 1e-12):
                analytic = False
        for fn in e.atoms(sp.Function):
            if not isinstance(fn, _ANALYTIC):
                analytic = False
    return dict(near_identity_right=near, near_identity_rate=rate, grad_at_minus3=grads[0],
                grad_at_minus5=grads[1], relu_distance=dist, relu_distance_at=at, analytic=analytic), numeric


def derive(act: Activation, eps: float = 0.01) -> Properties:
    """All properties of ``act`` (see ``Properties``); ``eps`` is the saturation level |φ′| < ε.

    Cached per (name, parameters, expression, eps).
    """
    eps = _check_eps(eps)
    key = (*_key(act), eps)
    if key in _DERIVED:
        return _DERIVED[key]
    _STATE.update(deadline=time.process_time() + SYMBOLIC_BUDGET_S, timed_out=False)
    try:
        segs, fields = _analyse(act)
    finally:
        _STATE["deadline"] = math.inf
    fields = dict(fields)
    sat = fields.pop("_sat")
    numeric = list(fields.pop("_numeric"))
    sides = []
    for side, (saturates, rate) in zip((-1, 1), sat):
        thr = None
        if saturates:
            thr, exact = _threshold(segs, side, eps)
            if not exact and "saturation.threshold" not in numeric:
                numeric.append("saturation.threshold")
        sides.append(Saturation(saturates, rate, thr))
    props = Properties(
        name=act.name, label=act.label, formula=act.formula or sp.sstr(act.expr), expr=act.expr, eps=eps,
        saturation_left=sides[0], saturation_right=sides[1], numeric=tuple(numeric), **fields,
    )
    _DERIVED[key] = props
    return props


def _check_eps(eps) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}") from None
    if not (math.isfinite(e) and e > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return e


def saturation_threshold(act: Activation, eps: float = 0.01) -> tuple[float | None, float | None]:
    """(x_ε on the left, x_ε on the right): beyond them |φ′| < ε for good; None on a side that does not saturate."""
    p = derive(act, eps)
    return p.saturation_left.threshold, p.saturation_right.threshold


# ------------------------------------------------------------------------------------------ JSON

def _j(v):
    """A JSON value: finite numbers as floats, ±oo as "inf"/"-inf", unknown or NaN as None."""
    if v is None:
        return None
    if isinstance(v, (bool, str)):
        return v
    f = _num_exact(v) if not isinstance(v, (int, float)) else float(v)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def _exact_str(v, exact: bool = True):
    return sp.sstr(v) if exact and v is not None and not isinstance(v, (int, float)) else None


def to_json(p: Properties) -> dict:
    """A JSON-ready dict of ``p`` (numbers as floats, ±∞ as "inf"/"-inf", unknown as null)."""
    sat = lambda s: {"saturates": s.saturates, "rate": s.rate, "threshold": _j(s.threshold)}  # noqa: E731
    return {
        "name": p.name,
        "label": p.label,
        "formula": p.formula,
        "expr": sp.sstr(p.expr),
        "derivative": p.derivative_str,
        "derivative_latex": p.derivative_latex,
        "second_derivative": p.second_derivative_str,
        "second_derivative_latex": p.second_derivative_latex,
        "breakpoints": [_j(b) for b in p.breakpoints],
        "f0": _j(p.f0),
        "df0": _j(p.df0),
        "limits": {"f": [_j(v) for v in p.limits_f], "df": [_j(v) for v in p.limits_df]},
        "range": [_j(p.range[0]), _j(p.range[1])],
        "range_attained": list(p.range_attained),
        "minimum": None if p.minimum is None else {
            "value": _j(p.minimum.value), "at": _j(p.minimum.at),
            "exact": _exact_str(p.minimum.value, p.minimum.exact)},
        "monotonic": p.monotonic,
        "zero_centered": p.zero_centered,
        "bounded": {"below": p.bounded_below, "above": p.bounded_above},
        "lipschitz": _j(p.lipschitz),
        "lipschitz_exact": p.lipschitz_exact,
        "lipschitz_expr": _exact_str(p.lipschitz, p.lipschitz_exact),
        "lipschitz_at": _j(p.lipschitz_at),
        "lipschitz_attained": p.lipschitz_attained,
        "smoothness": "inf" if p.smoothness == math.inf else int(p.smoothness),
        "saturation": {"left": sat(p.saturation_left), "right": sat(p.saturation_right), "eps": p.eps},
        "dead_region": [[_j(a), _j(b)] for a, b in p.dead_region],
        "symmetry": p.symmetry,
        "mean_output": _j(p.mean_output),
        "curvature": _j(p.curvature),
        "curvature_exact": p.curvature_exact,
        "curvature_expr": _exact_str(p.curvature, p.curvature_exact),
        "curvature_at": _j(p.curvature_at),
        "lipschitz_on": [[_j(a), _j(b)] for a, b in p.lipschitz_on],
        "smoothness_at_least": p.smoothness_at_least,
        "telu_paper": {
            "near_identity_right": p.near_identity_right, "near_identity_rate": p.near_identity_rate,
            "abs_grad_at_minus3": _j(p.grad_at_minus3), "abs_grad_at_minus5": _j(p.grad_at_minus5),
            "eps_threshold_left": _j(p.saturation_left.threshold),
            "relu_distance": _j(p.relu_distance), "relu_distance_at": _j(p.relu_distance_at),
            "analytic": p.analytic, "lipschitz": _j(p.lipschitz)},
        "numeric": list(p.numeric),
    }
