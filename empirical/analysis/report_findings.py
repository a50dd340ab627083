"""The report's reading layer: findings first, the verdict matrix, recommendations, the convergence page's tables.

Every statement is generated from the predictions table (``empirical.analysis.claims``) and the study
folders; each finding is a number with an interval, a link to its figure and a link to the verdict row it
rests on. A finding whose data are missing is left out, never invented.

Intervals: a mean over n seeds gets the t interval mean ± t₀.₉₇₅,ₙ₋₁·sd/√n; a Spearman ρ over n runs the
Fisher interval tanh(atanh ρ ± 1.96/√(n − 3)); a median over settings the percentile bootstrap (2,000
resamples, fixed seed); a proportion k/n the Wilson interval.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from empirical.analysis.markup import subscripts
from empirical.analysis.results_schema import activation_order, read_csv

VERDICT_CLASS = {"held": "held", "failed": "failed", "inconclusive": "inconclusive", "not applicable": "na"}
SYMBOL = {"held": "✓", "failed": "✗", "inconclusive": "?", "not applicable": "–"}


# ---------------------------------------------------------------------------------------------
# Anchors shared with the predictions page.

def row_anchor(study: str, index) -> str:
    """The id of one verdict row on the predictions page (the row's index in the predictions table)."""
    return "v-" + re.sub(r"[^a-z0-9]+", "-", str(study).lower()).strip("-") + f"-{index}"


def figure_anchor(stem: str) -> str:
    return "fig-" + stem.replace("_", "-")


def _fmt(v: float, digits: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return f"{v:.{digits}g}"


def t_interval(values) -> tuple[float, float, float, int]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n == 1:
        return m, math.nan, math.nan, 1
    h = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return m, m - h, m + h, n


def fisher_interval(rho: float, n: int) -> tuple[float, float]:
    if n <= 3 or not np.isfinite(rho) or abs(rho) >= 1:
        return math.nan, math.nan
    z, h = math.atanh(rho), 1.96 / math.sqrt(n - 3)
    return math.tanh(z - h), math.tanh(z + h)


def bootstrap_median(values, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if not len(v):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    meds = np.median(rng.choice(v, size=(n_boot, len(v)), replace=True), axis=1)
    return float(np.median(v)), float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z, p = 1.96, k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


# ---------------------------------------------------------------------------------------------
# Findings.

@dataclass(frozen=True)
class Finding:
    """One statement of the overview: ``text`` (Markdown, with its number and interval), the figure it
    shows (page, anchor) and the verdict row it rests on (anchor on the predictions page)."""

    title: str
    text: str
    figure_page: str
    figure_stem: str
    verdict_anchor: str

    def markdown(self, up: str = "") -> str:
        return (f"**{self.title}** {self.text} "
                f"[Figure]({up}experiments/{self.figure_page}.md#{figure_anchor(self.figure_stem)}) · "
                f"[verdict]({up}predictions.md#{self.verdict_anchor})")


def _rows(pred: pd.DataFrame, study: str | None = None, claim: str | None = None, prefix: str | None = None):
    d = pred
    if study is not None:
        d = d[d["study"] == study]
    if claim is not None:
        d = d[d["claim"] == claim]
    if prefix is not None:
        d = d[d["claim"].astype(str).str.startswith(prefix)]
    return d


def _drawn(d: pd.DataFrame, figdirs: dict, stem: str) -> pd.DataFrame:
    """The rows of ``d`` whose study has figure ``stem``."""
    return d[d["study"].map(lambda s: _has_fig(figdirs, s, stem))]


def _study_rows(pred, figdirs, stem, claim=None, prefix=None, most=True, dropna=("measured",)):
    """(study, rows) of the claim in the study with the most rows (or the first) among the studies that have
    figure ``stem``; None if none has."""
    d = _drawn(_rows(pred, claim=claim, prefix=prefix).dropna(subset=list(dropna)), figdirs, stem)
    if not len(d):
        return None
    study = d["study"].value_counts().index[0] if most else d["study"].iloc[0]
    return study, d[d["study"] == study]


def _has_fig(figdirs: dict, study: str, stem: str) -> bool:
    d = figdirs.get(study)
    return d is not None and (Path(d) / f"{stem}.png").is_file()


def _seeds(root: Path, study: str) -> int:
    runs = read_csv(root / study / "runs.csv")
    return int(runs["seed"].nunique()) if runs is not None and "seed" in runs.columns else 0


def finding_gradient_factor(pred, root, figdirs):
    got = _study_rows(pred, figdirs, "depth_profile", claim="grad_slope_layerwise", dropna=("measured", "predicted"))
    if got is None:
        return None
    study, d = got
    held = int((d["verdict"] == "held").sum())
    med, lo, hi = bootstrap_median((d["measured"] - d["predicted"]).abs())
    worst = d.loc[(d["measured"] - d["predicted"]).abs().idxmax()]
    return Finding(
        "The per-layer gradient factor χ₁ predicts gradient flow.",
        f"In the `{study}` study the mean-field factor log χ₁ per layer matched the measured change of "
        f"$\\log\\lVert\\partial L/\\partial z_l\\rVert^2$ per layer in {held} of {len(d)} activation × initialisation settings; the median "
        f"|measured − predicted| is {_fmt(med)} per layer (95 % bootstrap interval {_fmt(lo)}–{_fmt(hi)}). "
        f"The largest miss is {worst['activation']} (`{worst['setting']}`): {_fmt(worst['measured'])} measured "
        f"against {_fmt(worst['predicted'])} predicted.",
        study, "depth_profile", row_anchor(study, worst.name))


def finding_deepest(pred, root, figdirs):
    got = _study_rows(pred, figdirs, "depth_profile", claim="grad_slope_layerwise")
    if got is None:
        return None
    study, d = got
    n = _seeds(root, study)
    depth = None
    m = re.search(r"depth=(\d+)", " ".join(d["setting"].astype(str)))
    if m:
        depth = int(m.group(1))
    d = d.assign(absm=d["measured"].abs())
    best, worst = d.loc[d["absm"].idxmin()], d.loc[d["absm"].idxmax()]

    def ci(r):
        lo, hi = _num(r.get("lo")), _num(r.get("hi"))
        if np.isfinite(lo) and np.isfinite(hi):
            return f"{_fmt(r['measured'])} (95 % interval over {n} seeds {_fmt(lo)} to {_fmt(hi)})"
        sd = r.get("measured_std")
        if n > 1 and np.isfinite(sd):
            h = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
            return f"{_fmt(r['measured'])} (95 % t interval over {n} seeds {_fmt(r['measured'] - h)} to {_fmt(r['measured'] + h)})"
        return f"{_fmt(r['measured'])} (a single seed)"
    total = f" over {depth} layers" if depth else ""
    across = (f"a factor $e^{{{_fmt(abs(worst['measured']) * (depth - 1))}}}$ from layer {depth} to layer 1"
              if depth and depth > 1 else "per layer")
    return Finding(
        "Which networks keep their gradient with depth, and why.",
        f"Measured change of $\\log\\lVert\\partial L/\\partial z_l\\rVert^2$ per layer{total}: flattest for {best['activation']} with "
        f"`{best['setting']}`: {ci(best)}; steepest for {worst['activation']} with `{worst['setting']}`: {ci(worst)}, "
        f"{across}. The factor is set by "
        f"χ₁ = $\\sigma_w^2$ E[φ′(z)²] per layer: initialising at χ₁ = 1 (the edge of chaos) keeps it flat.",
        study, "depth_profile", row_anchor(study, worst.name))


def _verdict_tally(d) -> str:
    c = d["verdict"].value_counts()
    return ", ".join(f"{int(c[k])} {k}" for k in ("held", "failed", "inconclusive", "not applicable") if c.get(k, 0))


def _edge_finding(pred, figdirs, prefix: str, limit: str, who: str):
    got = _study_rows(pred, figdirs, "sharpness", prefix=prefix, most=False, dropna=())
    if got is None:
        return None
    study, d = got
    tau = float(d["predicted"].iloc[0])
    ratio = d["measured"] / tau
    m, a, b = bootstrap_median(ratio)
    low, high = d.loc[d["measured"].idxmin()], d.loc[d["measured"].idxmax()]
    return Finding(
        f"{who}: how close the sharpness came to its stability limit {limit}.",
        f"Peak sharpness (mean over seeds of each run's peak) / ({limit} = {_fmt(tau)}) over the {len(d)} "
        f"activations: median {_fmt(m)} (95 % bootstrap interval {_fmt(a)}–{_fmt(b)}), from "
        f"{_fmt(ratio.min())} ({low['activation']}) to {_fmt(ratio.max())} ({high['activation']}). Verdicts of 'sharpening reaches 0.8·{limit}' judged by each activation's "
        f"interval over seeds: {_verdict_tally(d)}.",
        study, "sharpness", row_anchor(study, low.name))


def finding_edge_of_stability(pred, root, figdirs):
    return _edge_finding(pred, figdirs, "sharpening reaches the edge of stability (2/", "2/η",
                         "Full-batch gradient descent")


def finding_adam(pred, root, figdirs):
    return _edge_finding(pred, figdirs, "sharpening reaches the edge of stability (38/", "38/η", "Full-batch Adam")


def finding_plateaus(pred, root, figdirs):
    """Stated on the study with the most runs that draws the plateaus; every other study with the claims follows,
    with both claims' ρ and verdicts."""
    claim, sat_claim = ("plateau steps fall as ‖∂L/∂W₁‖ at init rises",
                        "plateau steps rise with the saturated fraction at init")
    every = _rows(pred, claim=claim).dropna(subset=["measured"])
    d = _drawn(every, figdirs, "plateaus")
    if not len(d):
        return None
    sizes = {}
    for study in every["study"].unique():
        runs = read_csv(root / study / "runs.csv")
        sizes[study] = len(runs) if runs is not None else 0
    r = d.loc[sorted(d.index, key=lambda i: -sizes[d.at[i, "study"]])[0]]
    study, n = r["study"], sizes[r["study"]]
    lo, hi = fisher_interval(float(r["measured"]), n)

    def sat_of(st):
        sat = _rows(pred, study=st, claim=sat_claim)
        return sat.iloc[0] if len(sat) and np.isfinite(sat["measured"].iloc[0]) else None

    sat_txt = ""
    sat = sat_of(study)
    if sat is not None:
        how = {"held": "They also rise with the saturated fraction at init",
               "failed": "The saturated fraction at init does not explain them"}.get(
            str(sat["verdict"]), "Whether they rise with the saturated fraction at init is not decided")
        sat_txt = f" {how} (ρ = {_fmt(sat['measured'])}, {sat['verdict']})."
    rest = sorted((i for i in every.index if every.at[i, "study"] != study), key=lambda i: -sizes[every.at[i, "study"]])

    def other(i):
        st = every.at[i, "study"]
        s_ = sat_of(st)
        return (f"`{st}` ({sizes[st]} runs) ρ = {_fmt(every.at[i, 'measured'])}, {every.at[i, 'verdict']}"
                + (f"; saturated fraction ρ = {_fmt(s_['measured'])}, {s_['verdict']}" if s_ is not None else ""))
    others = "; ".join(other(i) for i in rest)
    return Finding(
        {"held": "Plateaus come with small initial gradients.",
         "failed": "Plateaus do not come with small initial gradients."}.get(
            str(r["verdict"]), "Whether plateaus come with small initial gradients is not decided."),
        f"Across the {n} runs of `{study}`, the steps spent on loss plateaus fall as the first-layer "
        f"gradient norm at initialisation rises: Spearman ρ = {_fmt(r['measured'])} (95 % Fisher interval "
        f"{_fmt(lo)} to {_fmt(hi)}), as the descent lemma's progress per step ∝ ‖∇L‖² predicts.{sat_txt}"
        + (f" The other studies: {others}." if others else ""),
        study, "plateaus", row_anchor(study, r.name))


def finding_saturation(pred, root, figdirs):
    d = _rows(pred, claim="saturation_init_predicted_q").dropna(subset=["measured", "predicted"])
    if not len(d):
        return None
    drawn = _drawn(d, figdirs, "layer_fractions")
    if not len(drawn):
        return None
    study = drawn["study"].value_counts().index[0]
    held = int((d["verdict"] == "held").sum())
    lo, hi = wilson(held, len(d))
    err = (d["measured"] - d["predicted"]).abs()
    worst = d.loc[err.idxmax()]
    return Finding(
        "Saturation at initialisation is predicted from the activation alone.",
        f"$P(|\\varphi'(\\sqrt{{q_l}}\\,u)| < \\varepsilon)$ from the mean-field $q_l$ matched the measured saturated fraction in {held} of "
        f"{len(d)} settings over all studies ({_fmt(100 * held / len(d))} %, Wilson 95 % interval "
        f"{_fmt(100 * lo)}–{_fmt(100 * hi)} %); largest miss {_fmt(err.max())} ({worst['activation']}, "
        f"{worst['study']}).",
        study, "layer_fractions", row_anchor(worst["study"], worst.name))


def finding_seeds(pred, root, figdirs):
    d = pred[pred["kind"] == "hypothesis"]
    d = d[~d["claim"].astype(str).str.startswith("plateau")]
    if not len(d):
        return None
    dec = d[d["verdict"].isin(("held", "failed"))]
    if not len(dec):
        return None
    held = int((dec["verdict"] == "held").sum())
    lo, hi = wilson(held, len(dec))
    by = dec.groupby("claim")["verdict"].apply(lambda v: (v == "held").mean())
    worst_claim = by.idxmin()
    w = dec[(dec["claim"] == worst_claim)]
    r = w.iloc[0]
    study = r["study"]
    if not _has_fig(figdirs, study, "training_curves") and not _has_fig(figdirs, study, "step_loss"):
        return None
    stem = "training_curves" if _has_fig(figdirs, study, "training_curves") else "step_loss"
    return Finding(
        "How the earlier experiments' claims fared.",
        f"Of {len(dec)} decided checks of the earlier experiments' claims, {held} held "
        f"({_fmt(100 * held / len(dec))} %, Wilson 95 % interval {_fmt(100 * lo)}–{_fmt(100 * hi)} %); "
        f"{len(d) - len(dec)} more could not be decided with the seeds run (inconclusive or not applicable). Weakest: `{worst_claim}`, held in "
        f"{int((w['verdict'] == 'held').sum())} of {len(w)} studies and settings.",
        study, stem, row_anchor(study, r.name))


def finding_trainability(pred, root, figdirs):
    got = _study_rows(pred, figdirs, "trainability_heatmaps", claim="trainable_region", most=False)
    if got is None:
        return None
    study, d = got
    mine = pred[pred["study"] == study]

    def row(claim: str, act: str):
        got = mine[(mine["claim"] == claim) & (mine["activation"] == act)]
        return got.iloc[0] if len(got) else None

    parts, unbounded = [], []
    for _, r in d.iterrows():
        a = r["activation"]
        k = row("trainable_depth_k", a)
        kk = (f"k = {_fmt(k['measured'])} (95 % interval {_fmt(k['lo'])}–{_fmt(k['hi'])})"
              if k is not None and np.isfinite(k["measured"]) else "k not fitted")
        f = row("trainable_region_finite_xi", a)
        fin_txt = ""
        if f is not None and np.isfinite(f["measured"]):
            fin_txt = f"; {_fmt(f['measured'])} ({f['verdict']}) where $\\xi_c$ is finite"
            unbounded.append(str(a))
        parts.append(f"{a} {_fmt(r['measured'])} ({r['verdict']}; {kk}{fin_txt})")
    where = (f"Where $q^* \\to \\infty$ ({', '.join(unbounded)} at large $\\sigma_w^2$) $\\xi_c = \\infty$ calls every "
             "depth trainable although gradients grow by χ₁ > 1 per layer: that is where the rule misses."
             if unbounded else "")
    best = d.loc[d["measured"].idxmax()]
    decided = [row("trainable_region_finite_xi", a) if a in unbounded else row("trainable_region", a)
               for a in d["activation"]]
    title = ("How deep a network trains is set by the correlation depth scale $\\xi_c$ where $\\xi_c$ is finite."
             if all(x is not None and x["verdict"] == "held" for x in decided) else
             "How deep a network trains, against the correlation depth scale $\\xi_c$.")
    return Finding(
        title,
        f"In `{study}` ({_seeds(root, study)} seeds per cell), the rule 'trains iff depth ≤ $k\\,\\xi_c(\\sigma_w^2)$' with k "
        f"fitted per activation agreed with the measured ($\\sigma_w^2$, depth) cells in: {'; '.join(parts)} (held needs "
        f"≥ 0.85 and beating the best $\\sigma_w^2$-blind depth cut). {where}",
        study, "trainability_heatmaps", row_anchor(study, best.name))


FINDINGS = (finding_gradient_factor, finding_deepest, finding_trainability, finding_edge_of_stability, finding_adam,
            finding_plateaus, finding_saturation, finding_seeds)


def findings(pred: pd.DataFrame | None, root: Path, figdirs: dict) -> list[Finding]:
    if pred is None or not len(pred):
        return []
    out = []
    for f in FINDINGS:
        try:
            got = f(pred, root, figdirs)
        except (KeyError, ValueError, IndexError, ZeroDivisionError):
            got = None
        if got is not None:
            out.append(got)
    return out


def findings_md(found: list[Finding], up: str = "") -> str:
    if not found:
        return ("!!! note \"No findings yet\"\n    The results folder has no predictions table; run "
                "`python -m empirical.predict results` and rebuild.\n")
    return "\n".join(f"{i}. {f.markdown(up)}" for i, f in enumerate(found, 1)) + "\n"


# ---------------------------------------------------------------------------------------------
# The verdict matrix.

def _cell(v: pd.Series) -> tuple[str, str]:
    c = v.value_counts()
    n = len(v)
    if c.get("failed", 0) and c.get("held", 0):
        cls = "mixed"
    elif c.get("failed", 0):
        cls = "failed"
    elif c.get("held", 0) == n:
        cls = "held"
    elif c.get("inconclusive", 0):
        cls = "inconclusive"
    elif c.get("held", 0):
        cls = "held"
    else:
        cls = "na"
    if n == 1:
        text = SYMBOL.get(v.iloc[0], "?")
    else:
        text = " ".join(f"{int(c[k])}{SYMBOL.get(k, '?')}" for k in ("held", "failed", "inconclusive",
                                                                     "not applicable") if c.get(k, 0))
    return cls, text


def verdict_matrix(pred: pd.DataFrame, study: str) -> str:
    """HTML table claim × activation for one study; each cell links to its first verdict row."""
    d = pred[pred["study"] == study]
    acts = activation_order([a for a in d["activation"].astype(str).unique()])
    claims = list(dict.fromkeys(d["claim"].astype(str)))
    head = "".join(f"<th>{a}</th>" for a in acts)
    rows = []
    for cl in claims:
        dc = d[d["claim"].astype(str) == cl]
        cells = []
        for a in acts:
            da = dc[dc["activation"].astype(str) == a]
            if not len(da):
                cells.append('<td class="actlab-cell-empty"></td>')
                continue
            cls, text = _cell(da["verdict"].astype(str))
            title = "; ".join(f"{s}: {v}" for s, v in zip(da["setting"].astype(str), da["verdict"].astype(str)))
            cells.append(f'<td class="actlab-cell actlab-cell-{cls}"><a href="#{row_anchor(study, da.index[0])}" '
                         f'title="{_esc(title)}">{text}</a></td>')
        rows.append(f"<tr><th class=\"actlab-claim\">{_esc(cl)}</th>{''.join(cells)}</tr>")
    return (f'<div class="actlab-matrix"><table>\n<thead><tr><th>claim</th>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows) + "\n</tbody></table></div>\n")


def _esc(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


# ---------------------------------------------------------------------------------------------
# Which activation when.

def recommendations_md(pred: pd.DataFrame | None, found: list[Finding]) -> str:
    """Recommendations, each with the verdict it rests on (link) and its number."""
    if pred is None or not len(pred):
        return "No predictions table: nothing to recommend from yet.\n"
    out = []

    def link(r) -> str:
        return f"[{r['verdict']}: {r['claim']}, {r['activation']}, {r['setting']}](predictions.md#{row_anchor(r['study'], r.name)})"

    crit = _rows(pred, claim="critical_flat_grad")
    if len(crit):
        r = crit.loc[crit["measured"].abs().idxmax()] if crit["measured"].notna().any() else crit.iloc[0]
        out.append(("Deep plain networks (tens of layers): initialise at the edge of chaos for your activation "
                    "(`--init critical`) where it has one at your $\\sigma_b^2$ (the CLI refuses it for the others, "
                    "e.g. GELU and SiLU at $\\sigma_b^2$ = 0.05, whose only edge is unstable).",
                    f"With it the gradient changed by at most {_fmt(abs(r['measured']))} in $\\log\\lVert\\partial L/\\partial z\\rVert^2$ per layer "
                    f"over {len(crit)} activations", link(r)))
    slope = _rows(pred, claim="grad_slope_layerwise").dropna(subset=["measured"])
    if len(slope):
        r = slope.loc[slope["measured"].abs().idxmax()]
        out.append((f"Avoid {r['activation']} with {r['setting'].split()[0]} in deep networks.",
                    f"Its gradient changes by {_fmt(r['measured'])} in $\\log\\lVert\\partial L/\\partial z\\rVert^2$ per layer, as χ₁ predicts "
                    f"({_fmt(r['predicted'])})", link(r)))
    eos = _rows(pred, prefix="sharpening reaches the edge of stability (2/")
    if len(eos):
        r = eos[eos["verdict"] == "held"].iloc[0] if (eos["verdict"] == "held").any() else eos.iloc[0]
        held = int((eos["verdict"] == "held").sum())
        out.append(("With large full-batch steps, pick η for the curvature you will reach, not the curvature at "
                    f"the start: sharpness climbed to 0.8·2/η or beyond for {held} of {len(eos)} activations "
                    f"({_verdict_tally(eos)}).",
                    f"{r['activation']}: peak $\\lambda_{{\\max}}$ {_fmt(r['measured'])} against 2/η = {_fmt(r['predicted'])}",
                    link(r)))
    dead = _rows(pred, claim="dead_units_grow_with_depth")
    if len(dead):
        r = dead.iloc[0]
        out.append(("ReLU in deep networks: expect dead units to accumulate with depth; Leaky ReLU or a smooth "
                    "ReLU-like activation (GELU, SiLU) has none.",
                    str(r["detail"]).split(";")[0], link(r)))
    nodead = _rows(pred, claim="no_dead_units")
    if len(nodead):
        held = int((nodead["verdict"] == "held").sum())
        r = nodead.iloc[0]
        out.append(("Activations without a flat region never produce dead units.",
                    f"held in {held} of {len(nodead)} checks", link(r)))
    plate = _rows(pred, claim="plateau steps fall as ‖∂L/∂W₁‖ at init rises").dropna(subset=["measured"])
    if len(plate):
        plate = plate.sort_values("n", ascending=False, kind="stable")
        r = plate.iloc[0]
        out.append(("If training starts on a plateau (sigmoid, default init), raise the initial gradient "
                    "(a larger $\\sigma_w^2$, or a zero-centred activation) rather than the step size.",
                    "Spearman ρ between plateau steps and the initial gradient: " + "; ".join(
                        f"{_fmt(x['measured'])} (`{x['study']}`, {int(x['n'])} runs, {x['verdict']})"
                        for _, x in plate.iterrows()),
                    link(r)))
    lines = ["| recommendation | evidence | verdict |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in out]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The convergence page.

_D2_KEYS = ("curvature", "curvature_bound", "sup_abs_d2", "second_derivative_bound", "max_abs_d2")


def sup_d2(props: dict | None):
    """sup|φ″| from the theory bundle's properties (None while theory does not provide it)."""
    if not props:
        return None
    for k in _D2_KEYS:
        if k in props:
            v = props[k]
            return v.get("value") if isinstance(v, dict) else v
    return None


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        s = str(v).strip().lower()
        return math.inf if s in ("inf", "oo", "+inf", "infinity") else math.nan


def curvature_table(bundle: dict) -> str:
    """Per activation: sup|φ′|, (sup|φ′|)², sup|φ″|, whether the loss is globally smooth, and the one-layer
    smoothness coefficient ½(sup|φ′|)² + √2·sup|φ″| (β_W at ‖A‖₂ = ‖x‖ = 1)."""
    rows = []
    for e in bundle.get("activations", []):
        p = e.get("properties") or {}
        lip = _num(p.get("lipschitz")) if "lipschitz" in p else math.nan
        d2 = sup_d2(p)
        d2n = _num(d2) if d2 is not None else math.nan
        kink = p.get("smoothness") in (0, "0") or (d2 is not None and d2n == math.inf)
        if kink:
            d2n = math.inf
        beta = 0.5 * lip ** 2 + math.sqrt(2) * d2n if np.isfinite(lip) else math.nan
        rows.append([f"[{e['label']}](activations/{e['name']}.md)", _fmt(lip, 4), _fmt(lip ** 2, 4),
                     "∞ (φ′ jumps: φ″ has a Dirac mass)" if kink else (_fmt(d2n, 4) if np.isfinite(d2n) else
                                                                   "— (not derived yet)"),
                     "no" if kink else ("yes" if np.isfinite(d2n) else "—"),
                     "∞" if kink else _fmt(beta, 4)])
    head = ["activation", "sup |φ′|", "(sup |φ′|)²", "sup |φ″|", "loss globally smooth",
            "½(sup |φ′|)² + √2 sup |φ″|"]
    return ("Derived from each activation's sympy expression (`theory.properties`) when the site is built. "
            "The last column is the bracket of the bound above at ‖A‖₂ = ‖x‖ = 1: a larger value allows a "
            "smaller guaranteed-safe step 2/β.\n\n"
            + "| " + " | ".join(head) + " |\n|" + "|".join([" --- "] * len(head)) + "|\n"
            + "\n".join("| " + " | ".join(c.replace("|", r"\|") for c in r) + " |" for r in rows) + "\n")


def sharpness_md(pred: pd.DataFrame | None, found: list[Path], figdirs: dict) -> str:
    out = []
    for s in found:
        if not _has_fig(figdirs, s.name, "sharpness"):
            continue
        out.append(f"### Study [`{s.name}`](experiments/{s.name}.md)\n")
        out.append(f'<figure markdown>\n![sharpness against step, {s.name}](experiments/figures/{s.name}/sharpness.png)'
                   "{ loading=lazy }\n<figcaption markdown>Top eigenvalue of the full training loss's Hessian "
                   "(for Adam, of P⁻¹H) against step, mean over seeds, band min–max, log scale; dotted: the "
                   "optimiser's stability threshold.</figcaption>\n</figure>\n")
        if pred is not None and len(pred):
            d = pred[(pred["study"] == s.name) & pred["claim"].astype(str).str.contains("edge of stability|stay above")]
            if len(d):
                out.append(_claims_table(d))
    if not out:
        return ("No study in the results folder recorded the sharpness. Run one with "
                "`python -m empirical.run --preset edge-of-stability` (or `--sharpness-every K`) and rebuild.\n")
    return "\n".join(out)


def plateaus_md(pred: pd.DataFrame | None, found: list[Path], figdirs: dict) -> str:
    out = ["Plateaus are detected on every run's per-step loss (`empirical/analysis/plateaus.py`): a stretch of "
           "at least 50 steps whose smoothed log-loss falls at less than a quarter of the run's mean rate, "
           "after which the loss falls again by at least a fifth of its total fall.\n"]
    any_fig = False
    for s in found:
        if not _has_fig(figdirs, s.name, "plateaus"):
            continue
        any_fig = True
        out.append(f"### Study [`{s.name}`](experiments/{s.name}.md)\n")
        out.append(f'<figure markdown>\n![plateaus, {s.name}](experiments/figures/{s.name}/plateaus.png)'
                   "{ loading=lazy }\n<figcaption markdown>Top: training loss (log scale) of the runs with a "
                   "plateau, plateaus shaded. Bottom: steps on plateaus against ‖∂L/∂W₁‖ at initialisation (log "
                   "scale), one dot per run.</figcaption>\n</figure>\n")
        if pred is not None and len(pred):
            d = pred[(pred["study"] == s.name) & pred["claim"].astype(str).str.startswith("plateau")]
            if len(d):
                out.append(_claims_table(d))
    if not any_fig:
        out.append("No run in the results folder has a plateau.\n")
    return "\n".join(out)


def _claims_table(d: pd.DataFrame) -> str:
    lines = ["| claim | activation | predicted | measured (± sd over seeds) | verdict | why |",
             "| --- | --- | --- | --- | --- | --- |"]
    for idx, r in d.iterrows():
        meas = _fmt(r["measured"], 4)
        if np.isfinite(r.get("measured_std", math.nan)) and r.get("measured_std", 0) > 0:
            meas += f" ± {_fmt(r['measured_std'], 2)}"
        v = str(r["verdict"])
        why = "; ".join(str(r[k]) for k in ("detail", "reason") if k in r and pd.notna(r[k]) and str(r[k]))
        lines.append(f"| {r['claim']} | {r['activation']} | {_fmt(r['predicted'], 4)} | {meas} | "
                     f"[{v}](predictions.md#{row_anchor(r['study'], idx)}) | "
                     f"{subscripts((why or '—').replace('|', chr(92) + '|'))} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The TeLU paper's claims, checked.

TELU_PEERS = ("telu", "silu", "gelu", "mish", "relu")


def _entry(bundle: dict, name: str) -> dict | None:
    return next((e for e in bundle.get("activations", []) if e.get("name") == name), None)


def _paper(e: dict | None) -> dict:
    p = (e or {}).get("properties") or {}
    return {**(p.get("telu_paper") or {}), "curvature": p.get("curvature"), "smoothness": p.get("smoothness"),
            "lipschitz": p.get("lipschitz")}


def _order_verdict(telu: float, others: dict[str, float], larger: bool) -> tuple[str, str]:
    """held iff TeLU's value is the largest (``larger``) or the smallest among TeLU and ``others``."""
    vals = {k: v for k, v in others.items() if np.isfinite(v)}
    if not np.isfinite(telu) or not vals:
        return "not applicable", "the theory does not provide the value yet"
    best = max(vals.values()) if larger else min(vals.values())
    ok = telu >= best if larger else telu <= best
    rel = ("≥" if larger else "≤") if ok else ("<" if larger else ">")
    return ("held" if ok else "failed"), f"TeLU {_fmt(telu, 4)} {rel} best peer {_fmt(best, 4)}"


def telu_claims_md(bundle: dict, root: Path, found: list[Path]) -> str:
    """The paper's claims one by one: the derived numbers for TeLU and its peers, a verdict per claim,
    and measured evidence from any study that trained TeLU with its peers."""
    ents = {n: _entry(bundle, n) for n in TELU_PEERS}
    ents = {n: e for n, e in ents.items() if e is not None}
    if "telu" not in ents:
        return "TeLU is not in the registry of this build.\n"
    pp = {n: _paper(e) for n, e in ents.items()}
    peers = [n for n in ("silu", "gelu", "mish") if n in pp]
    cols = list(pp)
    head = "| property | " + " | ".join(ents[n]["label"] for n in cols) + " | claim | verdict |\n"
    head += "|" + "|".join([" --- "] * (len(cols) + 3)) + "|\n"
    rows = []

    def num(n, k):
        return _num(pp[n].get(k)) if pp[n].get(k) is not None else math.nan

    def row(label, key, claim, larger=None, show=None):
        vals = {n: num(n, key) for n in cols}
        cells = [show(pp[n]) if show else _fmt(vals[n], 4) for n in cols]
        if larger is None:
            v, why = "—", ""
        else:
            v, why = _order_verdict(vals["telu"], {n: vals[n] for n in peers}, larger)
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {claim} | {v}{' (' + why + ')' if why else ''} |")

    row("near-identity on the right: φ(x) − x → 0 as x → ∞ (rate)", "near_identity_rate",
        "TeLU approaches the identity for large x, like ReLU's active side",
        show=lambda d: (f"{'yes' if d.get('near_identity_right') else 'no'} ({d.get('near_identity_rate', '—')})"
                        if d.get("near_identity_rate") is not None else "—"))
    row("$\\lvert\\varphi'(-3)\\rvert$", "abs_grad_at_minus3",
        "persistent gradient for negative inputs: larger than SiLU, GELU, Mish", larger=True)
    row("$\\lvert\\varphi'(-5)\\rvert$", "abs_grad_at_minus5", "same, further left", larger=True)
    row("left ε-threshold: $\\lvert\\varphi'\\rvert < \\varepsilon$ below it", "eps_threshold_left",
        "the gradient vanishes later (further left) than for its peers", larger=False)
    row("$\\sup_x \\lvert \\varphi(x) - \\max(x, 0)\\rvert$", "relu_distance",
        "a close smooth approximation of ReLU", larger=False)
    row("analytic on ℝ", "analytic", "smooth everywhere (analytic), unlike ReLU",
        show=lambda d: ("yes" if d.get("analytic") else "no") if d.get("analytic") is not None else "—")
    row("Lipschitz constant $\\sup\\lvert\\varphi'\\rvert$", "lipschitz", "bounded gradient: stable training",
        larger=False)
    row("curvature bound $\\sup\\lvert\\varphi''\\rvert$", "curvature",
        "smoother loss landscape (see [Convergence](convergence.md))", larger=False)
    out = ["## Derived: the paper's properties, computed for TeLU and its peers\n",
           "Each number is derived from the activation's sympy expression (`theory.properties`) when the site "
           "is built. A claim that TeLU is better than SiLU, GELU and Mish on a property *held* when its value "
           "is at least as good as every one of theirs, *failed* otherwise; ReLU is shown for reference.\n",
           head + "\n".join(rows) + "\n"]
    out.append("## Measured\n")
    meas = _telu_measured(root, found)
    out.append(meas or ("No study in the results folder trained TeLU beside its peers. Run "
                        "`python -m empirical.run --preset telu` and rebuild.\n"))
    return "\n".join(out)


def _telu_measured(root: Path, found: list[Path]) -> str:
    out = []
    for s in found:
        runs = read_csv(s / "runs.csv")
        if runs is None or "telu" not in set(runs["activation"]):
            continue
        acts = [a for a in TELU_PEERS if a in set(runs["activation"])]
        fin = runs[runs["status"] != "diverged"] if "status" in runs.columns else runs
        lines = [f"### Study [`{s.name}`](experiments/{s.name}.md)\n",
                 "Mean over seeds with the 95 % t interval; the difference to TeLU is paired by seed "
                 "(same data order and initial draw), with its 95 % t interval: an interval that excludes 0 "
                 "decides the comparison, one that contains it is inconclusive at this number of seeds.\n",
                 "| activation | final test accuracy | final test loss | TeLU − this (test loss), paired | "
                 "first-layer gradient at init |", "| --- | --- | --- | --- | --- |"]
        tl = fin[fin["activation"] == "telu"].set_index("seed")
        for a in acts:
            d = fin[fin["activation"] == a].set_index("seed")
            acc = t_interval(d["final_test_acc"])
            loss = t_interval(d["final_test_loss"])
            g = t_interval(d["first_layer_grad_init"]) if "first_layer_grad_init" in d else (math.nan,) * 4
            if a == "telu":
                diff = "—"
            else:
                common = tl.index.intersection(d.index)
                m, lo, hi, n = t_interval((tl.loc[common, "final_test_loss"] - d.loc[common, "final_test_loss"]))
                word = ("TeLU lower" if hi < 0 else "TeLU higher" if lo > 0 else "inconclusive")
                diff = f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}], {word} (n = {n})"
            lines.append(f"| {a} | {_fmt(acc[0], 4)} [{_fmt(acc[1], 4)}, {_fmt(acc[2], 4)}] | "
                         f"{_fmt(loss[0])} [{_fmt(loss[1])}, {_fmt(loss[2])}] | {diff} | {_fmt(g[0])} |")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)
