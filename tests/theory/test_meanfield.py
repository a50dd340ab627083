"""Mean-field theory: Gaussian expectations against independent integrals, exact cases, fixed points."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st
from scipy import integrate

from theory import meanfield as mf
from theory.activations import all_activations, get, names, register_formula

BUILTINS = names()[:12]
KINKED = ["relu", "leaky_relu", "elu", "selu", "hardtanh"]


def _trapezoid_mean(act, g, q, n=200_001, bps=None):
    """E[g(√q u)] by dense trapezoids on x ∈ [-12√q, 12√q], one per piece between breakpoints
    (each piece's ends evaluated 1e-13 inside it), independent of meanfield's quadrature."""
    s = math.sqrt(q)
    bps = act.breakpoints() if bps is None else bps
    edges = [-12 * s, *[b for b in bps if abs(b) < 12 * s], 12 * s]
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        xs = np.linspace(a, b, n)
        xs[0], xs[-1] = a + 1e-13, b - 1e-13
        dens = np.exp(-xs ** 2 / (2 * q)) / math.sqrt(2 * math.pi * q)
        total += float(np.trapezoid(g(xs) * dens, xs))
    return total


def _numpy_fns(act):
    return act.numpy(0), act.numpy(1), act.numpy(2)


# ------------------------------------------------------------------ expectations

@pytest.mark.parametrize("name", KINKED)
@pytest.mark.parametrize("q", [0.05, 1.0, 7.0])
def test_kinked_expectations_match_dense_trapezoid(name, q):
    act = get(name)
    f0, f1, _ = _numpy_fns(act)
    ref2 = _trapezoid_mean(act, lambda v: f0(v) ** 2, q)
    refd = _trapezoid_mean(act, lambda v: f1(v) ** 2, q)
    assert mf.expect_phi2(act, q) == pytest.approx(ref2, abs=1e-6, rel=1e-6)
    assert mf.expect_dphi2(act, q) == pytest.approx(refd, abs=1e-6, rel=1e-6)
    assert mf.gaussian_mean(act, (0, 0), q) == pytest.approx(ref2, abs=1e-6, rel=1e-6)
    assert mf.gaussian_mean(act, (1, 1), q) == pytest.approx(refd, abs=1e-6, rel=1e-6)


@pytest.mark.parametrize("name", BUILTINS)
def test_expectations_match_scipy_quad(name):
    act = get(name)
    f0, f1, _ = _numpy_fns(act)
    for q in (0.01, 0.8, 30.0, 300.0):
        s = math.sqrt(q)
        edges = sorted({-12 * s, 12 * s, 0.0, *[b for b in act.breakpoints() if abs(b) < 12 * s]})
        for g, got in ((lambda v: f0(v) ** 2, mf.expect_phi2(act, q)),
                       (lambda v: f1(v) ** 2, mf.expect_dphi2(act, q))):
            def h(t):
                return float(g(np.array([t]))[0]) * math.exp(-t * t / (2 * q)) / math.sqrt(2 * math.pi * q)
            ref = sum(integrate.quad(h, a, b, epsabs=0, epsrel=1e-12, limit=400)[0]
                      for a, b in zip(edges[:-1], edges[1:]))
            assert got == pytest.approx(ref, rel=1e-8, abs=1e-10), (name, q)


def test_plain_gauss_hermite_is_wrong_for_relu_but_ours_is_exact():
    # the pitfall in THEORY_NOTES: whole-line Gauss–Hermite misses the kink
    t, w = np.polynomial.hermite_e.hermegauss(21)
    w = w / w.sum()
    gh = float(w @ get("relu").numpy(1)(t) ** 2)
    assert abs(2 * gh - 1.0) > 1e-3
    assert mf.chi1("relu", 1.0, 2.0) == 1.0


@pytest.mark.parametrize("q", [1e-6, 0.3, 1.0, 2.5, 1e3, 1e8])
def test_relu_exact_values(q):
    assert mf.expect_dphi2("relu", q) == 0.5
    assert mf.chi1("relu", q, 2.0) == 1.0
    assert mf.chi1("relu", q, 1.3) == pytest.approx(0.65, rel=1e-15)
    assert mf.expect_phi2("relu", q) == pytest.approx(q / 2, rel=1e-14)
    assert mf.gaussian_mean("relu", (1, 1), q) == pytest.approx(0.5, abs=1e-12)
    assert mf.expect_phi_ddphi("relu", q) == 0.0


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "hardtanh"])
def test_closed_forms_agree_with_quadrature(name):
    act = get(name)
    q = sp.Symbol("q", positive=True)
    for kind, orders in (("phi2", (0, 0)), ("dphi2", (1, 1)), ("phi_ddphi", (0, 2))):
        expr = mf.closed_form(act, kind)
        assert expr is not None
        f = sp.lambdify(q, expr, "mpmath")
        for qv in (0.04, 0.7, 3.0, 50.0):
            exact = float(f(qv))
            fast = {"phi2": mf.expect_phi2, "dphi2": mf.expect_dphi2, "phi_ddphi": mf.expect_phi_ddphi}[kind](act, qv)
            assert fast == pytest.approx(exact, rel=1e-12, abs=1e-14)
            if kind != "phi_ddphi":        # the quadrature has no Dirac terms
                assert mf.gaussian_mean(act, orders, qv) == pytest.approx(exact, rel=1e-10, abs=1e-12)


def test_closed_form_exact_symbols():
    q = sp.Symbol("q", positive=True)
    assert sp.simplify(mf.closed_form("relu", "phi2") - q / 2) == 0
    assert mf.closed_form("relu", "dphi2") == sp.Rational(1, 2)
    lr = mf.closed_form(get("leaky_relu", a=0.5), "dphi2")
    assert lr == sp.Rational(5, 8)
    assert mf.closed_form("tanh", "phi2") is None


def test_user_formula_matches_leaky_relu():
    user = register_formula("where(x<0, 0.2*x, x)")
    leaky = get("leaky_relu", a=0.2)
    for q in (0.0, 0.1, 1.0, 13.0):
        assert mf.expect_phi2(user, q) == pytest.approx(mf.expect_phi2(leaky, q), rel=1e-13, abs=1e-15)
        assert mf.expect_dphi2(user, q) == pytest.approx(mf.expect_dphi2(leaky, q), rel=1e-13)
    assert mf.expect_dphi2(user, 2.0) == pytest.approx((1 + 0.04) / 2, rel=1e-14)
    assert mf.fixed_point(user, 1.5, 0.1) == pytest.approx(mf.fixed_point(leaky, 1.5, 0.1), rel=1e-12)


def test_user_formula_with_hidden_breakpoints():
    # max(|x| - 1, 0.1 x) kinks at -10/11 and 10/9 (inside ITE conditions before folding)
    act = register_formula("max(abs(x)-1, 0.1*x)")
    f1 = act.numpy(1)
    for q in (0.3, 2.0):
        ref = _trapezoid_mean(act, lambda v: f1(v) ** 2, q, bps=(-10 / 11, 0.0, 10 / 9))
        assert mf.expect_dphi2(act, q) == pytest.approx(ref, abs=1e-6)
    assert mf.expect_dphi2(act, 2.0) == pytest.approx(mf.gaussian_mean(act, (1, 1), 2.0), abs=1e-12)


@pytest.mark.parametrize("name", BUILTINS + ["hardtanh"])
def test_stein_identity_length_map_slope(name):
    """L′(q) = σ_w² E[φ′² + φ φ″] with φ″'s Dirac terms (non-zero for hardtanh)."""
    act = get(name)
    for q in (0.2, 1.0, 4.0):
        h = 1e-4 * q
        numeric = (mf.length_map(act, q + h, 1.7, 0.1) - mf.length_map(act, q - h, 1.7, 0.1)) / (2 * h)
        assert mf.length_map_slope(act, q, 1.7) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_hardtanh_delta_terms():
    q = 0.8
    dens = math.exp(-1 / (2 * q)) / math.sqrt(2 * math.pi * q)
    # φ″ = δ(x+1) − δ(x−1); φ(±1) = ±1; the pointwise φ″ is 0
    assert mf.gaussian_mean("hardtanh", (0, 2), q) == pytest.approx(0.0, abs=1e-15)
    assert mf.expect_phi_ddphi("hardtanh", q) == pytest.approx(-2 * dens, rel=1e-12)


def test_q_zero_limits():
    assert mf.expect_dphi2("relu", 0.0) == 0.5                      # average of one-sided squares
    assert mf.expect_dphi2(get("leaky_relu", a=0.5), 0.0) == pytest.approx(0.625)
    assert mf.expect_dphi2("tanh", 0.0) == 1.0
    assert mf.expect_phi2("sigmoid", 0.0) == 0.25
    assert mf.expect_dphi2("gelu", 0.0) == pytest.approx(0.25)
    assert mf.expect_dphi2("selu", 0.0) == pytest.approx((1.0507009873554805 ** 2 * (1 + 1.6732632423543772 ** 2)) / 2)
    # continuity q → 0⁺
    for name in ("tanh", "relu", "elu", "gelu"):
        assert mf.expect_dphi2(name, 1e-9) == pytest.approx(mf.expect_dphi2(name, 0.0), abs=1e-4)


def test_discontinuous_activation_and_bad_input():
    sign = register_formula("where(x<0, -1, 1)")
    assert mf.expect_dphi2(sign, 1.0) == math.inf
    assert math.isnan(mf.expect_phi_ddphi(sign, 1.0))
    assert mf.expect_phi2(sign, 1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        mf.expect_phi2("tanh", -1.0)
    with pytest.raises(ValueError):
        mf.length_map("tanh", 1.0, -1.0, 0.0)
    with pytest.raises(ValueError):
        mf.gaussian_mean("tanh", 3, 1.0)


def test_overflowing_formulas_use_asymptotes():
    # softplus lambdified as log(1+exp(x)) overflows at x > 709; compare with a stable formula
    from scipy.special import expit
    q = 1e6
    s = math.sqrt(q)

    def ref(g):
        def h(t):
            return g(t) * math.exp(-t * t / (2 * q)) / math.sqrt(2 * math.pi * q)
        edges = [-12 * s, -100, -10, 0, 10, 100, 12 * s]
        return sum(integrate.quad(h, a, b, epsabs=0, epsrel=1e-13, limit=400)[0] for a, b in zip(edges[:-1], edges[1:]))

    assert mf.expect_phi2("softplus", q) == pytest.approx(ref(lambda t: np.logaddexp(0, t) ** 2), rel=1e-10)
    assert mf.expect_dphi2("softplus", q) == pytest.approx(ref(lambda t: expit(t) ** 2), rel=1e-10)
    assert math.isfinite(mf.expect_phi_ddphi("telu", q))


# ------------------------------------------------------------------ fixed points

def test_reference_fixed_points():
    assert mf.fixed_point("selu", 1.0, 0.0) == pytest.approx(1.0, abs=1e-3)
    assert mf.fixed_point("tanh", 1.0, 0.0) == 0.0
    assert mf.fixed_point("tanh", 0.7, 0.0) == 0.0
    assert mf.fixed_point("relu", 2.0, 0.1) == math.inf
    assert mf.fixed_point("relu", 2.5, 0.0) == math.inf
    assert mf.fixed_point("relu", 2.0, 0.0, q0=3.7) == 3.7           # every q is a fixed point
    assert mf.fixed_point("relu", 1.5, 0.1) == pytest.approx(0.1 / (1 - 0.75), rel=1e-12)
    assert mf.fixed_point("gelu", 1.0, 0.0) == 0.0
    assert mf.fixed_point("silu", 1.5, 0.0) == 0.0
    # slow growth q_{l+1} − q_l ~ c/√q_l: unbounded, not a (numerically spurious) finite root
    assert mf.fixed_point("softplus", 2.0, 0.0) == math.inf
    assert mf.fixed_point("telu", 2.0, 0.0) == math.inf
    assert mf.fixed_point("elu", 2.0, 0.0) == math.inf
    assert mf.fixed_point("softplus", 1.99, 0.0) == pytest.approx(51.034117, rel=1e-6)


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("w,b", [(0.5, 0.05), (1.0, 0.3), (1.8, 0.1), (3.0, 1.0)])
def test_fixed_point_is_a_fixed_point(name, w, b):
    act = get(name)
    q = mf.fixed_point(act, w, b)
    assert not math.isnan(q)
    if math.isinf(q):
        assert all(mf.length_map(act, v, w, b) > v for v in np.geomspace(1.0, 1e8, 9))
    else:
        assert abs(mf.length_map(act, q, w, b) - q) <= 1e-10 * max(q, 1e-3)
        assert mf.length_map_slope(act, q, w) <= 1 + 1e-6              # stable (attracting)


def test_fixed_point_non_monotone_map_by_iteration():
    # E[cos²(√q u)] = (1 + e^{−2q})/2 decreases in q: the iteration oscillates into q*
    q = mf.fixed_point("cos(x)", 1.0, 0.0)
    assert q == pytest.approx((1 + math.exp(-2 * q)) / 2, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(BUILTINS), w=st.floats(0.1, 4.0),
       b=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), q0=st.floats(0.01, 10.0))
def test_fixed_point_is_the_limit_of_the_iteration(name, w, b, q0):
    """Monotone maps: the iterates move from q0 towards q* without crossing it."""
    act = get(name)
    q_star = mf.fixed_point(act, w, b, q0)
    assert not math.isnan(q_star)
    qs = [q0]
    for _ in range(60):
        qs.append(mf.length_map(act, qs[-1], w, b))
    qs = np.array(qs)
    up = qs[1] >= qs[0]
    assert np.all(np.diff(qs) >= -1e-12 * qs[1:]) if up else np.all(np.diff(qs) <= 1e-12 * qs[:-1])
    if math.isinf(q_star):
        assert up and all(mf.length_map(act, v, w, b) > v for v in np.geomspace(qs[-1], 1e8, 8))
        return
    tol = 1e-9 * max(q_star, 1e-9)
    assert np.all(qs <= q_star + tol) if up else np.all(qs >= q_star - tol)
    if abs(qs[-1] - qs[-2]) <= 1e-14 * qs[-1]:
        assert q_star == pytest.approx(qs[-1], rel=1e-8)
    if q_star == 0.0:
        assert b == 0.0 and not up
    else:
        assert abs(mf.length_map(act, q_star, w, b) - q_star) <= 1e-10 * q_star


@settings(max_examples=30, deadline=None)
@given(q=st.floats(1e-4, 1e4), w=st.floats(0.01, 10.0))
def test_relu_and_leaky_chi1_closed_form_random(q, w):
    assert mf.chi1("relu", q, w) == pytest.approx(w / 2, rel=1e-15)
    a = 0.3
    assert mf.chi1(get("leaky_relu", a=a), q, w) == pytest.approx(w * (1 + a * a) / 2, rel=1e-14)


# ------------------------------------------------------------------ depth scales, edge of chaos

def test_critical_reference_values():
    assert mf.critical_sigma_w2("tanh", 0.05) == pytest.approx(1.761, abs=0.005)
    assert mf.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-9)
    assert mf.critical_sigma_w2("relu", 0.0) == 2.0
    assert mf.critical_sigma_w2("relu", 0.1) == 2.0
    assert mf.critical_sigma_w2("leaky_relu", 0.0) == pytest.approx(2 / (1 + 1e-4), rel=1e-10)
    assert math.isnan(mf.critical_sigma_w2("sigmoid", 0.0, sigma_w2_max=100.0))
    assert mf.critical_sigma_w2("sigmoid", 0.0) == pytest.approx(103.0, abs=0.1)


