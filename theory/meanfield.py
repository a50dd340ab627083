"""Mean-field signal propagation through a deep, wide, fully-connected net at random initialisation.

Poole et al. 2016 ("Exponential expressivity in deep neural networks through transient chaos") and
Schoenholz et al. 2017 ("Deep Information Propagation"). Layer l computes

    z_l = W_l h_{l-1} + b_l,   h_l = φ(z_l),   W_ij ~ N(0, σ_w²/fan_in),   b_i ~ N(0, σ_b²),

and as the width goes to infinity the pre-activations of layer l are Gaussian with variance q_l:

- length map      q_{l+1} = L(q_l) = σ_w² E_{u~N(0,1)}[φ(√q_l u)²] + σ_b²          (``length_map``)
- fixed point     q* = L(q*), the limit of the iteration                              (``fixed_point``)
- gradient factor χ₁(q) = σ_w² E[φ′(√q u)²]: E‖∂L/∂z_{l-1}‖² ≈ χ₁(q_{l-1}) E‖∂L/∂z_l‖²  (``chi1``)
- depth scales    ξ_q⁻¹ = −log χ_q,  χ_q = L′(q*) = σ_w² E[φ′² + φ φ″] at q*,
                  ξ_c⁻¹ = −log χ_c,  χ_c = χ₁(q*)   (slope of the correlation map at c = 1)
- edge of chaos   χ₁(q*) = 1                                                          (``critical_sigma_w2``)

Gaussian expectations. Every expectation is E_{u~N(0,1)}[g(√q u)] = ∫ g(x) N(x; 0, q) dx. The
integrand is split at the activation's breakpoints (kinks/jumps of φ′ at b → u = b/√q) and on a grid
graded towards x = 0, and each smooth panel is integrated with 20-point Gauss–Legendre (agrees with
30-digit mpmath to ~1e-16 for q from 1e-2 to 1e6; plain Gauss–Hermite over the whole line is wrong
for kinked φ: relu's χ₁ at σ_w² = 2 comes out 1.27 with 21 nodes). Activations that are piecewise
polynomial (relu, leaky_relu, hardtanh, user formulas built from where/abs/max/min of polynomials)
use exact closed forms instead: Gaussian partial moments with erf (``closed_form`` gives the sympy
expression, e.g. relu: E[φ²] = q/2, E[φ′²] = 1/2).

Conventions (documented once, used everywhere):

- q = 0: each expectation is its limit q → 0⁺, i.e. (g(0⁻) + g(0⁺))/2. At a kink at 0 this is the
  average of the one-sided *squares*: relu has E[φ′²] = 1/2 at q = 0 as at every q > 0.
- φ″ is distributional: at a breakpoint b where φ′ jumps by [φ′](b), φ″ carries [φ′](b)·δ(x − b),
  so E[φ φ″] gains φ(b)·[φ′](b)·N(b; 0, q) = φ(b)·[φ′](b)·ϕ(b/√q)/√q (ϕ the standard normal density).
  This is the convention under which χ_q = L′(q) holds exactly (Stein's lemma); it is zero for
  relu-like kinks at 0 (φ(0) = 0) and non-zero for hardtanh (φ(±1) = ±1).
- A φ that itself jumps has E[φ′²] = inf and E[φ φ″] = nan.
- q = inf (the iteration diverges): E[φ′²] is its limit (φ′(+∞)² + φ′(−∞)²)/2 where φ is
  asymptotically linear; ``chi1`` and ξ_c use it, ξ_q is nan.

Numerics: φ, φ′, φ″ are lambdified once per activation and cached; where a lambdified formula
overflows (softplus at x = 800) the verified linear asymptote (or mpmath) replaces it.
No torch here: numpy, scipy and sympy only.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import sympy as sp
from scipy import optimize, special

from theory import init as init_table
from theory.activations import Activation, breakpoints as _expr_breakpoints, lookup, x

__all__ = [
    "MeanField", "gaussian_mean", "expect_phi2", "expect_dphi2", "expect_phi_ddphi", "closed_form",
    "length_map", "length_map_slope", "fixed_point", "chi1", "depth_scales", "critical_sigma_w2",
    "input_q", "q_profile", "chi1_profile", "predicted_log_grad_profile", "summary",
    "init_sigma_w2", "torch_default_sigma_b2", "INIT_SCHEMES", "Q_MAX", "Q_TINY",
]

Q_MAX = 1e12      # a fixed point above this is reported as inf (q grows without bound)
Q_TINY = 1e-12    # below this a decreasing iteration with L(0) = 0 is reported as q* = 0
CRITICAL_TOL = 1e-9   # |χ − 1| below this counts as critical (ξ = inf)
_GL_T, _GL_W = np.polynomial.legendre.leggauss(20)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_U_MAX = 10.0     # the u-range [-10, 10]; widened automatically for integrands that grow fast
_KINDS = ("phi2", "dphi2", "phi_ddphi")


# --------------------------------------------------------------------------------------------
# Per-activation numerics (cached)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Num:
    fns: tuple[Callable, Callable, Callable]      # φ, φ′, φ″ (safe vectorised numpy)
    bps: tuple[float, ...]                        # breakpoints in x
    pieces: tuple | None                          # sympy φ on each interval between breakpoints
    side: tuple                                   # per breakpoint: (φ(b−), φ(b+), φ′(b−), φ′(b+))
    poly: dict | None                             # kind -> per-interval polynomial coefficients
    asym: tuple | None                            # ((a−, c−), (a+, c+)): φ ≈ a x + c as x → ±∞


def _as_act(act) -> Activation:
    if isinstance(act, Activation):
        return act
    if isinstance(act, str):
        return lookup(act)
    raise TypeError(f"expected an Activation or a name/formula, got {type(act).__name__}")


def _canonical(expr: sp.Expr) -> sp.Expr:
    if expr.has(sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min):
        expr = expr.rewrite(sp.Piecewise)
    return sp.piecewise_fold(expr)


def _interval_points(bps: Sequence[float]) -> list[float]:
    if not bps:
        return [0.0]
    pts = [bps[0] - 1.0]
    pts += [(a + b) / 2 for a, b in zip(bps[:-1], bps[1:])]
    return pts + [bps[-1] + 1.0]


def _piece_at(expr: sp.Expr, point: float) -> sp.Expr | None:
    if not isinstance(expr, sp.Piecewise):
        return expr
    for e, c in expr.args:
        val = c.subs(x, sp.Float(point, 30)) if c not in (sp.true, sp.false) else c
        if val == sp.true:
            return None if e.has(sp.Piecewise) else e
        if val != sp.false:
            return None
    return None


def _poly_coeffs(e: sp.Expr) -> np.ndarray | None:
    if not e.is_polynomial(x):
        return None
    p = sp.Poly(sp.expand(e), x)
    if p.degree() > 8:
        return None
    return np.array([float(c) for c in reversed(p.all_coeffs())])   # ascending powers


def _raw_lambdify(e: sp.Expr) -> Callable:
    return sp.lambdify(x, e, modules=[{"erf": special.erf, "erfc": special.erfc}, "numpy"])


def _snap(v: float) -> float:
    r = round(v)
    return float(r) if abs(v - r) <= 1e-12 * max(1.0, abs(v)) else float(v)


def _asymptotes(f0: Callable, f1: Callable, outer: tuple) -> tuple | None:
    """((a−, c−), (a+, c+)) with φ(x) = a x + c + o(1) as x → ±∞, or None.

    Exact where the outer Piecewise piece is linear; otherwise fitted at |x| = 40, 60, checked at 50
    (φ and φ′ to 1e-9) and snapped to integers within 1e-12.
    """
    out = []
    for s, piece in zip((-1.0, 1.0), outer):
        if piece is not None and piece.is_polynomial(x) and sp.degree(piece, x) <= 1:
            a, c = sp.Poly(piece, x).all_coeffs() if sp.degree(piece, x) == 1 else (0, piece)
            out.append((float(a), float(c)))
            continue
        pts = s * np.array([40.0, 50.0, 60.0])
        with np.errstate(all="ignore"):
            y = np.broadcast_to(np.asarray(f0(pts), dtype=float), pts.shape)
            d = np.broadcast_to(np.asarray(f1(pts), dtype=float), pts.shape)
        if not (np.isfinite(y).all() and np.isfinite(d).all()):
            return None
        a = (y[2] - y[0]) / (pts[2] - pts[0])
        c = y[0] - a * pts[0]
        tol = 1e-9 * (1.0 + np.abs(y).max())
        if abs(y[1] - (a * pts[1] + c)) > tol or np.abs(d - a).max() > 1e-9 * (1 + abs(a)):
            return None
        out.append((_snap(a), _snap(c)))
    return tuple(out)


def _safe(raw: Callable, mp: Callable, asym_k: tuple | None) -> Callable:
    """Vectorised φ^(k): non-finite values (overflow) replaced by the asymptote or by mpmath."""

    def g(v: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            y = raw(v)
        if not (isinstance(y, np.ndarray) and y.shape == v.shape and y.dtype == np.float64):
            y = np.array(np.broadcast_to(np.asarray(y, dtype=float), v.shape))
        bad = ~np.isfinite(y)
        if bad.any():
            y = y.copy()
            if asym_k is not None:
                far = bad & (np.abs(v) >= 40.0)
                (am, cm), (ap, cp) = asym_k
                y[far] = np.where(v[far] > 0, ap * v[far] + cp, am * v[far] + cm)
                bad &= ~far
            for i in np.flatnonzero(bad):
                try:
                    y.flat[i] = float(mp(v.flat[i]))
                except (TypeError, ValueError, OverflowError, ZeroDivisionError):
                    y.flat[i] = np.nan
        return y

    return g


@functools.lru_cache(maxsize=None)
def _numerics(act: Activation) -> _Num:
    expr = _canonical(act.expr)
    bps = tuple(sorted({round(b, 14) for b in (*act.breakpoints(), *_expr_breakpoints(expr))}))
    derivs = [expr, sp.diff(expr, x), sp.diff(expr, x, 2)]
    raws = [_raw_lambdify(d) for d in derivs]
    pts = _interval_points(bps)
    pieces = tuple(_piece_at(expr, p) for p in pts)
    if any(p is None for p in pieces):
        pieces = None
    outer = (pieces[0], pieces[-1]) if pieces is not None else (None, None)
    asym = _asymptotes(raws[0], raws[1], outer)
    asym_k = [asym, None, None]
    if asym is not None:
        (am, _), (ap, _) = asym
        asym_k[1] = ((0.0, am), (0.0, ap))
        asym_k[2] = ((0.0, 0.0), (0.0, 0.0))
    fns = tuple(_safe(r, sp.lambdify(x, d, "mpmath"), a) for r, d, a in zip(raws, derivs, asym_k))
    side = []
    for i, b in enumerate(bps):
        if pieces is not None:
            lo, hi = pieces[i], pieces[i + 1]
            vals = [lo.subs(x, b), hi.subs(x, b), sp.diff(lo, x).subs(x, b), sp.diff(hi, x).subs(x, b)]
            side.append(tuple(float(sp.N(v)) for v in vals))
        else:
            eps = 1e-6 * max(1.0, abs(b))        # one-sided values by linear extrapolation, O(eps²)
            arr = np.array([b - 2 * eps, b - eps, b + eps, b + 2 * eps])
            f0, f1 = fns[0](arr), fns[1](arr)
            side.append((2 * f0[1] - f0[0], 2 * f0[2] - f0[3], 2 * f1[1] - f1[0], 2 * f1[2] - f1[3]))
    poly = None
    if pieces is not None:
        coeffs = {}
        for kind, make in (("phi2", lambda p: p ** 2), ("dphi2", lambda p: sp.diff(p, x) ** 2),
                           ("phi_ddphi", lambda p: p * sp.diff(p, x, 2))):
            cs = [_poly_coeffs(make(p)) for p in pieces]
            if any(c is None for c in cs):
                break
            coeffs[kind] = cs
        else:
            poly = coeffs
    return _Num(fns=fns, bps=bps, pieces=pieces, side=tuple(side), poly=poly, asym=asym)


# --------------------------------------------------------------------------------------------
# Gaussian expectations
# --------------------------------------------------------------------------------------------

_GRADED = 0.25 * 2.0 ** np.arange(0, 64)


def _nodes(q: float, bps: Sequence[float], u_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes u and weights w·ϕ(u) on [−u_max, u_max], panels split at the integers,
    at ±0.25·2^k/√q (x graded towards 0) and at the breakpoints b/√q."""
    s = math.sqrt(q)
    graded = _GRADED[: np.searchsorted(_GRADED, u_max * s)] / s
    b = np.asarray(bps, dtype=float) / s
    e = np.sort(np.concatenate([np.arange(-u_max, u_max + 0.5, 1.0), graded, -graded, b[np.abs(b) < u_max]]))
    mid, half = (e[1:] + e[:-1]) / 2, (e[1:] - e[:-1]) / 2
    u = (mid[:, None] + half[:, None] * _GL_T).ravel()
    w = (half[:, None] * _GL_W).ravel() * np.exp(-u * u / 2) / _SQRT2PI
    return u, w


