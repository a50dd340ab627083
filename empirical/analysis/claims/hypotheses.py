"""The seeds' hypotheses as claims tested across seeds paired by seed (ReLU vs sigmoid, SELU's ranks, low-sample).

Each has a stated rule (direction in every seed and a one-sided paired test, or a rank); with few seeds the
detail says how little power the test has.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from empirical.analysis.results_schema import Study, setting_groups
from empirical.analysis.verdicts import (ALPHA, FAILED, HELD, NOT_APPLICABLE, Prediction, fit_exp_decay, mean_std,
                                         one_sided_t, power_note, record)

__all__ = ["hypotheses", "TARGET_ACC", "MIN_STEPS_FOR_DECAY", "LOWSAMPLE_COMMAND"]

TARGET_ACC = 0.9
LOWSAMPLE_COMMAND = "python -m empirical.run --preset lowsample --out-dir RESULTS_ROOT"


def _paired(runs: pd.DataFrame, a: str, b: str, col: str) -> list[tuple[float, float, object]]:
    ra = runs[runs["activation"] == a].set_index("seed")[col]
    rb = runs[runs["activation"] == b].set_index("seed")[col]
    seeds = [s for s in ra.index if s in rb.index]
    out = []
    for s in seeds:
        x, y = pd.to_numeric(pd.Series([ra[s], rb[s]]), errors="coerce")
        out.append((float(x), float(y), s))
    return out



def _first_layer_grad(study: Study, setting: str, g: pd.DataFrame, col: str, when: str) -> Prediction:
    claim = f"relu_larger_first_layer_grad_{when}"
    pairs = [(x, y, s) for x, y, s in _paired(g, "relu", "sigmoid", col) if x > 0 and y > 0]
    if not pairs:
        return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0,
                    detail=f"no seed with finite {col} for both relu and sigmoid")
    logr = [math.log(x / y) for x, y, _ in pairs]
    ratio = math.exp(float(np.mean(logr)))
    std = float(np.std([x / y for x, y, _ in pairs], ddof=1)) if len(pairs) > 1 else math.nan
    p = one_sided_t(logr)
    p_sign = float(stats.binomtest(sum(r > 0 for r in logr), len(logr), 0.5, alternative="greater").pvalue)
    all_dir = all(r > 0 for r in logr)
    v = HELD if all_dir and np.isfinite(p) and p < ALPHA else FAILED
    why = (f"mean |∂L/∂W_1| ratio relu/sigmoid (geometric mean over seeds) {ratio:.3g}; larger in "
           f"{sum(r > 0 for r in logr)}/{len(logr)} seeds; paired t-test on log ratio one-sided p = {p:.2g}, "
           f"sign test p = {p_sign:.2g}")
    note = power_note(len(pairs))
    if note:
        why += "; " + note
    return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0, ratio, std, math.nan, v, why)


def _epochs_to_target(study: Study, rid: str, n_epochs: int) -> float:
    e = study.epochs[study.epochs["run_id"] == rid].sort_values("epoch")
    hit = e[pd.to_numeric(e["test_acc"], errors="coerce") >= TARGET_ACC]
    return float(hit["epoch"].iloc[0]) if len(hit) else float(n_epochs + 1)


def _faster_target(study: Study, setting: str, g: pd.DataFrame) -> Prediction:
    claim = "relu_reaches_target_acc_sooner"
    n_ep = int(pd.to_numeric(g["epochs"], errors="coerce").max()) if "epochs" in g else 0
    ra = g[g["activation"] == "relu"].set_index("seed")["run_id"]
    rb = g[g["activation"] == "sigmoid"].set_index("seed")["run_id"]
    seeds = [s for s in ra.index if s in rb.index]
    if not seeds or len(study.epochs) == 0:
        return record(study, "hypothesis", claim, "relu vs sigmoid", setting, detail="no paired epochs")
    reached = [(_epochs_to_target(study, ra[s], n_ep), _epochs_to_target(study, rb[s], n_ep)) for s in seeds]
    if all(a > n_ep and b > n_ep for a, b in reached):
        return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 0.0,
                    detail=f"neither relu nor sigmoid reaches {TARGET_ACC:.0%} test accuracy within {n_ep} epoch(s) "
                           "in any seed: train longer")
    d = [b - a for a, b in reached]
    never = sum(b > n_ep for _, b in reached)
    m, s_ = mean_std(d)
    pos = sum(x > 0 for x in d)
    nz = sum(x != 0 for x in d)
    p_sign = float(stats.binomtest(pos, nz, 0.5, alternative="greater").pvalue) if nz else 1.0
    v = HELD if pos == len(d) and p_sign < ALPHA else FAILED
    why = (f"epochs to {TARGET_ACC:.0%} test accuracy, sigmoid minus relu (never = {n_ep + 1}; sigmoid never in "
           f"{never}/{len(d)}); relu sooner in {pos}/{len(d)} seeds, sign test one-sided p = {p_sign:.2g}")
    note = power_note(len(d))
    if note:
        why += "; " + note
    return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 0.0, m, s_, math.nan, v, why)


MIN_STEPS_FOR_DECAY = 30


def _decay_rates(study: Study, g: pd.DataFrame, act: str) -> dict:
    out = {}
    for _, r in g[g["activation"] == act].iterrows():
        st = study.steps[study.steps["run_id"] == r["run_id"]].sort_values("step")
        if len(st) < MIN_STEPS_FOR_DECAY:
            continue
        fit = fit_exp_decay(st["step"].to_numpy(float), pd.to_numeric(st["loss"], errors="coerce").to_numpy(float))
        out[r["seed"]] = fit
    return out


def _faster_decay(study: Study, setting: str, g: pd.DataFrame) -> Prediction:
    claim = "relu_faster_loss_decay"
    ka, kb = _decay_rates(study, g, "relu"), _decay_rates(study, g, "sigmoid")
    if not ka or not kb:
        return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0,
                    detail=f"fewer than {MIN_STEPS_FOR_DECAY} training steps per run: too short to fit a decay rate")
    seeds = [s for s in ka if s in kb and ka[s] is not None and kb[s] is not None]
    if not seeds:
        return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0,
                    detail="a·e^(−kt)+c did not fit the per-step losses of any relu/sigmoid pair")
    ratios = [ka[s].k / kb[s].k if kb[s].k > 0 else math.inf for s in seeds]
    disjoint = sum(ka[s].k_lo > kb[s].k_hi for s in seeds)
    logs = [math.log(r) for r in ratios if 0 < r < math.inf]
    p = one_sided_t(logs)
    m = math.exp(float(np.mean(logs))) if logs else math.nan
    std = float(np.std(ratios, ddof=1)) if len(ratios) > 1 and all(np.isfinite(ratios)) else math.nan
    pairs = [s for s in ka if s in kb]
    v = HELD if disjoint == len(pairs) else FAILED
    unfit = len(pairs) - len(seeds)
    ci = "; ".join(f"seed {s}: relu k = {ka[s].k:.3g} [{ka[s].k_lo:.3g}, {ka[s].k_hi:.3g}] to plateau "
                   f"{ka[s].c:.3g}, sigmoid {kb[s].k:.3g} [{kb[s].k_lo:.3g}, {kb[s].k_hi:.3g}] to plateau {kb[s].c:.3g}"
                   for s in seeds)
    why = (f"k of loss ≈ a·e^(−k·step)+c (the rate of approach to the plateau c, not the loss removed), ratio "
           f"relu/sigmoid {m:.3g}; held iff relu's 95 % CI lies above "
           f"sigmoid's in every seed ({disjoint}/{len(pairs)}"
           + (f"; the fit failed in {unfit} pair(s)" if unfit else "") + f"); paired t on log k p = {p:.2g}; {ci}")
    return record(study, "hypothesis", claim, "relu vs sigmoid", setting, 1.0, m, std, math.nan, v, why)


def _lowsample_flat(studies: Sequence[Study]) -> list[Prediction]:
    out = []
    for st in studies:
        runs = st.runs
        if "train_size" not in runs:
            continue
        ts = pd.to_numeric(runs["train_size"], errors="coerce")
        for setting, g in setting_groups(Study(st.name, st.folder, runs[ts.notna()], st.layers, st.epochs, st.steps)):
            sig = g[g["activation"] == "sigmoid"]
            if len(sig) == 0:
                continue
            drops = []
            for _, r in sig.iterrows():
                s = st.steps[st.steps["run_id"] == r["run_id"]].sort_values("step")
                loss = pd.to_numeric(s["loss"], errors="coerce").to_numpy(float)
                if len(loss) >= 2 and np.isfinite(loss[0]) and loss[0] > 0:
                    n = max(1, len(loss) // 10)
                    drops.append(1.0 - float(np.nanmean(loss[-n:])) / float(loss[0]))
            if not drops:
                continue
            m, s_ = mean_std(drops)
            v = HELD if all(d < 0.1 for d in drops) else FAILED
            out.append(record(st, "hypothesis", "sigmoid_flat_low_sample", "sigmoid", setting, 0.0, m, s_, 0.1, v,
                            f"fraction of the initial loss removed by the end (mean of the last 10 % of steps); "
                            f"'flat' = below 10 % in every seed ({sum(d < 0.1 for d in drops)}/{len(drops)})"))
    if not out:
        out.append(Prediction("(none)", "hypothesis", "sigmoid_flat_low_sample", "sigmoid", "train_size set",
                              0.0, math.nan, math.nan, 0.1, NOT_APPLICABLE,
                              f"no low-sample study with sigmoid; produce one with: {LOWSAMPLE_COMMAND}"))
    return out


def _selu_ranks(study: Study, setting: str, g: pd.DataFrame) -> list[Prediction]:
    acts = list(dict.fromkeys(g["activation"].astype(str)))
    if "selu" not in acts or len(acts) < 3:
        return []
    first = study.steps[study.steps["step"] == study.steps["step"].min()] if len(study.steps) else study.steps
    start, end = {}, {}
    for _, r in g.iterrows():
        f = first[first["run_id"] == r["run_id"]]["loss"]
        start.setdefault(str(r["activation"]), {})[r["seed"]] = float(f.iloc[0]) if len(f) else math.nan
        final = pd.to_numeric(pd.Series([r.get("final_train_loss")]), errors="coerce").iloc[0]
        end.setdefault(str(r["activation"]), {})[r["seed"]] = float(final)
    n = len(acts)
    top = max(2, math.ceil(n / 3))
    out = []
    for claim, table, descending, tol in (("selu_starts_highest_loss", start, True, 0),
                                          ("selu_ends_among_lowest_loss", end, False, top - 1)):
        means = {a: np.nanmean(list(table[a].values())) if table.get(a) else math.nan for a in acts}
        if any(not np.isfinite(v) for v in means.values()):
            out.append(record(study, "hypothesis", claim, "selu", setting, 1.0, tol=tol,
                            detail="a run lacks its loss (diverged or missing steps)"))
            continue
        order = sorted(acts, key=lambda a: -means[a] if descending else means[a])
        rank = order.index("selu") + 1
        seeds = sorted(set.intersection(*(set(table[a]) for a in acts)))
        per_seed = []
        for s in seeds:
            o = sorted(acts, key=lambda a: -table[a][s] if descending else table[a][s])
            per_seed.append(o.index("selu") + 1)
        std = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan
        v = HELD if rank - 1 <= tol else FAILED
        what = "first-step loss, rank 1 = highest" if descending else "final train loss, rank 1 = lowest"
        out.append(record(study, "hypothesis", claim, "selu", setting, 1.0, rank, std, tol, v,
                        f"{what} among {n} activations (seed means); per-seed ranks {per_seed}; "
                        f"held iff rank ≤ {tol + 1}"))
    return out


def hypotheses(studies: Sequence[Study]) -> list[Prediction]:
    """The seeds' claims as hypotheses, per study and setting (runs paired by seed).

    - ``relu_larger_first_layer_grad_init`` / ``_final``: effect = geometric-mean ratio of mean|∂L/∂W₁|
      relu/sigmoid (runs.csv first_layer_grad_*); held iff larger in every seed and one-sided paired
      t-test on the log ratio p < 0.05.
    - ``relu_reaches_target_acc_sooner``: epochs to 90 % test accuracy (epochs.csv; never = epochs+1),
      sigmoid minus relu; held iff relu sooner in every seed and the sign test p < 0.05 (needs ≥ 5 seeds).
    - ``relu_faster_loss_decay``: k of a·e^(−k·step)+c fitted to steps.csv (95 % CI from the covariance);
      held iff relu's CI lies above sigmoid's in every seed.
    - ``sigmoid_flat_low_sample``: in a study with train_size set, sigmoid loses < 10 % of its initial
      loss in every seed; "not applicable" (with the command to run) if there is no such study.
    - ``selu_starts_highest_loss`` (rank 1 of first-step loss) and ``selu_ends_among_lowest_loss``
      (final train loss rank ≤ max(2, ⌈n/3⌉) of n activations).
    """
    out = []
    for st in studies:
        for setting, g in setting_groups(st):
            acts = set(g["activation"].astype(str))
            if {"relu", "sigmoid"} <= acts:
                out.append(_first_layer_grad(st, setting, g, "first_layer_grad_init", "init"))
                out.append(_first_layer_grad(st, setting, g, "first_layer_grad_final", "final"))
                out.append(_faster_target(st, setting, g))
                out.append(_faster_decay(st, setting, g))
            out.extend(_selu_ranks(st, setting, g))
    out.extend(_lowsample_flat(studies))
    return out

