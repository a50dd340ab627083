"""Trainability against the correlation depth scale (Schoenholz et al. 2017), measured and predicted.

A *cell* is (activation, σ_w², depth) at the study's σ_b²; its runs differ only in seed. Definitions, fixed
before looking at any data:

- a run **trained** when it finished (no divergence) with final test accuracy ≥ 1/C + ``TRAINED_MARGIN``
  (C classes; MNIST-1D and digits are balanced, so 1/C is chance); a cell trained when at least half of
  its seeds did;
- theory: ξ_c(σ_w²) = ``meanfield.depth_scales`` at the fixed point reached from the first layer's q_1 =
  σ_w²·mean(x²) + σ_b² (inputs normalised: mean(x²) = 1); the claim is *trained ⇔ L ≤ k·ξ_c* with one k per
  activation;
- k is the threshold on L/ξ_c that maximises the agreement (fraction of cells where the rule and the
  measurement agree); between the two neighbouring ratios the geometric midpoint is reported. Its interval
  is the 2.5–97.5 % range over ``BOOTSTRAP`` resamples of the seeds within every cell;
- the maximum trainable depth L_max(σ_w²) is the deepest trained depth of the grid (0 when none trained).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd

TRAINED_MARGIN = 0.10
AGREEMENT_MIN = 0.85
BOOTSTRAP = 1000
K_PAPER = 6.0
C_TOL = 0.05
XI_RTOL = 0.3


def _act(name: str):
    from theory.activations import lookup
    return lookup(str(name))


@lru_cache(maxsize=None)
def xi_c(act: str, sigma_w2: float, sigma_b2: float, mean_x2: float = 1.0) -> float:
    """ξ_c at the fixed point reached from q_1 = σ_w²·mean(x²) + σ_b²; inf at the edge of chaos, nan if none."""
    from theory import meanfield
    q1 = sigma_w2 * mean_x2 + sigma_b2
    return float(meanfield.depth_scales(_act(act), sigma_w2, sigma_b2, q1)[1])


@lru_cache(maxsize=None)
def edge(act: str, sigma_b2: float, q0: float = 1.0) -> tuple[float, str]:
    """(critical σ_w², kind) a network started at q0 reaches (``meanfield.critical_sigma_w2`` and the kind of
    its ``edge_of_chaos`` record); (nan, 'none') where there is none."""
    from theory import meanfield
    a = _act(act)
    w = float(meanfield.critical_sigma_w2(a, sigma_b2, q0))
    if not np.isfinite(w):
        return math.nan, "none"
    kinds = [e.kind for e in meanfield.edge_of_chaos(a, sigma_b2, q0) if abs(e.sigma_w2 - w) <= 1e-9 * max(1.0, w)]
    return w, (kinds[0] if kinds else "critical")


def run_trained(runs: pd.DataFrame, num_classes: int = 10, margin: float = TRAINED_MARGIN) -> pd.Series:
    """Per run: finished and final test accuracy ≥ 1/C + margin."""
    acc = pd.to_numeric(runs["final_test_acc"], errors="coerce")
    return (runs["status"].astype(str) == "finished") & (acc >= 1.0 / num_classes + margin)


def cells(runs: pd.DataFrame, num_classes: int = 10, margin: float = TRAINED_MARGIN) -> pd.DataFrame:
    """One row per (activation, σ_w², depth): mean/sd test accuracy over seeds, seeds trained, trained,
    and the theory's ξ_c (mean(x²) = 1)."""
    r = runs.copy()
    r["trained"] = run_trained(r, num_classes, margin)
    r["acc"] = pd.to_numeric(r["final_test_acc"], errors="coerce").fillna(1.0 / num_classes)
    g = r.groupby(["activation", "sigma_w2", "depth"], sort=True)
    out = g.agg(acc_mean=("acc", "mean"), acc_sd=("acc", "std"), seeds=("seed", "nunique"),
                seeds_trained=("trained", "sum"), sigma_b2=("sigma_b2", "first")).reset_index()
    out["trained"] = out["seeds_trained"] >= out["seeds"] / 2.0
    out["xi_c"] = [xi_c(a, float(w), float(b)) for a, w, b in zip(out["activation"], out["sigma_w2"], out["sigma_b2"])]
    return out


def seed_matrix(runs: pd.DataFrame, cell_frame: pd.DataFrame, num_classes: int = 10,
                margin: float = TRAINED_MARGIN) -> np.ndarray:
    """[cells, seeds] of 0/1 (trained), NaN where a seed is missing; rows in ``cell_frame`` order."""
    r = runs.copy()
    r["trained"] = run_trained(r, num_classes, margin).astype(float)
    seeds = sorted(r["seed"].unique())
    piv = r.pivot_table(index=["activation", "sigma_w2", "depth"], columns="seed", values="trained", aggfunc="first")
    piv = piv.reindex(columns=seeds)
    keys = list(zip(cell_frame["activation"], cell_frame["sigma_w2"], cell_frame["depth"]))
    return piv.reindex(pd.MultiIndex.from_tuples(keys, names=piv.index.names)).to_numpy(dtype=float)


