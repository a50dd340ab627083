"""The activation registry: every activation is one sympy expression in the real symbol ``x``.

Theory derives every property from ``Activation.expr``; the experiment builds its torch module from
``Activation.torch_op`` (a native torch function, named by dotted path so that this package never
imports torch) or, where there is none, compiles ``expr`` itself (``empirical.models``).

User formulas (``register_formula("x*erf(x)")``) are parsed by ``theory.formula``: an allow-list
of symbols, numbers, arithmetic and functions, never ``eval``.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

import sympy as sp

from theory.formula import FormulaError, parse_formula, x

__all__ = [
    "Activation", "UnknownActivation", "FormulaError", "x",
    "get", "names", "all_activations", "register", "register_formula", "resolve",
    "breakpoints", "SELU_LAMBDA", "SELU_ALPHA",
]

SELU_ALPHA = sp.Float("1.6732632423543772848170429916717", 40)
SELU_LAMBDA = sp.Float("1.0507009873554804934193349852946", 40)


class UnknownActivation(ValueError):
    """An activation name that is not in the registry."""


@dataclass(frozen=True)
class Activation:
    """One activation φ(x).

    ``expr`` is φ with its parameters substituted; ``params`` holds their values;
    ``torch_op`` is ``(dotted path, kwargs)`` of the equivalent native torch function, or None
    when the expression must be compiled.
    """

    name: str
    expr: sp.Expr
    params: tuple[tuple[str, float], ...] = ()
    aliases: tuple[str, ...] = ()
    torch_op: tuple[str, tuple[tuple[str, float], ...]] | None = None
    formula: str = ""
    user: bool = False

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={v:g}" for k, v in self.params) + ")"

    @property
    def derivative(self) -> sp.Expr:
        return sp.diff(self.expr, x)

    def numpy(self, order: int = 0) -> Callable:
        """φ^(order) as a vectorised numpy function (scipy for erf)."""
        return _lambdify(self.expr, order)

    def breakpoints(self) -> tuple[float, ...]:
        return breakpoints(self.expr)


@dataclass(frozen=True)
class _Spec:
    name: str
    build: Callable[..., sp.Expr]
    defaults: Mapping[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    torch: Callable[..., tuple[str, dict] | None] | None = None
    formula: str = ""


def _pw(*pieces):
    return sp.Piecewise(*pieces)


def _relu(**_):
    return _pw((0, x < 0), (x, True))


def _leaky(a):
    return _pw((a * x, x < 0), (x, True))


def _elu(alpha):
    return _pw((alpha * (sp.exp(x) - 1), x < 0), (x, True))


def _selu(**_):
    return SELU_LAMBDA * _pw((SELU_ALPHA * (sp.exp(x) - 1), x < 0), (x, True))


def _hardtanh(**_):
    return _pw((-1, x < -1), (x, x <= 1), (1, True))


def _silu(beta):
    return x / (1 + sp.exp(-beta * x))


def _softplus(beta):
    return sp.log(1 + sp.exp(beta * x)) / beta


_F = "torch.nn.functional."
_SPECS: list[_Spec] = [
    _Spec("relu", _relu, torch=lambda: (_F + "relu", {}), formula="max(0, x)"),
    _Spec("leaky_relu", _leaky, {"a": 0.01}, ("lrelu", "leakyrelu"),
          torch=lambda a: (_F + "leaky_relu", {"negative_slope": a}), formula="x if x >= 0 else a·x"),
    _Spec("sigmoid", lambda **_: 1 / (1 + sp.exp(-x)), aliases=("logistic",),
          torch=lambda: ("torch.sigmoid", {}), formula="1/(1+exp(-x))"),
    _Spec("tanh", lambda **_: sp.tanh(x), torch=lambda: ("torch.tanh", {}), formula="tanh(x)"),
    _Spec("silu", _silu, {"beta": 1.0}, ("swish",),
          torch=lambda beta: (_F + "silu", {}) if beta == 1 else None, formula="x·sigmoid(βx)"),
    _Spec("selu", _selu, torch=lambda: (_F + "selu", {}), formula="λ·(x if x >= 0 else α(eˣ−1))"),
    _Spec("elu", _elu, {"alpha": 1.0}, torch=lambda alpha: (_F + "elu", {"alpha": alpha}),
          formula="x if x >= 0 else α(eˣ−1)"),
    _Spec("gelu", lambda **_: x / 2 * (1 + sp.erf(x / sp.sqrt(2))),
          torch=lambda: (_F + "gelu", {}), formula="x·Φ(x) = x/2·(1+erf(x/√2))"),
    _Spec("softplus", _softplus, {"beta": 1.0},
          torch=lambda beta: (_F + "softplus", {"beta": beta}), formula="log(1+exp(βx))/β"),
    _Spec("mish", lambda **_: x * sp.tanh(sp.log(1 + sp.exp(x))), torch=lambda: (_F + "mish", {}),
          formula="x·tanh(softplus(x))"),
    _Spec("telu", lambda **_: x * sp.tanh(sp.exp(x)), formula="x·tanh(eˣ)"),
    _Spec("hardtanh", _hardtanh, torch=lambda: (_F + "hardtanh", {}), formula="clip(x, −1, 1)"),
]
_BUILTIN = {s.name: s for s in _SPECS}
_USER: dict[str, Activation] = {}


def _alias_table() -> dict[str, str]:
    table = {}
    for s in _SPECS:
        table[s.name] = s.name
        for a in s.aliases:
            table[a] = s.name
    for a in _USER.values():
        table[a.name] = a.name
    return table


def _normalise(name: str) -> str:
    key = " ".join(name.split())
    return key if key in _USER else key.lower().replace("-", "_")


def resolve(name: str) -> str:
    """Canonical name for ``name`` or an alias; raises UnknownActivation with a close match."""
    table = _alias_table()
    key = _normalise(name)
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UnknownActivation(
        f"unknown activation '{name}'{hint}; allowed: {', '.join(names())}"
        " or a formula in x such as 'x*erf(x)'"
    )


def names() -> list[str]:
    return [s.name for s in _SPECS] + list(_USER)


def get(name: str, **params: float) -> Activation:
    """The activation ``name`` (or alias) with parameters overriding its defaults."""
    canon = resolve(name)
    if canon in _USER:
        if params:
            raise ValueError(f"activation '{canon}' takes no parameters; got {sorted(params)}")
        return _USER[canon]
    return _cached(canon, tuple(sorted(params.items())))


_CACHE: dict = {}


def _cached(canon: str, items: tuple) -> Activation:
    key = (canon, items)
    if key not in _CACHE:
        spec = _BUILTIN[canon]
        unknown = set(dict(items)) - set(spec.defaults)
        if unknown:
            allowed = ", ".join(spec.defaults) or "none"
            raise ValueError(f"activation '{canon}' has no parameter {sorted(unknown)}; allowed: {allowed}")
        values = {**spec.defaults, **dict(items)}
        for k, v in values.items():
            if not (isinstance(v, (int, float)) and float(v) == float(v) and abs(float(v)) != float("inf")):
                raise ValueError(f"parameter {k} of '{canon}' must be a finite number, got {v!r}")
        values = {k: float(v) for k, v in values.items()}
        if canon == "silu" and values["beta"] <= 0 or canon == "softplus" and values["beta"] <= 0:
            raise ValueError(f"parameter beta of '{canon}' must be > 0, got {values['beta']}")
        sym_values = {k: sp.nsimplify(v) for k, v in values.items()}
        expr = spec.build(**sym_values)
        torch_op = spec.torch(**values) if spec.torch else None
        if torch_op is not None:
            torch_op = (torch_op[0], tuple(sorted(torch_op[1].items())))
        _CACHE[key] = Activation(
            name=canon, expr=expr, params=tuple(values.items()), aliases=spec.aliases,
            torch_op=torch_op, formula=spec.formula,
        )
    return _CACHE[key]


def all_activations() -> list[Activation]:
    return [get(n) for n in names()]


def register(act: Activation) -> Activation:
    """Add a user activation to the registry (its name must be new)."""
    if act.name in _alias_table():
        raise ValueError(f"activation name '{act.name}' is already registered")
    _USER[act.name] = act
    return act


def register_formula(formula: str, name: str | None = None, replace: bool = True) -> Activation:
    """Parse a user formula (allow-list only), register it and return it.

    The name defaults to the formula itself, so ``get("x*erf(x)")`` finds it again.
    """
    expr = parse_formula(formula)
    check_domain(expr, formula)
    key = _normalise(name) if name else " ".join(formula.split())
    if key in _USER and replace:
        del _USER[key]
    if key in _alias_table():
        raise ValueError(f"name '{key}' is already a built-in activation or alias; choose another name")
    return register(Activation(name=key, expr=expr, formula=formula.strip(), user=True))


def lookup(spec: str) -> Activation:
    """A registry name/alias, else a user formula (registered on the fly)."""
    key = _normalise(spec)
    table = _alias_table()
    if key in table:
        return get(key)
    if spec.strip() == "x" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", spec.strip()):
        return register_formula(spec)
    resolve(spec)
    raise AssertionError


def check_domain(expr: sp.Expr, text: str = "") -> None:
    """Raise FormulaError unless ``expr`` is finite and real on the whole real line.

    Two tests: sympy's singularities of each smooth piece that lie where that piece is in force
    (``where(x < 1, x, 1 + log(x))`` is fine: log's singularity at 0 is guarded), and evaluation on
    a grid that includes 0, ±1 and the breakpoints — in floating point, and where that overflows
    (``sigmoid(1000*x)`` at x = −30) with 30-digit arithmetic, so overflow is not read as undefined.
    """
    import numpy as np

    label = text or str(expr)
    pieces = [(a, c) for a, c in expr.args] if isinstance(expr, sp.Piecewise) else [(expr, sp.true)]
    earlier = []
    for piece, cond in pieces:
        active = sp.And(cond, *[sp.Not(c) for c in earlier]) if earlier else cond
        earlier.append(cond)
        if piece.has(sp.Piecewise):
            continue
        try:
            sing = _singularities(piece)
        except (NotImplementedError, TypeError, ValueError):
            continue
        if sing is None or sing in (sp.S.EmptySet,) or isinstance(sing, sp.ConditionSet):
            continue
        pts = list(sing) if isinstance(sing, sp.FiniteSet) else None
        if pts is not None:
            pts = [p for p in pts if p.is_real and any(_holds(active, p + d) for d in (0, -1e-9, 1e-9))]
            if not pts:
                continue
            sing = sp.FiniteSet(*pts)
        raise FormulaError(
            f"formula {label!r} is singular at x in {sing}; an activation must be finite on every real x")
    grid = np.concatenate([np.linspace(-30, 30, 6001), [0.0, 1.0, -1.0], breakpoints(expr)])
    try:
        f = sp.lambdify(x, expr, modules=["scipy", "numpy"])
        with np.errstate(all="ignore"):
            vals = np.asarray(f(grid), dtype=float) * np.ones_like(grid)
    except Exception:  # noqa: BLE001 - any failure here means the formula cannot be evaluated
        raise FormulaError(f"formula {label!r} cannot be evaluated numerically") from None
    for at in grid[~np.isfinite(vals)][:200]:
        v = _timed_evalf(expr, float(at))
        if v is None or not (v.is_real and v.is_finite) and not (abs(sp.im(v)) < 1e-20 and sp.re(v).is_finite):
            raise FormulaError(
                f"formula {label!r} is not finite and real at x = {at:g}; an activation must be defined on every real x")


def _singularities(piece: sp.Expr):
    return sp.singularities(piece, x, sp.S.Reals)


def _holds(cond, point) -> bool:
    if cond in (True, sp.true):
        return True
    try:
        return bool(cond.subs(x, point))
    except TypeError:
        return True


def _timed_evalf(expr: sp.Expr, at: float):
    try:
        v = expr.subs(x, sp.Float(at, 30)).evalf(30)
    except Exception:  # noqa: BLE001
        return None
    return v if v.is_number else None


def breakpoints(expr: sp.Expr) -> tuple[float, ...]:
    """Real points where a Piecewise condition of ``expr`` changes (sorted floats)."""
    pts: set[float] = set()
    expr = sp.piecewise_fold(expr)
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            for rel in _relations(cond):
                diff = sp.simplify(rel.lhs - rel.rhs)
                if not diff.has(x):
                    continue
                try:
                    sols = sp.solve(sp.Eq(diff, 0), x)
                except NotImplementedError:
                    continue
                for s in sols:
                    if s.is_real:
                        pts.add(float(s))
    return tuple(sorted(pts))


def _relations(cond) -> list:
    if isinstance(cond, sp.core.relational.Relational):
        return [cond]
    if isinstance(cond, (sp.And, sp.Or, sp.Not)):
        out = []
        for a in cond.args:
            out.extend(_relations(a))
        return out
    return []


def _lambdify(expr: sp.Expr, order: int) -> Callable:
    import numpy as np
    from scipy import special

    e = sp.diff(expr, x, order) if order else expr
    f = sp.lambdify(x, e, modules=[{"erf": special.erf, "erfc": special.erfc}, "numpy"])

    def g(v):
        v = np.asarray(v, dtype=float)
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(f(v), dtype=float), v.shape).copy()

    return g
