"""``python -m theory``: the derived properties of every registered activation, or mean-field numbers.

    python -m theory                          # table of properties of all built-in activations
    python -m theory --json                   # the same as a JSON list (one object per activation)
    python -m theory --activation relu --formula "x*erf(x)" --eps 0.001
    python -m theory --long                   # one block per activation, with f' and f''
    python -m theory meanfield --sigma-w2 2 --sigma-b2 0.1 [--json]
    python -m theory meanfield --critical --sigma-b2 0.3 [--q0 1] [--json]

Bad input (unknown activation, bad formula, bad number) prints one line "error: ..." on stderr and
exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import sympy as sp

from theory import activations as A


class _CliError(Exception):
    """Bad user input: printed as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block
        raise _CliError(f"{message} (see 'python -m theory --help')")


def _number(lower: float, inclusive: bool):
    rel = ">=" if inclusive else ">"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v < lower or (v == lower and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {rel} {lower:g}, got {text!r}")
        return v

    parse.__name__ = "number"
    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m theory", description="Derived properties of activation functions.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--activation", "-a", action="append", default=[], metavar="NAME",
                   help="only this activation (repeatable); default: all registered")
    p.add_argument("--formula", "-f", action="append", default=[], metavar="EXPR",
                   help="add a user formula in x, e.g. 'x*erf(x)' (repeatable)")
    p.add_argument("--eps", type=_number(0.0, False), default=0.01,
                   help="saturation level: threshold where |f'| < eps for good (default 0.01)")
    p.add_argument("--long", action="store_true", help="one block per activation, with f' and f''")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    m = sub.add_parser("meanfield", help="mean-field q*, chi1, depth scales (or critical sigma_w2)")
    m.add_argument("--sigma-w2", type=_number(0.0, False), default=None,
                   help="weight variance sigma_w^2 (> 0)")
    m.add_argument("--sigma-b2", type=_number(0.0, True), default=0.0,
                   help="bias variance sigma_b^2 (>= 0, default 0)")
    m.add_argument("--critical", action="store_true",
                   help="the edge of chaos: every sigma_w2 with chi1(q*) = 1 at this sigma_b2, with q*, L'(q*), "
                        "its kind and whether a network started at --q0 reaches it")
    m.add_argument("--q0", type=_number(0.0, False), default=1.0,
                   help="variance of the first layer's pre-activations the iteration starts from (> 0, default 1)")
    m.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    m.add_argument("--activation", "-a", action="append", metavar="NAME", default=argparse.SUPPRESS)
    m.add_argument("--formula", "-f", action="append", metavar="EXPR", default=argparse.SUPPRESS)
    return p


def _activations(names: list[str], formulas: list[str]) -> list[A.Activation]:
    acts = [A.lookup(n) for n in names] if names else A.all_activations()
    acts += [A.register_formula(f) for f in formulas]
    seen, out = set(), []
    for a in acts:
        if a.name not in seen:
            seen.add(a.name)
            out.append(a)
    return out


# -------------------------------------------------------------------------------------- formatting

def _fmt(v, exact: bool = True) -> str:
    if v is None:
        return "—"
    f = float(sp.N(v)) if not isinstance(v, (int, float)) else float(v)
    if math.isnan(f):
        return "—"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    s = sp.sstr(v) if exact and not isinstance(v, (int, float)) else ""
    if not (s and len(s) <= 6 and not v.has(sp.Float)):
        s = f"{f:.5g}"
    return s if exact else "~" + s


def _name(a: A.Activation) -> str:
    s = a.formula if a.user else a.label
    return s if len(s) <= 20 else s[:19] + "…"


def _range(p) -> str:
    lo, hi = p.range
    exact = "range" not in p.numeric
    left = "[" if p.range_attained[0] else "("
    right = "]" if p.range_attained[1] else ")"
    return f"{left}{_fmt(lo, exact)}, {_fmt(hi, exact)}{right}"


def _at(v, attained: bool) -> str:
    s = _fmt(v, True)
    return s if attained else "→" + s


def _sat(s, dead, side: str) -> str:
    if not s.saturates:
        return "no"
    t = s.threshold
    if t is None or math.isinf(float(t)):
        return "everywhere"
    rate = {"exponential": "exp", "polynomial": "poly"}.get(s.rate, s.rate)
    if any(math.isinf(float(a)) or math.isinf(float(b)) for a, b in dead):
        if any(float(t) in (float(a), float(b)) for a, b in dead):
            rate = "dead"
    return f"{rate} x{side}{_fmt(t)}"