def _quad(g: Callable, q: float, bps: Sequence[float]) -> float:
    """E[g(√q u)] for q > 0 by panelled Gauss–Legendre; g vectorised in x.

    The range [−10, 10] in u is widened (×1.5, up to 40) while g(±u_max √q)·ϕ(u_max)·u_max is not
    negligible (integrands growing like e^{c x})."""
    s = math.sqrt(q)
    u_max = _U_MAX
    while True:
        u, w = _nodes(q, bps, u_max)
        vals = g(s * np.concatenate([u, [-u_max, u_max]]))
        val = float(w @ vals[:-2])
        tail = float(np.abs(vals[-2:]).max()) * math.exp(-u_max ** 2 / 2) * u_max
        if not (tail > 1e-14 * abs(val)) or u_max >= 40.0 or not math.isfinite(val):
            return val
        u_max *= 1.5


def _gauss_moments(a: np.ndarray, b: np.ndarray, kmax: int) -> np.ndarray:
    """M_k = ∫_a^b u^k ϕ(u) du for k = 0..kmax, per interval (a, b may be ±inf)."""
    def term(t, k):   # t^(k) ϕ(t), zero at ±inf
        with np.errstate(all="ignore"):
            r = np.where(np.isfinite(t), np.nan_to_num(t) ** k * np.exp(-np.nan_to_num(t) ** 2 / 2) / _SQRT2PI, 0.0)
        return r

    m = np.zeros((kmax + 1, a.size))
    m[0] = special.ndtr(b) - special.ndtr(a)
    if kmax >= 1:
        m[1] = term(a, 0) - term(b, 0)
    for k in range(2, kmax + 1):
        m[k] = (k - 1) * m[k - 2] + term(a, k - 1) - term(b, k - 1)
    return m


