"""theory.properties against torch autograd, sampled points and finite differences.

The derivatives are checked against the NATIVE torch op of each activation (float64 autograd); an
activation without one (telu, user formulas) is compiled from its sympy expression to torch.
"""
from __future__ import annotations

import importlib
import json
import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import special

import theory.activations as A
from theory.properties import derive, saturation_threshold, to_json

x = A.x
BUILTINS = [n for n in A.names() if not A.get(n).user]
USER_FORMULAS = ["x*erf(x)", "where(x<0, 0.2*x, x)", "x/(1+abs(x))", "log(1+exp(x))"]
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _act(spec: str) -> A.Activation:
    return A.get(spec) if spec in BUILTINS else A.register_formula(spec)


def _np(expr: sp.Expr):
    f = sp.lambdify(x, expr, modules=[{"erf": special.erf}, "numpy"])

    def g(v):
        v = np.asarray(v, dtype=float)
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(f(v), dtype=float), v.shape).copy()

    return g


def _select(conds, vals, default=float("nan")):
    out = None
    for c, v in zip(reversed(conds), reversed(vals)):
        c, v = torch.as_tensor(c), torch.as_tensor(v, dtype=torch.float64)
        out = torch.where(c, v, torch.as_tensor(default, dtype=torch.float64) if out is None else out)
    return out


_TORCH = {
    "exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "erf": torch.erf, "sqrt": torch.sqrt,
    "sin": torch.sin, "cos": torch.cos, "atan": torch.atan, "Abs": torch.abs, "select": _select,
    "less": torch.lt, "less_equal": torch.le, "greater": torch.gt, "greater_equal": torch.ge,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or, "logical_not": torch.logical_not,
}


def _torch_fn(act: A.Activation):
    """The native torch function of act (dotted path + kwargs), else its expression compiled to torch."""
    if act.torch_op is not None:
        path, kwargs = act.torch_op
        module, name = path.rsplit(".", 1)
        fn = getattr(importlib.import_module(module), name)
        return lambda t: fn(t, **dict(kwargs))
    return sp.lambdify(x, act.expr, modules=[_TORCH])


def _autograd(fn, v: float) -> tuple[float, float, float]:
    t = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    y = fn(t)
    (g,) = torch.autograd.grad(y, t, create_graph=True)
    h = torch.autograd.grad(g, t)[0] if g.requires_grad else torch.zeros(())
    return float(y.detach()), float(g.detach()), float(h)


def _near_breakpoint(p, v: float, dist: float = 1e-3) -> bool:
    return any(abs(v - float(b)) < dist for b in p.breakpoints)


def test_native_ops_are_native():
    natives = {a.name for a in map(A.get, BUILTINS) if a.torch_op is not None}
    assert natives == set(BUILTINS) - {"telu"}


