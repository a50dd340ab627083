"""Claims about the curvature of the training loss: the edge of stability and plateaus.

Edge of stability (Cohen et al. 2021; 2022 for Adam), per activation and setting, for studies that
recorded the sharpness (``empirical.sharpness``; λ = λ_max(H) for SGD, λ_max(P⁻¹H) for Adam) against the
update's stability threshold τ (2/η for gradient descent, (2 + 2β)/η with momentum β, 38/η for Adam):

- *progressive sharpening reaches the edge*: max_t λ(t) ≥ 0.8·τ (mean over seeds of each run's maximum, judged
  by its 95 % t interval: wholly above → held, wholly below → failed, straddling → inconclusive);
  not applicable when λ(0) ≥ τ already;
- *no step stays beyond the edge*: of the measurements after λ first reached 0.8·τ, the fraction with
  λ > 1.2·τ is ≤ 0.25 (mean over seeds, judged by its interval the same way). Training above τ is unstable on the quadratic model, so a run
  cannot sit there; the 20 % margins absorb the Lanczos and minibatch-probe error.

Plateaus (``empirical.analysis.plateaus``), per study: across runs, the steps spent on plateaus rise as
the first-layer gradient norm at initialisation falls (the descent lemma's progress per step is
∝ ‖∇L‖²): Spearman ρ(plateau steps, ‖∂L/∂W₁‖ at init) < 0. The same against the saturated fraction at init
(ρ > 0). Each is tested by a one-sided permutation p (most runs have no plateau, so ranks are heavily tied and
the t approximation is anti-conservative), Holm over the two: p_Holm ≤ 0.05 → held, the opposite direction's
p_Holm ≤ 0.05 → failed, else inconclusive.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from empirical.analysis import stats as S
from empirical.analysis.plateaus import plateau_table
from empirical.analysis.results_schema import Study, setting_groups
from empirical.analysis.verdicts import (ALPHA, FAILED, HELD, INCONCLUSIVE, NOT_APPLICABLE, Prediction, interval, make,
                                         seeds_for_interval)
REACH, ABOVE, ABOVE_FRACTION = 0.8, 1.2, 0.25


def stability_threshold(optimizer: str, lr: float, momentum: float = 0.0, beta1: float = 0.9) -> float:
    """The largest stable curvature of the update on a quadratic: (2 + 2β)/η for SGD with momentum β,
    (2 + 2β₁)/((1 − β₁)η) for Adam's preconditioned sharpness (38/η at β₁ = 0.9)."""
    if optimizer == "adam":
        return (2 + 2 * beta1) / ((1 - beta1) * lr)
    return (2 + 2 * momentum) / lr


def sharpness_frame(study: Study) -> pd.DataFrame:
    """run_id, activation, seed, step, sharpness (the optimizer's kind), threshold, optimizer, lr."""
    lay = study.layers
    if lay is None or not len(lay) or "metric" not in lay.columns:
        return pd.DataFrame()
    runs = study.runs.set_index("run_id")
    rows = []
    for rid, g in lay[lay["metric"].isin(("sharpness", "preconditioned_sharpness"))].groupby("run_id"):
        if rid not in runs.index:
            continue
        r = runs.loc[rid]
        opt = str(r.get("optimizer", "sgd"))
        name = "preconditioned_sharpness" if opt == "adam" else "sharpness"
        g = g[g["metric"] == name].sort_values("step")
        mom = float(r.get("momentum", 0.0) or 0.0)
        tau = stability_threshold(opt, float(r["lr"]), momentum=mom)
        for step, v in zip(g["step"], g["value"]):
            rows.append({"run_id": rid, "activation": r["activation"], "seed": r["seed"], "step": int(step),
                         "sharpness": float(v) if pd.notna(v) else math.nan, "threshold": tau,
                         "optimizer": opt, "lr": float(r["lr"]), "kind": name})
    return pd.DataFrame(rows)


def _run_stats(d: pd.DataFrame) -> tuple[float, float, float, bool]:
    """(λ at the first measurement, max λ, fraction above ABOVE·τ after first reaching REACH·τ, whether the
    max is the first measurement: no progressive sharpening in the run)."""
    d = d.dropna(subset=["sharpness"]).sort_values("step")
    if not len(d):
        return math.nan, math.nan, math.nan, False
    lam, tau = d["sharpness"].to_numpy(), float(d["threshold"].iloc[0])
    reached = np.flatnonzero(lam >= REACH * tau)
    frac = float(np.mean(lam[reached[0]:] > ABOVE * tau)) if len(reached) else math.nan
    return float(lam[0]), float(lam.max()), frac, bool(len(lam) > 1 and int(np.argmax(lam)) == 0)