def _exact_poly(num: _Num, kind: str, q: float) -> float:
    s = math.sqrt(q)
    edges = np.array([-np.inf, *num.bps, np.inf])
    a, b = edges[:-1] / s, edges[1:] / s
    coeffs = num.poly[kind]
    kmax = max(len(c) for c in coeffs) - 1
    m = _gauss_moments(a, b, kmax)
    total = 0.0
    for i, c in enumerate(coeffs):
        k = np.arange(len(c))
        total += float(np.sum(c * s ** k * m[: len(c), i]))
    return total


def _at_zero(num: _Num, g: Callable) -> float:
    if 0.0 in num.bps:
        v = g(np.array([-1e-300, 1e-300]))
        return float(v.mean())
    return float(g(np.array([0.0]))[0])


def _product(fns: Sequence[Callable], orders: Sequence[int]) -> Callable:
    def g(v):
        out = np.ones_like(v)
        for k in orders:
            out = out * fns[k](v)
        return out
    return g


def _check_q(q: float) -> float:
    q = float(q)
    if not q >= 0:
        raise ValueError(f"q must be >= 0 (a variance), got {q}")
    return q


def gaussian_mean(act, order_or_fn, q: float) -> float:
    """E_{u~N(0,1)}[g(√q u)] by quadrature split at the breakpoints of φ.

    ``order_or_fn``: an int k (g = φ^(k)), a tuple of ints (g = Π φ^(k_i), e.g. (1, 1) for φ′²,
    (0, 2) for φ φ″ with the *pointwise* φ″, i.e. without the Dirac terms — see
    ``expect_phi_ddphi``), or a vectorised numpy function g(x). q = 0 gives (g(0⁻) + g(0⁺))/2.
    Always numeric (the exact closed forms are in ``expect_*``).
    """
    act = _as_act(act)
    q = _check_q(q)
    num = _numerics(act)
    if callable(order_or_fn):
        def g(v):
            return np.broadcast_to(np.asarray(order_or_fn(v), dtype=float), v.shape)
    else:
        orders = (order_or_fn,) if isinstance(order_or_fn, (int, np.integer)) else tuple(order_or_fn)
        if not orders or any(int(k) not in (0, 1, 2) for k in orders):
            raise ValueError(f"orders must be 0, 1 or 2, got {order_or_fn!r}")
        g = _product(num.fns, [int(k) for k in orders])
    if math.isinf(q):
        raise ValueError("gaussian_mean needs a finite q")
    if q == 0:
        return _at_zero(num, g)
    return _quad(g, q, num.bps)