def test_critical_point_is_critical_for_all_builtins():
    found = 0
    for act in all_activations()[:12]:
        w = mf.critical_sigma_w2(act, 0.05)
        if math.isnan(w):
            continue
        found += 1
        q = mf.fixed_point(act, w, 0.05)
        assert mf.chi1(act, q, w) == pytest.approx(1.0, abs=1e-6), act.name
        assert mf.depth_scales(act, w, 0.05)[1] == math.inf or abs(mf.chi1(act, q, w) - 1) > 1e-9
    assert found >= 7


def test_depth_scales_tanh():
    w = mf.critical_sigma_w2("tanh", 0.05)
    xi_q, xi_c = mf.depth_scales("tanh", w, 0.05)
    assert xi_c == math.inf and 0 < xi_q < math.inf
    xi_q, xi_c = mf.depth_scales("tanh", 1.2, 0.05)
    assert 0 < xi_c < math.inf and 0 < xi_q < math.inf
    xi_q, xi_c = mf.depth_scales("tanh", 2.5, 0.05)                   # chaotic: ξ_c at c* < 1
    assert 0 < xi_c < math.inf and mf.correlation_fixed_point("tanh", 2.5, 0.05) < 1


@pytest.mark.parametrize("name", ["tanh", "hardtanh", "elu", "gelu"])
def test_xi_q_is_the_convergence_rate_of_q(name):
    act = get(name)
    w, b = 1.3, 0.2
    q_star = mf.fixed_point(act, w, b)
    xi_q, _ = mf.depth_scales(act, w, b)
    q = q_star * 1.01
    for _ in range(3):
        q = mf.length_map(act, q, w, b)
    d3 = q - q_star
    q = mf.length_map(act, q, w, b)
    rate = (q - q_star) / d3
    assert rate == pytest.approx(math.exp(-1 / xi_q), rel=2e-3)