def _side(lo: float, hi: float, edge: float, above: bool, what: str, edge_txt: str = "", m: float = math.nan,
          sd: float = math.nan) -> tuple[str, str]:
    """Verdict of 'm ≥ edge' (``above``) or 'm ≤ edge' from the 95 % interval [lo, hi] of the seed mean m (sd
    over seeds): held when the whole interval is on the claimed side, failed when it is wholly on the other, else
    inconclusive, with the seeds whose interval would be narrower than |m − edge|."""
    e = edge_txt or f"{edge:.3g}"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE, f"{what}: one seed gives no interval; run ≥ 2 seeds"
    good = lo >= edge if above else hi <= edge
    bad = hi < edge if above else lo > edge
    rel = "≥" if above else "≤"
    iv = f"95 % interval [{lo:.3g}, {hi:.3g}]"
    if good:
        return HELD, f"{what}, {iv} {rel} {e}"
    if bad:
        return FAILED, f"{what}, {iv} wholly on the other side of {e}"
    need = seeds_for_interval(sd, abs(m - edge)) if m != edge else None
    return INCONCLUSIVE, f"{what}, {iv} straddles {e}: " + (f"about {need} seeds would decide" if need else
                                                              "more seeds would decide")


def edge_of_stability(study: Study) -> list[Prediction]:
    sf = sharpness_frame(study)
    if not len(sf):
        return []
    out = []
    for setting, g in setting_groups(study):
        ids = set(g["run_id"])
        for act, d in sf[sf["run_id"].isin(ids)].groupby("activation", sort=False):
            per_run = [_run_stats(x) for _, x in d.groupby("run_id")]
            tau = float(d["threshold"].iloc[0])
            kind = "λ_max(P⁻¹H)" if d["kind"].iloc[0] == "preconditioned_sharpness" else "λ_max(H)"
            limit = "38/η" if d["optimizer"].iloc[0] == "adam" else "2/η"
            start = np.nanmean([p[0] for p in per_run])
            flat = sum(p[3] for p in per_run)
            peak, sd, lo, hi, n = interval([p[1] for p in per_run])
            reach = f"max_t {kind} ≥ {REACH}·{limit}"
            if start >= tau:
                v, why = NOT_APPLICABLE, f"{kind} = {start:.3g} ≥ {limit} = {tau:.3g} already at step 0"
            else:
                v, why = _side(lo, hi, REACH * tau, above=True, what=f"peak (mean of {n} seeds) {peak:.3g}",
                               edge_txt=f"{REACH}·{limit} = {REACH * tau:.3g}", m=peak, sd=sd)
            out.append(make(study, "bound", f"sharpening reaches the edge of stability ({limit})", act, setting,
                            relation=reach, predicted=tau, measured=peak, lo=lo, hi=hi, measured_std=sd, n=n,
                            tolerance=(1 - REACH) * tau, verdict=v, reason=why,
                            detail=f"started at {start:.3g}; {limit} = {tau:.3g}"
                            + (f"; peak at the first measurement in {flat} of {len(per_run)} runs (no progressive "
                               "sharpening)" if flat else "")))
            above = f"fraction of {kind} > {ABOVE}·{limit} after first reaching {REACH}·{limit} ≤ {ABOVE_FRACTION}"
            fr = [p[2] for p in per_run if np.isfinite(p[2])]
            if not fr:
                out.append(make(study, "bound", f"sharpness does not stay above {limit}", act, setting,
                                relation=above, predicted=ABOVE_FRACTION, verdict=NOT_APPLICABLE,
                                reason=f"{kind} never reached {REACH}·{limit}"))
                continue
            m, sd, lo, hi, n = interval(fr)
            v, why = _side(lo, hi, ABOVE_FRACTION, above=False, what=f"fraction (mean of {n} seeds) {m:.3g}",
                           edge_txt=str(ABOVE_FRACTION), m=m, sd=sd)
            out.append(make(study, "bound", f"sharpness does not stay above {limit}", act, setting, relation=above,
                            predicted=ABOVE_FRACTION, measured=m, lo=lo, hi=hi, measured_std=sd, n=n, tolerance=0.0,
                            verdict=v, reason=why))
    return out