def _jumps(num: _Num) -> list[tuple[float, float, float]]:
    """(b, φ(b), [φ′](b)) per breakpoint; raises _Discontinuous if φ itself jumps."""
    out = []
    for b, (f_lo, f_hi, d_lo, d_hi) in zip(num.bps, num.side):
        if abs(f_hi - f_lo) > 1e-9 * (1 + abs(f_lo) + abs(f_hi)):
            raise _Discontinuous(b)
        out.append((b, (f_lo + f_hi) / 2, d_hi - d_lo))
    return out


class _Discontinuous(Exception):
    pass


def expect_phi2(act, q: float) -> float:
    """E[φ(√q u)²]; exact for piecewise-polynomial φ; q = inf gives the limit (inf unless φ is bounded)."""
    act = _as_act(act)
    q = _check_q(q)
    num = _numerics(act)
    if math.isinf(q):
        if num.asym is None:
            return math.nan
        (am, cm), (ap, cp) = num.asym
        return math.inf if (am or ap) else (cm ** 2 + cp ** 2) / 2
    if num.poly is not None and q > 0:
        return _exact_poly(num, "phi2", q)
    return gaussian_mean(act, (0, 0), q)


def expect_dphi2(act, q: float) -> float:
    """E[φ′(√q u)²]; inf if φ jumps; q = inf gives (φ′(+∞)² + φ′(−∞)²)/2 (nan if not asymptotically linear)."""
    act = _as_act(act)
    q = _check_q(q)
    num = _numerics(act)
    try:
        _jumps(num)
    except _Discontinuous:
        if q > 0 or 0.0 in num.bps:
            return math.inf
    if math.isinf(q):
        if num.asym is None:
            return math.nan
        (am, _), (ap, _) = num.asym
        return (am ** 2 + ap ** 2) / 2
    if num.poly is not None and q > 0:
        return _exact_poly(num, "dphi2", q)
    return gaussian_mean(act, (1, 1), q)


