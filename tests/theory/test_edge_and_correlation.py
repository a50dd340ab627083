"""Edge of chaos, correlation map, and the mean field at extreme σ², against independent references.

References written here, not taken from theory.meanfield: mpmath quadrature at 25 digits (split at
the kinks, at 0, and at the scales of the Gaussian), the closed-form kernels of relu (arc-cosine,
Cho & Saul 2009) and erf (arcsine, Williams 1997) as implemented in neural-tangents' stax layers,
and the published SELU constants.
"""
from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings, strategies as st

from theory import meanfield as mf
from theory.activations import SELU_ALPHA, SELU_LAMBDA, get, names, register_formula, x

BUILTINS = [n for n in names() if not get(n).user]
BOUNDED = ["sigmoid", "tanh", "hardtanh"]
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
mp.mp.dps = 25


# ------------------------------------------------------------------ independent mpmath reference

def _tanh(z):
    """mpmath tanh; ±1 beyond |z| = 100 (error < 1e-86), where mpmath's own runs out of memory
    for huge z such as exp(1e6)."""
    return mp.sign(z) if abs(z) > 100 else mp.tanh(z)


def _mp_fns(act):
    """mpmath φ, φ′ from the sympy expression, plus breakpoints."""
    e = act.expr
    mods = [{"tanh": _tanh}, "mpmath"]
    return (sp.lambdify(x, e, mods), sp.lambdify(x, sp.diff(e, x), mods),
            [mp.mpf(b) for b in act.breakpoints()])


def _ref_mean(act, g_of, q):
    """E[g(√q u)] = ∫ g(x) N(x; 0, q) dx by mpmath.quad, split at breakpoints, 0 and ±s·k, ±10^k."""
    q = mp.mpf(q)
    s = mp.sqrt(q)
    fns = _mp_fns(act)
    g = g_of(*fns[:2])
    cuts = {mp.mpf(0), *fns[2]}
    for m in (0.25, 0.5, 1, 2, 4, 8, 12):
        cuts |= {m * s, -m * s}
    for k in range(-3, 4):
        if 10 ** k < 12 * s:
            cuts |= {mp.mpf(10) ** k, -mp.mpf(10) ** k}
    pts = sorted(c for c in cuts if abs(c) <= 12 * s) + [mp.inf]
    pts = [-mp.inf] + pts

    def h(t):
        return g(t) * mp.exp(-t * t / (2 * q)) / mp.sqrt(2 * mp.pi * q)

    return mp.quad(h, pts)


def _ref_L(act, q, w, b):
    return w * _ref_mean(act, lambda f, d: (lambda t: f(t) ** 2), q) + b


def _ref_chi1(act, q, w):
    return w * _ref_mean(act, lambda f, d: (lambda t: d(t) ** 2), q)


def _ref_dL(act, q, w, b):
    """L′(q) by a central difference of the mpmath L at 25 digits (includes the Dirac terms)."""
    h = mp.mpf(q) * mp.mpf("1e-8")
    return (_ref_L(act, q + h, w, b) - _ref_L(act, q - h, w, b)) / (2 * h)


# ------------------------------------------------------------------ edge of chaos

def test_tanh_edge_at_zero_bias_is_exactly_one():
    (e,) = mf.edge_of_chaos("tanh", 0.0)
    assert e.sigma_w2 == 1.0 and e.q_star == 0.0 and e.kind == "critical" and e.reached_from_q0
    assert mf.critical_sigma_w2("tanh", 0.0) == 1.0


def test_relu_edge_is_a_q_infinity_limit_at_two():
    for b in (1e-6, 0.05, 0.3, 2.0):
        (e,) = mf.edge_of_chaos("relu", b)
        assert (e.sigma_w2, e.kind, e.q_star, e.reached_from_q0) == (2.0, "q-infinity-limit", math.inf, True)
        assert mf.critical_sigma_w2("relu", b) == 2.0
    # σ_b² = 0: every q is a fixed point with χ₁ = 1; the network stays at q0
    (e,) = mf.edge_of_chaos("relu", 0.0, q0=3.5)
    assert (e.sigma_w2, e.kind, e.q_star, e.chi1) == (2.0, "critical", 3.5, 1.0)
    (e,) = mf.edge_of_chaos(get("leaky_relu", a=0.2), 0.1)
    assert e.kind == "q-infinity-limit" and e.sigma_w2 == pytest.approx(2 / 1.04, rel=1e-15)


