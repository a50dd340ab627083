"""Sanity checks (theorems the code must satisfy: the Lipschitz backprop bound, no dead units where φ is
never zero on an interval, at most half dead at a sign-symmetric init) and the two falsifiable claims about
dead units that go with them (a prediction and an ordering).

A failed sanity check is a bug (probe, constant or weight layout) or fp32 underflow, not evidence about
theory; sanity checks are counted apart from predictions.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from empirical.analysis.results_schema import Study, at_probe, groups, metric, widths
from empirical.analysis.theory_bridge import lipschitz_constant, zero_on_interval
from empirical.analysis.verdicts import (ALPHA, FAILED, HELD, INCONCLUSIVE, NOT_APPLICABLE, TINY, Claim, bound_verdict,
                                         interval, make, tolerance_verdict)

LIP_RELATION = "max ‖∂L/∂x_(l−1)‖ / (its bound) ≤ 1 + 1e-4 over probes, layers, runs"

__all__ = ["lipschitz_bound", "dead_units"]


def lipschitz_bound(study: Study) -> list[Claim]:
    """``lipschitz_backprop_bound``, a theorem, one record per activation of the study.

    With z_l = h_{l−1} W_l + b_l and h = φ(z): ∂L/∂h_{l−1} = ∂L/∂z_l W_lᵀ so ‖∂L/∂h_{l−1}‖ ≤ ‖W_l‖₂‖∂L/∂z_l‖,
    and ∂L/∂z_{l−1} = φ′(z_{l−1}) ⊙ ∂L/∂h_{l−1} so ‖∂L/∂z_{l−1}‖ ≤ Lip(φ)‖∂L/∂h_{l−1}‖. Measured: the
    largest of the three ratios lhs/rhs (including ‖∂L/∂z_{l−1}‖ / (Lip‖W_l‖₂‖∂L/∂z_l‖)) over every
    probe, layer l = 2..L+1 and run; held iff ≤ 1 + 1e-4 (fp32). Needs MLP runs (‖W_l‖₂ is probed there).
    """
    out = []
    lay = study.layers
    runs = study.runs
    for act, g in runs.groupby("activation", sort=False):
        act = str(act)
        mlp = g[g["model"].astype(str) == "mlp"]
        if len(mlp) == 0:
            out.append(make(study, "sanity", "lipschitz_backprop_bound", act, "all runs", LIP_RELATION,
                            reason="needs MLP runs (weight_spectral_norm is probed for linear layers only)"))
            continue
        try:
            lip = lipschitz_constant(act)
        except Exception as exc:  # noqa: BLE001
            out.append(make(study, "sanity", "lipschitz_backprop_bound", act, "all runs", LIP_RELATION,
                            reason=f"no Lipschitz constant: {exc}"))
            continue
        d = lay[lay["run_id"].isin(set(mlp["run_id"])) &
                lay["metric"].isin(("grad_norm_z", "grad_norm_h", "weight_spectral_norm"))]
        if len(d) == 0:
            out.append(make(study, "sanity", "lipschitz_backprop_bound", act, "all runs", LIP_RELATION,
                            reason="no grad_norm_z/grad_norm_h/weight_spectral_norm probes"))
            continue
        wide = d.pivot_table(index=["run_id", "step", "layer"], columns="metric", values="value", aggfunc="first")
        for c in ("grad_norm_z", "grad_norm_h", "weight_spectral_norm"):
            if c not in wide.columns:
                wide[c] = np.nan
        wide = wide.sort_index()
        prev = wide.groupby(level=[0, 1]).shift(1)          # layer l−1 in the same run and probe
        gz, ws = wide["grad_norm_z"], wide["weight_spectral_norm"]
        gz_prev, gh_prev = prev["grad_norm_z"], prev["grad_norm_h"]
        ratios, skipped = {}, 0
        for name, lhs, rhs in (("h", gh_prev, ws * gz), ("z", gz_prev, lip * gh_prev),
                               ("zz", gz_prev, lip * ws * gz)):
            ok = np.isfinite(lhs) & np.isfinite(rhs) & (lhs > TINY) & (gz > TINY)
            skipped += int((np.isfinite(lhs) & np.isfinite(rhs) & ~ok).sum())
            with np.errstate(divide="ignore"):
                r = lhs[ok] / rhs[ok]
            ratios[name] = float(r.max()) if len(r) else math.nan
        # a bound of 0 under a gradient above 1e-30 is a ratio of inf: a violation, not a missing value
        mx = max((v for v in ratios.values() if not np.isnan(v)), default=math.nan)
        n = int(np.isfinite(gz_prev).sum())
        if np.isnan(mx):
            out.append(make(study, "sanity", "lipschitz_backprop_bound", act, "all runs", LIP_RELATION,
                            predicted=1.0, tolerance=1e-4, reason="no layer pair with norms above 1e-30"))
            continue
        v, reason = (bound_verdict(mx, 1.0, 1e-4, "max ratio") if np.isfinite(mx) else
                     (FAILED, "max ratio = inf: a bound of 0 under a gradient norm above 1e-30"))
        why = (f"Lip(φ) = {lip:.4g}; max ratio ‖∂L/∂h_(l−1)‖/(‖W_l‖₂‖∂L/∂z_l‖) = {ratios['h']:.3g}, "
               f"‖∂L/∂z_(l−1)‖/(Lip‖∂L/∂h_(l−1)‖) = {ratios['z']:.3g}, combined {ratios['zz']:.3g}; "
               f"{n} layer pairs in {len(mlp)} runs" + (f", {skipped} below 1e-30 skipped" if skipped else ""))
        if v == FAILED:
            reason = "BUG: a theorem is violated (probe, Lipschitz constant or weight layout wrong); " + reason
        out.append(make(study, "sanity", "lipschitz_backprop_bound", act, "all runs", LIP_RELATION, predicted=1.0,
                        measured=mx, tolerance=1e-4, n=len(mlp), verdict=v, reason=reason, detail=why))
    return out


def dead_units(study: Study) -> list[Claim]:
    """Dead units (h = 0 on every probe input) per (setting, activation).

    - φ not identically 0 on any interval (all but ReLU-like): ``no_dead_units``, theorem: dead_frac = 0
      at every probe (a continuous z hits φ's isolated zeros with probability 0); measured = max.
    - φ ≡ 0 on an interval (ReLU): at init z_i over the batch is a sign-symmetric random vector given
      the previous layer (W, b → −W, −b), so P(all z_i < 0) = P(all z_i > 0) ≤ 1/2:
      ``dead_units_at_most_half`` (theorem; measured = max over layers/seeds at step 0, tolerance
      2/√N for the N units of a layer); ``dead_units_independent_inputs`` (the naive claim that a
      unit is dead with probability P(z < 0)^B ≈ 0: predicted 0, tolerance one unit 1/N; it fails where
      inputs are correlated); ``dead_units_grow_with_depth`` (L ≥ 6; mean-field correlations c_l
      increase with depth towards 1 and, by Slepian's inequality, so does P(all z < 0): Spearman ρ of
      dead_frac against l, held iff ρ > 0 with one-sided p < 0.05).
    """
    out = []
    dead_all = metric(study.layers, "dead_frac")
    for setting, act, g in groups(study):
        r0 = g.iloc[0]
        ids = set(g["run_id"])
        d = dead_all[dead_all["run_id"].isin(ids)]
        d = d[np.isfinite(d["value"])]
        if len(d) == 0:
            continue
        ws = widths(r0) if str(r0.get("model", "mlp")) == "mlp" else [int(r0.get("channels", 8))]
        n_units = min(ws) if ws else 1
        try:
            zero_interval = zero_on_interval(act)
        except Exception as exc:  # noqa: BLE001
            out.append(make(study, "sanity", "no_dead_units", act, setting, "max dead_frac = 0",
                            reason=f"cannot derive φ: {exc}"))
            continue
        if not zero_interval:
            mx = float(d["value"].max())
            v = HELD if mx == 0.0 else FAILED
            why = ("φ is zero on no interval, so h = 0 on a whole batch has probability 0"
                   + ("" if v == HELD else f"; {int((d['value'] > 0).sum())} layer-probes have dead units: "
                      "fp32 underflow of φ or a collapsed (constant) layer input"))
            out.append(make(study, "sanity", "no_dead_units", act, setting, "max dead_frac = 0", predicted=0.0,
                            measured=mx, tolerance=0.0, n=g["run_id"].nunique(), verdict=v,
                            reason=f"max dead fraction {mx:.3g} {'=' if v == HELD else '>'} 0", detail=why))
            continue
        init = at_probe(d)
        hidden = init[init["layer"] >= 1]
        mx = float(hidden["value"].max())
        tol = 2.0 / math.sqrt(n_units)
        v = HELD if mx <= 0.5 + tol else FAILED
        out.append(make(study, "sanity", "dead_units_at_most_half", act, setting, "max dead_frac at init ≤ 1/2 + 2/√N",
                        predicted=0.5, measured=mx, tolerance=tol, n=g["run_id"].nunique(), verdict=v,
                        reason=f"max {mx:.3g} {'≤' if v == HELD else '>'} {0.5 + tol:.3g}"
                               + ("" if v == HELD else ": the init is not sign-symmetric?"),
                        detail="sign symmetry of the init: P(unit dead on the batch) ≤ 1/2; max over layers and "
                               "seeds at step 0"))
        per_seed = hidden.groupby("run_id")["value"].mean()
        m, s, lo, hi, n = interval(per_seed.tolist())
        tol1 = 1.0 / n_units
        v, reason = tolerance_verdict(m, 0.0, tol1, lo, hi, s)
        out.append(make(study, "prediction", "dead_units_independent_inputs", act, setting, predicted=0.0,
                        measured=m, lo=lo, hi=hi, measured_std=s, tolerance=tol1, n=n, verdict=v, reason=reason,
                        detail="P(z<0)^B ≈ 0 assumes the batch's pre-activations independent" +
                        ("" if v != FAILED else "; they are strongly correlated (mean-field c_l → 1 with depth), "
                         "so whole units switch off together")))
        depth = int(r0["depth"]) if np.isfinite(r0["depth"]) else 0
        if str(r0.get("model", "mlp")) == "mlp" and depth >= 6:
            rhos = []
            for rid, dd in hidden.groupby("run_id"):
                if dd["value"].nunique() > 1:
                    rhos.append(float(stats.spearmanr(dd["layer"], dd["value"]).statistic))
            prof = hidden.groupby("layer")["value"].mean()
            if prof.nunique() > 1:
                res = stats.spearmanr(prof.index, prof.values, alternative="greater")
                rho, pval = float(res.statistic), float(res.pvalue)
            else:
                rho, pval = 0.0, 1.0
            p_down = (float(stats.spearmanr(prof.index, prof.values, alternative="less").pvalue)
                      if prof.nunique() > 1 else 1.0)
            pos = sum(r > 0 for r in rhos)
            if rho > 0 and pval < ALPHA and pos == len(rhos):
                v, reason = HELD, f"ρ = {rho:.2f} > 0 with p = {pval:.2g} < {ALPHA} and ρ > 0 in every seed ({pos}/{len(rhos)})"
            elif rho < 0 and p_down < ALPHA:
                v, reason = FAILED, f"dead fraction falls with depth: ρ = {rho:.2f}, p = {p_down:.2g}"
            else:
                v, reason = INCONCLUSIVE, (f"ρ = {rho:.2f}, p = {pval:.2g}, ρ > 0 in {pos}/{len(rhos)} seeds: "
                                           "no significant trend either way")
            _, s_, _, _, n = interval(rhos)
            out.append(make(study, "ordering", "dead_units_grow_with_depth", act, setting,
                            "Spearman ρ(layer, seed-mean dead_frac) > 0 at α, and ρ > 0 in every seed",
                            predicted=1.0, measured=rho, measured_std=s_, n=n, p_value=pval, verdict=v,
                            reason=reason, detail=f"dead_frac layer 1 → {depth}: {prof.iloc[0]:.3f} → "
                                                  f"{prof.iloc[-1]:.3f}; layers as the units of the rank test"))
    return out