@dataclass(frozen=True)
class KFit:
    """k with the agreement it achieves; [lo, hi] every threshold that achieves it (the grid's resolution);
    ``censored`` says 'below'/'above' when the data only bound k."""

    k: float
    agreement: float
    censored: str = ""
    lo: float = math.nan
    hi: float = math.nan


def fit_k(depth: np.ndarray, xi: np.ndarray, trained: np.ndarray) -> KFit:
    """The threshold k on r = L/ξ_c maximising agreement of (r ≤ k) with ``trained``.

    ξ_c = inf (the edge) gives r = 0 (always predicted trainable); cells with ξ_c nan are left out. When
    the best rule predicts every cell untrained (trained) k is only bounded: the smallest (largest) ratio,
    ``censored`` = 'below' ('above')."""
    depth, xi, trained = (np.asarray(a, dtype=float) for a in (depth, xi, trained))
    ok = ~np.isnan(xi)
    r = np.where(np.isinf(xi), 0.0, depth / np.where(np.isinf(xi), 1.0, xi))[ok]
    t = trained[ok].astype(bool)
    n = len(r)
    if n == 0:
        return KFit(math.nan, math.nan, "no cells")
    order = np.argsort(r, kind="stable")
    r, t = r[order], t[order]
    # j = number of cells predicted trained (the j smallest ratios); only j between distinct ratios is realisable
    cum_t = np.concatenate([[0], np.cumsum(t)])
    cum_u = np.concatenate([[0], np.cumsum(~t)])
    scores = cum_t + (cum_u[-1] - cum_u)
    valid = np.ones(n + 1, bool)
    valid[1:n] = r[1:] > r[:-1]
    best = scores[valid].max()
    js = np.flatnonzero(valid & (scores == best))
    j = int(js[len(js) // 2])
    span_lo = float(r[js[0] - 1]) if js[0] > 0 else 0.0
    span_hi = float(r[js[-1]]) if js[-1] < n else math.inf
    if j == 0:
        return KFit(float(r[0]), float(best / n), "below", span_lo, span_hi)
    if j == n:
        return KFit(float(r[-1]), float(best / n), "above", span_lo, span_hi)
    lo, hi = r[j - 1], r[j]
    return KFit(float(math.sqrt(lo * hi) if lo > 0 else hi / 2), float(best / n), "", span_lo, span_hi)


def bootstrap_k(depth, xi, seeds_trained: np.ndarray, n: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """[n, 3]: (k, lo, hi) refitted on ``n`` resamples of the seeds within every cell (``seeds_trained``:
    [cells, seeds] 0/1). The 95 % interval of k is [2.5 % quantile of lo, 97.5 % quantile of hi]: seed noise and
    the grid's resolution (every threshold between two neighbouring L/ξ_c fits equally well)."""
    rng = np.random.default_rng(seed)
    m = np.asarray(seeds_trained, dtype=float)
    ks = np.empty((n, 3))
    S = m.shape[1]
    for b in range(n):
        idx = rng.integers(0, S, size=(m.shape[0], S))
        sample = np.take_along_axis(m, idx, axis=1)
        frac = np.nanmean(sample, axis=1)
        f = fit_k(depth, xi, frac >= 0.5)
        ks[b] = (f.k, f.lo, f.hi)
    return ks


def k_interval(boots: np.ndarray) -> tuple[float, float]:
    """The 95 % interval of k from ``bootstrap_k``'s rows."""
    ok = np.isfinite(boots[:, 0])
    if not ok.any():
        return math.nan, math.nan
    return float(np.percentile(boots[ok, 1], 2.5)), float(np.percentile(boots[ok, 2], 97.5))


def constant_depth_agreement(depth: np.ndarray, trained: np.ndarray) -> float:
    """Best agreement of a rule that ignores σ_w²: trained ⇔ L ≤ L₀ (the null model k·ξ_c must beat)."""
    depth, trained = np.asarray(depth, float), np.asarray(trained, bool)
    best = 0.0
    for L0 in np.concatenate([[0.0], np.unique(depth)]):
        best = max(best, float(np.mean((depth <= L0) == trained)))
    return best


def max_trainable_depth(cell_frame: pd.DataFrame) -> pd.DataFrame:
    """Per (activation, σ_w²): L_max (deepest trained depth, 0 if none), the next grid depth above it, ξ_c."""
    rows = []
    for (act, w), g in cell_frame.groupby(["activation", "sigma_w2"], sort=True):
        g = g.sort_values("depth")
        tr = g[g["trained"]]
        lmax = int(tr["depth"].max()) if len(tr) else 0
        above = g[g["depth"] > lmax]["depth"]
        rows.append({"activation": act, "sigma_w2": float(w), "L_max": lmax,
                     "L_next": int(above.min()) if len(above) else math.inf,
                     "xi_c": float(g["xi_c"].iloc[0]), "sigma_b2": float(g["sigma_b2"].iloc[0])})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------- correlation maps

@lru_cache(maxsize=None)
def predicted_profiles(act: str, sigma_w2: float, sigma_b2: float, c0: float, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean-field (q_l, c_l), l = 1..depth, for input pairs with mean(x²) = 1 and input correlation c₀."""
    from theory import meanfield
    a = _act(act)
    q1 = sigma_w2 + sigma_b2
    c1 = (sigma_w2 * c0 + sigma_b2) / q1
    q = np.asarray(meanfield.q_profile(a, q1, sigma_w2, sigma_b2, depth), float)
    c = np.asarray(meanfield.c_profile(a, q1, c1, sigma_w2, sigma_b2, depth), float)
    return q, c


def correlation_summary(corr: pd.DataFrame) -> pd.DataFrame:
    """Per (activation, σ_w², c₀, layer): mean and standard error over seeds of q and c, with predictions."""
    g = corr.groupby(["activation", "sigma_w2", "sigma_b2", "c0", "layer"], sort=True)
    s = g.agg(q=("q", "mean"), q_se=("q", "sem"), c=("c", "mean"), c_se=("c", "sem"), seeds=("seed", "nunique"),
              width=("width", "first")).reset_index()
    pq, pc = [], []
    for (act, w, b, c0), grp in s.groupby(["activation", "sigma_w2", "sigma_b2", "c0"], sort=False):
        depth = int(grp["layer"].max())
        q, c = predicted_profiles(str(act), float(w), float(b), float(c0), depth)
        pq.append(pd.Series(q[grp["layer"].to_numpy() - 1], index=grp.index))
        pc.append(pd.Series(c[grp["layer"].to_numpy() - 1], index=grp.index))
    s["q_pred"] = pd.concat(pq) if pq else []
    s["c_pred"] = pd.concat(pc) if pc else []
    return s


# ----------------------------------------------------------------------------------------------- claims

HELD, FAILED, INCONCLUSIVE, NOT_APPLICABLE = "held", "failed", "inconclusive", "not applicable"
CLAIM_NAMES = ("trainable_region", "trainable_region_finite_xi", "trainable_depth_k", "max_trainable_depth", "deepest_trainable_sigma_w2",
               "k_universal", "correlation_map", "length_map", "correlation_depth_scale")
BRACKET = 1.5
PAPER_STEPS = 10_000
RATE_WINDOW = (0.02, 0.3)


@dataclass(frozen=True)
class _Name:
    name: str


def _make(st, kind, claim, act, setting, relation, **kw):
    """A claim record: ``verdicts.make`` (the claim model with relation, interval and reason) where it exists,
    else the earlier ``verdicts.record`` with relation and reason folded into ``detail``."""
    from empirical.analysis import verdicts as V
    if hasattr(V, "make"):
        return V.make(st, kind, claim, act, setting, relation, **kw)
    lo, hi = kw.get("lo", math.nan), kw.get("hi", math.nan)
    span = f"95 % interval [{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    detail = "; ".join(x for x in (kw.get("reason", ""), relation, span, kw.get("detail", "")) if x)
    return V.record(st, kind, claim, act, setting, kw.get("predicted", math.nan), kw.get("measured", math.nan),
                    kw.get("measured_std", math.nan), kw.get("tolerance", math.nan), kw.get("verdict", NOT_APPLICABLE),
                    detail)


def _fmt(v: float) -> str:
    return "∞" if v == math.inf else ("nan" if not np.isfinite(v) else f"{v:.3g}")


def _grid_step(values: Sequence[float]) -> float:
    v = np.unique(np.asarray(values, float))
    return float(np.min(np.diff(v))) if len(v) > 1 else 0.0


def _agreement(d, xi, tr, k) -> float:
    ok = ~np.isnan(xi)
    r = np.where(np.isinf(xi), 0.0, d / np.where(np.isinf(xi), 1.0, xi))
    return float(np.mean((r[ok] <= k) == tr[ok])) if ok.any() else math.nan


def trainability_claims(study: str, runs: pd.DataFrame, num_classes: int = 10, steps: int | None = None,
                        n_boot: int = BOOTSTRAP) -> list:
    """k per activation (with its bootstrap interval), agreement of trained cells with L ≤ k·ξ_c, L_max per σ_w²
    against k·ξ_c, the σ_w² of the deepest trainable net against the critical σ_w², and k's universality."""

    runs = runs[runs["init"].astype(str) == "gaussian"]
    if len(runs) == 0:
        return []
    st = _Name(study)
    cf = cells(runs, num_classes)
    out = []
    intervals = {}
    b = float(cf["sigma_b2"].iloc[0])
    base = f"sigma_b2={b:g} width={int(str(runs['widths'].iloc[0]).split('-')[0])}"
    for act, g in cf.groupby("activation", sort=False):
        g = g.reset_index(drop=True)
        d, xi, tr = g["depth"].to_numpy(float), g["xi_c"].to_numpy(float), g["trained"].to_numpy(bool)
        fit = fit_k(d, xi, tr)
        boots = bootstrap_k(d, xi, seed_matrix(runs[runs["activation"] == act], g, num_classes), n_boot)
        lo, hi = k_interval(boots)
        null = constant_depth_agreement(d, tr)
        seeds = int(g["seeds"].max())
        finite = np.isfinite(xi)
        ktxt = (f"k = {_fmt(fit.k)}, 95 % bootstrap interval [{_fmt(lo)}, {_fmt(hi)}] ({n_boot} resamples of the seeds "
                f"within every cell, widened to every threshold that fits equally well){'; censored: the grid only bounds k from ' + fit.censored if fit.censored else ''}")
        rel = f"trained ⇔ L ≤ k·ξ_c(σ_w²) (k fitted) in m ≥ {AGREEMENT_MIN:g} of cells, and m > σ_w²-blind rule L ≤ L₀"
        if not np.isfinite(fit.agreement):
            verdict, why = NOT_APPLICABLE, "no cell has a finite ξ_c"
        else:
            verdict, why = _region_verdict(fit.agreement, null, fit)
        if verdict == FAILED and (~finite).any():
            why += ("; ξ_c = ∞ where q* → ∞ (σ_w² ≥ the q-infinity limit): theory calls those nets trainable at "
                    "any depth, but their gradients grow by χ₁ > 1 per layer")
        alo, ahi = _agreement_interval(d, xi, tr, boots)
        out.append(_make(st, "prediction", "trainable_region", act, base, rel, predicted=1.0, measured=fit.agreement,
                        lo=alo, hi=ahi, tolerance=1.0 - AGREEMENT_MIN, n=seeds, verdict=verdict, reason=why,
                        detail=f"{len(g)} cells, {int(tr.sum())} trained ({seeds} seeds, trained: test accuracy ≥ "
                               f"chance + {TRAINED_MARGIN:g} in at least half the seeds); σ_w²-blind agreement "
                               f"{null:.3f}; {ktxt}"))
        out.append(_finite_region_claim(st, act, base, d, xi, tr, fit, boots, seeds))
        intervals[act] = (fit, float(lo), float(hi))
        if (steps or 0) < PAPER_STEPS:
            vk, wk = NOT_APPLICABLE, (f"k grows with the training budget: the paper's k ≈ 6 is for long SGD training on "
                                      f"MNIST, this study trains {steps} steps")
        elif not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(fit.k)):
            vk, wk = NOT_APPLICABLE, f"no finite k or interval (k = {_fmt(fit.k)}, [{_fmt(lo)}, {_fmt(hi)}])"
        else:
            vk = HELD if lo <= K_PAPER <= hi else FAILED
            wk = f"6 {'inside' if vk == HELD else 'outside'} [{_fmt(lo)}, {_fmt(hi)}]"
        out.append(_make(st, "prediction", "trainable_depth_k", act, base, "p = 6 (Schoenholz et al. 2017) ∈ 95 % interval of k",
                        predicted=K_PAPER, measured=fit.k, lo=lo, hi=hi, n=seeds, verdict=vk, reason=wk, detail=ktxt))
        out += _lmax_claims(st, act, g, fit, base)
        out.append(_deepest_claim(st, act, g, base))
    usable = {a: v for a, v in intervals.items() if not v[0].censored and np.isfinite(v[1]) and np.isfinite(v[2])}
    rel = "one k for every activation: the 95 % intervals of k share a value"
    if len(usable) >= 2:
        lo = max(v[1] for v in usable.values())
        hi = min(v[2] for v in usable.values())
        desc = "; ".join(f"{a}: {_fmt(v[0].k)} [{_fmt(v[1])}, {_fmt(v[2])}]" for a, v in usable.items())
        out.append(_make(st, "prediction", "k_universal", "all", base, rel, verdict=HELD if lo <= hi else FAILED,
                        reason=("the intervals overlap on " + f"[{_fmt(lo)}, {_fmt(hi)}]") if lo <= hi else
                        "no value lies in every interval", detail=f"k per activation: {desc}"))
    else:
        out.append(_make(st, "prediction", "k_universal", "all", base, rel, verdict=NOT_APPLICABLE,
                        reason=f"needs k bracketed for ≥ 2 activations, have {len(usable)}"))
    return out


def _agreement_interval(d, xi, tr, boots: np.ndarray) -> tuple[float, float]:
    """95 % interval of the agreement of (L/ξ_c ≤ k) with ``tr`` over the bootstrap resamples' k."""
    agree = [_agreement(d, xi, tr, k) for k in boots[np.isfinite(boots[:, 0]), 0]]
    return tuple(np.percentile(agree, [2.5, 97.5])) if agree else (math.nan, math.nan)


def _region_verdict(m: float, null: float, fit: KFit) -> tuple[str, str]:
    """held iff the agreement m ≥ AGREEMENT_MIN and beats the σ_w²-blind rule; inconclusive when k is censored."""
    if fit.censored:
        return INCONCLUSIVE, (f"the grid only bounds k ({fit.censored}): run deeper or shallower nets so that both "
                              "trained and untrained cells occur")
    if m >= AGREEMENT_MIN and m > null:
        return HELD, f"agreement {m:.3f} ≥ {AGREEMENT_MIN:g} and > {null:.3f} (σ_w²-blind)"
    if m < AGREEMENT_MIN:
        return FAILED, f"agreement {m:.3f} < {AGREEMENT_MIN:g}"
    return FAILED, f"ξ_c explains no more than a σ_w²-blind depth threshold ({null:.3f})"


def _finite_region_claim(st, act, base, d, xi, tr, fit: KFit, boots: np.ndarray, seeds: int):
    """``trainable_region_finite_xi``: the rule L ≤ k·ξ_c (the same k) on the cells where its precondition holds,
    a finite ξ_c (finite q*); not applicable when every cell, or none, has one."""
    finite = np.isfinite(xi)
    rel = (f"trained ⇔ L ≤ k·ξ_c(σ_w²) (k as fitted on all cells) in m ≥ {AGREEMENT_MIN:g} of the cells with "
           "finite ξ_c, and m > σ_w²-blind rule L ≤ L₀ there")
    if finite.all() or not finite.any():
        return _make(st, "prediction", "trainable_region_finite_xi", act, base, rel, n=seeds, verdict=NOT_APPLICABLE,
                     reason=("every cell has a finite ξ_c: trainable_region is this claim" if finite.all()
                             else "no cell has a finite ξ_c"))
    fd, fx, ft = d[finite], xi[finite], tr[finite]
    m = _agreement(fd, fx, ft, fit.k)
    null = constant_depth_agreement(fd, ft)
    lo, hi = _agreement_interval(fd, fx, ft, boots)
    verdict, why = _region_verdict(m, null, fit)
    return _make(st, "prediction", "trainable_region_finite_xi", act, base, rel, predicted=1.0, measured=m, lo=lo, hi=hi,
                 tolerance=1.0 - AGREEMENT_MIN, n=seeds, verdict=verdict, reason=why,
                 detail=(f"{int(finite.sum())} of {len(d)} cells have a finite ξ_c, {int(ft.sum())} of them trained; "
                         f"σ_w²-blind agreement there {null:.3f}"))


def _lmax_claims(st, act, g, fit: KFit, base) -> list:
    from empirical.analysis.theory_bridge import q_star      # from q_1 = σ_w² + σ_b² (mean(x²) = 1)
    out = []
    rel = f"L_max ≤ {BRACKET:g}·k·ξ_c and L_next ≥ k·ξ_c/{BRACKET:g} (L_next: the next grid depth above L_max)"
    for _, r in max_trainable_depth(g).iterrows():
        setting = f"sigma_w2={r['sigma_w2']:g} {base}"
        xi, w, b = float(r["xi_c"]), float(r["sigma_w2"]), float(r["sigma_b2"])
        pred = fit.k * xi if np.isfinite(fit.k) else math.nan
        if np.isnan(xi) or not np.isfinite(fit.k):
            v, why = NOT_APPLICABLE, "no finite k or no ξ_c"
        elif np.isinf(xi) and math.isinf(q_star(act, w, b, w + b)):
            v, why = NOT_APPLICABLE, ("q* = ∞: the length map has no finite fixed point at this σ_w², so ξ_c (defined "
                                      "at q*) does not describe these nets (their gradients grow by χ₁ > 1 per layer)")
        elif fit.censored:
            v, why = INCONCLUSIVE, (f"the grid only bounds k (from {fit.censored}): run deeper or shallower nets so "
                                    "that both trained and untrained cells occur")
        else:
            ok = r["L_max"] <= BRACKET * pred and r["L_next"] >= pred / BRACKET
            v = HELD if ok else FAILED
            why = (f"L_max = {int(r['L_max'])}, next grid depth {_fmt(r['L_next'])}, k·ξ_c = {_fmt(pred)}")
        out.append(_make(st, "prediction", "max_trainable_depth", act, setting, rel, predicted=pred,
                        measured=float(r["L_max"]), tolerance=BRACKET, verdict=v, reason=why,
                        detail=f"ξ_c = {_fmt(xi)}, k = {_fmt(fit.k)}"))
    return out


def _deepest_claim(st, act, g, base):
    b = float(g["sigma_b2"].iloc[0])
    crit, kind = edge(act, b)
    lm = max_trainable_depth(g)
    step = _grid_step(lm["sigma_w2"])
    rel = "p (critical σ_w²) within one grid step of the σ_w² where the deepest trained net lies"
    deepest = int(lm["L_max"].max())
    S = lm[lm["L_max"] == deepest]["sigma_w2"].to_numpy(float)
    mid = float((S.min() + S.max()) / 2) if len(S) else math.nan
    detail = (f"deepest trained depth {deepest} at σ_w² ∈ {{{', '.join(f'{s:g}' for s in S)}}}; edge of chaos "
              f"({kind}) at σ_w² = {_fmt(crit)}")
    if kind == "none" or not np.isfinite(crit):
        v, why = NOT_APPLICABLE, "theory finds no edge of chaos at this σ_b²"
    elif deepest == 0:
        v, why = INCONCLUSIVE, "no cell trained"
    elif len(S) > len(lm) / 2:
        v, why = INCONCLUSIVE, "more than half the σ_w² grid trains at the deepest depth: add deeper nets"
    else:
        ok = S.min() - step <= crit <= S.max() + step
        v = HELD if ok else FAILED
        why = f"{_fmt(crit)} {'within' if ok else 'outside'} [{S.min() - step:g}, {S.max() + step:g}]"
    # [min S, max S] is a range of grid values, not an interval over seeds: it stays in the detail, not in lo/hi
    return _make(st, "prediction", "deepest_trainable_sigma_w2", act, base, rel, predicted=crit, measured=mid,
                tolerance=step, verdict=v, reason=why, detail=detail)


def correlation_claims(study: str, summary: pd.DataFrame, corr: pd.DataFrame) -> list:
    """From ``correlation_summary`` of the per-seed ``correlation.csv`` rows ``corr``: per (activation, σ_w², c₀)
    the measured c_l against the c-map iteration at every layer (|c̄_l − c_l| ≤ ``C_TOL``, 95 % interval over seeds
    per layer); per (activation, σ_w²) q_l against the length map (per seed the mean over layers of log(q_l/q_l(map)),
    its interval over seeds against 0.1 + √(L/N)) and the approach rate of c_l to c* against the map's own rate over
    the same layers (``_rate_claim``)."""
    from empirical.analysis.verdicts import interval, q_tolerance, tolerance_verdict
    if summary is None or len(summary) == 0:
        return []
    st = _Name(study)
    s = summary
    out = []
    for (act, w, b, c0), g in s.groupby(["activation", "sigma_w2", "sigma_b2", "c0"], sort=False):
        g = g.sort_values("layer")
        width, depth, seeds = int(g["width"].iloc[0]), int(g["layer"].max()), int(g["seeds"].max())
        setting = f"sigma_w2={w:g} sigma_b2={b:g} c0={c0:g} depth={depth} width={width}"
        rel = f"|c̄_l − c_l(map)| ≤ tol = {C_TOL:g} at every layer l (95 % interval of c̄_l over seeds)"
        ok = (g["c"] - g["c_pred"]).abs().notna()
        if not ok.any():
            out.append(_make(st, "prediction", "correlation_map", str(act), setting, rel, tolerance=C_TOL,
                            verdict=NOT_APPLICABLE, reason="no finite prediction or measurement"))
            continue
        out.append(_map_claim(st, str(act), setting, rel, g[ok], seeds, depth))
    for (act, w, b), g in s.groupby(["activation", "sigma_w2", "sigma_b2"], sort=False):
        c0 = g["c0"].iloc[0]
        g = g[g["c0"] == c0].sort_values("layer")
        width, depth = int(g["width"].iloc[0]), int(g["layer"].max())
        setting = f"sigma_w2={w:g} sigma_b2={b:g} depth={depth} width={width}"
        tol = q_tolerance(depth, width)
        rel = "|mean over seeds of mean_l log(q_l/q_l(map))| ≤ 0.1 + √(L/N) (95 % interval over seeds)"
        m, sd, lo, hi, n = interval(_per_seed_log_q(corr, g, act, w, b, c0))
        if n == 0:
            out.append(_make(st, "prediction", "length_map", str(act), setting, rel, tolerance=tol,
                            verdict=NOT_APPLICABLE, reason="no finite q"))
        else:
            v, why = tolerance_verdict(m, 0.0, tol, lo, hi, sd)
            out.append(_make(st, "prediction", "length_map", str(act), setting, rel, predicted=0.0, measured=m,
                            lo=lo, hi=hi, measured_std=sd, tolerance=tol, n=n, verdict=v, reason=why,
                            detail=f"{depth} layers, c₀ = {c0:g}"))
        out.append(_rate_claim(st, str(act), float(w), float(b), s, setting, corr))
    return out


def _map_claim(st, act, setting, rel, g: pd.DataFrame, seeds: int, depth: int):
    """``correlation_map`` over every layer: held iff each layer's 95 % interval of c̄_l lies in c_l ± tol, failed
    iff some layer's lies wholly outside, else inconclusive (with the seeds that would decide the layers that
    straddle); one seed gives no interval: inconclusive."""
    from scipy.stats import t as student

    from empirical.analysis.verdicts import seeds_for_interval
    m, p, se = (g[k].to_numpy(float) for k in ("c", "c_pred", "c_se"))
    layers = g["layer"].to_numpy(int)
    dev = np.abs(m - p)
    if seeds < 2:
        i = int(np.argmax(dev))
        return _make(st, "prediction", "correlation_map", act, setting, rel, predicted=float(p[i]), measured=float(m[i]),
                     tolerance=C_TOL, n=seeds, verdict=INCONCLUSIVE, reason=(
                         f"one seed gives no interval; run ≥ 2 seeds (largest |c − c_l| = {dev[i]:.3g} at layer "
                         f"{layers[i]})"))
    half = float(student.ppf(0.975, seeds - 1)) * se
    lo, hi = m - half, m + half
    out_ = (hi < p - C_TOL) | (lo > p + C_TOL)
    in_ = (p - C_TOL <= lo) & (hi <= p + C_TOL)
    if out_.any():
        i = int(np.flatnonzero(out_)[np.argmax(dev[out_])])
        v, why = FAILED, f"{int(out_.sum())} of {len(m)} layers lie outside c_l ± tol"
    elif in_.all():
        i = int(np.argmax(dev))
        v, why = HELD, f"all {len(m)} layers lie within c_l ± tol"
    else:
        straddle = np.flatnonzero(~in_)
        i = int(straddle[np.argmax(dev[straddle])])
        needs = [seeds_for_interval(float(se[j]) * math.sqrt(seeds), abs(C_TOL - dev[j])) for j in straddle]
        need = max(needs) if needs and all(x is not None for x in needs) else None
        v, why = INCONCLUSIVE, (f"{len(straddle)} of {len(m)} layers straddle an edge of c_l ± tol"
                                + (f"; about {need} seeds would decide" if need else ""))
    span = (f"layer {layers[i]}: 95 % interval [{lo[i]:.3g}, {hi[i]:.3g}], c_l ± tol = [{p[i] - C_TOL:.3g}, "
            f"{p[i] + C_TOL:.3g}]")
    return _make(st, "prediction", "correlation_map", act, setting, rel, predicted=float(p[i]), measured=float(m[i]),
                 lo=float(lo[i]), hi=float(hi[i]), measured_std=float(se[i]) * math.sqrt(seeds), tolerance=C_TOL,
                 n=seeds, verdict=v, reason=f"{why} ({span})",
                 detail=f"layers 1..{depth}; c_1 = {m[0]:.3f} vs {p[0]:.3f}; 8 input pairs per net")


def _corr_rows(corr: pd.DataFrame, act, w, b, c0) -> pd.DataFrame:
    """The per-seed rows of ``correlation.csv`` for one (activation, σ_w², σ_b², c₀)."""
    return corr[(corr["activation"] == act) & (corr["sigma_w2"] == w) & (corr["sigma_b2"] == b) & (corr["c0"] == c0)]


def _per_seed_log_q(corr: pd.DataFrame, g: pd.DataFrame, act, w, b, c0) -> list[float]:
    """Per seed: mean over layers (q > 0) of log(q_l / q_l(map)) at input correlation c₀."""
    rows = _corr_rows(corr, act, w, b, c0)
    pred = g.set_index("layer")["q_pred"]
    out = []
    for _, r in rows.groupby("seed"):
        qp = r["layer"].map(pred).to_numpy(float)
        q = r["q"].to_numpy(float)
        ok = (q > 0) & (qp > 0) & np.isfinite(q) & np.isfinite(qp)
        if ok.any():
            out.append(float(np.mean(np.log(q[ok] / qp[ok]))))
    return out


def _rate_claim(st, act, w, b, s, setting, corr: pd.DataFrame):
    """ξ_m, the depth scale of log|c_l − c*| fitted per seed over the layers where the map's own |c_l − c*| lies in
    ``RATE_WINDOW``, against the map's own depth scale over the same layers (at finite depth q_l has not reached q*
    there, so ξ_c at q* is the far-depth limit, reported beside it): |mean log ξ_m − log ξ_map| ≤ log(1 + tol), by
    the 95 % interval of the mean over seeds."""
    from theory import meanfield

    from empirical.analysis.verdicts import interval, tolerance_verdict

    rel = (f"|mean over seeds of log ξ_m − log ξ_map| ≤ log(1 + {XI_RTOL:g}); ξ from the slope of log|c_l − c*| over "
           f"the layers where the map's own |c_l − c*| ∈ [{RATE_WINDOW[0]:g}, {RATE_WINDOW[1]:g}]")
    xi = xi_c(act, w, b)
    cstar = float(meanfield.correlation_fixed_point(_act(act), w, b, w + b))

    def na(verdict, reason, predicted=xi):
        return _make(st, "prediction", "correlation_depth_scale", act, setting, rel, predicted=predicted,
                     tolerance=XI_RTOL, verdict=verdict, reason=reason, detail=f"ξ_c(q*) = {_fmt(xi)}")

    if not (np.isfinite(xi) and np.isfinite(cstar)):
        return na(NOT_APPLICABLE, f"ξ_c = {_fmt(xi)}, c* = {_fmt(cstar)}: no finite rate to compare")
    best = None
    for c0, g in s[(s["activation"] == act) & (s["sigma_w2"] == w) & (s["sigma_b2"] == b)].groupby("c0"):
        g = g.sort_values("layer")
        pd_ = (g["c_pred"] - cstar).abs().to_numpy()
        win = np.flatnonzero((pd_ >= RATE_WINDOW[0]) & (pd_ <= RATE_WINDOW[1]))
        if len(win) >= 3 and (best is None or len(win) > len(best[1])):
            best = (c0, win, g)
    if best is None:
        return na(INCONCLUSIVE, f"fewer than 3 layers where the map's |c_l − c*| lies in the window (c* = {cstar:.3f}): "
                                "a faster or slower approach than these depths resolve")
    c0, win, g = best
    layers = g["layer"].to_numpy()[win]
    md = (g["c"] - cstar).abs().to_numpy()[win]
    se = g["c_se"].fillna(0).to_numpy()[win]
    pslope = float(np.polyfit(layers, np.log((g["c_pred"] - cstar).abs().to_numpy()[win]), 1)[0])
    xp = -1.0 / pslope if pslope < 0 else math.inf
    if not np.isfinite(xp):
        return na(NOT_APPLICABLE, "the map's own |c_l − c*| does not decay over the window")
    if np.any(md <= 2 * se) or np.any(md <= 0):
        return na(INCONCLUSIVE, "the measured distance to c* is within 2 standard errors of 0 in the window: more "
                                "seeds or wider nets would resolve it", xp)
    per_seed = []
    for _, r in _corr_rows(corr, act, w, b, c0).groupby("seed"):
        d = (r.set_index("layer").reindex(layers)["c"] - cstar).abs().to_numpy(float)
        slope = float(np.polyfit(layers, np.log(d), 1)[0]) if np.all(d > 0) and np.all(np.isfinite(d)) else math.nan
        per_seed.append(math.log(-1.0 / slope) if slope < 0 else math.nan)
    lost = sum(1 for v in per_seed if not np.isfinite(v))
    if lost:
        return na(INCONCLUSIVE, f"in {lost} of {len(per_seed)} seeds |c_l − c*| does not decay over the window "
                                "(a zero or growing distance): more seeds or wider nets would resolve it", xp)
    m, sd, lo, hi, n = interval(per_seed)
    v, why = tolerance_verdict(m, math.log(xp), math.log(1 + XI_RTOL), lo, hi, sd)
    return _make(st, "prediction", "correlation_depth_scale", act, setting, rel, predicted=xp, measured=math.exp(m),
                 lo=math.exp(lo) if np.isfinite(lo) else math.nan, hi=math.exp(hi) if np.isfinite(hi) else math.nan,
                 measured_std=sd, tolerance=XI_RTOL, n=n, verdict=v,
                 reason=f"ξ_m = {math.exp(m):.3g} vs ξ_map = {xp:.3g} (log scale: {why})",
                 detail=f"layers {int(layers[0])}..{int(layers[-1])}, c₀ = {c0:g}, c* = {cstar:.3f}; far-depth "
                        f"ξ_c(q*) = {_fmt(xi)}; measured_std is the sd of log ξ_m over seeds")


# ----------------------------------------------------------------------------------------------- one study

def is_trainability_study(study) -> bool:
    return "init" in study.runs.columns and (study.runs["init"].astype(str) == "gaussian").any()


def trainability_of(study, write: bool = True) -> list:
    """Every trainability and correlation claim of a study with ``gaussian``-init runs (none otherwise). With
    ``write``, the derived tables the figures read go into the study folder: ``trainability_cells.csv`` (cells
    with ξ_c and the fitted k per activation) and ``correlation_profiles.csv`` (c_l, q_l measured and predicted)."""
    import os

    from empirical.results import atomic_write

    if not is_trainability_study(study):
        return []
    runs = study.runs
    steps = int(pd.to_numeric(runs["steps"], errors="coerce").max()) if "steps" in runs.columns else None
    out = trainability_claims(study.name, runs, steps=steps)
    corr_path = os.path.join(study.folder, "correlation.csv")
    corr = pd.read_csv(corr_path) if os.path.isfile(corr_path) else None
    summary = correlation_summary(corr) if corr is not None else None
    out += correlation_claims(study.name, summary, corr)
    if write:
        cf = cells(runs[runs["init"].astype(str) == "gaussian"])
        ks = {c.activation: c.measured for c in out if c.claim == "trainable_depth_k"}
        cf["k"] = cf["activation"].map(ks)
        crit = {a: edge(a, float(b)) for a, b in cf.groupby("activation")["sigma_b2"].first().items()}
        cf["critical_sigma_w2"] = cf["activation"].map(lambda a: crit[a][0])
        cf["critical_kind"] = cf["activation"].map(lambda a: crit[a][1])
        atomic_write(os.path.join(study.folder, "trainability_cells.csv"), cf.to_csv(index=False))
        if summary is not None:
            atomic_write(os.path.join(study.folder, "correlation_profiles.csv"), summary.to_csv(index=False))
    return out
