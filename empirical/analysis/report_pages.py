"""The report's Markdown: activation pages, mean-field tables, study pages and the predictions page, as strings.

Pure builders: theory numbers come from ``theory`` (``activation_entry``, ``build_theory`` writes the theory
bundle and its figures into a folder), results from ``results_schema``, figures from ``figures``. The mkdocs
hook (``docs_hooks/actlab.py``) only caches what these build and serves it.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import sympy as sp

from empirical.analysis import figures as plots
from empirical.analysis.markup import subscripts
from empirical.analysis.report_findings import figure_anchor
from empirical.analysis.results_schema import activation_order, prediction_files, read_csv, variant_labels
from theory import init as init_table

REPO = Path(__file__).resolve().parents[2]
SIGMA_W2_MIN, SIGMA_W2_MAX, SIGMA_W2_POINTS = 0.05, 4.0, 48
SIGMA_B2_VALUES = (0.0, 0.05)          # one χ₁/q* figure per bias variance
# σ_w² of common initialisations (square layers), for the mean-field table on each activation's page.
STANDARD_SIGMA_W2 = tuple((label, init_table.sigmas(scheme, 1, 1)[0])
                          for label, scheme in (("PyTorch default", "default"), ("LeCun / Xavier", "xavier"),
                                                ("He", "he")))


# ---------------------------------------------------------------------------------------------
# Theory: derived numbers and figures for every activation.

def _latex(expr) -> str:
    import sympy as sp

    expr = sp.sympify(expr)
    floats = {f: sp.Float(f, 6) for f in expr.atoms(sp.Float)}
    return sp.latex(expr.xreplace(floats) if floats else expr)


def _jsonable(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {k: _jsonable(w) for k, w in dataclasses.asdict(v).items()}
    if isinstance(v, dict):
        return {str(k): _jsonable(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(w) for w in v]
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, int):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else ("inf" if f > 0 else "-inf" if f < 0 else None)


def ex(v, digits: int = 4) -> str:
    """An exact sympy value as Markdown math: integers and simple fractions as they are, other
    closed forms with their decimal value (``≈``), floats to ``digits`` significant figures."""
    import sympy as sp

    if v is None:
        return "—"
    v = sp.sympify(v)
    if v is sp.oo:
        return r"$\infty$"
    if v is -sp.oo:
        return r"$-\infty$"
    if v.is_Float:
        return fmt(float(v), digits)
    if v.is_Integer or (v.is_Rational and v.q <= 1000):
        return f"${sp.latex(v)}$"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return f"${_latex(v)}$"
    return f"${_latex(v)}$ ≈ {fmt(f, digits)}"


def _interval(lo, hi, closed=(False, False)) -> str:
    return ("[" if closed[0] else "(") + f"{_bare(lo)}, {_bare(hi)}" + ("]" if closed[1] else ")")


def _bare(v) -> str:
    """ex() without the surrounding $…$ and ≈ part, for use inside an interval."""
    import sympy as sp

    v = sp.sympify(v)
    if v is sp.oo:
        return "∞"
    if v is -sp.oo:
        return "−∞"
    try:
        return fmt(float(v))
    except (TypeError, ValueError):
        return str(v)


def _side_x(v) -> str:
    b = _bare(v)
    return f"x → {b}" if b in ("∞", "−∞") else f"x = {b}"


def property_rows(p) -> list[list[str]]:
    """The property table of one ``theory.properties.Properties`` as Markdown rows.

    Entries computed numerically (``p.numeric``) are marked †.
    """
    num = set(p.numeric)
    dag = lambda *keys: " †" if any(k in num for k in keys) else ""  # noqa: E731
    rows = [["φ(0)", ex(p.f0)],
            ["φ′(0)", ex(p.df0) if p.df0 is not None else "undefined (φ′ jumps at 0)"],
            ["φ as x → −∞ and x → +∞", f"{ex(p.limits_f[0])} and {ex(p.limits_f[1])}"],
            ["φ′ as x → −∞ and x → +∞", f"{ex(p.limits_df[0])} and {ex(p.limits_df[1])}"],
            ["range", _interval(*p.range, closed=p.range_attained) + dag("range")]]
    if p.minimum is not None:
        m = p.minimum
        rows.append(["minimum", f"{ex(m.value)} at {_side_x(m.at)}" + ("" if m.attained else " (not attained)")
                     + dag("minimum")])
    else:
        rows.append(["minimum", "none (no interior minimum)"])
    rows += [["monotonic", p.monotonic + dag("monotonic")],
             ["zero-centred (takes both signs)", fmt(bool(p.zero_centered))],
             ["mean output E[φ(u)], u ~ N(0, 1)", fmt(float(p.mean_output))],
             ["symmetry", {"point": "point-symmetric about (0, φ(0))"}.get(p.symmetry, p.symmetry)
              + dag("symmetry")],
             ["bounded", {(True, True): "below and above", (True, False): "below only",
                          (False, True): "above only", (False, False): "no"}[
                              (bool(p.bounded_below), bool(p.bounded_above))]]]
    where = (f"attained at {_side_x(p.lipschitz_at)}" if p.lipschitz_attained
             else f"approached as {_side_x(p.lipschitz_at).replace('x = ', 'x → ')}, not attained")
    if p.lipschitz_on:
        where = "attained on " + ", ".join(_interval(a, b) for a, b in p.lipschitz_on)
    rows.append(["Lipschitz constant sup |φ′|", f"{ex(p.lipschitz)}, {where}" + dag("lipschitz")])
    curv = "∞ (φ′ jumps: φ″ has a Dirac mass)" if p.curvature == sp.oo else (
        f"{ex(p.curvature)} at {_side_x(p.curvature_at)}")
    rows.append(["curvature bound sup |φ″|", curv + dag("curvature")])
    k = p.smoothness
    rows.append(["smoothness", "$C^\\infty$" if k == math.inf else ("at least " if p.smoothness_at_least else "")
                 + f"$C^{{{int(k)}}}$" + dag("smoothness")])
    for side, sat, sign in (("left", p.saturation_left, "<"), ("right", p.saturation_right, ">")):
        if not sat.saturates:
            txt = "no"
        elif sat.rate == "dead":
            txt = "dead: φ′ = 0 exactly"
        else:
            txt = f"yes, {sat.rate}" + dag("saturation.rate")
            if sat.threshold is not None:
                txt += (f"; |φ′| < ε = {fmt(p.eps)} for x {sign} {fmt(float(sat.threshold))}"
                        + dag("saturation.threshold"))
        rows.append([f"saturates on the {side}", txt])
    dead = ", ".join(_interval(a, b) for a, b in p.dead_region) or "none"
    rows.append(["dead region (φ′ = 0 exactly)", dead])
    rows += telu_paper_rows(p)
    return rows


def telu_paper_rows(p) -> list[list[str]]:
    """The TeLU paper's claims (Fernandez & Mali 2024) as measured properties of φ."""
    num = set(p.numeric)
    dag = lambda *keys: " †" if any(k in num for k in keys) else ""  # noqa: E731
    near = (("yes, φ(x) = x past the last breakpoint" if p.near_identity_rate == "identical"
             else f"yes, |φ(x) − x| → 0 at an {p.near_identity_rate} rate" + dag("near_identity_rate"))
            if p.near_identity_right else "no")
    dist = "∞" if math.isinf(p.relu_distance) else fmt(p.relu_distance)
    return [["near-identity on the right (φ(x) − x → 0)", near],
            ["persistent gradient on the left |φ′(−3)|, |φ′(−5)|",
             f"{fmt(p.grad_at_minus3)}, {fmt(p.grad_at_minus5)}"],
            ["distance to ReLU sup |φ − max(x, 0)|", dist + dag("relu_distance")],
            ["analytic on ℝ", "yes" if p.analytic else "no"]]