def _smooth(k, at_least: bool = False) -> str:
    return "Cinf" if k == math.inf else "disc" if k < 0 else (">=" if at_least else "") + f"C{int(k)}"


_COLS = ("activation", "f(0)", "f'(0)", "range", "argmin", "mono", "sym",
         "Lipschitz", "at", "C^k", "sat. left", "sat. right")


def _row(a: A.Activation, p) -> list[str]:
    return [
        _name(a), _fmt(p.f0), _fmt(p.df0), _range(p),
        _fmt(p.minimum.at, p.minimum.exact) if p.minimum else "—",
        {"strictly increasing": "inc", "non-decreasing": "nondec", "strictly decreasing": "dec",
         "non-increasing": "noninc"}.get(p.monotonic, "no"),
        {"none": "—"}.get(p.symmetry, p.symmetry),
        _fmt(p.lipschitz, p.lipschitz_exact), _at(p.lipschitz_at, p.lipschitz_attained),
        _smooth(p.smoothness, p.smoothness_at_least), _sat(p.saturation_left, p.dead_region, "<"), _sat(p.saturation_right, p.dead_region, ">"),
    ]


def _table(header, rows) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _legend(eps: float) -> str:
    return (f"~ numeric (no closed form found); — undefined or none (f'(0): f' jumps at 0);\n"
            f"range: [ attained, ( not; Lipschitz = sup|f'|, at: where attained (→x: approached only);\n"
            f"sat.: f' → 0 on that side at an exp/poly rate, |f'| < {eps:g} for good past the x shown "
            f"(dead: f' = 0 exactly there)")