@pytest.mark.parametrize("spec", BUILTINS + USER_FORMULAS)
@EXAMPLES
@given(v=st.floats(-15, 15, allow_nan=False))
def test_expression_and_derivatives_match_torch_autograd(spec, v):
    act = _act(spec)
    p = derive(act)
    assume(not _near_breakpoint(p, v))
    y, g, h = _autograd(_torch_fn(act), v)
    for expr, ref in ((p.expr, y), (p.derivative, g), (p.second_derivative, h)):
        assert float(_np(expr)(v)) == pytest.approx(ref, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("spec", BUILTINS + USER_FORMULAS)
@EXAMPLES
@given(v=st.floats(-60, 60, allow_nan=False))
def test_no_sampled_slope_exceeds_lipschitz(spec, v):
    p = derive(_act(spec))
    lip = float(p.lipschitz)
    assert abs(float(_np(p.derivative)(v))) <= lip * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize("spec", BUILTINS + USER_FORMULAS)
def test_lipschitz_is_attained_or_approached_where_reported(spec):
    p = derive(_act(spec))
    lip, at = float(p.lipschitz), float(p.lipschitz_at)
    d = _np(p.derivative)
    if math.isinf(at):
        tail = abs(d(math.copysign(40.0, at)))
        assert tail == pytest.approx(lip, rel=1e-9) and not p.lipschitz_attained
    else:
        best = max(abs(d(at - 1e-9)), abs(d(at)), abs(d(at + 1e-9)))
        assert best == pytest.approx(lip, rel=1e-7)


@pytest.mark.parametrize("spec", BUILTINS + USER_FORMULAS)
@pytest.mark.parametrize("eps", [0.01, 0.001])
@EXAMPLES
@given(u=st.floats(1e-9, 300, allow_nan=False))
def test_past_the_saturation_threshold_slope_is_below_eps(spec, eps, u):
    act = _act(spec)
    p = derive(act, eps)
    d = _np(p.derivative)
    for side, sat in ((-1, p.saturation_left), (1, p.saturation_right)):
        if not sat.saturates:
            assert sat.threshold is None and sat.rate == "none"
            continue
        t = sat.threshold
        assert math.isfinite(t)
        assert abs(d(t + side * u)) < eps


@pytest.mark.parametrize("spec", BUILTINS + USER_FORMULAS)
def test_saturation_threshold_is_tight(spec):
    p = derive(_act(spec), 0.01)
    d = _np(p.derivative)
    for side, sat in ((-1, p.saturation_left), (1, p.saturation_right)):
        if sat.saturates:
            t = sat.threshold
            at_breakpoint = any(abs(t - float(b)) < 1e-12 for b in p.breakpoints)
            assert at_breakpoint or abs(d(t)) == pytest.approx(0.01, rel=1e-6)
            assert abs(d(t - side * 1e-6)) >= 0.01 * (1 - 1e-6)


def _one_sided(f, b: float, j: int, side: int) -> float:
    """j-th derivative of f at b from one side by a one-sided finite difference of f."""
    h = {0: 1e-9, 1: 1e-6, 2: 1e-4, 3: 2e-3}[j]
    pts = [b + side * (i + 1) * h for i in range(j + 1)]
    coef = [(-1) ** (j - i) * math.comb(j, i) for i in range(j + 1)]
    return float(sum(c * f(q) for c, q in zip(coef, pts))) / (side * h) ** j


@pytest.mark.parametrize("spec", BUILTINS + USER_FORMULAS + ["elu_alpha2"])
def test_smoothness_agrees_with_finite_differences(spec):
    act = A.get("elu", alpha=2.0) if spec == "elu_alpha2" else _act(spec)
    p = derive(act)
    f = _np(p.expr)
    if not p.breakpoints:
        assert p.smoothness == math.inf
        return
    k = p.smoothness
    assert k != math.inf and 0 <= k <= 2
    jumps = []
    for b in map(float, p.breakpoints):
        for j in range(k + 1):
            assert _one_sided(f, b, j, -1) == pytest.approx(_one_sided(f, b, j, +1), abs=1e-2)
        jumps.append(abs(_one_sided(f, b, k + 1, -1) - _one_sided(f, b, k + 1, +1)))
    assert max(jumps) > 0.1


@pytest.mark.parametrize("name, k", [("relu", 0), ("leaky_relu", 0), ("selu", 0), ("elu", 1), ("hardtanh", 0),
                                     ("sigmoid", math.inf), ("tanh", math.inf), ("gelu", math.inf)])
def test_smoothness_classes(name, k):
    assert derive(A.get(name)).smoothness == k


def test_elu_smoothness_depends_on_alpha():
    assert derive(A.get("elu", alpha=1.0)).smoothness == 1
    assert derive(A.get("elu", alpha=0.5)).smoothness == 0


def test_exact_lipschitz_constants():
    sig = derive(A.get("sigmoid"))
    assert sig.lipschitz == sp.Rational(1, 4) and isinstance(sig.lipschitz, sp.Rational)
    assert sig.lipschitz_exact and sig.lipschitz_at == 0 and sig.lipschitz_attained
    for name in ("tanh", "relu", "hardtanh", "leaky_relu", "elu"):
        p = derive(A.get(name))
        assert p.lipschitz == 1 and p.lipschitz_exact, name
    selu = derive(A.get("selu"))
    assert selu.lipschitz_exact and not selu.lipschitz_attained and selu.lipschitz_at == 0
    assert abs(sp.N(selu.lipschitz - A.SELU_LAMBDA * A.SELU_ALPHA, 35)) < 1e-30
    soft = derive(A.get("softplus"))
    assert soft.lipschitz == 1 and soft.lipschitz_at == sp.oo and not soft.lipschitz_attained


def test_numeric_lipschitz_constants():
    silu, gelu = derive(A.get("silu")), derive(A.get("gelu"))
    assert float(silu.lipschitz) == pytest.approx(1.0998393, abs=1e-6)
    assert not silu.lipschitz_exact and "lipschitz" in silu.numeric
    assert float(silu.lipschitz_at) == pytest.approx(2.3993573, abs=1e-6)
    # GELU: φ'' = φ_N(x)(2 − x²) vanishes at √2, so sup φ' = Φ(√2) + √2 φ_N(√2) in closed form.
    assert float(gelu.lipschitz) == pytest.approx(1.1289041, abs=1e-6)
    assert gelu.lipschitz_at == sp.sqrt(2) and gelu.lipschitz_exact


def test_silu_minimum_is_the_lambert_w_closed_form():
    p = derive(A.get("silu"))
    w = float(sp.LambertW(sp.exp(-1)))
    assert p.minimum is not None and p.minimum.exact and p.minimum.attained
    assert float(p.minimum.value) == pytest.approx(-w, abs=1e-12)
    assert float(p.minimum.at) == pytest.approx(-1 - w, abs=1e-12)
    assert float(p.minimum.value) == pytest.approx(-0.27846, abs=1e-5)
    assert float(p.range[0]) == pytest.approx(-w, abs=1e-12) and p.range[1] == sp.oo


def test_minimum_only_for_non_monotone():
    for name in ("sigmoid", "tanh", "selu", "elu", "softplus", "leaky_relu"):
        p = derive(A.get(name))
        assert p.monotonic == "strictly increasing" and p.minimum is None, name
    for name in ("relu", "hardtanh"):                       # φ′ = 0 on a half-line / outside [−1, 1]
        p = derive(A.get(name))
        assert p.monotonic == "non-decreasing" and p.minimum is None, name
    for name in ("silu", "gelu", "mish", "telu"):
        p = derive(A.get(name))
        assert p.monotonic == "not monotone" and p.minimum is not None and float(p.minimum.value) < 0, name
        assert abs(float(_np(p.derivative)(float(p.minimum.at)))) < 1e-8


def test_sigmoid_saturation_threshold():
    p = derive(A.get("sigmoid"), 0.01)
    s = (1 + math.sqrt(0.96)) / 2  # σ(1 − σ) = 0.01
    exact = math.log(s / (1 - s))
    assert p.saturation_right.threshold == pytest.approx(exact, abs=1e-9)
    assert p.saturation_left.threshold == pytest.approx(-exact, abs=1e-9)
    assert round(p.saturation_right.threshold, 4) == 4.5849
    assert p.saturation_left.rate == p.saturation_right.rate == "exponential"
    assert saturation_threshold(A.get("sigmoid"), 0.01) == (p.saturation_left.threshold, p.saturation_right.threshold)


def test_saturation_sides_and_dead_regions():
    relu = derive(A.get("relu"))
    assert relu.saturation_left.saturates and relu.saturation_left.threshold == 0
    assert not relu.saturation_right.saturates
    assert relu.dead_region == ((-sp.oo, 0),)
    hard = derive(A.get("hardtanh"))
    assert hard.dead_region == ((-sp.oo, -1), (1, sp.oo))
    assert (hard.saturation_left.threshold, hard.saturation_right.threshold) == (-1, 1)
    for name in ("sigmoid", "silu", "gelu", "leaky_relu", "elu"):
        assert derive(A.get(name)).dead_region == (), name
    assert not derive(A.get("leaky_relu")).saturation_left.saturates
    soft = derive(A.register_formula("x/(1+abs(x))"))
    assert soft.saturation_left.rate == soft.saturation_right.rate == "polynomial"
    assert soft.saturation_right.threshold == pytest.approx(9.0, abs=1e-9)  # 1/(1+x)² = 0.01


def test_values_limits_range_symmetry():
    sig = derive(A.get("sigmoid"))
    assert sig.f0 == sp.Rational(1, 2) and sig.df0 == sp.Rational(1, 4) and not sig.zero_centered
    assert sig.limits_f == (0, 1) and sig.limits_df == (0, 0)
    assert sig.range == (0, 1) and sig.range_attained == (False, False)
    assert sig.bounded_below and sig.bounded_above and sig.symmetry == "point"   # σ(−x) = 1 − σ(x)
    tanh = derive(A.get("tanh"))
    assert tanh.symmetry == "odd" and tanh.zero_centered and tanh.range == (-1, 1)
    assert derive(A.get("hardtanh")).symmetry == "odd"
    relu = derive(A.get("relu"))
    assert relu.df0 is None  # f' jumps at 0
    assert relu.limits_f == (0, sp.oo) and relu.bounded_below and not relu.bounded_above
    assert derive(A.get("softplus")).f0 == sp.log(2)
    erf = derive(A.register_formula("x*erf(x)"))
    assert erf.symmetry == "even" and erf.minimum.value == 0 and erf.minimum.at == 0
    assert erf.lipschitz_exact and erf.lipschitz == sp.erf(1) + 2 * sp.exp(-1) / sp.sqrt(sp.pi)
    odd = derive(A.register_formula("x/(1+abs(x))"))
    assert odd.symmetry == "odd" and odd.smoothness == 1 and odd.lipschitz == 1 and odd.lipschitz_at == 0


def test_user_softplus_matches_builtin():
    user, builtin = derive(A.register_formula("log(1+exp(x))")), derive(A.get("softplus"))
    for field in ("f0", "df0", "limits_f", "limits_df", "range", "lipschitz", "lipschitz_at", "monotonic",
                  "smoothness", "saturation_left", "saturation_right"):
        assert getattr(user, field) == getattr(builtin, field), field


def test_discontinuous_formula():
    p = derive(A.register_formula("where(x<0, 0, 1)"))
    assert p.smoothness == -1 and p.lipschitz == sp.oo and p.monotonic == "non-decreasing" and p.df0 is None


def test_to_json_keys_and_infinities():
    for name in BUILTINS:
        j = to_json(derive(A.get(name)))
        json.dumps(j, allow_nan=False)
        for key in ("name", "formula", "derivative", "f0", "df0", "limits", "range", "minimum", "monotonic",
                    "zero_centered", "bounded", "lipschitz", "lipschitz_exact", "lipschitz_at", "smoothness",
                    "saturation", "dead_region", "symmetry", "numeric"):
            assert key in j, (name, key)
    relu = to_json(derive(A.get("relu")))
    assert relu["range"] == [0.0, "inf"] and relu["limits"]["f"] == [0.0, "inf"]
    assert relu["dead_region"] == [["-inf", 0.0]] and relu["smoothness"] == 0 and relu["df0"] is None
    assert to_json(derive(A.get("softplus")))["lipschitz_at"] == "inf"
    sig = to_json(derive(A.get("sigmoid")))
    assert sig["smoothness"] == "inf" and sig["lipschitz"] == 0.25 and sig["lipschitz_expr"] == "1/4"


def test_cache_and_eps_validation():
    a = A.get("tanh")
    assert derive(a) is derive(a) and derive(a, 0.001) is not derive(a)
    for bad in (0, -1, float("nan"), float("inf"), "abc"):
        with pytest.raises(ValueError):
            derive(a, bad)