# ------------------------------------------------------------------ profiles

def test_profiles_indexing_relu():
    qs = mf.q_profile("relu", 3.0, 1.0, 0.5, 5)
    assert qs[0] == 3.0 and len(qs) == 5
    assert qs[1] == pytest.approx(1.0 * 1.5 + 0.5)
    assert np.allclose(mf.chi1_profile("relu", 3.0, 1.0, 0.5, 5), 0.5)
    g = mf.predicted_log_grad_profile("relu", 3.0, 1.0, 0.5, 5)
    assert np.allclose(g, np.log(0.5) * np.arange(4, -1, -1))
    assert np.allclose(mf.predicted_log_grad_profile("relu", 1.0, 2.0, 0.0, 7), 0.0)


def test_gelu_layerwise_prediction_differs_from_fixed_point():
    # THEORY_NOTES: GELU depth 30, σ_w² = 2, σ_b² = 0.1: χ₁(q*) = 0.756, layer-wise ≈ 0.93
    q0 = mf.input_q(1.0, 2.0, 0.1)
    assert q0 == pytest.approx(2.1)
    q_star = mf.fixed_point("gelu", 2.0, 0.1)
    assert mf.chi1("gelu", q_star, 2.0) == pytest.approx(0.756, abs=1e-3)
    g = mf.predicted_log_grad_profile("gelu", q0, 2.0, 0.1, 30)
    per_layer = math.exp(g[0] / 29)
    assert 0.90 < per_layer < 0.95
    assert g[-1] == 0.0 and np.all(np.diff(g) > 0)       # vanishing towards the input