def plateau_frame(study: Study) -> pd.DataFrame:
    """Per run: plateau count and steps, the first plateau's level, ‖∂L/∂W₁‖ and saturated fraction at init."""
    steps = study.steps
    if steps is None or not len(steps):
        return pd.DataFrame()
    rows = pd.DataFrame(plateau_table(steps[["run_id", "step", "loss"]]))
    runs = study.runs[["run_id", "activation", "seed"] + [c for c in ("model", "init") if c in study.runs]]
    out = runs.copy()
    if len(rows):
        agg = rows.groupby("run_id").agg(plateaus=("length", "size"), plateau_steps=("length", "sum"),
                                         plateau_level=("level", "first"))
        out = out.merge(agg, left_on="run_id", right_index=True, how="left")
    else:
        out["plateaus"], out["plateau_steps"], out["plateau_level"] = 0, 0, math.nan
    out["plateaus"] = out["plateaus"].fillna(0).astype(int)
    out["plateau_steps"] = out["plateau_steps"].fillna(0).astype(int)
    n = steps.groupby("run_id")["step"].max()
    out["steps"] = out["run_id"].map(n)
    lay = study.layers
    first = lay[lay["step"] == lay.groupby("run_id")["step"].transform("min")]
    g1 = first[(first["metric"] == "weight_grad_norm") & (first["layer"] == 1)].set_index("run_id")["value"]
    sat = first[first["metric"] == "saturated_frac"].groupby("run_id")["value"].mean()
    out["grad_w1_init"] = out["run_id"].map(g1)
    out["saturated_init"] = out["run_id"].map(sat)
    return out


class _PlateauTest(NamedTuple):
    """One plateau hypothesis: its claim, relation, runs (and how many have a plateau), Spearman ρ, the one-sided
    permutation p in the predicted direction and in the opposite one, or why it cannot be tested."""

    claim: str
    relation: str
    runs: int
    with_plateau: int
    sign: int
    rho: float = math.nan
    p: float = math.nan
    p_opposite: float = math.nan
    untestable: str = ""


def _spearman_test(pf, col, label, sign) -> _PlateauTest:
    rel = (f"Spearman ρ(plateau steps, {col}) {'<' if sign < 0 else '>'} 0, one-sided permutation p, "
           f"Holm over the study's two plateau claims, α = {ALPHA:g}")
    d = pf.dropna(subset=[col])
    t = _PlateauTest(f"plateau steps {label}", rel, len(d), int((d["plateau_steps"] > 0).sum()), sign)
    if len(d) < 4 or d["plateau_steps"].nunique() < 2 or d[col].nunique() < 2:
        return t._replace(untestable=f"{t.runs} runs, {t.with_plateau} with a plateau: too few, or no variation, "
                                     "to rank")
    rho, p_g, p_l = S.spearman_permutation(d["plateau_steps"].to_numpy(float), d[col].to_numpy(float))
    return t._replace(rho=rho, p=p_g if sign > 0 else p_l, p_opposite=p_l if sign > 0 else p_g)


def plateaus(study: Study) -> list[Prediction]:
    """The two plateau hypotheses of a study, one Holm family: held iff p_Holm ≤ α, failed iff the opposite
    direction's p_Holm ≤ α, else inconclusive."""
    pf = plateau_frame(study)
    if not len(pf) or int(pf["plateau_steps"].sum()) == 0:
        return []
    setting = "all runs"
    tests = [_spearman_test(pf, "grad_w1_init", "fall as ‖∂L/∂W₁‖ at init rises", -1),
             _spearman_test(pf, "saturated_init", "rise with the saturated fraction at init", +1)]
    p_adj = S.holm([t.p for t in tests])
    q_adj = S.holm([t.p_opposite for t in tests])
    out = []
    for t, pa, qa in zip(tests, p_adj, q_adj):
        if t.untestable:
            out.append(make(study, "hypothesis", t.claim, "all", setting, relation=t.relation,
                            verdict=NOT_APPLICABLE, reason=t.untestable))
            continue
        v = HELD if pa <= ALPHA else FAILED if qa <= ALPHA else INCONCLUSIVE
        more = "" if v != INCONCLUSIVE else "; more runs with plateaus would decide"
        out.append(make(study, "hypothesis", t.claim, "all", setting, relation=t.relation, predicted=float(t.sign),
                        measured=float(t.rho), n=t.runs, p_value=float(t.p), p_adjusted=float(pa), tolerance=0.0,
                        verdict=v, reason=(f"ρ = {t.rho:.3g} over {t.runs} runs ({t.with_plateau} with a plateau), "
                                           f"one-sided permutation p = {t.p:.3g} (Holm {pa:.3g}), opposite p = "
                                           f"{t.p_opposite:.3g} (Holm {qa:.3g}){more}")))
    return out