def expect_phi_ddphi(act, q: float) -> float:
    """E[φ(√q u) φ″(√q u)] with φ″ distributional (Dirac terms φ(b)·[φ′](b)·ϕ(b/√q)/√q at kinks b).

    With this convention d/dq E[φ(√q u)²] = E[φ′² + φ φ″] exactly (Stein's lemma). nan if φ jumps
    or q = inf; at q = 0 a kink at 0 with φ(0)·[φ′](0) ≠ 0 gives ±inf.
    """
    act = _as_act(act)
    q = _check_q(q)
    num = _numerics(act)
    try:
        jumps = _jumps(num)
    except _Discontinuous:
        return math.nan
    if math.isinf(q):
        return math.nan
    if q == 0:
        regular = _at_zero(num, _product(num.fns, (0, 2)))
        delta = sum(fb * jump for b, fb, jump in jumps if b == 0.0)
        return regular + (math.copysign(math.inf, delta) if delta else 0.0)
    if num.poly is not None:
        regular = _exact_poly(num, "phi_ddphi", q)
    else:
        regular = gaussian_mean(act, (0, 2), q)
    s = math.sqrt(q)
    delta = sum(fb * jump * math.exp(-(b / s) ** 2 / 2) / (_SQRT2PI * s) for b, fb, jump in jumps)
    return regular + delta


@functools.lru_cache(maxsize=None)
def _closed_form_cached(act: Activation, kind: str) -> sp.Expr | None:
    num = _numerics(act)
    if num.poly is None or num.pieces is None:
        return None
    q = sp.Symbol("q", positive=True)
    edges = [-sp.oo, *[sp.nsimplify(b) for b in num.bps], sp.oo]
    density = sp.exp(-x ** 2 / (2 * q)) / sp.sqrt(2 * sp.pi * q)
    total = sp.Integer(0)
    for (lo, hi), p in zip(zip(edges[:-1], edges[1:]), num.pieces):
        g = {"phi2": p ** 2, "dphi2": sp.diff(p, x) ** 2, "phi_ddphi": p * sp.diff(p, x, 2)}[kind]
        if g != 0:
            total += sp.integrate(sp.expand(g) * density, (x, lo, hi))
    if kind == "phi_ddphi":
        for i, b in enumerate(num.bps):
            lo, hi = num.pieces[i], num.pieces[i + 1]
            bb = sp.nsimplify(b)
            jump = sp.diff(hi, x).subs(x, bb) - sp.diff(lo, x).subs(x, bb)
            total += lo.subs(x, bb) * jump * density.subs(x, bb)
    return sp.simplify(total)


def closed_form(act, kind: str) -> sp.Expr | None:
    """The exact sympy expression (in the positive symbol ``q``) of E[φ²], E[φ′²] or E[φφ″].

    ``kind`` is "phi2", "dphi2" or "phi_ddphi". Available for piecewise-polynomial φ (relu: q/2 and
    1/2; leaky_relu(a): (1 + a²) q/2 and (1 + a²)/2; hardtanh: erf terms); None otherwise.
    Computed by sympy once per activation and cached (takes ~0.5 s); the numeric fast path uses the
    same closed form through Gaussian partial moments.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    return _closed_form_cached(_as_act(act), kind)


# --------------------------------------------------------------------------------------------
# Maps, fixed point, depth scales
# --------------------------------------------------------------------------------------------

def _check_sigmas(sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    w, b = float(sigma_w2), float(sigma_b2)
    if not (w >= 0 and math.isfinite(w)):
        raise ValueError(f"sigma_w2 must be a finite number >= 0, got {sigma_w2}")
    if not (b >= 0 and math.isfinite(b)):
        raise ValueError(f"sigma_b2 must be a finite number >= 0, got {sigma_b2}")
    return w, b


def length_map(act, q: float, sigma_w2: float, sigma_b2: float) -> float:
    """L(q) = σ_w² E[φ(√q u)²] + σ_b²: the variance of the next layer's pre-activations."""
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    e = expect_phi2(act, q)
    return w * e + b if w else b


def length_map_slope(act, q: float, sigma_w2: float) -> float:
    """χ_q(q) = L′(q) = σ_w² E[φ′(√q u)² + φ(√q u) φ″(√q u)] (φ″ with its Dirac terms)."""
    w, _ = _check_sigmas(sigma_w2, 0.0)
    return w * (expect_dphi2(act, q) + expect_phi_ddphi(act, q))


def chi1(act, q: float, sigma_w2: float) -> float:
    """χ₁(q) = σ_w² E[φ′(√q u)²]: the per-layer factor of E‖∂L/∂z‖² (backwards, at variance q)."""
    w, _ = _check_sigmas(sigma_w2, 0.0)
    return w * expect_dphi2(act, q)


def _subtracts_asymptote(act: Activation, q: float, w: float) -> bool:
    num = _numerics(act)
    return num.poly is None and num.asym is not None and 1.0 <= q < math.inf and w != 0