# ------------------------------------------------------------------ summary, inits

def test_summary_json():
    s = mf.summary("relu", 2.0, 0.1)
    d = s.to_json()
    assert d["q_star"] == "inf" and d["xi_q"] is None and d["xi_c"] == "inf" and d["chi1"] == 1.0
    assert s.phase == "critical"
    json.dumps(d, allow_nan=False)
    t = mf.summary("tanh", 1.2, 0.05)
    assert t.phase == "ordered" and isinstance(t.to_json()["q_star"], float)
    with pytest.raises(Exception):
        t.q_star = 1.0
    assert mf.summary(get("leaky_relu", a=0.2), 1.0, 0.0).to_json()["params"] == {"a": 0.2}


def test_init_sigma_w2():
    assert mf.init_sigma_w2("torch_default", "tanh") == pytest.approx(1 / 3)
    assert mf.init_sigma_w2("he", "relu") == 2.0
    assert mf.init_sigma_w2("glorot", "tanh") == mf.init_sigma_w2("xavier", "tanh") == 1.0
    assert mf.init_sigma_w2("lecun", "selu") == 1.0
    assert mf.init_sigma_w2("critical", "tanh", sigma_b2=0.05) == pytest.approx(1.761, abs=0.005)
    assert mf.torch_default_sigma_b2(512) == pytest.approx(1 / 1536)
    with pytest.raises(ValueError):
        mf.init_sigma_w2("orthogonal", "tanh")
    # the theory's explanation of the seeds' vanishing gradients: torch default is deep in the ordered phase
    for name in ("tanh", "relu", "sigmoid"):
        assert mf.summary(name, 1 / 3, 0.0).chi1 < 0.5