def test_selu_edge_at_zero_bias():
    lam, alpha = float(SELU_LAMBDA), float(SELU_ALPHA)
    (e,) = mf.edge_of_chaos("selu", 0.0)
    assert e.sigma_w2 == pytest.approx(2 / (lam ** 2 * (1 + alpha ** 2)), rel=1e-13)
    assert e.q_star == 0.0 and e.kind == "critical" and e.reached_from_q0


def test_softplus_edge_is_a_limit():
    (e,) = mf.edge_of_chaos("softplus", 0.0)
    assert (e.sigma_w2, e.kind, e.q_star) == (2.0, "q-infinity-limit", math.inf)


def test_gelu_edge_below_two_at_finite_q():
    """The case in the issue: --critical said 2.0, but χ₁ = 1 at σ_w² ≈ 1.9562, q* ≈ 8.77."""
    (e,) = mf.edge_of_chaos("gelu", 0.3)
    assert e.kind == "critical" and e.reached_from_q0
    assert e.sigma_w2 == pytest.approx(1.95616, abs=1e-4) and e.q_star == pytest.approx(8.772, abs=1e-2)
    act = get("gelu")
    assert float(_ref_chi1(act, e.q_star, e.sigma_w2)) == pytest.approx(1.0, abs=1e-12)
    assert float(_ref_L(act, e.q_star, e.sigma_w2, 0.3)) == pytest.approx(e.q_star, rel=1e-12)
    assert mf.critical_sigma_w2("gelu", 0.3) == e.sigma_w2


def test_telu_edge_at_zero_bias_is_below_two_and_unstable():
    """TeLU at σ_b² = 0: χ₁ = 1 at q* = 0 for σ_w² = 1/tanh(1)² ≈ 1.7241, but L(q) > q just above 0."""
    (e,) = mf.edge_of_chaos("telu", 0.0)
    assert e.sigma_w2 == pytest.approx(1 / math.tanh(1) ** 2, rel=1e-13) and e.q_star == 0.0
    assert e.kind == "critical-unstable" and not e.reached_from_q0
    act = get("telu")
    assert _ref_L(act, 1e-4, e.sigma_w2, 0.0) > 1e-4                   # q grows away from 0
    assert math.isnan(mf.critical_sigma_w2("telu", 0.0))
    (e,) = mf.edge_of_chaos("telu", 0.05)
    assert e.kind == "critical" and e.sigma_w2 < 2 and e.reached_from_q0


def test_no_edge_gives_one_none_record():
    (e,) = mf.edge_of_chaos("gelu", 0.05)
    assert e.kind == "critical-unstable"
    (e,) = mf.edge_of_chaos("where(x < 0, -1, 1)", 0.1)      # E[φ′²] = inf: χ₁ = 1 nowhere
    assert e.kind == "none" and math.isnan(e.sigma_w2)
    assert e.to_json()["sigma_w2"] is None


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("b", [0.0, 0.3])
def test_every_edge_solves_chi1_and_fixed_point_against_mpmath(name, b):
    act = get(name)
    for e in mf.edge_of_chaos(act, b):
        assert e.kind in mf.EDGE_KINDS and e.sigma_b2 == b
        if e.kind == "none" or math.isinf(e.q_star):
            continue
        q, w = e.q_star, e.sigma_w2
        if q == 0.0:
            assert b == 0.0
            continue
        assert float(_ref_chi1(act, q, w)) == pytest.approx(1.0, abs=1e-10), (name, b, e)
        assert float(_ref_L(act, q, w, b)) == pytest.approx(q, rel=1e-10), (name, b, e)
        slope = float(_ref_dL(act, q, w, b))
        assert e.stability == pytest.approx(slope, abs=1e-6)
        if abs(slope - 1) > 1e-6:
            assert e.kind == ("critical" if slope < 1 else "critical-unstable"), (name, b, e)


@SETTINGS
@given(name=st.sampled_from(BUILTINS), b=st.floats(1e-4, 3.0))
def test_edge_kind_matches_the_fixed_point_a_network_reaches(name, b):
    """A reached critical record: the fixed point reached from q0 = 1 at that σ_w² is q*, χ₁ = 1."""
    for e in mf.edge_of_chaos(name, b):
        if e.kind == "critical" and e.reached_from_q0 and e.q_star > 0:
            s = mf.summary(name, e.sigma_w2, b)
            assert s.q_star == pytest.approx(e.q_star, rel=1e-6) and s.phase == "critical"
            assert s.xi_c == math.inf
        if e.kind == "q-infinity-limit":
            assert e.reached_from_q0 == (mf.fixed_point(name, e.sigma_w2, b) == math.inf)
            assert mf.summary(name, e.sigma_w2 * 0.99, b).phase == "ordered"