def _excess(act: Activation, q: float, w: float, b: float) -> float:
    """F(q) = L(q) − q, accurate also for large q.

    For q ≥ 1 and asymptotically linear φ (ψ = a± x + c± its asymptotes on either side of 0) it is
    F = (σ_w² m₂ − 1) q + σ_w² (2√q ϕ(0)(a₊c₊ − a₋c₋) + (c₊² + c₋²)/2 + E[φ² − ψ²]) + σ_b²,
    m₂ = (a₊² + a₋²)/2, so that F ≈ c/√q (softplus, telu at σ_w² = 2) is not lost in rounding q.
    """
    if not _subtracts_asymptote(act, q, w):
        return length_map(act, q, w, b) - q
    num = _numerics(act)
    (am, cm), (ap, cp) = num.asym

    def rem(v):
        psi = np.where(v > 0, ap * v + cp, am * v + cm)
        f = num.fns[0](v)
        return (f - psi) * (f + psi)

    r = _quad(rem, q, num.bps)
    m2 = (am * am + ap * ap) / 2
    s = math.sqrt(q)
    return (w * m2 - 1.0) * q + w * (2 * s / _SQRT2PI * (ap * cp - am * cm) + (cm * cm + cp * cp) / 2 + r) + b


def _iterate(L: Callable, q0: float, n: int = 5000) -> float:
    q = q0
    for _ in range(n):
        nq = L(q)
        if not math.isfinite(nq) or nq > Q_MAX:
            return math.inf
        if abs(nq - q) <= 1e-13 * max(q, nq) or nq == q:
            return nq
        q = nq
    return math.nan