def activation_entry(act) -> dict:

    from theory.activations import get, x

    entry = {
        "name": act.name, "label": act.label, "formula": act.formula,
        "params": [list(p) for p in act.params], "aliases": list(act.aliases),
        "torch_op": act.torch_op[0] if act.torch_op else None,
        "latex": {"f": _latex(act.expr), "df": _latex(sp.diff(act.expr, x)),
                  "d2f": _latex(sp.diff(act.expr, x, 2))},
        "breakpoints": [float(b) for b in act.breakpoints()],
    }
    try:
        from theory import properties
    except ImportError as exc:
        entry["properties"] = None
        entry["properties_missing"] = f"theory.properties is not available ({exc})"
    else:
        p = properties.derive(act)
        entry["properties"] = _jsonable(properties.to_json(p))
        entry["property_rows"] = property_rows(p)
        entry["numeric"] = list(p.numeric)
        if act.name == "telu":
            entry["paper_compare"] = [[name, *[r[1] for r in telu_paper_rows(properties.derive(get(name)))],
                                       fmt(float(properties.derive(get(name)).lipschitz))]
                                      for name in ("telu", "silu", "gelu", "mish", "relu")]
        entry["short"] = {
            "lipschitz": fmt(float(p.lipschitz), 3), "smoothness": (
                "$C^\\infty$" if p.smoothness == math.inf else f"$C^{{{int(p.smoothness)}}}$"),
            "curvature": "∞" if p.curvature == sp.oo else fmt(float(p.curvature), 3),
            "mean_output": fmt(float(p.mean_output), 3),
            "monotonic": p.monotonic,
            "zero_centered": fmt(bool(p.zero_centered)),
            "saturates": ", ".join(s for s, sat in (("left", p.saturation_left), ("right", p.saturation_right))
                                   if sat.saturates) or "no",
            "dead": ", ".join(_interval(a, b) for a, b in p.dead_region) or "none",
        }
    try:
        from theory import meanfield
    except ImportError as exc:
        entry["meanfield"] = None
        entry["meanfield_missing"] = f"theory.meanfield is not available ({exc})"
    else:
        mf = {"critical": {}, "standard": [], "edges": {}}
        for sb2 in SIGMA_B2_VALUES:
            mf["critical"][repr(sb2)] = _jsonable(meanfield.critical_sigma_w2(act, sb2))
            mf["edges"][repr(sb2)] = [e.to_json() for e in meanfield.edge_of_chaos(act, sb2)]
        points = list(STANDARD_SIGMA_W2)
        crit = _as_float(mf["critical"][repr(0.0)])
        if crit is not None:
            points.append(("critical", crit))
        for label, sw2 in points:
            mf["standard"].append({"init": label, "sigma_w2": sw2, "sigma_b2": 0.0,
                                   "summary": meanfield.summary(act, sw2, 0.0).to_json()})
        entry["meanfield"] = mf
    return entry


def build_theory(out: Path) -> None:
    """Write theory.json (every activation's entry) and the theory figures into ``out``."""
    import numpy as np

    from theory.activations import all_activations

    acts = all_activations()
    entries = [activation_entry(a) for a in acts]
    figs = out / "figures"
    for e in entries:
        if e.get("properties") is not None:
            (figs / f"{e['name']}.json").parent.mkdir(parents=True, exist_ok=True)
            (figs / f"{e['name']}.json").write_text(json.dumps(e["properties"], indent=1) + "\n")
    plots.activation_curves(plots.activation_frame(acts, orders=(0, 1)), figs / "overview",
                            ylim={0: (-2.0, 4.0), 1: (-0.3, 1.9)})
    for a in acts:
        plots.activation_curves(plots.activation_frame([a], orders=(0, 1, 2)), figs / a.name)
    meanfield_ok = all(e["meanfield"] is not None for e in entries)
    if meanfield_ok:
        grid = np.round(np.linspace(SIGMA_W2_MIN, SIGMA_W2_MAX, SIGMA_W2_POINTS), 6)
        for sb2 in SIGMA_B2_VALUES:
            df = plots.meanfield_frame(acts, grid, sb2)
            crit = {e["label"]: _as_float(e["meanfield"]["critical"][repr(sb2)]) for e in entries}
            plots.meanfield_curves(df, out / "meanfield" / _mf_stem(sb2), critical=crit)
            df.to_csv(out / "meanfield" / f"{_mf_stem(sb2)}.csv", index=False)
        xi, cm = correlation_frames(acts)
        plots.correlation_curves(xi, cm, out / "meanfield" / "correlation-sb2-0p05", sigma_b2=CORR_SIGMA_B2,
                                 sigma_w2_map=CORR_SIGMA_W2_MAP)
        xi.to_csv(out / "meanfield" / "correlation-xi-sb2-0p05.csv", index=False)
    (out / "theory.json").write_text(json.dumps({"activations": entries, "meanfield": meanfield_ok}, indent=1))


