"""Mean-field signal propagation through a deep, wide, fully-connected net at random initialisation.

Poole et al. 2016 ("Exponential expressivity in deep neural networks through transient chaos") and
Schoenholz et al. 2017 ("Deep Information Propagation"). Layer l computes

    z_l = W_l h_{l-1} + b_l,   h_l = φ(z_l),   W_ij ~ N(0, σ_w²/fan_in),   b_i ~ N(0, σ_b²),

and as the width goes to infinity the pre-activations of layer l are Gaussian with variance q_l:

- length map      q_{l+1} = L(q_l) = σ_w² E_{u~N(0,1)}[φ(√q_l u)²] + σ_b²          (``length_map``)
- fixed point     q* = L(q*), the limit of the iteration                              (``fixed_point``)
- gradient factor χ₁(q) = σ_w² E[φ′(√q u)²]: E‖∂L/∂z_{l-1}‖² ≈ χ₁(q_{l-1}) E‖∂L/∂z_l‖²  (``chi1``)
- correlation map c ↦ (σ_w² E[φ(√q u₁) φ(√q u₂)] + σ_b²)/L(q), corr(u₁, u₂) = c        (``correlation_map``)
                  stable fixed point c* (1 in the ordered phase), slope χ_c(c) = σ_w² E[φ′φ′]
                  (``correlation_fixed_point``, ``chi_c``, finite depth: ``c_profile``)
- depth scales    ξ_q⁻¹ = −log χ_q,  χ_q = L′(q*) = σ_w² E[φ′² + φ φ″] at q*,
                  ξ_c⁻¹ = −log χ_c(c*)   (positive wherever finite, inf at the edge of chaos)
- edge of chaos   χ₁(q*) = 1, every solution with its q*, L′(q*) and kind (``edge_of_chaos``);
                  the one a network reaches from q0                                   (``critical_sigma_w2``)

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
    "correlation_map", "chi_c", "correlation_fixed_point", "c_profile", "edge_of_chaos", "EdgeOfChaos",
    "EDGE_KINDS",
]

Q_MAX = 1e12      # q above Q_MAX·max(1, σ_w², σ_b²) while still growing is reported as inf
FINE_BELOW = 1e4  # below FINE_BELOW·max(1, σ_w², σ_b²) an increasing iteration is stepped by at most FINE_GROWTH·q
FINE_GROWTH = 2.0 ** 0.125
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
    """numpy function of e; exp(t) − 1 is evaluated as expm1(t) (elu, selu near 0 keep their digits)."""
    from sympy.codegen.rewriting import expm1_opt, optimize

    try:
        e = optimize(e, [expm1_opt])
    except Exception:  # noqa: BLE001 - an optimisation that fails leaves e as it is
        pass
    return sp.lambdify(x, e, modules=[{"erf": special.erf, "erfc": special.erfc, "expm1": np.expm1}, "numpy"])


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
    m[0] = np.where(a > 0, special.ndtr(-a) - special.ndtr(-b), special.ndtr(b) - special.ndtr(a))
    if kmax >= 1:
        m[1] = term(a, 0) - term(b, 0)
    for k in range(2, kmax + 1):
        m[k] = (k - 1) * m[k - 2] + term(a, k - 1) - term(b, k - 1)
    narrow = np.isfinite(a) & np.isfinite(b) & (b - a < 1.0)
    if narrow.any():          # the recursion cancels on short intervals: Gauss–Legendre there instead
        mid, half = (a[narrow] + b[narrow]) / 2, (b[narrow] - a[narrow]) / 2
        u = mid[:, None] + half[:, None] * _GL_T
        wts = half[:, None] * _GL_W * np.exp(-u * u / 2) / _SQRT2PI
        m[:, narrow] = np.stack([np.sum(wts * u ** k, axis=1) for k in range(kmax + 1)])
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
    """Whether ``_excess`` is accurate beyond the rounding of L(q) − q (asymptote subtracted, or exact)."""
    num = _numerics(act)
    if _homogeneous_m(act) is not None:
        return True
    return num.poly is None and num.asym is not None and 1.0 <= q < math.inf and w != 0


@functools.lru_cache(maxsize=None)
def _homogeneous_m(act: Activation) -> float | None:
    """m = E[φ(u)²] = E[φ′(u)²] when φ(λx) = λφ(x) for λ > 0 (relu, leaky relu, |x|), else None;
    then L(q) − q = (σ_w² m − 1) q + σ_b² exactly."""
    f = _numerics(act).fns[0]
    v = np.concatenate([-np.geomspace(1e-3, 1e3, 25), np.geomspace(1e-3, 1e3, 25)])
    a, b = f(2 * v), 2 * f(v)
    if not (np.all(np.isfinite(a)) and np.all(np.abs(a - b) <= 1e-12 * (1 + np.abs(b))) and np.any(b != 0)):
        return None
    return expect_dphi2(act, 1.0)


def _excess(act: Activation, q: float, w: float, b: float) -> float:
    """F(q) = L(q) − q, accurate also for large q.

    For q ≥ 1 and asymptotically linear φ (ψ = a± x + c± its asymptotes on either side of 0) it is
    F = (σ_w² m₂ − 1) q + σ_w² (2√q ϕ(0)(a₊c₊ − a₋c₋) + (c₊² + c₋²)/2 + E[φ² − ψ²]) + σ_b²,
    m₂ = (a₊² + a₋²)/2, so that F ≈ c/√q (softplus, telu at σ_w² = 2) is not lost in rounding q.
    """
    m = _homogeneous_m(act)
    if m is not None and math.isfinite(q):
        return (w * m - 1.0) * q + b
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


def _q_cap(w: float, b: float) -> float:
    """The largest finite q* reported: Q_MAX·max(1, σ_w², σ_b²).

    Scale-aware so that a bounded φ at σ_w² = 1e12 keeps its finite q* ≈ σ_w² E[φ²] (which may
    exceed 1e12) instead of being read as unbounded growth.
    """
    return Q_MAX * max(1.0, w, b)


def _iterate(L: Callable, q0: float, cap: float = Q_MAX, n: int = 5000) -> float:
    q = q0
    for _ in range(n):
        nq = L(q)
        if not math.isfinite(nq) or nq > cap:
            return math.inf
        if abs(nq - q) <= 1e-13 * max(q, nq) or nq == q:
            return nq
        q = nq
    return math.nan


def fixed_point(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """q* = lim_{l→∞} q_l for q_{l+1} = L(q_l) started at q_1 = q0.

    0.0 when the iteration decays to 0 (tanh with σ_b² = 0, σ_w² ≤ 1; SiLU/GELU with small σ_w²),
    ``math.inf`` when q grows without bound (ReLU at σ_w² = 2 and σ_b² > 0, or σ_w² > 2; also the
    slow growth q ~ l^(2/3) of softplus/telu at σ_w² = 2) or beyond Q_MAX·max(1, σ_w², σ_b²), nan when the iteration
    does not converge (a cycle; non-monotone maps only). Never the last iterate: for a monotone L
    the limit is the nearest root of F(q) = L(q) − q in the direction the iteration moves; it is
    bracketed by stepping q with max(L(q), 2q) upwards or min(L(q), q/2) downwards (L(q) never
    passes the first root of a monotone L) and solved with brentq; F is computed by ``_excess``
    (asymptote subtracted) so that its sign is right for large q. If the steps show L is not
    monotone, plain iteration decides. A step past L(q) could jump over a pair of roots (a stable q* and
    the unstable one above it, close together near a tangency: mish at its edge of chaos, σ_b² = 0.1): below
    FINE_BELOW·max(1, σ_w², σ_b²) the upward steps are max(L(q), FINE_GROWTH·q) instead, so F is sampled
    every 9 % there. q0 with F(q0) = 0 to rounding is returned as is (relu at
    σ_w² = 2, σ_b² = 0: every q is a fixed point). Below Q_TINY with L(0) = 0 the answer is 0.
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q0 = _check_q(q0)
    if math.isinf(q0):
        return math.inf

    cap = _q_cap(w, b)
    fine_below = FINE_BELOW * max(1.0, w, b)

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
            if hi > cap:
                return math.inf
            f_hi = F(hi)
            if not math.isfinite(f_hi):
                return math.nan if math.isnan(f_hi) else math.inf
            l_hi = hi + f_hi
            if l_hi < l_lo:                        # L not monotone: let iteration decide
                return _iterate(lambda q: q + F(q), q0, cap)
            if is_zero(hi, f_hi):
                return hi
            if f_hi < 0:
                break
            lo, l_lo = hi, l_hi
            hi = max(l_hi, (2.0 if hi > fine_below else FINE_GROWTH) * hi)
    else:                                          # decreasing: largest root below q0, or 0
        hi, l_hi = q0, q0 + f0
        lo = max(l_hi, 0.0)
        while True:
            f_lo = F(lo)
            if math.isnan(f_lo):
                return math.nan
            l_lo = lo + f_lo
            if l_lo > l_hi:
                return _iterate(lambda q: q + F(q), q0, cap)
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
        return _iterate(lambda q: q + F(q), q0, cap)
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