# ------------------------------------------------------------------ correlation map: closed forms

def _relu_map(c, q, w, b):
    """Arc-cosine kernel: E[relu(z₁) relu(z₂)] = q (√(1−c²) + (π − arccos c) c)/(2π)."""
    k = q * (math.sqrt(max(1 - c * c, 0.0)) + (math.pi - math.acos(c)) * c) / (2 * math.pi)
    return (w * k + b) / (w * q / 2 + b)


def _erf_kernel(c, q):
    """Arcsine kernel: E[erf(z₁) erf(z₂)] = (2/π) arcsin(2 q c / (1 + 2q))."""
    return 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))


ERF = register_formula("erf(x)")


@SETTINGS
@given(c=st.floats(-1.0, 1.0), q=st.floats(1e-3, 1e4), w=st.floats(0.1, 5.0), b=st.floats(0.0, 2.0))
def test_relu_correlation_map_is_the_arc_cosine_kernel(c, q, w, b):
    assert mf.correlation_map("relu", c, w, b, q) == pytest.approx(_relu_map(c, q, w, b), abs=1e-12)
    p = 0.25 + math.asin(c) / (2 * math.pi)                  # P(u₁ > 0, u₂ > 0)
    assert mf.chi_c("relu", c, w, q) == pytest.approx(w * p, abs=1e-12)


@SETTINGS
@given(c=st.floats(-1.0, 1.0), q=st.floats(1e-3, 1e4), w=st.floats(0.1, 5.0), b=st.floats(0.0, 2.0))
def test_erf_correlation_map_is_the_arcsine_kernel(c, q, w, b):
    ref = (w * _erf_kernel(c, q) + b) / (w * _erf_kernel(1.0, q) + b)
    assert mf.correlation_map(ERF, c, w, b, q) == pytest.approx(ref, abs=1e-12)
    d = 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)   # E[erf′(z₁) erf′(z₂)]
    assert mf.chi_c(ERF, c, w, q) == pytest.approx(w * d, rel=1e-10)


def test_correlation_map_default_q_is_the_fixed_point_and_c1_is_fixed():
    q = mf.fixed_point("relu", 1.5, 0.2)
    assert mf.correlation_map("relu", 0.4, 1.5, 0.2) == pytest.approx(_relu_map(0.4, q, 1.5, 0.2), abs=1e-13)
    for name in BUILTINS:
        assert mf.correlation_map(name, 1.0, 1.7, 0.1) == 1.0
        q = mf.fixed_point(name, 1.7, 0.1)
        if math.isfinite(q):
            assert mf.chi_c(name, 1.0, 1.7, q) == pytest.approx(mf.chi1(name, q, 1.7), rel=1e-12)


def test_relu_map_at_infinite_q_is_the_normalised_arc_cosine_kernel():
    for c in (-0.5, 0.0, 0.7):
        assert mf.correlation_map("relu", c, 3.0, 0.1, math.inf) == pytest.approx(_relu_map(c, 1.0, 1.0, 0.0), abs=1e-15)


def test_erf_correlation_fixed_point_against_closed_form_iteration():
    w, b = 3.0, 0.05
    q = float(mp.findroot(lambda t: w * 2 / mp.pi * mp.asin(2 * t / (1 + 2 * t)) + b - t, 1.0))
    assert mf.fixed_point(ERF, w, b) == pytest.approx(q, rel=1e-10)
    c = 0.5
    for _ in range(2000):
        c = (w * _erf_kernel(c, q) + b) / q
    assert mf.correlation_fixed_point(ERF, w, b) == pytest.approx(c, abs=1e-10)
    d = 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)
    xi_q, xi_c = mf.depth_scales(ERF, w, b)
    assert xi_c == pytest.approx(-1 / math.log(w * d), rel=1e-8)


def test_c_profile_relu_matches_closed_form_iteration():
    q, c, w, b = 1.3, 0.2, 1.8, 0.1
    got = mf.c_profile("relu", q, c, w, b, 12)
    ref = []
    for _ in range(12):
        ref.append(c)
        c = (w * q * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / (2 * math.pi) + b) / (w * q / 2 + b)
        q = w * q / 2 + b
    assert np.allclose(got, ref, atol=1e-12, rtol=0)


# ------------------------------------------------------------------ c*, ξ_c in both phases