CORR_SIGMA_B2 = 0.05
CORR_SIGMA_W2_MAP = 2.5
CORR_SIGMA_W2 = (0.5, 1.0, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)


def correlation_frames(acts):
    """(ξ_c against σ_w² at σ_b² = 0.05, the correlation map at σ_w² = 2.5) from theory.meanfield."""
    import numpy as np
    import pandas as pd

    from theory import meanfield

    xi, cm = [], []
    cs = np.linspace(-1.0, 1.0, 21)
    for a in acts:
        for w in CORR_SIGMA_W2:
            xi.append({"activation": a.label, "sigma_w2": w,
                       "xi_c": meanfield.depth_scales(a, w, CORR_SIGMA_B2)[1]})
        q = meanfield.fixed_point(a, CORR_SIGMA_W2_MAP, CORR_SIGMA_B2)
        for c in cs:
            cm.append({"activation": a.label, "c": float(c),
                       "c_next": meanfield.correlation_map(a, float(c), CORR_SIGMA_W2_MAP, CORR_SIGMA_B2, q)})
    return pd.DataFrame(xi), pd.DataFrame(cm)


def _mf_stem(sb2: float) -> str:
    return "meanfield-sb2-" + f"{sb2:g}".replace(".", "p")


def _as_float(v) -> float | None:
    if isinstance(v, dict):
        for k in ("sigma_w2", "value", "critical"):
            if k in v:
                return _as_float(v[k])
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ---------------------------------------------------------------------------------------------
# Formatting.

def fmt(v, digits: int = 4) -> str:
    """A value of the property JSON as Markdown (numbers to ``digits`` significant figures)."""
    if v is None or v == "":
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        if math.isinf(v):
            return r"$\infty$" if v > 0 else r"$-\infty$"
        return f"{v:.{digits}g}"
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("inf", "oo", "+inf"):
            return r"$\infty$"
        if low in ("-inf", "-oo"):
            return r"$-\infty$"
        if low == "nan":
            return "—"
        try:
            return fmt(float(v), digits)
        except ValueError:
            return _md_escape(v)
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and all(isinstance(w, (int, float, str)) or w is None for w in v):
            return f"[{fmt(v[0], digits)}, {fmt(v[1], digits)}]"
        return ", ".join(fmt(w, digits) for w in v) or "—"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {fmt(w, digits)}" for k, w in v.items()) or "—"
    return _md_escape(str(v))


def _md_escape(s: str) -> str:
    return str(s).replace("|", r"\|").replace("\n", " ")


