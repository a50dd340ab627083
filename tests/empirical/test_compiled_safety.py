"""Compiled activations are numerically safe: finite values and gradients over [-1e4, 1e4] in float32 and
float64 wherever the exact function and derivative are representable, matching them (mpmath reference)."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

from empirical.models import compile_expr
from theory import activations as registry

FORMULAS = [
    "where(x < 0, x, sqrt(1 + x) - 1)",
    "where(x < 0, exp(x) - 1, x)",
    "where(x > 0, x, exp(x) - 1)",
    "x*tanh(exp(x))",
    "log(1 + exp(x))",
    "x*sigmoid(x)",
    "x/(1 + abs(x))",
    "x*erf(x)",
    "min(max(x, -1), 1)",
    "x*exp(-x**2)",
    "where(x < -1, -1, where(x > 1, 1 + log(x), x))",
    "x*tanh(softplus(x))",
]
GRID = np.unique(np.concatenate([np.linspace(-5, 5, 41), -np.logspace(-3, 4, 36), np.logspace(-3, 4, 36),
                                 [88.0, 89.0, 90.0, 700.0, 710.0, 720.0, -88.0, -89.0, -90.0, -710.0]]))


def _cases():
    out = [(a.name, a.expr) for a in registry.all_activations() if not a.user]
    out += [(f, registry.lookup(f).expr) for f in FORMULAS]
    return out


CASES = _cases()


def _reference(expr):
    f = sp.lambdify(registry.x, expr, modules="mpmath")
    d = sp.lambdify(registry.x, sp.diff(expr, registry.x), modules="mpmath")
    kinks = set(registry.breakpoints(expr))

    def at(v):
        with mpmath.workdps(40):
            return float(f(mpmath.mpf(v))), float(d(mpmath.mpf(v)))
    return at, kinks


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name, expr", CASES, ids=[c[0] for c in CASES])
def test_compiled_values_and_gradients_are_finite_and_exact(name, expr, dtype):
    ref, kinks = _reference(expr)
    fmax = torch.finfo(dtype).max
    fn = compile_expr(expr)
    t = torch.tensor(GRID, dtype=dtype, requires_grad=True)
    y = fn(t)
    (g,) = torch.autograd.grad(y.sum(), t)
    rtol = 2e-4 if dtype == torch.float32 else 1e-9
    checked = 0
    for xv, yv, gv in zip(t.detach().tolist(), y.detach().tolist(), g.tolist()):
        if any(abs(xv - k) < 1e-9 for k in kinks):
            continue
        try:
            fv, dv = ref(xv)
        except (OverflowError, ValueError, ZeroDivisionError):
            continue
        if not (math.isfinite(fv) and math.isfinite(dv)) or abs(fv) > fmax / 4 or abs(dv) > fmax / 4:
            continue  # the exact value itself is not representable in this precision
        assert math.isfinite(yv) and math.isfinite(gv), (name, xv, yv, gv)
        tol_f = rtol * max(1.0, abs(fv)) * max(1.0, abs(xv)) ** (0.5 if dtype == torch.float32 else 0)
        tol_d = rtol * max(1.0, abs(dv)) * max(1.0, abs(xv)) ** (0.5 if dtype == torch.float32 else 0)
        assert abs(yv - fv) <= tol_f, (name, "value", xv, yv, fv)
        assert abs(gv - dv) <= tol_d, (name, "derivative", xv, gv, dv)
        checked += 1
    assert checked >= 50


def test_unselected_branch_never_leaks_nan_into_the_gradient():
    fn = compile_expr(registry.lookup("where(x < 0, x, sqrt(1 + x) - 1)").expr)
    t = torch.tensor([-1e4, -5.0, -1.0, -0.5, 0.0, 3.0], requires_grad=True)
    (g,) = torch.autograd.grad(fn(t).sum(), t)
    assert torch.isfinite(g).all()
    assert g[:4].tolist() == [1.0, 1.0, 1.0, 1.0]


def test_telu_gradient_is_finite_past_exp_overflow():
    fn = compile_expr(registry.lookup("telu").expr)
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor([89.0, 100.0, 1e4, 800.0], dtype=dtype, requires_grad=True)
        (g,) = torch.autograd.grad(fn(t).sum(), t)
        assert g.tolist() == [1.0] * 4
