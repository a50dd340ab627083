"""Claims about the curvature of the training loss: the edge of stability and plateaus.

Edge of stability (Cohen et al. 2021; 2022 for Adam), per activation and setting, for studies that
recorded the sharpness (``empirical.sharpness``; λ = λ_max(H) for SGD, λ_max(P⁻¹H) for Adam) against the
update's stability threshold τ (2/η for gradient descent, (2 + 2β)/η with momentum β, 38/η for Adam):

- *progressive sharpening reaches the edge*: max_t λ(t) ≥ 0.8·τ (mean over seeds of each run's maximum);
  not applicable when λ(0) ≥ τ already;
- *no step stays beyond the edge*: of the measurements after λ first reached 0.8·τ, the fraction with
  λ > 1.2·τ is ≤ 0.25 (mean over seeds). Training above τ is unstable on the quadratic model, so a run
  cannot sit there; the 20 % margins absorb the Lanczos and minibatch-probe error.

Plateaus (``empirical.analysis.plateaus``), per study: across runs, the steps spent on plateaus rise as
the first-layer gradient norm at initialisation falls (the descent lemma's progress per step is
∝ ‖∇L‖²): Spearman ρ(plateau steps, ‖∂L/∂W₁‖ at init) < 0 with a one-sided p < 0.05 → held, ρ > 0 with
p < 0.05 → failed, else inconclusive. The same test against the saturated fraction at init is recorded.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from empirical.analysis.plateaus import plateau_table
from empirical.analysis.results_schema import Study, setting_groups
from empirical.analysis.verdicts import FAILED, HELD, NOT_APPLICABLE, Prediction, record

INCONCLUSIVE = "inconclusive"
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


def _run_stats(d: pd.DataFrame) -> tuple[float, float, float]:
    """(λ at the first measurement, max λ, fraction above ABOVE·τ after first reaching REACH·τ)."""
    d = d.dropna(subset=["sharpness"]).sort_values("step")
    if not len(d):
        return math.nan, math.nan, math.nan
    lam, tau = d["sharpness"].to_numpy(), float(d["threshold"].iloc[0])
    reached = np.flatnonzero(lam >= REACH * tau)
    frac = float(np.mean(lam[reached[0]:] > ABOVE * tau)) if len(reached) else math.nan
    return float(lam[0]), float(lam.max()), frac


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
            peaks = [p[1] for p in per_run]
            peak, peak_sd = float(np.nanmean(peaks)), float(np.nanstd(peaks, ddof=1)) if len(peaks) > 1 else 0.0
            if start >= tau:
                v, why = NOT_APPLICABLE, f"{kind} = {start:.3g} ≥ {limit} = {tau:.3g} already at step 0"
            else:
                v = HELD if peak >= REACH * tau else FAILED
                why = (f"max over training of {kind} (mean of {len(peaks)} seeds) against {limit} = {tau:.3g}; "
                       f"held iff ≥ {REACH}·{limit}; started at {start:.3g}")
            out.append(record(study, "prediction", f"sharpening reaches the edge of stability ({limit})", act,
                              setting, predicted=tau, measured=peak, std=peak_sd, tol=(1 - REACH) * tau,
                              verdict=v, detail=why))
            fr = [p[2] for p in per_run if np.isfinite(p[2])]
            if not fr:
                out.append(record(study, "prediction", f"sharpness does not stay above {limit}", act, setting,
                                  predicted=ABOVE_FRACTION, verdict=NOT_APPLICABLE,
                                  detail=f"{kind} never reached {REACH}·{limit}"))
                continue
            m = float(np.mean(fr))
            out.append(record(
                study, "prediction", f"sharpness does not stay above {limit}", act, setting,
                predicted=ABOVE_FRACTION, measured=m, std=float(np.std(fr, ddof=1)) if len(fr) > 1 else 0.0,
                tol=0.0, verdict=HELD if m <= ABOVE_FRACTION else FAILED,
                detail=(f"fraction of measurements with {kind} > {ABOVE}·{limit} after it first reached "
                        f"{REACH}·{limit} (mean of {len(fr)} seeds); held iff ≤ {ABOVE_FRACTION}")))
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


def _spearman_claim(study, pf, col, label, sign, setting) -> Prediction:
    d = pf.dropna(subset=[col])
    if len(d) < 4 or d["plateau_steps"].nunique() < 2 or d[col].nunique() < 2:
        return record(study, "hypothesis", f"plateau steps {label}", "all", setting, verdict=NOT_APPLICABLE,
                      detail=f"{len(d)} runs, {int((d['plateau_steps'] > 0).sum())} with a plateau: "
                             "too few, or no variation, to rank")
    rho, p_two = stats.spearmanr(d["plateau_steps"], d[col])
    p = p_two / 2 if np.sign(rho) == sign else 1 - p_two / 2
    p_other = 1 - p
    v = HELD if p < 0.05 else FAILED if p_other < 0.05 else INCONCLUSIVE
    more = "" if v != INCONCLUSIVE else " (more runs with plateaus would decide: each extra seed adds one per activation)"
    return record(study, "hypothesis", f"plateau steps {label}", "all", setting, predicted=float(sign),
                  measured=float(rho), tol=0.0, verdict=v,
                  detail=(f"Spearman ρ over {len(d)} runs ({int((d['plateau_steps'] > 0).sum())} with a plateau), "
                          f"one-sided p = {p:.3g} for the predicted sign{more}"))


def plateaus(study: Study) -> list[Prediction]:
    pf = plateau_frame(study)
    if not len(pf) or int(pf["plateau_steps"].sum()) == 0:
        return []
    setting = "all runs"
    return [_spearman_claim(study, pf, "grad_w1_init", "fall as ‖∂L/∂W₁‖ at init rises", -1, setting),
            _spearman_claim(study, pf, "saturated_init", "rise with the saturated fraction at init", +1, setting)]