def _cell(c: str) -> str:
    """A table cell: a bare | (e.g. in |φ′|) would end the cell, so it is escaped."""
    return re.sub(r"(?<!\\)\|", r"\\|", str(c)).replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(map(_cell, header)) + " |", "|" + "|".join([" --- "] * len(header)) + "|"]
    out += ["| " + " | ".join(map(_cell, r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


def figure(src: str, caption: str, alt: str = "") -> str:
    svg = src[:-4] + ".svg" if src.endswith(".png") else None
    link = f" [SVG]({svg})" if svg else ""
    img = f"![{_alt(alt or caption)}]({src}){{ loading=lazy }}"
    if svg:
        img = f"[{img}]({svg})"      # click for the full-size vector figure
    return (f'<figure markdown>\n{img}\n'
            f"<figcaption markdown>{caption}{link}</figcaption>\n</figure>\n")


def _alt(text: str) -> str:
    return re.sub(r"[\[\]*_`|\\]", "", text)


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


# ---------------------------------------------------------------------------------------------
# Theory pages.

MEANFIELD_COLUMNS = (("q_star", "q\\*"), ("chi1", "χ₁(q\\*)"), ("xi_q", "$\\xi_q$ (layers)"),
                     ("xi_c", "$\\xi_c$ (layers)"), ("phase", "phase"))


def activation_page(e: dict) -> str:
    L = e["latex"]
    out = [f"# {e['label']}\n"]
    meta = [f"formula: `{e['formula']}`"] if e["formula"] else []
    if e["aliases"]:
        meta.append("aliases: " + ", ".join(f"`{a}`" for a in e["aliases"]))
    if e["params"]:
        meta.append("parameters: " + ", ".join(f"{k} = {fmt(v)}" for k, v in e["params"]))
    meta.append(f"torch: `{e['torch_op']}`" if e["torch_op"] else "torch: compiled from the sympy expression")
    out.append(" · ".join(meta) + "\n")
    out.append("## Definition and derivatives\n")
    out.append(f"$$\n\\varphi(x) = {L['f']}\n$$\n")
    out.append(f"$$\n\\varphi'(x) = {L['df']}\n$$\n")
    out.append(f"$$\n\\varphi''(x) = {L['d2f']}\n$$\n")
    if e["breakpoints"]:
        pts = ", ".join(fmt(b) for b in e["breakpoints"])
        out.append(f"φ is defined piecewise, with breakpoints at x = {pts}. A derivative that jumps there "
                   "is undefined at the breakpoint itself (the formulas give one side's value); a jump of "
                   "φ′ makes φ″ a Dirac δ there, which the plot does not draw.\n")
    out.append(figure(f"figures/{e['name']}.png", f"{e['label']}: φ, φ′ and φ″ on [−5, 5].",
                      alt=f"{e['label']} and its derivatives"))
    out.append("## Properties\n")
    if e.get("properties") is None:
        out.append(f"!!! warning \"Not derived\"\n    {e.get('properties_missing', 'no properties')}\n")
    else:
        out.append("Derived from the expression above by `theory.properties.derive`. Exact values are "
                   "shown in closed form; † marks entries found numerically (not proved exactly).\n")
        out.append(table(["property", "value"], e["property_rows"]))
        out.append(f"Machine-readable: [{e['name']}.json](figures/{e['name']}.json) "
                   "(`theory.properties.to_json`).\n")
    out.append("## Mean-field numbers\n")
    mf = e.get("meanfield")
    if mf is None:
        out.append(f"!!! warning \"Not computed\"\n    {e.get('meanfield_missing', '')}\n")
    else:
        crit = "; ".join(f"{edges_text(mf.get('edges', {}).get(sb2), v)} at $\\sigma_b^2$ = {float(sb2):g}"
                         for sb2, v in mf["critical"].items())
        out.append(f"Edge of chaos (χ₁(q\\*) = 1, every solution with its kind): {crit}. "
                   "The table gives the fixed point q\\*, χ₁(q\\*), the depth scales and the phase at common "
                   "initialisations ($\\sigma_b^2$ = 0; q\\* reached from q = 1). "
                   "Definitions on [Mean-field theory](../meanfield.md).\n")
        rows = [[s["init"], fmt(s["sigma_w2"]), *[fmt(_get(s["summary"], k)) for k, _ in MEANFIELD_COLUMNS]]
                for s in mf["standard"]]
        out.append(table(["initialisation", "$\\sigma_w^2$", *[h for _, h in MEANFIELD_COLUMNS]], rows))
        out.append("Depth scales as `theory.meanfield` returns them: $\\xi_q = -1/\\log\\chi_q$ and "
                   "$\\xi_c = -1/\\log\\chi_c(c^*)$, the slope of the correlation map at its stable fixed point "
                   "c\\* (c\\* = 1 in the ordered phase, c\\* < 1 in the chaotic phase): positive wherever "
                   "finite, ∞ at the edge of chaos and where q\\* = ∞ (correlations then converge only "
                   "polynomially), — where undefined.\n")
    if e.get("paper_compare"):
        out.append("## The TeLU paper's claims\n")
        out.append("Fernandez & Mali (2024) motivate TeLU by near-identity behaviour on the right, a persistent "
                   "gradient on the left, closeness to ReLU, analyticity and a small Lipschitz constant. "
                   "The same properties, computed by `theory.properties` for TeLU and its neighbours "
                   "(† numeric):\n")
        out.append(table(["activation", "near-identity on the right", "|φ′(−3)|, |φ′(−5)|",
                          "sup |φ − ReLU|", "analytic", "Lipschitz"], e["paper_compare"]))
        out.append(paper_verdicts(e["paper_compare"]))
    return "\n".join(out)


def paper_verdicts(rows) -> str:
    """Which of the TeLU paper's claims hold, and by how much, read off the comparison rows."""
    by = {r[0]: r for r in rows}

    def num(s):
        try:
            return float(str(s).split()[0].rstrip(",†"))
        except ValueError:
            return math.inf
    grad3 = {k: num(v[2].split(",")[0]) for k, v in by.items()}
    dist = {k: num(v[3]) for k, v in by.items()}
    lip = {k: num(v[5]) for k, v in by.items()}
    smooth = ("silu", "gelu", "mish")
    best_grad = max(smooth + ("telu",), key=lambda k: grad3[k])
    closest = min(smooth + ("telu",), key=lambda k: dist[k])
    smallest = min(smooth + ("telu",), key=lambda k: lip[k])
    return (f"Verdicts. Near-identity on the right: holds ({by['telu'][1]}). Persistent left gradient: "
            f"|φ′(−3)| = {fmt(grad3['telu'])} for TeLU; the largest of TeLU, SiLU, GELU, Mish is {best_grad}. "
            f"Analytic: {by['telu'][4]}. Closeness to ReLU: sup |φ − ReLU| = {fmt(dist['telu'])} for TeLU, "
            f"the smallest of the four is {closest} ({fmt(dist[closest])}). Lipschitz: {fmt(lip['telu'])} "
            f"for TeLU (> 1: not 1-Lipschitz); the smallest of the four is {smallest}.\n")


def _crit_text(v) -> str:
    f = _as_float(v)
    return fmt(f) if f is not None else "none reached"


_EDGE_WORDS = {"critical": "critical", "critical-unstable": "critical but unstable (not reached)",
               "q-infinity-limit": "q\\* → ∞ limit", "none": "none"}


def edges_text(edges, crit=None) -> str:
    """Every edge-of-chaos solution as text: σ_w² (kind, q*), e.g. "1.956 (critical, q* = 8.772)"."""
    if not edges:
        return _crit_text(crit)
    parts = []
    for e in edges:
        if e["kind"] == "none":
            parts.append("none")
            continue
        q = "∞" if e["q_star"] == "inf" else fmt(e["q_star"])
        reached = "" if e["kind"] == "critical-unstable" or e["reached_from_q0"] else ", not reached from q = 1"
        parts.append(f"{fmt(e['sigma_w2'])} ({_EDGE_WORDS[e['kind']]}, q\\* = {q}{reached})")
    return "; ".join(parts)


def activation_summary(bundle: dict) -> str:
    rows = []
    for e in bundle["activations"]:
        sh = e.get("short") or {}
        mf = e.get("meanfield") or {}
        rows.append([
            f"[{e['label']}]({e['name']}.md)", _md_escape(e["formula"] or ""),
            sh.get("lipschitz", "—"), sh.get("smoothness", "—"), sh.get("monotonic", "—"),
            sh.get("zero_centered", "—"), sh.get("saturates", "—"), sh.get("dead", "—"),
            sh.get("curvature", "—"), sh.get("mean_output", "—"),
            edges_text(_get(mf, "edges", repr(0.0)), _get(mf, "critical", repr(0.0))) if mf else "—",
        ])
    return table(["activation", "φ(x)", "Lipschitz", "smoothness", "monotonic", "zero-centred",
                  "saturates", "dead region", "sup |φ″|", "E[φ(u)]", "edge of chaos $\\sigma_w^2$ ($\\sigma_b^2$ = 0)"], rows)


def meanfield_figures(bundle: dict) -> str:
    if not bundle.get("meanfield"):
        return "!!! warning \"Not computed\"\n    theory.meanfield is not available in this build.\n"
    out = []
    for sb2 in SIGMA_B2_VALUES:
        out.append(figure(f"figures/{_mf_stem(sb2)}.png",
                          f"χ₁(q\\*) (left) and q\\* (right) against $\\sigma_w^2$ at $\\sigma_b^2$ = {sb2:g}, q\\* reached from "
                          "q = 1. Open circles: the edge of chaos χ₁(q\\*) = 1 of each activation. A gap in q\\* "
                          "means q\\* = ∞ (the variance grows without bound; χ₁ is then its limit).",
                          alt=f"mean-field curves, sigma_b2={sb2:g}"))
    out.append(figure("figures/correlation-sb2-0p05.png",
                      f"Left: the correlation depth scale $\\xi_c$ = −1/log $\\chi_c$(c\\*) against $\\sigma_w^2$ at $\\sigma_b^2$ = "
                      f"{CORR_SIGMA_B2:g}: positive on both sides of the edge of chaos and ∞ at it (drawn at the "
                      "dotted line; also where q\\* = ∞). Right: the correlation map c ↦ c′ at q\\* for $\\sigma_w^2$ = "
                      f"{CORR_SIGMA_W2_MAP:g}; its stable fixed point c\\* is where it crosses the diagonal from "
                      "above (c\\* = 1 when ordered).", alt="correlation depth scale and correlation map"))
    return "\n".join(out)


def meanfield_table(bundle: dict) -> str:
    if not bundle.get("meanfield"):
        return ""
    rows = []
    for e in bundle["activations"]:
        crit = e["meanfield"]["critical"]
        std = {s["init"]: s["summary"] for s in e["meanfield"]["standard"]}
        edges = e["meanfield"].get("edges", {})
        rows.append([f"[{e['label']}](activations/{e['name']}.md)",
                     *[edges_text(edges.get(repr(sb2)), crit[repr(sb2)]) for sb2 in SIGMA_B2_VALUES],
                     *[fmt(_get(std[lab], "chi1")) for lab, _ in STANDARD_SIGMA_W2]])
    header = (["activation"] + [f"edge of chaos $\\sigma_w^2$ ($\\sigma_b^2$ = {sb2:g})" for sb2 in SIGMA_B2_VALUES]
              + [f"χ₁(q\\*), {lab} $\\sigma_w^2$ = {sw2:.3g}" for lab, sw2 in STANDARD_SIGMA_W2])
    return table(header, rows)



# ---------------------------------------------------------------------------------------------
# Results pages.


def _config_rows(study_json: dict) -> list[list[str]]:
    cfg = study_json.get("config", {}) if isinstance(study_json, dict) else {}
    rows = []
    for k, v in cfg.items():
        if isinstance(v, (list, tuple)) and len(v) > 8 and len(set(map(str, v))) == 1:
            v = f"{v[0]} × {len(v)}"
        rows.append([f"`{k}`", _md_escape(", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))])
    return rows


DATA_NAMES = {"digits": "scikit-learn digits", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST",
              "cifar10": "CIFAR-10", "mnist1d": "MNIST-1D"}


def data_line(info: dict) -> str:
    """'scikit-learn digits, 1348 train / 449 test, input 1×8×8, 10 classes' from study.json."""
    cfg = info.get("config", {}) if isinstance(info, dict) else {}
    d = info.get("data") if isinstance(info.get("data"), dict) else {}
    name = DATA_NAMES.get(str(d.get("name", cfg.get("dataset", ""))), str(d.get("name", cfg.get("dataset", "?"))))
    parts = [name]
    if d.get("train") is not None:
        parts.append(f"{d['train']} train / {d.get('test', '?')} test examples")
    elif cfg.get("train_size"):
        parts.append(f"{cfg['train_size']} training examples")
    if d.get("input_shape"):
        parts.append("input " + "×".join(map(str, d["input_shape"])))
    if d.get("classes"):
        parts.append(f"{d['classes']} classes")
    return ", ".join(parts)


def protocol_line(info: dict) -> str:
    """The study's data set and protocol in one sentence (the first line of its page)."""
    cfg = info.get("config", {}) if isinstance(info, dict) else {}
    models = cfg.get("models") or ["mlp"]
    arch = []
    for m in models:
        if m == "mlp":
            ws = cfg.get("widths") or []
            if ws and len(set(ws)) == 1 and len(ws) > 3:
                arch.append(f"MLP {len(ws)} × {ws[0]}")
            else:
                arch.append("MLP " + "-".join(map(str, ws)))
        else:
            arch.append(f"TinyVGG ({cfg.get('channels', '?')} channels)")
    opt = str(cfg.get("optimizer", "adam"))
    opt = {"adam": "Adam", "sgd": "SGD"}.get(opt, opt)
    batch = cfg.get("batch_size")
    train = (info.get("data") or {}).get("train") if isinstance(info.get("data"), dict) else None
    batch_txt = "full batch" if batch and train and batch >= train else f"batch {batch}"
    seeds = cfg.get("seeds") or []
    acts = cfg.get("activations") or []
    inits = cfg.get("inits") or []
    return (f"**Data:** {data_line(info)}. **Protocol:** {' and '.join(arch)}, {opt} (lr {cfg.get('lr')}), "
            f"{batch_txt}, {cfg.get('epochs')} epoch{'s' if cfg.get('epochs') != 1 else ''}, "
            f"{len(acts)} activations × {len(inits)} init{'s' if len(inits) != 1 else ''} "
            f"({', '.join(map(str, inits))}) × {len(seeds)} seed{'s' if len(seeds) != 1 else ''}.")


PENDING_NOTE = ('!!! note "Being computed"\n    `mkdocs serve` is drawing this page\'s figures and numbers in the '
                'background (first run on a fresh clone); the page reloads by itself when they are ready.')


def build_into(final: Path, draw) -> None:
    """Run ``draw(tmp)`` in a temporary sibling of ``final``, write ``done``, rename to ``final``: a
    half-drawn cache entry is never used."""
    import os
    import shutil
    import tempfile

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        draw(tmp)
        (tmp / "done").write_text("ok\n")
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


BUILDERS = {"theory": lambda out: build_theory(out),
            "study": lambda out, folder: plots.make_all(Path(folder), out),
            "predictions": lambda out, pred: draw_prediction_figures(pred, out)}


def exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Initializer of ``mkdocs serve``'s drawing workers: a daemon thread ends the worker once its parent has
    gone (a server killed by SIGTERM or SIGHUP never runs its shutdown hook, and the workers would live on)."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(0)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def build_job(final: str, builder: str, *args) -> None:
    """Draw one cache entry into ``final`` (in a worker process of ``mkdocs serve``)."""
    if not (Path(final) / "done").is_file():
        build_into(Path(final), lambda out: BUILDERS[builder](out, *args))


def study_page(study: Path, figdir: Path | None, rel_root: str, pred=None) -> str:
    """The page of one study folder: facts, configuration, summary per activation, figures, verdict counts."""
    name = study.name
    info = {}
    if (study / "study.json").is_file():
        info = json.loads((study / "study.json").read_text())
    out = ["---\nhide:\n  - toc\n---\n", f"# Study `{name}`\n"]
    if info:
        out.append(protocol_line(info) + "\n")
    out.append(f"Results folder: `{display(study)}`.\n")
    if info:
        facts = []
        if info.get("status"):
            facts.append(f"status: {_md_escape(str(info['status']))}")
        if isinstance(info.get("runs"), (int, float)):
            facts.append(f"{int(info['runs'])} runs")
        if info.get("compute_time_s") is not None:
            facts.append(f"compute time {fmt(_as_float(info['compute_time_s']), 3)} s (summed over the invocations "
                         "that trained)")
        elif info.get("wall_time_s") is not None:
            facts.append(f"wall time of the last invocation {fmt(_as_float(info['wall_time_s']), 3)} s")
        if facts:
            out.append(", ".join(facts) + ".\n")
        env = {}
        for k in ("environment", "machine", "versions"):
            if isinstance(info.get(k), dict):
                env.update(info[k])
        left = {k: v for k, v in (info.get("left_out") or {}).items() if v} \
            if isinstance(info.get("left_out"), dict) else {}
        if left:
            out.append("!!! note \"Left out of the grid\"\n" + "".join(
                f"    - {_md_escape(k)}: {_md_escape(', '.join(map(str, v)) if isinstance(v, list) else str(v))}\n"
                for k, v in left.items()))
        out.append("## Configuration\n")
        rows = _config_rows(info) + [[f"`{k}`", _md_escape(str(v))] for k, v in env.items()]
        out.append('??? info "Study configuration and machine (from study.json)"\n\n'
                   + "".join("    " + line + "\n" for line in table(["setting", "value"], rows).splitlines()))
    runs = read_csv(study / "runs.csv")
    if runs is not None and len(runs):
        from empirical.analysis import seeds_table

        mine = pred[pred["study"] == name].to_dict("records") if pred is not None and "study" in pred else []
        rows = seeds_table.summary_rows(runs, mine)
        grid = (study / "trainability_cells.csv").is_file()   # hundreds of (σ_w², depth) rows: folded away

        def fold(title: str, body: str) -> str:
            n = sum(1 for line in body.splitlines() if line.startswith("|")) - 2     # less the head and rule
            return f'??? info "{title} ({n} rows)"\n\n' + "".join(
                "    " + line + "\n" if line else "\n" for line in body.splitlines())
        seeds_md = seeds_table.format_markdown(rows)
        out.insert(3, "## The seeds' table\n\nFinal test accuracy (mean over seeds ± 95 % t-interval half-width), "
                      "seconds per epoch of the activation's model trained alone (`solo_time_per_epoch_s`; "
                      "\"share\" where only the batched group's time divided by its runs is recorded), mean "
                      "|∂L/∂W₁| at the first and last probe, and the verdicts of the claims naming the activation "
                      "(held / failed / inconclusive / not applicable; sanity checks left out).\n\n"
                      + (fold("The table, one row per setting and activation", seeds_md) if grid else seeds_md))
        out.append("## Summary per activation\n")
        out.append("Mean ± standard deviation over the seeds of each setting's finished runs; diverged runs are "
                   "counted.\n")
        summary = _runs_summary(runs)
        out.append(fold("The summary, one row per setting and activation", summary) if grid else summary)
    figs = [(stem, t) for stem, t in plots.FIGURES.items()
            if figdir is not None and stem != "predicted_vs_measured" and (figdir / f"{stem}.png").is_file()]
    if figdir is None:
        out.append("## Figures\n")
        out.append(PENDING_NOTE + "\n")
    elif figs:
        out.append("## Figures\n")
        for stem, (title, cap) in figs:
            out.append(f"### {title} {{ #{figure_anchor(stem)} }}\n")
            out.append(figure(f"{rel_root}/{stem}.png", cap, alt=f"{name}: {title}"))
    else:
        out.append("No figures: the study folder holds none of runs.csv, epochs.csv, steps.csv, layers.csv.\n")
    from empirical.analysis.trainability_report import section as trainability_section
    tr = trainability_section(study, figdir, rel_root, pred)
    if tr:
        out.append(tr)
    if pred is not None and (pred["study"] == name).any():
        d = pred[pred["study"] == name]
        out.append("## Predictions\n")
        if "kind" in d.columns:
            out.append(verdict_counts_md(d))
        out.append(f"{len(d)} claims checked against this study: see "
                   f"[Predictions vs measurements](../predictions.md#{_anchor(name)}).\n")
    return "\n".join(out)


def _runs_summary(runs) -> str:
    import pandas as pd

    runs = runs.assign(variant=variant_labels(runs))
    if "sigma_w2" in runs.columns and (runs.groupby(["activation", "variant"])["sigma_w2"].nunique() > 1).any():
        # σ_w² is a grid axis here (gaussian init): rows pool seeds only, never σ_w² values
        runs["variant"] = [f"sigma_w2={float(w):g}" + (f" {v}" if v else "")
                           for w, v in zip(runs["sigma_w2"], runs["variant"])]
    solo = ("solo_time_per_epoch_s" in runs.columns
            and pd.to_numeric(runs["solo_time_per_epoch_s"], errors="coerce").notna().any())
    time_col = ("solo_time_per_epoch_s", "s / epoch (alone)", 3) if solo else \
        ("time_per_epoch_s", "s / epoch (share of the batched group)", 3)
    cols = [("final_test_acc", "final test acc", 3), ("final_test_loss", "final test loss", 3),
            ("epochs_to_90", "epochs to 90 %", 2), time_col,
            ("first_layer_grad_init", "first-layer grad at init", 3)]
    cols = [c for c in cols if c[0] in runs.columns]
    rows = []
    for a in activation_order(runs["activation"].unique()):
        for v in sorted(runs["variant"].unique(), key=_natural):
            d = runs[(runs["activation"] == a) & (runs["variant"] == v)]
            if d.empty:
                continue
            fin = d[d["status"] != "diverged"] if "status" in d.columns else d
            n_div = len(d) - len(fin)
            row = [a + (f" [{v}]" if v else ""), f"{len(d)}" + (f" ({n_div} diverged)" if n_div else "")]
            for c, _, digits in cols:
                vals = pd.to_numeric(fin[c], errors="coerce").dropna()
                if not len(vals):
                    cell = "never" if c == "epochs_to_90" and len(fin) else "—"
                elif len(vals) == 1:
                    cell = fmt(float(vals.iloc[0]), digits)
                else:
                    cell = f"{fmt(float(vals.mean()), digits)} ± {fmt(float(vals.std()), 2)}"
                if c == "epochs_to_90" and 0 < len(vals) < len(fin):
                    cell += f" ({len(vals)}/{len(fin)} runs)"
                row.append(cell)
            rows.append(row)
    return table(["activation", "runs", *[c[1] for c in cols]], rows)


def _natural(label: str) -> list:
    """Sort key that orders the numbers inside a label by value (depth=4 before depth=16)."""
    return [(0, float(t), "") if re.fullmatch(r"\d+(?:\.\d+)?", t) else (1, 0.0, t)
            for t in re.split(r"(\d+(?:\.\d+)?)", label)]


def draw_prediction_figures(pred, out: Path) -> None:
    """One predicted-vs-measured figure per study of the predictions table, named ``_safe(study)``."""
    for study, d in pred.groupby("study", sort=False):
        plots.predicted_vs_measured(d, out / _safe(study))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "none"



KIND_TITLES = {"prediction": "Predictions with a tolerance (|m̄ − p| ≤ tol, decided by the 95 % interval of the seed mean)",
               "bound": "Bounds (m ≤ b(1 + tol))",
               "ordering": "Orderings and trends",
               "hypothesis": "Hypotheses of the seeds (exact paired tests across seeds, Holm over the study, α = 0.05)",
               "sanity": "Sanity checks (theorems the code must satisfy; a failure is a bug, not evidence about theory)"}
VERDICT_ORDER = ("held", "failed", "inconclusive", "not applicable")


def verdict_counts_md(d) -> str:
    """Counts per kind (rows) and verdict (columns); sanity checks in their own row below a rule."""
    kinds = [k for k in KIND_TITLES if k in set(d["kind"])]
    rows = []
    for k in kinds:
        dk = d[d["kind"] == k]
        c = dk["verdict"].value_counts()
        label = f"*{k}* (apart)" if k == "sanity" else k
        rows.append([label, *[str(int(c.get(v, 0))) for v in VERDICT_ORDER], str(len(dk))])
    return table(["kind", *VERDICT_ORDER, "claims"], rows)


def predictions_md(pred, figdir: Path | None, study_order: list[str]) -> str:
    order = [s for s in study_order if s in set(pred["study"])] + \
        [s for s in dict.fromkeys(pred["study"]) if s not in study_order]
    out = []
    if "kind" in pred.columns and "verdict" in pred.columns:
        rows = []
        for s in order:
            d = pred[(pred["study"] == s) & (pred["kind"] != "sanity")]
            san = pred[(pred["study"] == s) & (pred["kind"] == "sanity")]
            for k in [k for k in KIND_TITLES if k != "sanity" and k in set(d["kind"])]:
                c = d[d["kind"] == k]["verdict"].value_counts()
                rows.append([f"[{s}](#{_anchor(s)})", k, *[str(int(c.get(v, 0))) for v in VERDICT_ORDER]])
            if len(san):
                c = san["verdict"].value_counts()
                rows.append([f"[{s}](#{_anchor(s)})", "*sanity (apart)*",
                             *[str(int(c.get(v, 0))) for v in VERDICT_ORDER]])
        out.append("Verdicts per study and kind. *held*: the relation holds; *failed*: the data contradict it; "
                   "*inconclusive*: the data cannot decide (too few seeds for the test to reach α, or an interval "
                   "over the threshold: the reason says how many seeds would); *not applicable*: a precondition "
                   "is unmet (a run that never learned, a degenerate fit, missing data). Sanity checks are "
                   "theorems the code must satisfy and are counted apart.\n")
        out.append(table(["study", "kind", *VERDICT_ORDER], rows))
    for study in order:
        d = pred[pred["study"] == study]
        out.append(f"## Study `{study}` {{ #{_anchor(study)} }}\n")
        if "kind" in d.columns:
            out.append(verdict_counts_md(d))
        from empirical.analysis.report_findings import verdict_matrix
        out.append("One cell per claim and activation (✓ held, ✗ failed, ? inconclusive, – not applicable; a "
                   "count when several settings were checked); click a cell for its rows below.\n")
        out.append(verdict_matrix(pred, study))
        kinds = list(dict.fromkeys(d["kind"])) if "kind" in d.columns else [None]
        for kind in sorted(kinds, key=lambda k: list(KIND_TITLES).index(k) if k in KIND_TITLES else 9):
            dk = d if kind is None else d[d["kind"] == kind]
            if kind is not None:
                out.append(f"### {KIND_TITLES.get(kind, str(kind).capitalize() or 'Other claims')}\n")
            for claim, dc in dk.groupby("claim", sort=False):
                c2 = dc["verdict"].value_counts() if "verdict" in dc.columns else {}
                tally = ", ".join(f"{int(c2.get(k, 0))} {k}" for k in VERDICT_ORDER if c2.get(k, 0))
                rel = dc["relation"].iloc[0] if "relation" in dc.columns else ""
                body = f"Relation: {subscripts(_md_escape(fmt(rel)))}\n\n" + _prediction_table(dc)
                out.append(f'??? note "{_md_escape(str(claim))} ({tally})"\n\n'
                           + "".join("    " + line + "\n" for line in body.splitlines()))
        png = figdir / f"{_safe(study)}.png" if figdir is not None else None
        if png is not None and png.is_file():
            out.append(figure(f"figures/predictions/{png.name}",
                              "Predicted against measured value of each point prediction (kind *prediction* "
                              "only: bounds, orderings and hypotheses are not points on y = x). Filled circle: "
                              "held, cross: failed, open square: inconclusive; dashed: y = x; bars: 95 % "
                              "interval of the seed mean.",
                              alt=f"{study}: predicted vs measured"))
    return "\n".join(out)


def _anchor(name: str) -> str:
    return "study-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _prediction_table(d) -> str:
    from empirical.analysis.report_findings import row_anchor

    rows = []
    for idx, r in d.iterrows():
        meas = fmt(r.get("measured"))
        lo, hi = _num(r.get("lo")), _num(r.get("hi"))
        if meas != "—" and math.isfinite(lo) and math.isfinite(hi):
            meas += f" [{fmt(lo, 3)}, {fmt(hi, 3)}]"
        n = _num(r.get("n"))
        pa = _num(r.get("p_adjusted"))
        rows.append([f'<span id="{row_anchor(r.get("study", ""), idx)}"></span>'
                     + _md_escape(str(r.get("activation", ""))),
                     fmt(r.get("setting")), fmt(r.get("predicted")), meas, fmt(r.get("tolerance")),
                     str(int(n)) if math.isfinite(n) and n > 0 else "—", fmt(pa, 3) if math.isfinite(pa) else "—",
                     _verdict(r.get("verdict")), subscripts(_md_escape(fmt(r.get("reason", r.get("detail"))))),
                     subscripts(_md_escape(fmt(r.get("detail")))) if "reason" in d.columns else ""])
    return table(["activation", "setting", "predicted", "measured [95 % CI]", "tolerance", "n", "p (Holm)",
                  "verdict", "reason", "numbers"], rows)


def _verdict(v) -> str:
    v = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    cls = {"held": "actlab-verdict-held", "failed": "actlab-verdict-failed",
           "inconclusive": "actlab-verdict-inconclusive"}.get(v, "actlab-verdict-na")
    return f'<span class="{cls}">{v or "—"}</span>'


def display(p: Path) -> str:
    """``p`` relative to the repository when inside it."""
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def damaged_study_page(study: Path, reason: str) -> str:
    """The page of a study folder that could not be read: what is wrong, what to do."""
    return ("---\nhide:\n  - toc\n---\n" + f"# Study `{study.name}`\n\n"
            f"!!! failure \"This study folder is damaged and left out of the report\"\n"
            f"    `{_md_escape(display(study))}`: {_md_escape(reason)}\n\n"
            "    Rerun the study (`python -m empirical.run` with its command) or remove the folder, then rebuild.\n")


def snippets(bundle: dict, root: Path, found: list[Path], pred, prediction_figs: Path | None,
             study_figs: dict | None = None, damaged: dict[str, str] | None = None,
             pending: bool = False) -> dict[str, str]:
    """The generated pieces hand-written pages pull in with ``<!-- actlab:NAME -->``, by NAME.

    ``damaged`` (study or file -> reason) are listed in a warning above the studies table; ``pending``
    (the first build of ``mkdocs serve`` on a fresh cache) puts PENDING_NOTE in place of the predictions
    tables, which take seconds."""
    where = f"`{display(root)}`"
    if not root.is_dir():
        missing = (f"!!! note \"No results\"\n    The results folder {where} does not exist, so there is "
                   "nothing to show yet. Run a study (see [How to reproduce]({up}reproduce.md)) or point "
                   "`ACTLAB_RESULTS` at a results folder, then rebuild.\n")
    elif not found:
        missing = (f"!!! note \"No results\"\n    The results folder {where} holds no study folder "
                   "(a folder with `study.json` or `runs.csv`). Run a study (see "
                   "[How to reproduce]({up}reproduce.md)), then rebuild.\n")
    else:
        missing = ""
    studies_md = missing.replace("{up}", "../") if missing else (
        f"Results folder: {where}.\n\n" + table(
            ["study", "runs", "activations", "files"],
            [[f"[{s.name}]({s.name}.md)", _count_runs(s), _activations_of(s),
              ", ".join(sorted(p.name for p in s.iterdir() if p.is_file() and not p.name.startswith(".")))]
             for s in found]))
    if damaged:
        studies_md = ("!!! warning \"Left out: damaged results\"\n" + "".join(
            f"    - `{_md_escape(k)}`: {_md_escape(v)}\n" for k, v in sorted(damaged.items())) + "\n" + studies_md)
    if missing and pred is None:
        pred_md = missing.replace("{up}", "")
    elif pred is None or not len(pred):
        pred_md = (f"!!! note \"No predictions yet\"\n    Neither the results folder {where} nor any study "
                   "folder in it holds a `predictions.csv`. Write one with "
                   f"`python -m empirical.predict {display(root)}`, then rebuild.\n")
    else:
        pred_md = (f"From {', '.join(f'`{display(f)}`' for f in prediction_files(root, found))}.\n\n"
                   + (PENDING_NOTE + "\n" if pending else predictions_md(pred, prediction_figs, [s.name for s in found])))
    return {
        "activation_table": activation_summary(bundle),
        "activation_overview": figure("figures/overview.png", "Every registered activation: φ and φ′ "
                                      "on [−5, 5] (one colour per activation in every figure).",
                                      alt="all activations and their derivatives"),
        "meanfield_figures": meanfield_figures(bundle),
        "meanfield_table": meanfield_table(bundle),
        "studies": studies_md,
        "predictions": pred_md,
        "results_root": where,
        **reading_snippets(bundle, root, found, pred, study_figs or {}),
        "trainability": _trainability_overview(found),
    }


def _trainability_overview(found) -> str:
    from empirical.analysis.trainability_report import overview
    return overview(found)


def reading_snippets(bundle: dict, root: Path, found: list[Path], pred, study_figs: dict) -> dict[str, str]:
    """Findings, recommendations and the convergence page's generated parts."""
    from empirical.analysis import report_findings as rf

    found_f = rf.findings(pred, root, study_figs)
    return {
        "findings": rf.findings_md(found_f),
        "recommendations": rf.recommendations_md(pred, found_f),
        "curvature_table": rf.curvature_table(bundle),
        "sharpness": rf.sharpness_md(pred, found, study_figs),
        "plateaus": rf.plateaus_md(pred, found, study_figs),
        "telu_claims": rf.telu_claims_md(bundle, root, found),
        "experiments_data": table(["study", "data", "protocol"], [
            [f"[{s.name}]({s.name}.md)", data_line(_info(s)), protocol_line(_info(s)).split("**Protocol:** ")[-1]]
            for s in found if (s / "study.json").is_file()]),
    }


def _info(study: Path) -> dict:
    return json.loads((study / "study.json").read_text())


def _count_runs(s: Path) -> str:
    runs = read_csv(s / "runs.csv")
    return "—" if runs is None else str(len(runs))


def _activations_of(s: Path) -> str:
    runs = read_csv(s / "runs.csv")
    if runs is None or "activation" not in runs.columns:
        return "—"
    return ", ".join(activation_order(runs["activation"].unique()))

