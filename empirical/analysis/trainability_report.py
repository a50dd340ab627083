"""The trainability section of a study page: the heatmaps with ξ_c and k·ξ_c, k per activation with its interval,
the agreement of trained cells with L ≤ k·ξ_c, the deepest trainable σ_w² against the edge of chaos, and the
c_l / q_l profiles at initialisation against the mean-field maps. Markdown as a string (pure)."""
from __future__ import annotations

import json
import math
from pathlib import Path

from empirical.analysis.markup import subscripts
from empirical.analysis.trainability_figures import dataset_name

CLAIMS = ("trainable_region", "trainable_region_finite_xi", "trainable_depth_k", "deepest_trainable_sigma_w2", "k_universal",
          "max_trainable_depth", "correlation_map", "length_map", "correlation_depth_scale")


def _f(v, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    if math.isnan(v):
        return "—"
    return "∞" if math.isinf(v) else f"{v:.{digits}g}"


def _cell(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(head, rows) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _reason(r) -> str:
    for k in ("reason", "detail"):
        if k in r and isinstance(r[k], str) and r[k]:
            return r[k]
    return ""


def section(study: Path, figdir: Path, rel_root: str, pred=None) -> str:
    """Markdown for a study whose folder has the trainability tables; '' otherwise."""
    import pandas as pd

    from empirical.analysis.claims.trainability import AGREEMENT_MIN, C_TOL, RATE_WINDOW, TRAINED_MARGIN, XI_RTOL
    from empirical.analysis.results_schema import read_csv

    if not (figdir / "trainability_heatmaps.png").is_file():
        return ""
    runs = read_csv(study / "runs.csv")
    data = dataset_name(runs)
    cfg = {}
    if (study / "study.json").is_file():
        cfg = json.loads((study / "study.json").read_text()).get("config", {})
    steps = int(pd.to_numeric(runs["steps"], errors="coerce").max()) if runs is not None and "steps" in runs else None
    out = ["## Trainability: depth against the correlation depth scale\n",
           f"**Data set: {data}** ({'generated offline by the `mnist1d` package, ' if 'MNIST-1D' in data else ''}"
           f"4,000 training / 1,000 test examples, 10 balanced classes). Fully connected nets of "
           f"{cfg.get('widths', ['?'])[0]} units per hidden layer, W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b² = "
           f"{cfg.get('sigma_b2', '?')}), {cfg.get('optimizer', '?').upper()} at a fixed learning rate "
           f"{cfg.get('lr', '?')}, batch {cfg.get('batch_size', '?')}, {steps} steps, seeds {cfg.get('seeds', '?')}; "
           "runs that differ only in σ_w² (and activation) at one depth train as one batched program.\n",
           f"A run **trained** when its final test accuracy is at least chance + {TRAINED_MARGIN:g} "
           f"(≥ {0.1 + TRAINED_MARGIN:.2f}) and it did not diverge; a cell (σ_w², depth) trained when at least half "
           "its seeds did. Schoenholz et al. (2017) predict that a net trains only if its depth is below a few "
           "correlation depth scales, L ≤ k·ξ_c(σ_w²), with ξ_c from the mean-field correlation map "
           "(at c* in the chaotic phase, −1/log χ₁ in the ordered phase, infinite at the edge of chaos). "
           f"k is fitted once per activation (the threshold on L/ξ_c that agrees with most cells); the claim holds "
           f"when the rule agrees with at least {AGREEMENT_MIN:.0%} of the cells and beats the best rule that "
           "ignores σ_w² (trained ⇔ L ≤ L₀). The paper found k ≈ 6 after long training on MNIST; with a budget "
           f"of {steps} steps k is expected to be smaller.\n"]
    out.append("### Accuracy over (σ_w², depth) { #fig-trainability-heatmaps }\n")
    out.append(f"![{data}: accuracy over (σ_w², depth)]({rel_root}/trainability_heatmaps.png)\n")
    out.append(f"*Mean test accuracy over seeds ({data}) per σ_w² (x) and depth (y, cells centred on the grid "
               f"depths). White outline: cells that trained. Dashed: ξ_c(σ_w²); red: k·ξ_c with the fitted k; dotted: "
               "the critical σ_w² (edge of chaos; for relu the q* → ∞ limit σ_w² = 2).*\n")
    d = None
    if pred is not None and len(pred) and "study" in pred.columns:
        d = pred[(pred["study"] == study.name) & (pred["claim"].isin(CLAIMS))]
    if d is not None and len(d):
        reg = d[d["claim"] == "trainable_region"].set_index("activation")
        fin = d[d["claim"] == "trainable_region_finite_xi"].set_index("activation")
        kk = d[d["claim"] == "trainable_depth_k"].set_index("activation")
        deep = d[d["claim"] == "deepest_trainable_sigma_w2"].set_index("activation")
        rows = []
        for a in reg.index:
            k = kk.loc[a] if a in kk.index else None
            lo = k["lo"] if k is not None and "lo" in k else math.nan
            hi = k["hi"] if k is not None and "hi" in k else math.nan
            rows.append([a, _f(k["measured"]) if k is not None else "—",
                         f"[{_f(lo)}, {_f(hi)}]" if not (pd.isna(lo) or pd.isna(hi)) else "in detail",
                         _f(reg.loc[a, "measured"]), reg.loc[a, "verdict"],
                         (f"{_f(fin.loc[a, 'measured'])} ({fin.loc[a, 'verdict']})"
                          if a in fin.index and not pd.isna(fin.loc[a, "measured"]) else "all finite"
                          if a in fin.index else "—"),
                         _f(deep.loc[a, "measured"]) if a in deep.index else "—",
                         _f(deep.loc[a, "predicted"]) if a in deep.index else "—",
                         deep.loc[a, "verdict"] if a in deep.index else "—"])
        out.append("### Verdicts\n")
        out.append(_table(["activation", "k", "k 95 % interval", "agreement", "verdict (L ≤ k·ξ_c)",
                           "agreement where ξ_c is finite (verdict)",
                           "σ_w² of the deepest trained net (mid)", "critical σ_w²", "verdict (edge)"], rows))
        uni = d[d["claim"] == "k_universal"]
        if len(uni):
            u = uni.iloc[0]
            out.append(f"One k for every activation: **{u['verdict']}** — {_reason(u)}.\n")
        notes = [f"- **{r['activation']}**, {r['claim']}: {r['verdict']} — "
                 + (f"{r['reason']}; {r['detail']}" if isinstance(r.get("reason"), str) and r.get("reason") else str(r["detail"]))
                 for _, r in d[d["claim"].isin(["trainable_region", "trainable_region_finite_xi",
                                                "deepest_trainable_sigma_w2"])].iterrows()]
        out.append('??? info "Reasons and details"\n\n' + "".join(f"    {n}\n" for n in notes))
        lm = d[d["claim"] == "max_trainable_depth"]
        if len(lm):
            c = lm.groupby("activation")["verdict"].value_counts().unstack(fill_value=0)
            out.append("Maximum trainable depth per σ_w² against k·ξ_c (held when L_max ≤ 1.5·k·ξ_c and the next "
                       "grid depth ≥ k·ξ_c/1.5; not applicable where q\\* = ∞, since ξ_c is defined at q\\*; inconclusive when the "
                       "grid only bounds k), claims per verdict:\n")
            out.append(_table(["activation", *c.columns], [[a, *map(str, r)] for a, r in c.iterrows()]))
    out.append("### Correlation propagation at initialisation\n")
    spec = {}
    if (study / "study.json").is_file():
        spec = json.loads((study / "study.json").read_text()).get("correlation") or {}
    out.append(f"Two inputs with correlation c₀ ∈ {spec.get('c0s', '?')} (mean x² = 1) through random nets of "
               f"width {spec.get('width', '?')} and depth {spec.get('depth', '?')}, seeds {spec.get('seeds', '?')}, "
               "8 input pairs per net, no training: measured c_l and q_l per layer (points, ±2 standard errors over "
               "seeds) against the mean-field correlation map and length map iterated from c_1 = (σ_w² c₀ + σ_b²)/q_1, "
               f"q_1 = σ_w² + σ_b² (lines). Claims: |c̄_l − c_l| ≤ {C_TOL:g} at every layer (each layer's 95 % "
               "interval over seeds: held when all lie inside, failed when one lies wholly outside); q: the mean over "
               "layers of log(q_l/q_l(map)) per seed, its 95 % interval over seeds within ±(0.1 + √(L/N)); the depth "
               "scale of the approach of c_l to c\\*, fitted per seed over the layers where the map's own |c_l − c\\*| "
               f"lies in [{RATE_WINDOW[0]:g}, {RATE_WINDOW[1]:g}], against the map's own over the same layers (ξ_c at "
               f"q\\* is the far-depth limit, which those layers have not reached), within {XI_RTOL:.0%} on the 95 % "
               "interval.\n")
    if (figdir / "correlation_c.png").is_file():
        out.append(f"![c_l measured and predicted]({rel_root}/correlation_c.png)\n")
        out.append("*c_l per layer at three σ_w²; both c₀ start points. Points: measured; lines: the map.*\n")
    if (figdir / "correlation_q.png").is_file():
        out.append(f"![q_l measured and predicted]({rel_root}/correlation_q.png)\n")
        out.append("*q_l per layer (log scale) at three σ_w². Points: measured; lines: the length map.*\n")
    if d is not None and len(d):
        cc = d[d["claim"].isin(["correlation_map", "length_map", "correlation_depth_scale"])]
        if len(cc):
            c = cc.groupby(["claim", "activation"])["verdict"].value_counts().unstack(fill_value=0)
            out.append(_table(["claim", "activation", *c.columns],
                              [[i[0], i[1], *map(str, r)] for i, r in c.iterrows()]))
    return "\n".join(x if x.startswith("![") else subscripts(x) for x in out)


def overview(found) -> str:
    """For the overview page: a link to every trainability study in the results folder, or a line saying how to
    make one (links are relative to ``docs/index.md``)."""
    studies = [s for s in found if (Path(s) / "trainability_cells.csv").is_file()]
    if not studies:
        return ("No trainability study in this results folder: `python -m empirical.run --preset trainability` "
                "then `python -m empirical.predict results/` make one.\n")
    return "".join(f"- [{Path(s).name}](experiments/{Path(s).name}.md): accuracy over ($\\sigma_w^2$, depth) on "
                   f"{_dataset_of(Path(s))} against $k\\,\\xi_c$, with its verdicts.\n" for s in studies)


def _dataset_of(folder: Path) -> str:
    from empirical.analysis.results_schema import read_csv
    return dataset_name(read_csv(folder / "runs.csv"))