@SETTINGS
@given(name=st.sampled_from(BUILTINS + ["erf(x)"]), w=st.floats(0.2, 6.0), b=st.floats(0.0, 1.0))
def test_c_star_is_a_stable_fixed_point_and_xi_c_is_positive(name, w, b):
    s = mf.summary(name, w, b)
    if math.isnan(s.q_star):
        return
    assert s.xi_c > 0 or math.isnan(s.xi_c)
    if s.phase == "ordered":
        assert s.c_star == 1.0 and s.chi_c == pytest.approx(s.chi1, rel=1e-12)
    if s.phase == "chaotic" and 0 < s.q_star < math.inf:
        assert 0.0 <= s.c_star < 1.0
        assert mf.correlation_map(name, s.c_star, w, b, s.q_star) == pytest.approx(s.c_star, abs=1e-9)
        assert 0 <= s.chi_c < 1
        assert s.xi_c == pytest.approx(-1 / math.log(s.chi_c), rel=1e-12)


def test_xi_c_diverges_at_the_edge_and_is_positive_on_both_sides():
    e = mf.edge_of_chaos("tanh", 0.05)[0]
    w = e.sigma_w2
    assert mf.depth_scales("tanh", w, 0.05)[1] == math.inf
    left, right = mf.depth_scales("tanh", w * 0.98, 0.05)[1], mf.depth_scales("tanh", w * 1.02, 0.05)[1]
    far_l, far_r = mf.depth_scales("tanh", w * 0.7, 0.05)[1], mf.depth_scales("tanh", w * 1.5, 0.05)[1]
    assert 0 < far_l < left and 0 < far_r < right and left > 20 and right > 20


def test_tanh_odd_zero_bias_chaotic_c_star_is_zero():
    assert mf.correlation_fixed_point("tanh", 4.0, 0.0) == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ extreme σ²

@SETTINGS
@given(name=st.sampled_from(BUILTINS), lw=st.floats(-12, 12), lb=st.one_of(st.just(-math.inf), st.floats(-12, 12)))
def test_fixed_point_and_chi1_against_mpmath_from_1e_minus_12_to_1e12(name, lw, lb):
    act = get(name)
    w, b = 10.0 ** lw, 10.0 ** lb if math.isfinite(lb) else 0.0
    s = mf.summary(act, w, b)
    assert s.phase != "unknown", (name, w, b)
    q = s.q_star
    if math.isinf(q):
        assert name not in BOUNDED                          # a bounded φ never has q* = inf
        assert w * mf.expect_dphi2(act, math.inf) >= 1 - 1e-9 or b > 0
        assert float(_ref_L(act, 1e6 * max(1, w, b), w, b)) > 1e6 * max(1, w, b)
        return
    if q == 0.0:
        assert b == 0.0
        return
    assert float(_ref_L(act, q, w, b)) == pytest.approx(q, rel=1e-9), (name, w, b)
    assert s.chi1 == pytest.approx(float(_ref_chi1(act, q, w)), rel=1e-9), (name, w, b)


@pytest.mark.parametrize("name", BOUNDED)
def test_bounded_activation_at_huge_sigma_w2_is_chaotic_with_finite_q(name):
    act = get(name)
    for w in (1e12,):
        s = mf.summary(act, w, 0.0)
        sup2 = 1.0
        assert math.isfinite(s.q_star) and s.phase == "chaotic", (name, w, s)
        assert s.q_star == pytest.approx(w * float(_ref_mean(act, lambda f, d: (lambda t: f(t) ** 2), s.q_star)),
                                         rel=1e-9)
        assert s.q_star <= w * sup2


def test_cli_critical_json_carries_q_star_stability_kind_and_q0(capsys):
    import json

    from theory.__main__ import main

    assert main(["meanfield", "--critical", "--sigma-b2", "0.3", "-a", "gelu", "-a", "relu", "--q0", "2", "--json"]) == 0
    rows = {r["activation"]: r for r in json.loads(capsys.readouterr().out)}
    g = rows["gelu"]
    assert g["q0"] == 2.0 and g["critical_sigma_w2"] == pytest.approx(1.95616, abs=1e-4)
    (edge,) = g["edges"]
    assert edge["kind"] == "critical" and edge["q_star"] == pytest.approx(8.772, abs=1e-2)
    assert 0 < edge["stability"] < 1 and edge["reached_from_q0"] is True
    (edge,) = rows["relu"]["edges"]
    assert edge["kind"] == "q-infinity-limit" and edge["q_star"] == "inf" and edge["stability"] is None
    assert main(["meanfield", "--critical", "--sigma-b2", "0", "-a", "telu"]) == 0
    out = capsys.readouterr().out
    assert "unstable" in out and "1.7240617" in out and "critical " not in out.split("telu")[1].split("\n")[0][:30]