@pytest.mark.parametrize("w, b, q0, lo, hi", [(2.0068545696463875, 0.1, 0.3, 1.6, 1.9),   # mish's edge, σ_b² = 0.1
                                              (2.104798, 0.05, 0.4547, 0.46, 0.55)])
def test_fixed_point_does_not_step_over_a_close_pair_of_roots(w, b, q0, lo, hi):
    """Near a tangency F = L(q) − q dips below 0 only on a short interval (a stable q* and the unstable root
    above it): doubling q from q0 once jumped over it and reported ∞. Reference: the root of F computed by
    scipy quadrature of mish directly, bracketed in [lo, hi]."""
    from scipy import integrate, optimize

    def mish(x):
        return x * math.tanh(math.log1p(math.exp(x)) if x < 30 else x)

    def F(q):
        e = integrate.quad(lambda u: mish(math.sqrt(q) * u) ** 2 * math.exp(-u * u / 2), -40, 40, limit=200)[0]
        return w * e / math.sqrt(2 * math.pi) + b - q

    assert F(lo) > 0 > F(hi)
    ref = optimize.brentq(F, lo, hi, xtol=1e-13)
    assert mf.fixed_point("mish", w, b, q0) == pytest.approx(ref, rel=1e-8)


def test_the_edge_reached_from_below_a_close_root_pair():
    """mish at σ_b² = 0.1 started at q0 = 0.3 converges to q* = 1.7716 with χ₁ = 1: that σ_w² is its edge."""
    w = mf.critical_sigma_w2("mish", 0.1, q0=0.3)
    assert w == pytest.approx(2.0068545696463875, rel=1e-9)
    assert mf.chi1("mish", mf.fixed_point("mish", w, 0.1, 0.3), w) == pytest.approx(1.0, abs=1e-9)