def _block(a: A.Activation, p) -> str:
    dead = ", ".join(f"({_fmt(lo)}, {_fmt(hi)})" for lo, hi in p.dead_region) or "—"
    rows = [
        ("f(x)", p.formula), ("expr", sp.sstr(p.expr)), ("f'(x)", p.derivative_str),
        ("f''(x)", p.second_derivative_str),
        ("f(0), f'(0)", f"{_fmt(p.f0)}, {_fmt(p.df0)}"),
        ("limits f", f"{_fmt(p.limits_f[0])} (x→-inf), {_fmt(p.limits_f[1])} (x→+inf)"),
        ("limits f'", f"{_fmt(p.limits_df[0])} (x→-inf), {_fmt(p.limits_df[1])} (x→+inf)"),
        ("range", _range(p)),
        ("minimum", "—" if p.minimum is None else
         f"{_fmt(p.minimum.value, p.minimum.exact)} at x = {_fmt(p.minimum.at, p.minimum.exact)}"
         + (f"  [{sp.sstr(p.minimum.value)}]" if p.minimum.exact and p.minimum.value.has(sp.LambertW) else "")),
        ("monotonic", p.monotonic),
        ("symmetry", {"point": "point-symmetric about (0, f(0))"}.get(p.symmetry, p.symmetry)),
        ("zero-centred", f"{'takes both signs' if p.zero_centered else 'one sign only'}; E[f(u)] = {_fmt(p.mean_output)}"
         " (u ~ N(0,1))"),
        ("Lipschitz", f"{_fmt(p.lipschitz, p.lipschitz_exact)}"
         + (" on " + ", ".join(f"({_fmt(a)}, {_fmt(b)})" for a, b in p.lipschitz_on) if p.lipschitz_on else "")
         + (f" = {sp.sstr(p.lipschitz)}" if p.lipschitz_exact and p.lipschitz.is_finite
            and sp.sstr(p.lipschitz) != _fmt(p.lipschitz) and len(sp.sstr(p.lipschitz)) < 60 else "") + f" at x = {_at(p.lipschitz_at, p.lipschitz_attained)}"),
        ("sup|f''|", f"{_fmt(p.curvature, p.curvature_exact)} at x = {_fmt(p.curvature_at)}"),
        ("smoothness", _smooth(p.smoothness, p.smoothness_at_least) + (" (numeric)" if p.smoothness_at_least else "")),
        ("TeLU paper", f"near-identity right: {p.near_identity_rate if p.near_identity_right else 'no'}; "
         f"|f'(-3)| = {_fmt(p.grad_at_minus3)}, |f'(-5)| = {_fmt(p.grad_at_minus5)}; "
         f"sup|f - relu| = {_fmt(p.relu_distance)}; analytic: {'yes' if p.analytic else 'no'}"),
        ("saturation", f"left: {_sat(p.saturation_left, p.dead_region, '<')}; right: {_sat(p.saturation_right, p.dead_region, '>')}"
         f" (|f'| < {p.eps:g})"),
        ("dead region", dead), ("numeric", ", ".join(p.numeric) or "—"),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join([f"== {_name(a)}", *(f"  {k.ljust(w)}  {v}" for k, v in rows)])


# ------------------------------------------------------------------------------------------ commands

def _properties(args, acts: list[A.Activation]) -> str:
    from theory.properties import derive, to_json

    props = [(a, derive(a, args.eps)) for a in acts]
    if args.json:
        return json.dumps([to_json(p) for _, p in props], indent=1)
    if args.long:
        return "\n\n".join(_block(a, p) for a, p in props)
    return _table(_COLS, [_row(a, p) for a, p in props]) + "\n\n" + _legend(args.eps)


_KIND_TEXT = {"critical": "critical", "critical-unstable": "critical, unstable (not reached)",
              "q-infinity-limit": "q* -> inf limit (chi1 -> 1 only asymptotically)", "none": "none"}


def _meanfield(args, acts: list[A.Activation]) -> str:
    from theory import meanfield as M

    as_json = getattr(args, "json", False)
    num = lambda v: "—" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else f"{v:.5g}"  # noqa: E731
    if args.critical:
        rows = [(a, M.edge_of_chaos(a, args.sigma_b2, args.q0), M.critical_sigma_w2(a, args.sigma_b2, args.q0))
                for a in acts]
        if as_json:
            return json.dumps([{"activation": a.name, "sigma_b2": args.sigma_b2, "q0": args.q0,
                                "critical_sigma_w2": _j(v), "edges": [e.to_json() for e in edges]}
                               for a, edges, v in rows], indent=1)
        lines = []
        for a, edges, v in rows:
            for e in edges:
                reached = "yes" if e.reached_from_q0 else "no"
                lines.append((_name(a), f"{args.sigma_b2:g}", "—" if math.isnan(e.sigma_w2) else f"{e.sigma_w2:.8g}",
                              num(e.q_star), num(e.chi1), num(e.stability), _KIND_TEXT[e.kind],
                              reached if e.kind != "none" else "—"))
        head = f"edge of chaos chi1(q*) = 1; reached: from q0 = {args.q0:g}\n"
        legend = ("\nL'(q*): slope of the length map at q* (< 1 stable); the critical sigma_w2 a network "
                  "reaches is the smallest reached 'critical', else a reached limit")
        return head + _table(("activation", "sigma_b2", "sigma_w2", "q*", "chi1", "L'(q*)", "kind", "reached"),
                             lines) + legend
    res = [(a, M.summary(a, args.sigma_w2, args.sigma_b2, args.q0)) for a in acts]
    if as_json:
        return json.dumps([r.to_json() for _, r in res], indent=1)
    rows = [(_name(a), num(r.q_star), num(r.chi1), num(r.chi_q), num(r.c_star), num(r.chi_c),
             num(r.xi_q), num(r.xi_c), r.phase) for a, r in res]
    head = f"sigma_w2 = {args.sigma_w2:g}, sigma_b2 = {args.sigma_b2:g}, q0 = {args.q0:g}\n"
    legend = ("\nchi_q = L'(q*); c* = stable fixed point of the correlation map (1 when ordered), "
              "chi_c = its slope there; xi = -1/log chi (inf at the edge of chaos)")
    return head + _table(("activation", "q*", "chi1", "chi_q", "c*", "chi_c(c*)", "xi_q", "xi_c", "phase"),
                         rows) + legend


def _j(v: float):
    return None if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else v


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "meanfield" and not args.critical and args.sigma_w2 is None:
            raise _CliError("meanfield needs --sigma-w2 S (a finite number > 0), or --critical")
        acts = _activations(getattr(args, "activation", None) or [], getattr(args, "formula", None) or [])
    except (_CliError, ValueError) as exc:  # ValueError: FormulaError, UnknownActivation, bad parameters
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    print(_meanfield(args, acts) if args.command == "meanfield" else _properties(args, acts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