# --------------------------------------------------------------------------------------------
# The correlation map (two inputs)
# --------------------------------------------------------------------------------------------

_GL2_T, _GL2_W = np.polynomial.legendre.leggauss(12)
_U2 = 9.0          # u-range of the two-dimensional quadrature (tail e^{-40.5})


def _graded_around(centre: float, scale: float, lo: float, hi: float) -> np.ndarray:
    """centre ± scale·2^j (j = −3, −2, …) inside [lo, hi]: panels refined towards a feature."""
    if not (math.isfinite(centre) and 0 < scale < hi - lo) or not lo - 1 < centre < hi + 1:
        return np.array([centre]) if lo < centre < hi else np.empty(0)
    steps = scale * 2.0 ** np.arange(-3, 64)
    steps = steps[steps < (hi - lo)]
    pts = np.concatenate([[centre], centre - steps, centre + steps])
    return pts[(pts > lo) & (pts < hi)]


def _panel_rule(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre (12 points) nodes and weights on the panels between sorted ``edges``
    (last axis); weights include the standard normal density."""
    mid, half = (edges[..., 1:] + edges[..., :-1]) / 2, (edges[..., 1:] - edges[..., :-1]) / 2
    u = (mid[..., None] + half[..., None] * _GL2_T).reshape(*edges.shape[:-1], -1)
    w = (half[..., None] * _GL2_W).reshape(u.shape) * np.exp(-u * u / 2) / _SQRT2PI
    return u, w


def _pair_mean(num: _Num, g: Callable, q: float, c: float, diff: bool) -> float:
    """E[(g(z₁) − g(z₂))²] (``diff``) or E[g(z₁) g(z₂)] for z_i = √q u_i, (u₁, u₂) standard normals
    of correlation c, 0 < q < inf, |c| < 1.

    Written as u₂ = c u₁ + r u₃ (r = √(1 − c²), u₃ independent): an outer panelled Gauss–Legendre
    rule in u₁ whose panels are split at the breakpoints b/√q, at b/(c√q) (where the inner integrand
    kinks) and graded towards both at the scales 1/√q and r/|c|; for each outer node an inner rule in
    u₃ split and graded the same way around the points where √q (c u₁ + r u₃) crosses a breakpoint
    or 0. Agrees with the closed forms (arc-cosine kernel of relu, arcsine kernel of erf) to ~1e-13.
    """
    s = math.sqrt(q)
    r = math.sqrt((1.0 - c) * (1.0 + c))
    centres = sorted({0.0, *num.bps})
    lo, hi = -_U2, _U2
    outer = [np.arange(lo, hi + 0.5, 1.0)]
    for b in centres:
        outer.append(_graded_around(b / s, 1.0 / s, lo, hi))
        if c != 0.0 and b in num.bps:        # the inner mean kinks near u₁ = b/(c√q), smoothed over r/|c|
            outer.append(_graded_around(b / (c * s), max(r, 1e-300) / abs(c), lo, hi))
    e1 = np.unique(np.concatenate(outer))
    u1, w1 = _panel_rule(e1)
    # inner edges, one row per outer node: the fixed integers plus, per centre, the crossing point
    # and its graded neighbours at the scale 1/(√q r) (features of φ at |x| ~ 1)
    base = np.arange(lo, hi + 0.5, 1.0)
    k = 0.25 * 2.0 ** np.arange(0, 64)
    k = k[k / (s * r) < 2 * (hi - lo)] / (s * r)
    offs = np.concatenate([[0.0], -k, k])
    cols = [np.broadcast_to(base, (u1.size, base.size))]
    for b in centres:
        cross = (b / s - c * u1) / r
        cols.append(cross[:, None] + offs[None, :])
    e2 = np.sort(np.clip(np.concatenate(cols, axis=1), lo, hi), axis=1)
    u3, w3 = _panel_rule(e2)
    g1 = g(s * u1)[:, None]
    g2 = g(s * (c * u1[:, None] + r * u3))
    vals = (g1 - g2) ** 2 if diff else g1 * g2
    return float(w1 @ np.sum(w3 * vals, axis=1))


def _slopes_at_zero(num: _Num) -> tuple[float, float]:
    """(φ′(0⁻), φ′(0⁺))."""
    for b, (_, _, d_lo, d_hi) in zip(num.bps, num.side):
        if b == 0.0:
            return d_lo, d_hi
    d = float(num.fns[1](np.array([0.0]))[0])
    return d, d


def _homogeneous_kernels(c: float) -> tuple[float, float]:
    """(K, P) with K = E[u₁ u₂ 1{u₁>0, u₂>0}] = (√(1−c²) + (π − arccos c) c)/(2π) (Cho & Saul's
    arc-cosine kernel, n = 1) and P = P(u₁ > 0, u₂ > 0) = 1/4 + arcsin(c)/(2π)."""
    r = math.sqrt(max((1.0 - c) * (1.0 + c), 0.0))
    return (r + (math.pi - math.acos(c)) * c) / (2 * math.pi), 0.25 + math.asin(c) / (2 * math.pi)


def _psi_map(slopes: tuple[float, float], c: float) -> tuple[float, float]:
    """For ψ(x) = a₋ x (x < 0), a₊ x (x > 0): (E[ψ(u₁)ψ(u₂)], E[ψ′(u₁)ψ′(u₂)]) at correlation c."""
    am, ap = slopes
    K, P = _homogeneous_kernels(c)
    return ((ap * ap + am * am) * K + 2 * ap * am * (c / 2 - K),
            (ap * ap + am * am) * P + 2 * ap * am * (0.5 - P))


def _check_c(c: float) -> float:
    c = float(c)
    if not -1.0 <= c <= 1.0:
        raise ValueError(f"a correlation c must lie in [-1, 1], got {c}")
    return c


def _resolve_q(act: Activation, q, w: float, b: float) -> float:
    if q is None:
        return fixed_point(act, w, b)
    return _check_q(q)


def _asym_slopes(act: Activation) -> tuple[float, float] | None:
    num = _numerics(act)
    if num.asym is None:
        return None
    (am, _), (ap, _) = num.asym
    return am, ap


def correlation_map(act, c: float, sigma_w2: float, sigma_b2: float, q: float | None = None) -> float:
    """One step of the correlation map at pre-activation variance q (default q* from q0 = 1).

    Two inputs whose pre-activations z₁, z₂ have variance q and correlation c give next-layer
    pre-activations of variance L(q) and correlation

        c ↦ (σ_w² E[φ(√q u₁) φ(√q u₂)] + σ_b²) / L(q),   L(q) = σ_w² E[φ(√q u)²] + σ_b²,

    (u₁, u₂) standard normals of correlation c; at q = q* the denominator is q*. Computed as
    1 − σ_w² E[(φ(√q u₁) − φ(√q u₂))²] / (2 L(q)), accurate as c → 1. Limits: q = inf uses the
    asymptotes ψ = a± x of φ (the σ_b²-free map E[ψψ]/E[ψ²], e.g. relu's normalised arc-cosine
    kernel); q = 0 with L(0) = 0 is the identity (a network whose q → 0 is linear to first order);
    q = 0 with L(0) > 0 maps every c to 1.
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    c = _check_c(c)
    q = _resolve_q(act, q, w, b)
    if math.isnan(q):
        return math.nan
    if c == 1.0:
        return 1.0
    if math.isinf(q):
        slopes = _asym_slopes(act)
        if slopes is None or slopes == (0.0, 0.0):
            return math.nan
        k, _ = _psi_map(slopes, c)
        return k / ((slopes[0] ** 2 + slopes[1] ** 2) / 2)
    L = length_map(act, q, w, b)
    if q == 0.0:
        return c if L == 0.0 else 1.0
    if L == 0.0:
        return math.nan
    num = _numerics(act)
    f = num.fns[0]
    if c == -1.0:
        d = gaussian_mean(act, lambda v: (f(v) - f(-v)) ** 2, q)
    else:
        d = _pair_mean(num, f, q, c, diff=True)
    return 1.0 - w * d / (2.0 * L)


def chi_c(act, c: float, sigma_w2: float, q: float) -> float:
    """χ_c(c) = σ_w² E[φ′(√q u₁) φ′(√q u₂)] at correlation c: the slope dc′/dc of the correlation
    map at q = q* (Price's theorem), and χ_c(1) = χ₁(q). q = inf uses the asymptotic slopes a±;
    q = 0 the one-sided slopes φ′(0±) (u₁, u₂ in the same half-line with probability 1/4 + arcsin(c)/2π).
    """
    act = _as_act(act)
    w, _ = _check_sigmas(sigma_w2, 0.0)
    c = _check_c(c)
    q = _check_q(q)
    if c == 1.0:
        return chi1(act, q, w)
    num = _numerics(act)
    if math.isinf(q):
        slopes = _asym_slopes(act)
        return math.nan if slopes is None else w * _psi_map(slopes, c)[1]
    if q == 0.0:
        return w * _psi_map(_slopes_at_zero(num), c)[1]
    f1 = num.fns[1]
    if c == -1.0:
        return w * gaussian_mean(act, lambda v: f1(v) * f1(-v), q)
    return w * _pair_mean(num, f1, q, c, diff=False)


def correlation_fixed_point(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> float:
    """The stable fixed point c* of the correlation map at q* (reached from q0).

    The map at equal variances is a power series Σ b_n cⁿ with b_n ≥ 0 (Hermite expansion of φ), so
    on [0, 1] it is increasing and convex with M(1) = 1 and M′(1) = χ₁(q*). Hence c* = 1 when
    χ₁(q*) ≤ 1 (ordered phase and edge of chaos), and in the chaotic phase (χ₁ > 1) c* is the unique
    root of M(c) = c in [0, 1) (0 for odd φ with σ_b² = 0), found by brentq. Conventions: q* = 0
    (linear to first order) and q* = inf (the asymptotic map of ψ = a± x, whose c = 1 attracts only
    polynomially) give 1; nan if q* is.
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q = fixed_point(act, w, b, q0)
    return _c_star_at(act, q, w, b)


def _c_star_at(act: Activation, q: float, w: float, b: float) -> float:
    if math.isnan(q):
        return math.nan
    if q == 0.0 or math.isinf(q):
        return 1.0
    x1 = chi1(act, q, w)
    if not math.isfinite(x1):
        return math.nan
    if x1 <= 1.0 + CRITICAL_TOL:
        return 1.0

    def f(c):
        return correlation_map(act, c, w, b, q) - c

    t = 0.5
    while f(1.0 - t) >= 0.0:
        t /= 8.0
        if t < 1e-15:
            return 1.0
    f0 = f(0.0)
    if f0 <= 0.0:
        return 0.0
    return float(optimize.brentq(f, 0.0, 1.0 - t, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200))


def depth_scales(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> tuple[float, float]:
    """(ξ_q, ξ_c) at q* = fixed_point(act, σ_w², σ_b², q0) (Schoenholz et al. 2017, eqs. 5 and 9).

    ξ_q⁻¹ = −log|χ_q|, χ_q = L′(q*) = σ_w² E[φ′(√q* u)² + φ(√q* u) φ″(√q* u)] (φ″ distributional);
    ξ_c⁻¹ = −log χ_c(c*), χ_c(c*) = σ_w² E[φ′(z₁) φ′(z₂)] at the stable correlation fixed point c*
    (``correlation_fixed_point``): χ₁(q*) in the ordered phase (c* = 1), the slope at c* < 1 in
    the chaotic phase. ξ_c > 0 wherever finite and inf at the edge of chaos (|χ − 1| ≤ 1e-9).
    Conventions: q* = 0 gives ξ_c = −1/log χ₁(0) (the rate at which q and gradients decay; the
    correlation itself freezes, see ``c_profile``); q* = inf gives ξ_q = nan and ξ_c = inf when
    χ₁(∞) ≥ 1 (the asymptotic map of ψ = a± x has slope 1 at c = 1: correlations converge only
    polynomially), −1/log χ₁(∞) when χ₁(∞) < 1.
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q = fixed_point(act, w, b, q0)
    xi_q, xi_c, _, _ = _scales_at(act, q, w, b)
    return xi_q, xi_c


def _scales_at(act: Activation, q: float, w: float, b: float) -> tuple[float, float, float, float]:
    """(ξ_q, ξ_c, c*, χ_c(c*)) at the fixed point q."""
    if math.isnan(q):
        return math.nan, math.nan, math.nan, math.nan
    x1 = chi1(act, q, w)
    if math.isinf(q):
        cc = 1.0 if x1 >= 1.0 - CRITICAL_TOL else x1
        return math.nan, _inv_log_scale(cc), 1.0, cc
    c_star = _c_star_at(act, q, w, b)
    cc = x1 if c_star == 1.0 else chi_c(act, c_star, w, q)
    return _inv_log_scale(length_map_slope(act, q, w)), _inv_log_scale(cc), c_star, cc


def c_profile(act, q0: float, c0: float, sigma_w2: float, sigma_b2: float, depth: int) -> np.ndarray:
    """[c_1, …, c_depth] for two inputs whose first-layer pre-activations both have variance q0 and
    correlation c0: c_1 = c0, c_{l+1} = (σ_w² E[φ(√q_l u₁) φ(√q_l u₂)] + σ_b²)/q_{l+1} at
    correlation c_l, with q_l from ``q_profile`` (the finite-depth prediction, not the map at q*).
    """
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    qs = q_profile(act, q0, w, b, depth)
    out = np.empty(len(qs))
    c = _check_c(c0)
    for i, q in enumerate(qs):
        out[i] = c
        c = correlation_map(act, c, w, b, q) if math.isfinite(c) else math.nan
        c = min(1.0, max(-1.0, c)) if math.isfinite(c) else c
    return out


# --------------------------------------------------------------------------------------------
# The edge of chaos
# --------------------------------------------------------------------------------------------

EDGE_KINDS = ("critical", "critical-unstable", "q-infinity-limit", "none")


@dataclass(frozen=True)
class EdgeOfChaos:
    """One point of the edge of chaos χ₁(q*) = 1 at a given σ_b².

    ``kind``: "critical" (finite fixed point q*, χ₁(q*) = 1, stable: L′(q*) < 1, or L′ = 1 with
    L(q) < q just above q*); "critical-unstable" (the fixed point exists but repels, L′(q*) > 1:
    no network settles there); "q-infinity-limit" (no finite q*: at σ_w² = 1/E[φ′(±∞)²] q grows
    without bound and χ₁(q_l) → 1 only asymptotically, while the large-q fixed points below this
    σ_w² are ordered — relu family with σ_b² > 0, softplus); "none" (no edge: the other fields are
    nan). ``stability`` = L′(q*) = σ_w² E[φ′² + φ φ″] (Dirac terms at kinks), nan for q* = inf.
    ``reached_from_q0``: the length map iterated from q_1 = q0 at this σ_w² converges to q*.
    """

    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi1: float
    stability: float
    kind: str
    reached_from_q0: bool
    q0: float = 1.0

    def to_json(self) -> dict:
        return {"sigma_w2": _json_number(self.sigma_w2), "sigma_b2": _json_number(self.sigma_b2),
                "q_star": _json_number(self.q_star), "chi1": _json_number(self.chi1),
                "stability": _json_number(self.stability), "kind": self.kind,
                "reached_from_q0": self.reached_from_q0, "q0": _json_number(self.q0)}


def _curve_gap(act: Activation, q: float, target: float) -> tuple[float, float]:
    """(q E[φ′²] − E[φ²] − σ_b² E[φ′²], E[φ′²]) at q: the sign of B(q) − σ_b², where along the
    curve of fixed points with χ₁ = 1, B(q) = q − E[φ²]/E[φ′²] is the σ_b² and 1/E[φ′²] the σ_w².
    For q ≥ 1 and asymptotically linear φ the asymptote ψ is subtracted inside the integrals so
    that the difference is not lost in rounding."""
    num = _numerics(act)
    d2 = expect_dphi2(act, q)
    if not math.isfinite(d2):
        return math.nan, d2
    if num.poly is None and num.asym is not None and q >= 1.0:
        (am, cm), (ap, cp) = num.asym
        f0, f1 = num.fns[0], num.fns[1]

        def rem2(v):
            psi = np.where(v > 0, ap * v + cp, am * v + cm)
            return (f0(v) - psi) * (f0(v) + psi)

        def rem1(v):
            dpsi = np.where(v > 0, ap, am)
            return (f1(v) - dpsi) * (f1(v) + dpsi)

        gap = (q * _quad(rem1, q, num.bps) - _quad(rem2, q, num.bps)
               - 2 * math.sqrt(q) / _SQRT2PI * (ap * cp - am * cm) - (cm * cm + cp * cp) / 2)
        return gap - target * d2, d2
    return q * d2 - expect_phi2(act, q) - target * d2, d2


def _classify(act: Activation, q: float, w: float, b: float, q0: float) -> EdgeOfChaos:
    slope = length_map_slope(act, q, w)
    kind = None
    if math.isfinite(slope) and abs(slope - 1.0) > 1e-9:
        kind = "critical" if slope < 1.0 else "critical-unstable"
    else:                                                # marginal: the sign of F next to q*
        stable = True
        for h in (1e-8, 1e-6, 1e-4, 1e-2):
            up = q * (1 + h) if q > 0 else h
            f_up = _excess(act, up, w, b)
            if abs(f_up) > 1e-13 * up:
                stable = f_up < 0
                if q > 0:
                    f_dn = _excess(act, q * (1 - h), w, b)
                    stable = stable and not f_dn < -1e-13 * q
                break
        kind = "critical" if stable else "critical-unstable"
    reached = False
    if kind == "critical":          # the iteration settles at q*, or where χ₁ = 1 to 1e-9 (hardtanh at
        fp = fixed_point(act, w, b, q0)   # q < 0.01 moves by e^{−1/2q} per layer: stuck at χ₁ = 1)
        reached = math.isfinite(fp) and (abs(fp - q) <= 1e-7 * q
                                         or abs(chi1(act, fp, w) - 1.0) <= CRITICAL_TOL)
    return EdgeOfChaos(sigma_w2=w, sigma_b2=b, q_star=q, chi1=chi1(act, q, w), stability=slope,
                       kind=kind, reached_from_q0=reached, q0=q0)


@functools.lru_cache(maxsize=4096)
def _edge_cached(act: Activation, b: float, q0: float) -> tuple[EdgeOfChaos, ...]:
    num = _numerics(act)
    out: list[EdgeOfChaos] = []
    slopes = _asym_slopes(act)
    m2 = (slopes[0] ** 2 + slopes[1] ** 2) / 2 if slopes is not None else 0.0
    if _homogeneous_m(act) is not None:
        w = 1.0 / m2
        if b == 0.0:          # every q is a fixed point with χ₁ = 1: the network stays at q0
            out.append(EdgeOfChaos(w, b, q0, chi1(act, q0, w), length_map_slope(act, q0, w),
                                   "critical", True, q0))
        else:
            out.append(EdgeOfChaos(w, b, math.inf, 1.0, math.nan, "q-infinity-limit",
                                   fixed_point(act, w, b, q0) == math.inf, q0))
        return tuple(out)
    # q = 0: B(0⁺) = −φ(0)²/E[φ′(0)²] is 0 exactly when φ(0) = 0
    f00 = float(num.fns[0](np.array([0.0]))[0])
    d0 = expect_dphi2(act, 0.0)
    if b == 0.0 and f00 == 0.0 and 0.0 < d0 < math.inf:
        out.append(_classify(act, 0.0, 1.0 / d0, b, q0))
    q_lo = b * (1 + 1e-12) if b > 0 else 1e-10    # at σ_b² = 0 roots below 1e-10 merge with q* = 0
    q_hi = min(1e14 + 1e16 * b, 1e30)
    grid = np.geomspace(q_lo, q_hi, int(8 * math.log10(q_hi / q_lo)) + 2)

    def sign(q):
        g, d2 = _curve_gap(act, q, b)
        if not (math.isfinite(g) and math.isfinite(d2)) or d2 <= 0:
            return math.nan, g
        noise = 1e-10 * (q + b) * d2     # φ such as α(eˣ − 1) lose ~1e-12 to cancellation
        return (0.0 if abs(g) <= noise else math.copysign(1.0, g)), g

    prev = None
    last_sign = math.nan
    for q in grid:
        sq, _ = sign(q)
        if math.isnan(sq):
            prev = None
            continue
        if sq != 0.0:
            if prev is not None and prev[1] != sq:
                root = optimize.brentq(lambda v: _curve_gap(act, v, b)[0], prev[0], q,
                                       xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=200)
                d2 = expect_dphi2(act, root)
                out.append(_classify(act, float(root), 1.0 / d2, b, q0))
            prev = (q, sq)
            last_sign = sq
    if slopes is not None and m2 > 0 and last_sign < 0:
        # the large-q fixed points below σ_w² = 1/m₂ are ordered (B(q) < σ_b² there): a true edge
        w = 1.0 / m2
        out.append(EdgeOfChaos(w, b, math.inf, 1.0, math.nan, "q-infinity-limit",
                               fixed_point(act, w, b, q0) == math.inf, q0))
    out.sort(key=lambda e: e.sigma_w2)
    return tuple(out)


def edge_of_chaos(act, sigma_b2: float = 0.0, q0: float = 1.0) -> list[EdgeOfChaos]:
    """Every σ_w² at which χ₁(q*) = 1 for this σ_b², found exactly and classified.

    Along the curve of fixed points with χ₁ = 1, parametrised by q > 0,
    σ_w²(q) = 1/E[φ′(√q u)²] and σ_b²(q) = B(q) = q − E[φ(√q u)²]/E[φ′(√q u)²]
    (so q = L(q) and χ₁(q) = 1 hold by construction). The roots of B(q) = σ_b² are bracketed on a
    geometric q-grid (8 per decade, from σ_b² to 1e14 + 1e16 σ_b²) and solved by brentq on
    q E[φ′²] − E[φ²] − σ_b² E[φ′²] (asymptote subtracted for large q). Also q* = 0 when σ_b² = 0 and
    φ(0) = 0 (σ_w² = 1/E[φ′(0)²], the average of the one-sided squares at a kink), the degenerate
    positively homogeneous φ (relu family: B ≡ 0, so every q is a fixed point at σ_w² = 1/m₂ when
    σ_b² = 0 and none when σ_b² > 0) and the q → ∞ limit σ_w² = 1/m₂, m₂ = (φ′(−∞)² + φ′(∞)²)/2,
    which is listed only when the large-q fixed points just below it are ordered (B(q) < σ_b² for
    large q, since at a fixed point χ₁ − 1 has the sign of B(q*) − σ_b²). Sorted by σ_w²; a
    single record of kind "none" when there is no edge. Each record: see ``EdgeOfChaos``.
    """
    act = _as_act(act)
    _, b = _check_sigmas(1.0, sigma_b2)
    q0 = _check_q(q0)
    recs = list(_edge_cached(act, b, q0))
    if not recs:
        recs = [EdgeOfChaos(math.nan, b, math.nan, math.nan, math.nan, "none", False, q0)]
    return recs


def critical_sigma_w2(act, sigma_b2: float = 0.0, q0: float = 1.0, sigma_w2_max: float = math.inf) -> float:
    """The edge of chaos a network reaches from q0: the smallest σ_w² ≤ σ_w2_max of a "critical"
    record of ``edge_of_chaos`` that is reached from q0; failing that, of a reached
    "q-infinity-limit" (χ₁ → 1 as q → ∞: relu at 2 for σ_b² > 0, softplus at 2); nan when no σ_w²
    puts a network started at q0 at χ₁ = 1 (e.g. silu, gelu, mish at σ_b² = 0, where q* jumps from
    0 to inf). See ``edge_of_chaos`` for every solution with its kind.
    Measured (σ_b² = 0 / 0.05): tanh 1 (q* = 0) / 1.7610; relu 2 (q* = q0) / 2 (limit); elu 1 /
    1.5337; hardtanh 1 / 1.1655; selu 2/(λ²(1+α²)) = 0.4768 (q* = 0) / 0.9018; telu nan at σ_b² = 0 (its
    edge at 1.7240, q* = 0, is critical-unstable: q moves away from 0); gelu at σ_b² = 0.3: 1.9562 (q* = 8.77);
    sigmoid at σ_b² = 0: 103.008 (q* = 45.62).
    """
    recs = [e for e in edge_of_chaos(act, sigma_b2, q0) if e.reached_from_q0 and e.sigma_w2 <= sigma_w2_max]
    for kind in ("critical", "q-infinity-limit"):
        hits = [e.sigma_w2 for e in recs if e.kind == kind]
        if hits:
            return float(min(hits))
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

    ``chi_q`` = L′(q*); ``c_star`` the stable fixed point of the correlation map (1 in the ordered
    phase) and ``chi_c`` = χ_c(c*) its slope there (ξ_c = −1/log χ_c); ``q0`` the first layer's
    variance the iteration starts from; ``params`` the activation's parameters; ``phase`` is
    "ordered" (χ₁ < 1), "critical" (|χ₁ − 1| ≤ 1e-9), "chaotic" (χ₁ > 1) or "unknown" (nan).
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
    c_star: float = math.nan
    chi_c: float = math.nan
    q0: float = 1.0

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
            "q0": _json_number(self.q0),
            "q_star": _json_number(self.q_star),
            "chi1": _json_number(self.chi1),
            "chi_q": _json_number(self.chi_q),
            "c_star": _json_number(self.c_star),
            "chi_c": _json_number(self.chi_c),
            "xi_q": _json_number(self.xi_q),
            "xi_c": _json_number(self.xi_c),
            "phase": self.phase,
        }


def summary(act, sigma_w2: float, sigma_b2: float, q0: float = 1.0) -> MeanField:
    """The ``MeanField`` of ``act`` at (σ_w², σ_b²), q* reached from q0."""
    act = _as_act(act)
    w, b = _check_sigmas(sigma_w2, sigma_b2)
    q0 = _check_q(q0)
    q = fixed_point(act, w, b, q0)
    c1 = chi1(act, q, w) if not math.isnan(q) else math.nan
    cq = length_map_slope(act, q, w) if math.isfinite(q) else math.nan
    xi_q, xi_c, c_star, cc = _scales_at(act, q, w, b)
    return MeanField(activation=act.name, sigma_w2=w, sigma_b2=b, q_star=q, chi1=c1,
                     xi_q=xi_q, xi_c=xi_c, chi_q=cq, params=act.params, c_star=c_star, chi_c=cc, q0=q0)


INIT_SCHEMES = init_table.SCHEMES + tuple(init_table.ALIASES)
torch_default_sigma_b2 = init_table.torch_default_sigma_b2


def init_sigma_w2(scheme: str, act=None, sigma_b2: float = 0.0) -> float:
    """σ_w² (= fan_in · Var W) of a named initialisation for a square layer, from ``theory.init``."""
    if init_table.canonical(scheme) == "critical" and act is None:
        raise ValueError("init scheme 'critical' needs an activation")
    return init_table.sigmas(scheme, 1, 1, act=act, sigma_b2=sigma_b2)[0]