def fixed_point(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """q* = lim_{l→∞} q_l for q_{l+1} = L(q_l) started at q_1 = q0.

    0.0 when the iteration decays to 0 (tanh with σ_b² = 0, σ_w² ≤ 1; SiLU/GELU with small σ_w²),
    ``math.inf`` when q grows without bound (ReLU at σ_w² = 2 and σ_b² > 0, or σ_w² > 2; also the
    slow growth q ~ l^(2/3) of softplus/telu at σ_w² = 2) or beyond Q_MAX, nan when the iteration
    does not converge (a cycle; non-monotone maps only). Never the last iterate: for a monotone L
    the limit is the nearest root of F(q) = L(q) − q in the direction the iteration moves; it is
    bracketed by stepping q with max(L(q), 2q) upwards or min(L(q), q/2) downwards (L(q) never
    passes the first root of a monotone L) and solved with brentq; F is computed by ``_excess``
    (asymptote subtracted) so that its sign is right for large q. If the steps show L is not
    monotone, plain iteration decides. q0 with F(q0) = 0 to rounding is returned as is (relu at
    σ_w² = 2, σ_b² = 0: every q is a fixed point). Below Q_TINY with L(0) = 0 the answer is 0.
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q0 = _check_q(q0)
    if math.isinf(q0):
        return math.inf

    def F(q):
        return _excess(act, q, w, b)

    def is_zero(q, f):       # F = 0 to the rounding of L(q) − q (exact zero where F is accurate)
        return f == 0.0 or (abs(f) <= 1e-15 * q and not _subtracts_asymptote(act, q, w))

    f0 = F(q0)
    if not math.isfinite(f0):
        return math.inf if f0 > 0 else math.nan
    if is_zero(q0, f0) or f0 == 0.0:
        return q0
    if f0 > 0:                                     # increasing: smallest root above q0, or inf
        lo, l_lo = q0, q0 + f0
        hi = l_lo
        while True:
            if hi > Q_MAX:
                return math.inf
            f_hi = F(hi)
            if not math.isfinite(f_hi):
                return math.nan if math.isnan(f_hi) else math.inf
            l_hi = hi + f_hi
            if l_hi < l_lo:                        # L not monotone: let iteration decide
                return _iterate(lambda q: q + F(q), q0)
            if is_zero(hi, f_hi):
                return hi
            if f_hi < 0:
                break
            lo, l_lo = hi, l_hi
            hi = max(l_hi, 2.0 * hi)
    else:                                          # decreasing: largest root below q0, or 0
        hi, l_hi = q0, q0 + f0
        lo = max(l_hi, 0.0)
        while True:
            f_lo = F(lo)
            if math.isnan(f_lo):
                return math.nan
            l_lo = lo + f_lo
            if l_lo > l_hi:
                return _iterate(lambda q: q + F(q), q0)
            if is_zero(lo, f_lo) or f_lo == 0.0:
                return lo
            if f_lo > 0:
                break
            if lo < Q_TINY:
                f_zero = F(0.0)
                if f_zero <= 0.0:
                    return 0.0
                lo = 0.0
                break
            hi, l_hi = lo, l_lo
            lo = min(l_lo, lo / 2.0)
    root = optimize.brentq(F, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
    slope = length_map_slope(act, root, w) if root > 0 else math.nan
    if math.isfinite(slope) and slope < -1.0:      # oscillating, unstable: iteration decides
        return _iterate(lambda q: q + F(q), q0)
    return float(root)


def _inv_log_scale(chi: float) -> float:
    """ξ = −1/log|χ|; inf when |χ| = 1 (within CRITICAL_TOL), 0 when χ = 0, nan when unknown."""
    if not math.isfinite(chi):
        return math.nan
    a = abs(chi)
    if abs(a - 1.0) <= CRITICAL_TOL:
        return math.inf
    if a == 0.0:
        return 0.0
    return -1.0 / math.log(a)


def depth_scales(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> tuple[float, float]:
    """(ξ_q, ξ_c) at q* = fixed_point(act, σ_w², σ_b², q0) (Schoenholz et al. 2017, eqs. 5 and 9).

    ξ_q⁻¹ = −log|χ_q|, χ_q = σ_w² E[φ′(√q* u)² + φ(√q* u) φ″(√q* u)] (= L′(q*), φ″ distributional);
    ξ_c⁻¹ = −log χ_c, χ_c = χ₁(q*) (slope of the correlation map at c = 1).
    Both are inf at criticality (|χ − 1| ≤ 1e-9). In the chaotic phase χ_c > 1 and ξ_c comes out
    negative: c = 1 repels, |ξ_c| layers per e-fold of decorrelation (the depth scale around the
    chaotic fixed point c* < 1 is not computed here). q* = inf: ξ_q = nan, ξ_c from χ₁(∞).
    """
    act = _as_act(act)
    q = fixed_point(act, sigma_w2, sigma_b2, q0)
    return _scales_at(act, q, float(sigma_w2))


def _scales_at(act: Activation, q: float, w: float) -> tuple[float, float]:
    if math.isnan(q):
        return math.nan, math.nan
    xi_c = _inv_log_scale(chi1(act, q, w))
    if math.isinf(q):
        return math.nan, xi_c
    return _inv_log_scale(length_map_slope(act, q, w)), xi_c


def _sigma_grid(hi: float) -> np.ndarray:
    base = np.geomspace(1e-3, hi, 33)
    extra = np.arange(0.25, min(hi, 8.0) + 1e-12, 0.25)
    g = np.unique(np.concatenate([base, extra, [hi]]))
    return g[(g > 0) & (g <= hi)]


def critical_sigma_w2(act, sigma_b2: float = 0.0, q0: float = 1.0, sigma_w2_max: float = 100.0) -> float:
    """The edge of chaos: the smallest σ_w² in (0, σ_w2_max] with χ₁(q*(σ_w², σ_b²)) = 1.

    h(σ_w²) = χ₁(q*) − 1 (q* from ``fixed_point`` with start q0; χ₁(∞) where q* = inf) is scanned
    on a grid (geometric from 1e-3, plus every 0.25 up to 8) and the first sign change refined with
    brentq; a sign change that is a jump of q* (not a root) is skipped. nan if none.
    Measured (σ_b² = 0 / 0.05): tanh 1 (q* = 0) / 1.7610; relu 2 / 2; leaky_relu(0.01) 1.9998;
    elu 1 / 1.5337; hardtanh 1 / 1.1655; selu 0.4768 (q* = 0) / 0.9018; telu 2 (q* = inf) / 1.7752;
    softplus 2 (q* = inf). sigmoid: nan (χ₁(q*) reaches 1 only at σ_w² ≈ 102). silu, gelu, mish:
    nan — from q0 = 1, q* jumps from a small value with χ₁ < 1 straight to inf with χ₁(∞) > 1.
    Where the root has q* = 0 (tanh, elu, hardtanh, selu at σ_b² = 0) it is σ_w² = 1/E[φ′(0)²].
    """
    act = _as_act(act)
    _check_sigmas(1.0, sigma_b2)

    def h(w):
        return chi1(act, fixed_point(act, w, sigma_b2, q0), w) - 1.0

    grid = _sigma_grid(float(sigma_w2_max))
    prev_w, prev_h = None, None
    for w in grid:
        hw = h(w)
        if hw == 0.0:
            return float(w)
        if not math.isfinite(hw):
            prev_w, prev_h = None, None
            continue
        if prev_h is not None and (prev_h < 0) != (hw < 0):
            root = optimize.brentq(h, prev_w, w, xtol=1e-12, rtol=1e-12)
            hr = h(root)
            if math.isfinite(hr) and abs(hr) < 1e-6:
                return float(root)
        prev_w, prev_h = w, hw
    return math.nan


# --------------------------------------------------------------------------------------------
# Layer-wise profiles (finite depth)
# --------------------------------------------------------------------------------------------

def input_q(mean_x2: float, sigma_w2: float, sigma_b2: float) -> float:
    """q_1 = σ_w² · mean(x²) + σ_b²: the first layer's pre-activation variance for inputs x."""
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    return w * float(mean_x2) + b


def q_profile(act, q0: float, sigma_w2: float, sigma_b2: float, depth: int) -> np.ndarray:
    """Pre-activation variances [q_1, ..., q_depth] of a depth-layer net: q_1 = q0, q_{l+1} = L(q_l).

    ``q0`` is the variance of the *first* layer's pre-activations z_1 = W_1 x + b_1, i.e.
    ``input_q(mean(x²), σ_w², σ_b²)`` (it is not the input's own variance). Entry [l − 1] is q_l.
    Overflowing values become inf.
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    out = np.empty(depth)
    q = _check_q(q0)
    for l in range(depth):
        out[l] = q
        q = length_map(act, q, w, b) if math.isfinite(q) else math.inf
        if q > 1e300:
            q = math.inf
    return out


def chi1_profile(act, q0: float, sigma_w2: float, sigma_b2: float, depth: int) -> np.ndarray:
    """[χ₁(q_1), ..., χ₁(q_depth)] along ``q_profile`` (same q0 convention and indexing)."""
    act = _as_act(act)
    qs = q_profile(act, q0, sigma_w2, sigma_b2, depth)
    return np.array([chi1(act, q, sigma_w2) for q in qs])


def predicted_log_grad_profile(act, q0: float, sigma_w2: float, sigma_b2: float, depth: int) -> np.ndarray:
    """Predicted G_l = log E‖∂L/∂z_l‖² − log E‖∂L/∂z_depth‖² for l = 1..depth (entry [l − 1]).

    Backprop multiplies E‖∂L/∂z‖² by χ₁(q_{l−1}) from layer l to layer l − 1, so, counted from the
    output towards the input, G_depth = 0 and G_{l−1} = G_l + log χ₁(q_{l−1}), i.e.
    G_l = Σ_{k=l}^{depth−1} log χ₁(q_k) with q_k from ``q_profile`` (q0 = q_1, the first layer's
    pre-activation variance). Compare its slope with the measured log-gradient profile, not with
    log χ₁(q*): e.g. GELU, depth 30, σ_w² = 2, σ_b² = 0.1, q0 = 2.1 (unit-variance inputs):
    χ₁(q*) = 0.756 but exp(mean per-layer slope) ≈ 0.93, as measured.
    """
    c = chi1_profile(act, q0, sigma_w2, sigma_b2, depth)
    with np.errstate(divide="ignore"):
        logs = np.log(c[:-1])
    out = np.zeros(len(c))
    out[:-1] = np.cumsum(logs[::-1])[::-1]
    return out


# --------------------------------------------------------------------------------------------
# Summary and init schemes
# --------------------------------------------------------------------------------------------

def _json_number(v):
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


@dataclass(frozen=True)
class MeanField:
    """Mean-field quantities of one (activation, σ_w², σ_b²): q*, χ₁(q*), depth scales ξ_q, ξ_c.

    ``chi_q`` = L′(q*); ``params`` the activation's parameters; ``phase`` is "ordered" (χ₁ < 1),
    "critical" (|χ₁ − 1| ≤ 1e-9), "chaotic" (χ₁ > 1) or "unknown".
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi1: float
    xi_q: float
    xi_c: float
    chi_q: float = math.nan
    params: tuple[tuple[str, float], ...] = field(default=())

    @property
    def phase(self) -> str:
        if not math.isfinite(self.chi1):
            return "unknown"
        if abs(self.chi1 - 1.0) <= CRITICAL_TOL:
            return "critical"
        return "ordered" if self.chi1 < 1.0 else "chaotic"

    def to_json(self) -> dict:
        """A JSON-ready dict: numbers, ±inf as "inf"/"-inf", nan as None."""
        return {
            "activation": self.activation,
            "params": {k: v for k, v in self.params},
            "sigma_w2": _json_number(self.sigma_w2),
            "sigma_b2": _json_number(self.sigma_b2),
            "q_star": _json_number(self.q_star),
            "chi1": _json_number(self.chi1),
            "chi_q": _json_number(self.chi_q),
            "xi_q": _json_number(self.xi_q),
            "xi_c": _json_number(self.xi_c),
            "phase": self.phase,
        }


def summary(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> MeanField:
    """The ``MeanField`` of ``act`` at (σ_w², σ_b²), q* reached from q0."""
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q = fixed_point(act, w, b, q0)
    c1 = chi1(act, q, w) if not math.isnan(q) else math.nan
    cq = length_map_slope(act, q, w) if math.isfinite(q) else math.nan
    xi_q, xi_c = _scales_at(act, q, w)
    return MeanField(activation=act.name, sigma_w2=w, sigma_b2=b, q_star=q, chi1=c1,
                     xi_q=xi_q, xi_c=xi_c, chi_q=cq, params=act.params)


INIT_SCHEMES = init_table.SCHEMES + tuple(init_table.ALIASES)
torch_default_sigma_b2 = init_table.torch_default_sigma_b2


def init_sigma_w2(scheme: str, act=None, sigma_b2: float = 0.0) -> float:
    """σ_w² (= fan_in · Var W) of a named initialisation for a square layer, from ``theory.init``."""
    if init_table.canonical(scheme) == "critical" and act is None:
        raise ValueError("init scheme 'critical' needs an activation")
    return init_table.sigmas(scheme, 1, 1, act=act, sigma_b2=sigma_b2)[0]
