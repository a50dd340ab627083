"""The seeds' hypotheses, tested across seeds paired by seed, with power and Holm's correction.

Within a setting every activation is trained from the same seeds on the same batches, so each seed gives
one paired difference d (claimed direction: d > 0). Tests (``analysis.stats``): the exact sign-flip
permutation test for continuous effects; the exact sign test for times-to-threshold (a run that never
reaches the threshold is censored at the end + 1: only the order of a pair is reliable). Every tested
claim of a study forms one Holm family; the power rule comes first (``verdicts.apply_holm``).

Preconditions (else ``not applicable``): a speed claim (time to a loss or accuracy threshold, area under the
log-loss curve, exponential rate) uses only the seed pairs in which both runs learned (best test accuracy
at the end above chance + 0.05, ``convergence.never_learned``; a diverged run did not learn); an exponential-rate claim only pairs in which both
constrained fits are usable (``convergence.fit_exp``: c ≥ 0, k > 0, interval of k above 0).

The low-sample flatness claims ("sigmoid has a flat train/test loss regression line", seed 002) are
equivalence statements, not tests of an effect: the seeds' per-epoch regression slopes give a 95 %
interval (seeds as the unit of replication) that is compared with the band ±0.1·L₀/(E − 1) (the line
changes the loss by at most 10 % of its initial value over the run); they are not in the Holm family.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

from empirical.analysis import convergence as CV
from empirical.analysis import events as EV
from empirical.analysis import stats as S
from empirical.analysis.results_schema import Study, setting_groups
from empirical.analysis.verdicts import (FAILED, HELD, INCONCLUSIVE, NOT_APPLICABLE, Claim, apply_holm, interval,
                                         make, seeds_for_interval)

__all__ = ["hypotheses", "run_measures", "RunMeasures", "TARGET_ACC", "MIN_STEPS_FOR_DECAY", "LOWSAMPLE_COMMAND",
           "FLAT_FRACTION"]

TARGET_ACC = 0.9
MIN_STEPS_FOR_DECAY = 30
FLAT_FRACTION = 0.1
LOWSAMPLE_COMMAND = "python -m empirical.run --preset lowsample --out-dir RESULTS_ROOT"
PAIR = "relu vs sigmoid"


@dataclass(frozen=True)
class RunMeasures:
    """What the hypotheses use of one run (from steps.csv, epochs.csv and runs.csv)."""

    steps: int
    epochs: int
    initial_loss: float
    final_loss: float
    steps_50: int | None
    steps_90: int | None
    epochs_to_target: int | None
    aull: float
    fit: CV.ExpFit | None
    learned: bool
    final_acc: float
    spikes: tuple[EV.Spike, ...]
    train_slope: CV.LinFit | None
    test_slope: CV.LinFit | None


def _num(v) -> float:
    x = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
    return float(x) if pd.notna(x) else math.nan


@lru_cache(maxsize=8)
def _measures(study: Study) -> dict[str, RunMeasures]:
    steps = study.steps.sort_values(["run_id", "step"]) if len(study.steps) else study.steps
    epochs = study.epochs.sort_values(["run_id", "epoch"]) if len(study.epochs) else study.epochs
    by_s = dict(tuple(steps.groupby("run_id"))) if len(steps) else {}
    by_e = dict(tuple(epochs.groupby("run_id"))) if len(epochs) else {}
    out = {}
    for _, r in study.runs.iterrows():
        st = by_s.get(r["run_id"], pd.DataFrame(columns=["step", "loss"]))
        ep = by_e.get(r["run_id"], pd.DataFrame(columns=["epoch", "train_loss", "test_loss", "test_acc"]))
        t = st["step"].to_numpy(float)
        y = pd.to_numeric(st["loss"], errors="coerce").to_numpy(float)
        e = ep["epoch"].to_numpy(float)
        l0 = float(y[0]) if len(y) and np.isfinite(y[0]) else math.nan
        acc = pd.to_numeric(ep.get("test_acc", pd.Series(dtype=float)), errors="coerce").to_numpy(float)
        final = _num(r.get("final_test_acc")) if "final_test_acc" in r else (float(acc[-1]) if len(acc) else math.nan)
        out[r["run_id"]] = RunMeasures(
            steps=len(y), epochs=len(e), initial_loss=l0,
            final_loss=_num(r.get("final_train_loss")),
            steps_50=CV.steps_to_fraction(t, y, 0.5), steps_90=CV.steps_to_fraction(t, y, 0.9),
            epochs_to_target=CV.epochs_to_accuracy(e, acc, TARGET_ACC),
            aull=CV.area_under_log_loss(y),
            fit=CV.fit_exp(t, y) if len(y) >= MIN_STEPS_FOR_DECAY else None,
            learned=not CV.never_learned(final), final_acc=final,
            spikes=tuple(EV.loss_spikes(t, y)),
            train_slope=CV.linear_fit(e, pd.to_numeric(ep.get("train_loss", pd.Series(dtype=float)), errors="coerce")),
            test_slope=CV.linear_fit(e, pd.to_numeric(ep.get("test_loss", pd.Series(dtype=float)), errors="coerce")))
    return out


def run_measures(study: Study) -> dict[str, RunMeasures]:
    """run_id → ``RunMeasures`` (computed once per study object)."""
    return _measures(study)


def _by_seed(g: pd.DataFrame, act: str) -> dict:
    return {s: rid for s, rid in zip(g.loc[g["activation"] == act, "seed"], g.loc[g["activation"] == act, "run_id"])}


def _pairs(g: pd.DataFrame, a: str = "relu", b: str = "sigmoid") -> list[tuple[object, str, str]]:
    ra, rb = _by_seed(g, a), _by_seed(g, b)
    return [(s, ra[s], rb[s]) for s in ra if s in rb]


Pending = tuple[Claim, "S.PairedTest | None"]


def _na(study, claim, act, setting, relation, reason, **kw) -> Pending:
    return make(study, "hypothesis", claim, act, setting, relation, verdict=NOT_APPLICABLE, reason=reason, **kw), None


def _tested(study, claim, act, setting, relation, d, method, measured=None, lo=None, hi=None, predicted=0.0,
            reason="", detail="") -> Pending:
    t = S.paired_test(d, method)
    m = t.effect if measured is None else measured
    c = make(study, "hypothesis", claim, act, setting, relation, predicted=predicted, measured=m,
             lo=t.ci_lo if lo is None else lo, hi=t.ci_hi if hi is None else hi,
             measured_std=float(np.std(d, ddof=1)) if len(d) > 1 else math.nan, n=len(d), reason=reason,
             detail=detail)
    return c, t


def _grad(study, setting, g, col, when) -> Pending:
    claim = f"relu_larger_first_layer_grad_{when}"
    rel = f"d = log(|∂L/∂W₁| relu / sigmoid) at {when} > 0 (sign-flip); m = geometric-mean ratio, p = 1"
    runs = g.set_index("run_id")
    d = []
    for s, ra, rb in _pairs(g):
        x, y = _num(runs.at[ra, col]), _num(runs.at[rb, col])
        if x > 0 and y > 0:
            d.append(math.log(x / y))
    if not d:
        return _na(study, claim, PAIR, setting, rel, f"no seed with finite {col} for both relu and sigmoid")
    t = S.paired_test(d)
    return _tested(study, claim, PAIR, setting, rel, d, "sign-flip", measured=math.exp(t.effect),
                   lo=math.exp(t.ci_lo) if np.isfinite(t.ci_lo) else math.nan,
                   hi=math.exp(t.ci_hi) if np.isfinite(t.ci_hi) else math.nan, predicted=1.0)


def _learned_pairs(study, g) -> tuple[list, str]:
    meas = run_measures(study)
    pairs = _pairs(g)
    ok = [(s, a, b) for s, a, b in pairs if meas[a].learned and meas[b].learned]
    dropped = [(s, a, b) for s, a, b in pairs if (s, a, b) not in ok]
    note = ""
    if dropped:
        who = []
        for act, idx in (("relu", 1), ("sigmoid", 2)):
            bad = [p for p in dropped if not meas[p[idx]].learned]
            if bad:
                accs = ", ".join(f"{meas[p[idx]].final_acc:.3f}" for p in bad[:3])
                who.append(f"{act} never learned in {len(bad)}/{len(pairs)} seeds (final test acc {accs}"
                           f"{'…' if len(bad) > 3 else ''} ≤ chance 0.1 + {CV.CHANCE_MARGIN})")
        note = "; ".join(who)
    return ok, note


def _speed(study, setting, g, claim, rel, value, censor, method="sign", what="") -> Pending:
    """A speed claim: d = value(sigmoid) − value(relu) > 0 over the pairs in which both runs learned."""
    pairs, note = _learned_pairs(study, g)
    if not pairs:
        return _na(study, claim, PAIR, setting, rel, note or "no relu/sigmoid seed pair")
    meas = run_measures(study)
    vals = [(value(meas[a]), value(meas[b])) for _, a, b in pairs]
    if censor is not None:
        vals = [(censor(meas[a]) if x is None else x, censor(meas[b]) if y is None else y)
                for (x, y), (_, a, b) in zip(vals, pairs)]
        if all(x == censor(meas[a]) and y == censor(meas[b]) for (x, y), (_, a, b) in zip(vals, pairs)):
            return _na(study, claim, PAIR, setting, rel, f"neither relu nor sigmoid reaches {what} in any seed: "
                                                         "train longer")
    d = [y - x for x, y in vals]
    never = sum(v[1] == censor(meas[b]) for v, (_, _, b) in zip(vals, pairs)) if censor else 0
    detail = (f"{what}: relu {np.mean([x for x, _ in vals]):.3g}, sigmoid {np.mean([y for _, y in vals]):.3g} "
              f"(mean over {len(pairs)} learned pairs" + (f"; sigmoid never in {never}" if never else "") + ")")
    return _tested(study, claim, PAIR, setting, rel, d, method, reason=note, detail=detail)


def _decay(study, setting, g) -> Pending:
    claim = "relu_faster_loss_decay"
    rel = ("d = log(k_relu / k_sigmoid) > 0, k of loss ≈ a·e^(−k·step) + c with c ≥ 0, k > 0 (sign-flip, "
           "usable fits only); m = geometric-mean ratio, p = 1")
    pairs, note = _learned_pairs(study, g)
    meas = run_measures(study)
    if not pairs:
        return _na(study, claim, PAIR, setting, rel, note or "no relu/sigmoid seed pair")
    if any(meas[a].fit is None or meas[b].fit is None for _, a, b in pairs):
        return _na(study, claim, PAIR, setting, rel,
                   f"fewer than {MIN_STEPS_FOR_DECAY} training steps per run: too short to fit a decay rate")
    good = [(s, a, b) for s, a, b in pairs if meas[a].fit.ok and meas[b].fit.ok]
    bad = [(s, a, b) for s, a, b in pairs if (s, a, b) not in good]
    why_bad = "; ".join(f"seed {s}: " + ("relu " + meas[a].fit.degenerate if not meas[a].fit.ok else
                                         "sigmoid " + meas[b].fit.degenerate) for s, a, b in bad[:2])
    if not good:
        return _na(study, claim, PAIR, setting, rel, "degenerate fit in every pair (" + why_bad + ")")
    d = [math.log(meas[a].fit.k / meas[b].fit.k) for _, a, b in good]
    t = S.paired_test(d)
    detail = "; ".join(f"seed {s}: relu k = {meas[a].fit.k:.3g} [{meas[a].fit.k_lo:.3g}, {meas[a].fit.k_hi:.3g}] "
                       f"c = {meas[a].fit.c:.3g}, sigmoid k = {meas[b].fit.k:.3g} [{meas[b].fit.k_lo:.3g}, "
                       f"{meas[b].fit.k_hi:.3g}] c = {meas[b].fit.c:.3g}" for s, a, b in good[:3])
    reason = "; ".join(x for x in (note, f"{len(bad)} pair(s) with a degenerate fit left out ({why_bad})" if bad else "")
                       if x)
    return _tested(study, claim, PAIR, setting, rel, d, "sign-flip", measured=math.exp(t.effect),
                   lo=math.exp(t.ci_lo) if np.isfinite(t.ci_lo) else math.nan,
                   hi=math.exp(t.ci_hi) if np.isfinite(t.ci_hi) else math.nan, predicted=1.0, reason=reason,
                   detail=detail)


def _selu(study, setting, g) -> list[Pending]:
    acts = list(dict.fromkeys(g["activation"].astype(str)))
    if "selu" not in acts or len(acts) < 3:
        return []
    meas = run_measures(study)
    seeds = sorted(set.intersection(*(set(_by_seed(g, a)) for a in acts)), key=str)
    table = {a: _by_seed(g, a) for a in acts}
    others = [a for a in acts if a != "selu"]
    k = max(2, math.ceil(len(acts) / 3))
    kth = f"{k}{'nd' if k == 2 else 'rd' if k == 3 else 'th'}"
    out = []
    for claim, rel, val in (
            ("selu_starts_highest_loss", "d = first-batch loss(selu) − max over the others > 0 (sign-flip)",
             lambda m: m.initial_loss),
            ("selu_ends_among_lowest_loss", f"rank of selu's final train loss ≤ {k} of {len(acts)}: d = the "
                                            f"{kth} lowest of the others − selu's > 0 (sign-flip)",
             lambda m: m.final_loss)):
        d = []
        for s in seeds:
            v = {a: val(meas[table[a][s]]) for a in acts}
            if not all(np.isfinite(x) for x in v.values()):
                continue
            o = sorted(v[a] for a in others)
            d.append(v["selu"] - o[-1] if claim == "selu_starts_highest_loss" else o[k - 1] - v["selu"])
        if not d:
            out.append(_na(study, claim, "selu", setting, rel, "a run lacks its loss (diverged or missing steps)"))
            continue
        out.append(_tested(study, claim, "selu", setting, rel, d, "sign-flip"))
    d, n_selu, n_other, total = [], 0, 0, 0
    for s in seeds:
        c = {a: len(meas[table[a][s]].spikes) for a in acts}
        d.append(c["selu"] - float(np.mean([c[a] for a in others])))
        n_selu += c["selu"] > 0
        n_other += sum(c[a] > 0 for a in others)
        total += sum(c.values())
    rel = f"d = spikes(selu) − mean spikes(others) per seed > 0 (sign-flip); spike: {EV.rule()}"
    if not seeds:
        out.append(_na(study, "selu_single_batch_spikes", "selu", setting, rel, "no seed with every activation"))
    else:
        note = (f"no run of any activation has a spike ({len(seeds)} seeds × {len(acts)} activations)" if total == 0
                else f"selu spiked in {n_selu}/{len(seeds)} seeds, the others in {n_other}/{len(seeds) * len(others)} runs")
        out.append(_tested(study, "selu_single_batch_spikes", "selu", setting, rel, d, "sign-flip", reason=note))
    return out


def _flat(study: Study, setting: str, g: pd.DataFrame, which: str) -> Claim | None:
    claim = "sigmoid_flat_low_sample" if which == "train" else "sigmoid_flat_test_loss_low_sample"
    sig = g[g["activation"] == "sigmoid"]
    if len(sig) == 0:
        return None
    meas = run_measures(study)
    fits = [getattr(meas[r], f"{which}_slope") for r in sig["run_id"]]
    l0 = [meas[r].initial_loss for r in sig["run_id"]]
    fits = [f for f in fits if f is not None]
    rel = (f"95 % interval of the mean per-epoch {which}-loss regression slope (seeds as units) within "
           f"±{FLAT_FRACTION:g}·L₀/(E − 1)")
    if not fits:
        return make(study, "hypothesis", claim, "sigmoid", setting, rel, reason="fewer than 4 epochs: no regression line")
    slopes = [f.slope for f in fits]
    m, sd, lo, hi, n = interval(slopes)
    e = int(pd.to_numeric(sig["epochs"], errors="coerce").max())
    band = CV.flat_band(float(np.nanmean(l0)), max(e - 1, 1), FLAT_FRACTION)
    if n < 2:
        lo, hi = fits[0].slope_lo, fits[0].slope_hi
    state = CV.flatness(lo, hi, band)
    v = {"flat": HELD, "not flat": FAILED, "undetermined": INCONCLUSIVE}[state]
    r2 = float(np.mean([f.r2 for f in fits]))
    need = seeds_for_interval(sd, abs(band - abs(m))) if n >= 2 and abs(m) != band else None
    reason = (f"slope {m:.3g} [{lo:.3g}, {hi:.3g}] per epoch vs band ±{band:.3g}: {state}"
              + ("" if v != INCONCLUSIVE else " (the interval straddles the band's edge; "
                 + (f"about {need} seeds would decide)" if need else "more seeds would narrow it)")))
    return make(study, "hypothesis", claim, "sigmoid", setting, rel, predicted=0.0, measured=m, lo=lo, hi=hi,
                measured_std=sd, tolerance=band, n=n, verdict=v, reason=reason,
                detail=f"mean R² {r2:.2g}; per-seed slopes {', '.join(f'{x:.3g}' for x in slopes[:6])}; "
                       "equivalence claim, not in the Holm family")


def _study_claims(study: Study) -> list[Claim]:
    pending: list[Pending] = []
    flats: list[Claim] = []
    for setting, g in setting_groups(study):
        acts = set(g["activation"].astype(str))
        if {"relu", "sigmoid"} <= acts:
            pending.append(_grad(study, setting, g, "first_layer_grad_init", "init"))
            pending.append(_grad(study, setting, g, "first_layer_grad_final", "final"))
            pending.append(_speed(
                study, setting, g, "relu_reaches_target_acc_sooner",
                f"d = epochs to {TARGET_ACC:.0%} test accuracy, sigmoid − relu > 0 (sign test; never = epochs + 1)",
                lambda m: m.epochs_to_target, lambda m: m.epochs + 1, what=f"{TARGET_ACC:.0%} test accuracy"))
            for frac, name in ((0.5, "half"), (0.9, "90pct")):
                pending.append(_speed(
                    study, setting, g, f"relu_removes_{name}_loss_sooner",
                    f"d = steps to remove {frac:.0%} of the initial loss (trailing mean of {CV.SMOOTH} batches), "
                    "sigmoid − relu > 0 (sign test; never = steps + 1)",
                    (lambda m, f=frac: m.steps_50 if f == 0.5 else m.steps_90), lambda m: m.steps + 1,
                    what=f"{frac:.0%} of the initial loss removed"))
            pending.append(_speed(
                study, setting, g, "relu_lower_area_under_log_loss",
                "d = mean log batch loss (area under the log-loss curve per step), sigmoid − relu > 0 (sign-flip)",
                lambda m: m.aull, None, method="sign-flip", what="area under log loss"))
            pending.append(_decay(study, setting, g))
        pending.extend(_selu(study, setting, g))
        if _train_size_set(g):
            for which in ("train", "test"):
                c = _flat(study, setting, g, which)
                if c is not None:
                    flats.append(c)
    return apply_holm(pending) + flats


def _train_size_set(g: pd.DataFrame) -> bool:
    return "train_size" in g and pd.to_numeric(g["train_size"], errors="coerce").notna().any()


def hypotheses(studies: Sequence[Study]) -> list[Claim]:
    """Every seed hypothesis of every study (see the module docstring); one Holm family per study. If no
    study has a low-sample sigmoid setting, one ``sigmoid_flat_low_sample`` record says how to make one."""
    out = []
    for st in studies:
        out.extend(_study_claims(st))
    if not any(c.claim == "sigmoid_flat_low_sample" for c in out):
        out.append(Claim("(none)", "hypothesis", "sigmoid_flat_low_sample", "sigmoid", "train_size set",
                         "slope interval within ±0.1·L₀/(E − 1)", verdict=NOT_APPLICABLE,
                         reason=f"no low-sample study with sigmoid; produce one with: {LOWSAMPLE_COMMAND}"))
    return out
