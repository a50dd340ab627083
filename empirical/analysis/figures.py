"""Figures for the report: tables in, PNG and SVG files out (one colour per activation everywhere).

Every figure function is pure: it takes DataFrames (or arrays) and an output path *without*
suffix, writes ``<out>.png`` and ``<out>.svg`` and returns both paths. No pyplot state is used
(figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas), so the functions are
safe to call from a build hook or a worker process.

Colours are fixed per activation across every figure (``COLORS``, ``color_for``).
``make_all(results_dir, out_dir)`` draws whatever figures the files of one study folder allow.

Inputs follow the study-folder schema (``runs.csv``, ``epochs.csv``, ``steps.csv``,
``layers.csv``, ``predictions.csv``; optional ``profile.csv`` with per-layer measured and
predicted log‖∂L/∂z_l‖², optional ``samples.npz`` with ``images``, ``labels`` and
``class_names``).
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from empirical.analysis.results_schema import (VARIANT_COLUMNS, activation_order, at_probe,
                                               canonical_activation, hidden_only, read_csv, variant_labels,
                                               with_variants)
from empirical.analysis.theory_bridge import theories

__all__ = [
    "COLORS", "color_for", "save",
    "activation_frame", "meanfield_frame",
    "activation_curves", "meanfield_curves", "correlation_curves",
    "training_curves", "step_loss", "bar_by_activation", "final_accuracy_bars",
    "time_per_epoch_bars", "first_layer_grad_bars", "layer_heatmaps", "layer_distributions", "depth_profile",
    "measured_depth_profile", "predicted_depth_profile", "predicted_vs_measured", "sample_images", "make_all", "FIGURES",
]

COLORS: dict[str, str] = {
    "relu": "#1f77b4",
    "leaky_relu": "#17becf",
    "sigmoid": "#d62728",
    "tanh": "#ff7f0e",
    "silu": "#2ca02c",
    "selu": "#9467bd",
    "elu": "#8c564b",
    "gelu": "#e377c2",
    "softplus": "#7f7f7f",
    "mish": "#bcbd22",
    "telu": "#393b79",
    "hardtanh": "#000000",
}
_EXTRA = ["#637939", "#e7969c", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#843c39",
          "#636363", "#a55194", "#6b6ecf", "#b5cf6b"]
_LINESTYLES = ["-", "--", ":", "-."]
_HATCHES = ["", "//", "\\\\", "xx", "--", "++", "||"]  # line hatches only: dot hatches bloat SVGs


DASHED = ("leaky_relu",)


def linestyle_for(activation: str) -> str:
    """The line style of ``activation``: dashed for Leaky ReLU (it lies on ReLU for x > 0), else solid."""
    return "--" if canonical_activation(activation) in DASHED else "-"


def color_for(activation: str) -> str:
    """The colour of ``activation`` (name, alias or label such as ``silu(beta=2)``).

    Built-ins have fixed colours; any other name gets one of a spare palette, chosen by a hash
    of the name so it is the same in every figure and every run.
    """
    key = canonical_activation(activation)
    if key in COLORS:
        return COLORS[key]
    h = int(hashlib.sha1(str(activation).encode()).hexdigest(), 16)
    return _EXTRA[h % len(_EXTRA)]


def save(fig: Figure, out: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``out.png`` and ``out.svg`` and return the paths: the same figure gives the same bytes
    (no dates or versions in the metadata; the SVG's clip-path and hatch ids hashed from a fixed salt, not random)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png, svg = out.with_name(out.name + ".png"), out.with_name(out.name + ".svg")
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    with rc_context({"svg.hashsalt": "actlab"}):
        fig.savefig(svg, metadata={"Date": None, "Creator": None})
    return [png, svg]


def _figure(ncols: int = 1, nrows: int = 1, w: float = 4.6, h: float = 3.4, **kw):
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _log_axis(ax, which: str = "y") -> None:
    """Log scale with plain labels (0.5, 1, 2 …; 1e-06 …), no crowded minor labels."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = (ax.get_ylim() if which == "y" else ax.get_xlim())
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 10
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 2 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


# ---------------------------------------------------------------------------------------------
# Theory figures. The frame builders call theory's public API; the plots only draw frames.

def activation_frame(acts: Sequence, xs: np.ndarray | None = None, orders: Sequence[int] = (0, 1, 2)
                     ) -> pd.DataFrame:
    """Long table (activation, order, x, value) of φ^(order)(x) on a grid.

    At each Piecewise breakpoint b the derivatives (order ≥ 1) are set to NaN so a jump is drawn
    as a gap, not as a vertical line.
    """
    xs = np.linspace(-5, 5, 801) if xs is None else np.asarray(xs, dtype=float)
    rows = []
    for act in acts:
        bps = [b for b in act.breakpoints() if xs[0] < b < xs[-1]]
        grid = np.unique(np.concatenate([xs, *[[b - 1e-9, b, b + 1e-9] for b in bps]]))
        for k in orders:
            v = np.asarray(act.numpy(k)(grid), dtype=float)
            if k >= 1:
                for b in bps:
                    v[grid == b] = np.nan
            rows.append(pd.DataFrame({"activation": act.label, "order": k, "x": grid, "value": v}))
    return pd.concat(rows, ignore_index=True)


def meanfield_frame(acts: Sequence, sigma_w2: Sequence[float], sigma_b2: float = 0.0) -> pd.DataFrame:
    """Table (activation, sigma_w2, sigma_b2, q_star, chi1) over a σ_w² grid, from theory.meanfield.

    q* is the fixed point of the length map q ↦ σ_w² E[φ(√q u)²] + σ_b² reached from q = 1
    (inf where q grows without bound, NaN where the iteration does not converge); chi1 is
    χ₁(q*) = σ_w² E[φ′(√q* u)²] (its limit where q* = inf).
    """
    from theory import meanfield

    rows = []
    for act in acts:
        for s in sigma_w2:
            q = float(meanfield.fixed_point(act, float(s), float(sigma_b2)))
            c = float(meanfield.chi1(act, q, float(s))) if not math.isnan(q) else math.nan
            rows.append({"activation": act.label, "sigma_w2": float(s), "sigma_b2": float(sigma_b2),
                         "q_star": q, "chi1": c})
    return pd.DataFrame(rows)


_ORDER_LABEL = {0: "φ(x)", 1: "φ′(x)", 2: "φ″(x)", 3: "φ‴(x)"}


def activation_curves(df: pd.DataFrame, out: str | Path, *, title: str | None = None,
                      ylim: Mapping[int, tuple[float, float]] | None = None) -> list[Path]:
    """One panel per derivative order (φ, φ′, φ″, …), one line per activation.

    ``df``: columns activation, order, x, value (see ``activation_frame``).
    """
    orders = sorted(df["order"].unique())
    fig, axes = _figure(len(orders), 1, w=3.3, h=2.7)
    acts = activation_order(df["activation"].unique())
    for ax, k in zip(axes[0], orders):
        sub = df[df["order"] == k]
        for a in acts:
            d = sub[sub["activation"] == a].sort_values("x")
            ax.plot(d["x"], d["value"], color=color_for(a), ls=linestyle_for(a), lw=1.6, label=a)
        ax.axhline(0, color="0.7", lw=0.6, zorder=0)
        ax.axvline(0, color="0.7", lw=0.6, zorder=0)
        ax.set_title(_ORDER_LABEL.get(k, f"φ^({k})(x)"))
        ax.set_xlabel("x")
        if ylim and k in ylim:
            ax.set_ylim(*ylim[k])
        ax.grid(alpha=0.25)
    if len(acts) > 1:
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right center", fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, out)


def meanfield_curves(df: pd.DataFrame, out: str | Path, *,
                     critical: Mapping[str, float | None] | None = None,
                     title: str | None = None) -> list[Path]:
    """χ₁(q*) (log scale, edge of chaos χ₁ = 1 marked) and q* against σ_w², one line per activation.

    ``df``: columns activation, sigma_w2, q_star, chi1 (see ``meanfield_frame``).
    ``critical``: activation → critical σ_w² (χ₁(q*) = 1), drawn as a marker on the line χ₁ = 1.
    """
    fig, axes = _figure(1, 2, w=7.5, h=3.4, sharex=True)
    ax_c, ax_q = axes[0][0], axes[1][0]
    for a in activation_order(df["activation"].unique()):
        d = df[df["activation"] == a].sort_values("sigma_w2")
        col = color_for(a)
        chi = d["chi1"].where((d["chi1"] > 0) & np.isfinite(d["chi1"]))
        ax_c.plot(d["sigma_w2"], chi, color=col, ls=linestyle_for(a), lw=1.6, label=a)
        ax_q.plot(d["sigma_w2"], d["q_star"].where(np.isfinite(d["q_star"])), color=col, ls=linestyle_for(a), lw=1.6, label=a)
        crit = (critical or {}).get(a)
        if crit is not None and math.isfinite(float(crit)):
            ax_c.plot([crit], [1.0], marker="o", ms=6, mfc="white", mec=col, mew=1.8, zorder=5)
            ax_c.axvline(crit, color=col, lw=0.7, ls=":", alpha=0.8)
    ax_c.axhline(1.0, color="k", lw=1.0, ls="--")
    ax_c.text(0.02, 1.04, "edge of chaos  χ₁ = 1", transform=ax_c.get_yaxis_transform(),
              fontsize=8, va="bottom")
    ax_c.set_yscale("log")
    ax_c.set_ylabel("χ₁(q*)")
    ax_c.set_title("χ₁ at the fixed point (>1 exploding, <1 vanishing)")
    ax_q.set_yscale("symlog", linthresh=1e-2)
    ax_q.set_ylim(bottom=0.0)
    ax_q.set_xlabel(r"$\sigma_w^2$")
    ax_q.set_ylabel("q*")
    ax_q.set_title("fixed point q* of the length map")
    for ax in (ax_c, ax_q):
        ax.grid(alpha=0.25, which="both")
    fig.legend(*ax_q.get_legend_handles_labels(), loc="outside right center", fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, out)


def correlation_curves(xi: pd.DataFrame, cmap: pd.DataFrame, out: str | Path, *, sigma_b2: float,
                       sigma_w2_map: float) -> list[Path]:
    """Left: ξ_c against σ_w² (log scale; ∞ at the edge of chaos drawn at the top). Right: the
    correlation map c ↦ M(c) at q* for σ_w² = ``sigma_w2_map``, with the diagonal (fixed points).

    ``xi``: columns activation, sigma_w2, xi_c; ``cmap``: columns activation, c, c_next.
    """
    fig, axes = _figure(2, 1, w=8.5, h=3.4)
    ax_x, ax_m = axes[0][0], axes[0][1]
    top = 1e3
    for a in activation_order(xi["activation"].unique()):
        d = xi[xi["activation"] == a].sort_values("sigma_w2")
        v = d["xi_c"].to_numpy(dtype=float)
        ax_x.plot(d["sigma_w2"], np.where(np.isinf(v), top, v), color=color_for(a), lw=1.5, label=a)
    ax_x.axhline(top, color="k", lw=0.8, ls=":")
    ax_x.text(0.02, top * 1.1, r"$\xi_c = \infty$ (edge of chaos, or $q^* = \infty$)", transform=ax_x.get_yaxis_transform(),
              fontsize=7, va="bottom")
    ax_x.set_yscale("log")
    ax_x.set_ylim(0.1, top * 3)
    ax_x.set_xlabel(r"$\sigma_w^2$")
    ax_x.set_ylabel(r"$\xi_c$ (layers)")
    ax_x.set_title(r"correlation depth scale, $\sigma_b^2$" + f" = {sigma_b2:g}")
    for a in activation_order(cmap["activation"].unique()):
        d = cmap[cmap["activation"] == a].sort_values("c")
        ax_m.plot(d["c"], d["c_next"], color=color_for(a), lw=1.4, label=a)
    ax_m.plot([-1, 1], [-1, 1], color="k", lw=0.9, ls="--")
    ax_m.set_xlabel("c (layer l)")
    ax_m.set_ylabel("c (layer l+1)")
    ax_m.set_title(r"correlation map at $q^*$, $\sigma_w^2$" + f" = {sigma_w2_map:g}, " + r"$\sigma_b^2$" + f" = {sigma_b2:g}")
    for ax in (ax_x, ax_m):
        ax.grid(alpha=0.25, which="both")
    fig.legend(*ax_x.get_legend_handles_labels(), loc="outside right center", fontsize=8)
    return save(fig, out)


# ---------------------------------------------------------------------------------------------
# Results figures.

def _mean_band(df: pd.DataFrame, x: str, y: str, by: Sequence[str]) -> pd.DataFrame:
    g = df.groupby(list(by) + [x], dropna=False)[y]
    return g.agg(["mean", "std", "count"]).reset_index()


def _lines_by_activation(ax, df: pd.DataFrame, x: str, y: str, *, band: bool = True, lw: float = 1.5,
                         legend_labels: bool = True, marker: str | None = None) -> None:
    df = df.assign(variant=variant_labels(df))
    variants = sorted(df["variant"].unique())
    stats = _mean_band(df, x, y, ["activation", "variant"])
    for a in activation_order(stats["activation"].unique()):
        for i, v in enumerate(variants):
            d = stats[(stats["activation"] == a) & (stats["variant"] == v)].sort_values(x)
            if d.empty:
                continue
            label = a if not v else f"{a} [{v}]"
            ls = linestyle_for(a) if len(variants) == 1 else _LINESTYLES[i % len(_LINESTYLES)]
            ax.plot(d[x], d["mean"], color=color_for(a), ls=ls, lw=lw,
                    marker=marker, ms=4, label=label if legend_labels else None)
            if band and (d["count"] > 1).any():
                s = d["std"].fillna(0)
                ax.fill_between(d[x], d["mean"] - s, d["mean"] + s, color=color_for(a), alpha=0.15, lw=0)


def _regression_lines(ax, epochs: pd.DataFrame, m: str) -> None:
    """Seed 002's straight line through the per-epoch loss: intercept and slope averaged over the seeds'
    least-squares fits (``convergence.linear_fit``), dashed, per activation (and variant)."""
    from empirical.analysis import convergence

    df = epochs.assign(variant=variant_labels(epochs))
    for (a, v), d in df.groupby(["activation", "variant"], sort=False):
        fits = [convergence.linear_fit(g["epoch"], pd.to_numeric(g[m], errors="coerce"))
                for _, g in d.groupby("seed")]
        fits = [f for f in fits if f is not None]
        if not fits:
            continue
        x = np.array([d["epoch"].min(), d["epoch"].max()], float)
        y = np.mean([f.intercept for f in fits]) + np.mean([f.slope for f in fits]) * x
        if (y > 0).all() or not (d[m].dropna() > 0).all():
            ax.plot(x, y, color=color_for(a), ls=":", lw=1.0, alpha=0.9)


def training_curves(epochs: pd.DataFrame, out: str | Path, *,
                    metrics: Sequence[str] = ("train_loss", "test_loss", "train_acc", "test_acc")
                    ) -> list[Path]:
    """Loss and accuracy against epoch: mean over seeds with a ±1 std band, one colour per activation.

    ``epochs``: columns activation, seed, epoch and the metrics (plus optional variant columns).
    """
    metrics = [m for m in metrics if m in epochs.columns]
    ncols = 2
    nrows = max(1, math.ceil(len(metrics) / ncols))
    fig, axes = _figure(ncols, nrows, w=4.8, h=3.3)
    flat = axes.ravel()
    if epochs["epoch"].nunique() <= 1:
        return []
    for i, (ax, m) in enumerate(zip(flat, metrics)):
        few = epochs["epoch"].nunique() <= 12
        _lines_by_activation(ax, epochs, "epoch", m, legend_labels=(i == 0), marker="o" if few else None)
        ax.set_title(m.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        lo, hi = epochs["epoch"].min(), epochs["epoch"].max()
        if hi - lo < 2:
            ax.set_xlim(lo - 1, hi + 1)
        if "loss" in m:
            _regression_lines(ax, epochs, m)
        if "loss" in m and (epochs[m].dropna() > 0).all():
            _log_axis(ax)
        ax.grid(alpha=0.25, which="both")
    for ax in flat[len(metrics):]:
        ax.set_visible(False)
    fig.legend(loc="outside right upper", fontsize=7)
    return save(fig, out)


def step_loss(steps: pd.DataFrame, out: str | Path, *, smooth: int | None = None) -> list[Path]:
    """Per-batch training loss against step: every seed's raw batch losses (thin, faint) so that a
    single-batch spike is visible, the mean over seeds (of a running mean of ``smooth`` batches, if
    given) on top, and each single-batch spike (``events.loss_spikes``) marked with a cross."""
    from empirical.analysis import events

    raw = steps.copy()
    df = steps.copy()
    keys = ["activation", "seed"] + [c for c in VARIANT_COLUMNS if c in df.columns]
    if smooth and smooth > 1:
        df = df.sort_values("step")
        df["loss"] = df.groupby(keys, dropna=False)["loss"].transform(
            lambda s: s.rolling(smooth, min_periods=1).mean())
    fig, axes = _figure(1, 1, w=7.5, h=3.6)
    ax = axes[0][0]
    spiked = 0
    for key, d in raw.sort_values("step").groupby(keys, dropna=False):
        a = key[0]
        ax.plot(d["step"], d["loss"], color=color_for(a), lw=0.4, alpha=0.25, zorder=1)
        for sp in events.loss_spikes(d["step"], d["loss"]):
            ax.plot(sp.step, sp.loss, "x", color=color_for(a), ms=7, mew=1.8, zorder=4)
            spiked += 1
    _lines_by_activation(ax, df, "step", "loss", band=False, lw=1.3)
    if (raw["loss"].dropna() > 0).all():
        _log_axis(ax)
    ax.set_xlabel("step (batch)")
    ax.set_ylabel("training loss")
    ax.set_title(f"thin: each seed's batch losses; thick: mean over seeds"
                 + (f" of a running mean of {smooth}" if smooth and smooth > 1 else "")
                 + f"; ×: spike ({spiked})", fontsize=8)
    ax.grid(alpha=0.25, which="both")
    fig.legend(loc="outside right upper", fontsize=7)
    return save(fig, out)


def bar_by_activation(runs: pd.DataFrame, columns: str | Sequence[str], out: str | Path, *,
                      ylabel: str = "", title: str = "", log: bool = False,
                      labels: Mapping[str, str] | None = None) -> list[Path]:
    """Bars of the seed mean of each column per activation (± std), every seed drawn as a dot.

    Several ``columns`` are drawn side by side (hatched differently); so are variants of a run.
    Runs with status "diverged" are counted and the count is written above the bar.
    """
    columns = [columns] if isinstance(columns, str) else list(columns)
    df = runs.assign(variant=variant_labels(runs))
    acts = activation_order(df["activation"].unique())
    variants = sorted(df["variant"].unique())
    series = [(c, v) for c in columns for v in variants]
    width = 0.8 / len(series)
    fig, axes = _figure(1, 1, w=max(5.0, 0.75 * len(acts) * max(1, len(series) ** 0.5) + 1.5), h=3.8)
    ax = axes[0][0]
    for j, (c, v) in enumerate(series):
        for i, a in enumerate(acts):
            d = df[(df["activation"] == a) & (df["variant"] == v)]
            if d.empty:
                continue
            vals = pd.to_numeric(d[c], errors="coerce")
            vals = vals[np.isfinite(vals)]
            if log:
                vals = vals[vals > 0]
            xpos = i - 0.4 + width * (j + 0.5)
            mean = vals.mean() if len(vals) else np.nan
            if log and len(vals):
                mean = float(np.exp(np.log(vals).mean()))  # geometric mean on a log axis
            err = vals.std() if len(vals) > 1 and not log else None
            ax.bar(xpos, mean if np.isfinite(mean) else 0, width=width * 0.92, color=color_for(a),
                   hatch=_HATCHES[j % len(_HATCHES)], edgecolor="white" if j == 0 else "0.25",
                   yerr=err, capsize=2, alpha=0.9)
            ax.scatter(np.full(len(vals), xpos), vals, s=8, color="k", zorder=3)
    ticks = []
    for a in acts:
        d = df[df["activation"] == a]
        n_div = int((d["status"] == "diverged").sum()) if "status" in d.columns else 0
        ticks.append(f"{a}\n({n_div}/{len(d)} diverged)" if n_div else a)
    ax.set_xticks(range(len(acts)), ticks, rotation=30, ha="right")
    if log:
        _log_axis(ax)
    ax.set_ylabel(ylabel or ", ".join(columns))
    if title:
        ax.set_title(title)
    if len(series) > 1:
        from matplotlib.patches import Patch
        handles = [Patch(facecolor="0.8", edgecolor="0.25", hatch=_HATCHES[j % len(_HATCHES)],
                         label=" ".join(s for s in ((labels or {}).get(c, c.replace("_", " ")),
                                                    f"[{v}]" if v else "") if s))
                   for j, (c, v) in enumerate(series)]
        fig.legend(handles=handles, fontsize=7, loc="outside right upper")
    ax.grid(alpha=0.25, axis="y", which="both")
    return save(fig, out)


def final_accuracy_bars(runs: pd.DataFrame, out: str | Path) -> list[Path]:
    """Final test accuracy per activation (mean ± std over seeds)."""
    return bar_by_activation(runs, "final_test_acc", out, ylabel="final test accuracy",
                             title="final test accuracy")


def time_per_epoch_bars(runs: pd.DataFrame, out: str | Path) -> list[Path]:
    """Seconds per epoch of each activation's model trained alone (whole step: ``solo_time_per_epoch_s``)
    and of the activation's own forward+backward; a study without solo times shows the batched group's
    time divided by its runs, labelled as that share."""
    whole = "solo_time_per_epoch_s" if "solo_time_per_epoch_s" in runs.columns and \
        pd.to_numeric(runs["solo_time_per_epoch_s"], errors="coerce").notna().any() else "time_per_epoch_s"
    cols = [c for c in (whole, "act_time_per_epoch_s") if c in runs.columns]
    return bar_by_activation(runs, cols, out, ylabel="seconds per epoch", title="time per epoch",
                             labels={"solo_time_per_epoch_s": "whole training step, model alone",
                                     "time_per_epoch_s": "batched group's time / runs (a share)",
                                     "act_time_per_epoch_s": "activation only (forward+backward)"})


def first_layer_grad_bars(runs: pd.DataFrame, out: str | Path) -> list[Path]:
    """First-layer mean |∂L/∂W₁| at initialisation and at the end (log scale, geometric mean)."""
    cols = [c for c in ("first_layer_grad_init", "first_layer_grad_final") if c in runs.columns]
    return bar_by_activation(runs, cols, out, ylabel="mean |∂L/∂W₁|", log=True,
                             title="first-layer gradient magnitude",
                             labels={"first_layer_grad_init": "at initialisation",
                                     "first_layer_grad_final": "at the end"})


def layer_heatmaps(layers: pd.DataFrame, out: str | Path, *, metric: str = "grad_norm_z") -> list[Path]:
    """Heatmap per activation: layer (rows) × step (columns), colour log-scaled ``metric``.

    Values are averaged over seeds; all panels share one colour scale.
    """
    df = layers[layers["metric"] == metric]
    df = df.assign(variant=variant_labels(df))
    keys = [(a, v) for a in activation_order(df["activation"].unique()) for v in sorted(df["variant"].unique())
            if not df[(df["activation"] == a) & (df["variant"] == v)].empty]
    ncols = min(3, max(1, len(keys)))
    nrows = max(1, math.ceil(len(keys) / ncols))
    fig, axes = _figure(ncols, nrows, w=3.4, h=2.6)
    pos = df["value"][df["value"] > 0]
    norm = LogNorm(vmin=float(pos.min()), vmax=float(pos.max())) if len(pos) else None
    im = None
    layer_order = _layer_order(df["layer"].unique())
    for ax, (a, v) in zip(axes.ravel(), keys):
        d = df[(df["activation"] == a) & (df["variant"] == v)]
        grid = d.pivot_table(index="layer", columns="step", values="value", aggfunc="mean")
        grid = grid.reindex([lay for lay in layer_order if lay in grid.index])
        arr = grid.to_numpy(dtype=float)
        arr = np.where(arr > 0, arr, np.nan)
        steps = grid.columns.to_numpy()
        im = ax.imshow(arr, aspect="auto", norm=norm, cmap="viridis", interpolation="nearest",
                       extent=(-0.5, len(steps) - 0.5, len(grid) - 0.5, -0.5))
        ticks = np.linspace(0, len(steps) - 1, min(5, len(steps))).round().astype(int)
        ax.set_xticks(ticks, [str(steps[t]) for t in ticks], fontsize=7)
        ax.set_yticks(range(len(grid)), [str(i) for i in grid.index], fontsize=7)
        ax.set_title(a if not v else f"{a} [{v}]", color=color_for(a), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
    for ax in axes.ravel()[len(keys):]:
        ax.set_visible(False)
    if im is not None:
        label = {"grad_norm_z": r"$\|\partial L/\partial z_l\|$", "grad_norm_h": r"$\|\partial L/\partial h_l\|$"}.get(metric, metric)
        fig.colorbar(im, ax=axes.ravel().tolist(), label=label, shrink=0.9)
    return save(fig, out)


def _layer_order(layers) -> list:
    """Layers in network order: numeric ids ascending, else by the trailing number in the name."""
    def key(v):
        m = re.findall(r"\d+", str(v))
        return (int(m[-1]) if m else 10**9, str(v))

    return sorted(layers, key=key)


def depth_profile(df: pd.DataFrame, out: str | Path, *, value: str = "value", source: str = "source",
                  layer: str = "layer", facet: str | None = None,
                  ylabel: str = r"$\log\,\|\partial L/\partial z_l\|^2$") -> list[Path]:
    """Measured against predicted per-layer values (e.g. log‖∂L/∂z_l‖²) against depth.

    ``df`` is long: one row per (activation, [facet], source, layer[, seed]); ``source`` says
    "measured" or "predicted" (any other value is drawn too, dash-dotted). Measured rows are
    averaged over seeds (band ±1 std) and drawn solid with dots; predicted rows dashed.
    One panel per value of ``facet`` (e.g. σ_w²) if given.
    """
    facets = [None] if facet is None else sorted(df[facet].unique())
    ncols = min(2, len(facets))
    nrows = math.ceil(len(facets) / ncols)
    fig, axes = _figure(ncols, nrows, w=4.8, h=3.6)
    styles = {"measured": dict(ls="-", marker="o", ms=3), "predicted": dict(ls="--", lw=2.0)}
    for ax, fv in zip(axes.ravel(), facets):
        d0 = df if fv is None else df[df[facet] == fv]
        for a in activation_order(d0["activation"].unique()):
            for src in sorted(d0[source].unique(), key=lambda s: (s != "measured", s)):
                d = d0[(d0["activation"] == a) & (d0[source] == src)]
                if d.empty:
                    continue
                st = d.groupby(layer)[value].agg(["mean", "std", "count"]).reset_index().sort_values(layer)
                ax.plot(st[layer], st["mean"], color=color_for(a), label=f"{a} ({src})",
                        **styles.get(src, dict(ls="-.")))
                if src == "measured" and (st["count"] > 1).any():
                    s = st["std"].fillna(0)
                    ax.fill_between(st[layer], st["mean"] - s, st["mean"] + s, color=color_for(a),
                                    alpha=0.15, lw=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer l (input side → output side)")
        ax.set_ylabel(ylabel)
        if fv is not None:
            ax.set_title(str(fv) if facet == "variant" else f"{facet} = {fv}")
        ax.grid(alpha=0.25)
    for ax in axes.ravel()[len(facets):]:
        ax.set_visible(False)
    handles: dict = {}
    for ax in axes.ravel()[:len(facets)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    order = sorted(handles, key=lambda lab: (activation_order(list({k.rsplit(" (", 1)[0] for k in handles})).index(
        lab.rsplit(" (", 1)[0]), lab))
    fig.legend([handles[k] for k in order], order, loc="outside right center", fontsize=7)
    return save(fig, out)


def measured_depth_profile(layers: pd.DataFrame, runs: pd.DataFrame | None = None, *,
                           metric: str = "grad_norm_z") -> pd.DataFrame:
    """log ‖∂L/∂z_l‖² per (run, layer) at each run's first probe (initialisation).

    Returns the long frame ``depth_profile`` reads (source = "measured"). Numeric layer ids are
    kept (hidden layers 1..depth only when ``runs`` gives each run's depth); named layers are
    numbered 0, 1, … in network order.
    """
    d = hidden_only(at_probe(layers, metric), runs)
    if not pd.api.types.is_numeric_dtype(d["layer"]):
        order = {lay: i for i, lay in enumerate(_layer_order(d["layer"].unique()))}
        d = d.assign(layer=d["layer"].map(order))
    vals = pd.to_numeric(d["value"], errors="coerce")
    keep = [c for c in ("run_id", "activation", "seed", *VARIANT_COLUMNS) if c in d.columns]
    out = d[keep].copy()
    out["layer"] = d["layer"]
    out["value"] = np.log(np.where(vals > 0, vals, np.nan) ** 2)
    out["source"] = "measured"
    return out.reset_index(drop=True)


def predicted_depth_profile(runs: pd.DataFrame, layers: pd.DataFrame, *,
                            metric: str = "grad_norm_z") -> pd.DataFrame:
    """The mean-field prediction of log ‖∂L/∂z_l‖² at initialisation for every MLP run.

    G_l = Σ_{k=l}^{L−1} log χ₁(q_k) from ``theory_bridge.RunTheory`` (the same profile the claims test:
    q_1 = σ_w² mean(x²) + σ_b² with the measured input moment), anchored at the measured value of the
    last hidden layer: predicted_l = measured_L + G_l. Rows: run_id, activation, seed, variant columns,
    layer, value, source = "predicted". Runs that are not MLPs or lack the numbers are skipped.
    """
    meas = measured_depth_profile(layers, runs, metric=metric)
    rows = []
    for rid, t in theories(runs, layers).items():
        m = meas[meas["run_id"] == rid].set_index("layer")["value"]
        if t.depth not in m.index:
            continue
        r = runs[runs["run_id"] == rid].iloc[0]
        base = {k: r[k] for k in ("run_id", "activation", "seed", *VARIANT_COLUMNS) if k in runs.columns}
        for layer in range(1, t.depth + 1):
            rows.append({**base, "layer": layer, "value": float(m[t.depth] + t.log_grad[layer - 1]),
                         "source": "predicted"})
    return pd.DataFrame(rows)


def predicted_vs_measured(pred: pd.DataFrame, out: str | Path) -> list[Path]:
    """Predicted against measured value of each point prediction (kind ``prediction``; one panel per
    claim), with y = x and the band p ± tol. Bounds, orderings, hypotheses and sanity checks are not
    points on a y = x line and are left out.

    Marker: filled circle = held, cross = failed, open square = inconclusive; "not applicable" rows and
    rows without numbers are skipped. Error bars: the 95 % interval [lo, hi] of the seed mean where
    given. Axes are log-scaled when all values are positive.
    """
    df = pred.copy()
    if "kind" in df.columns:
        df = df[df["kind"] == "prediction"]
    for c in ("predicted", "measured", "lo", "hi", "tolerance"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    df = df[np.isfinite(df["predicted"]) & np.isfinite(df["measured"])]
    if "verdict" in df.columns:
        df = df[df["verdict"] != "not applicable"]
    claims = sorted(df["claim"].unique()) if len(df) else ["(no numeric predictions)"]
    ncols = min(3, len(claims))
    nrows = math.ceil(len(claims) / ncols)
    fig, axes = _figure(ncols, nrows, w=3.8, h=3.6)
    markers = {"held": "o", "failed": "X", "inconclusive": "s"}
    for ax, claim in zip(axes.ravel(), claims):
        d = df[df["claim"] == claim]
        for _, r in d.iterrows():
            col = color_for(r["activation"])
            m = markers.get(str(r.get("verdict", "")), "s")
            lo, hi = r.get("lo", np.nan), r.get("hi", np.nan)
            err = ([[r["measured"] - lo], [hi - r["measured"]]]
                   if np.isfinite(lo) and np.isfinite(hi) and lo <= r["measured"] <= hi else None)
            ax.errorbar(r["predicted"], r["measured"], yerr=err,
                        fmt=m, color=col, mfc=col if m == "o" else "none", ms=6, mew=1.5, capsize=2)
        if len(d):
            lo = float(np.nanmin(d[["predicted", "measured"]].to_numpy()))
            hi = float(np.nanmax(d[["predicted", "measured"]].to_numpy()))
            positive = lo > 0
            if positive:
                lo, hi = lo / 1.5, hi * 1.5
                ax.set_xlim(lo, hi)
                ax.set_ylim(lo, hi)
                _log_axis(ax, "x")
                _log_axis(ax, "y")
            else:
                pad = 0.1 * (hi - lo or 1.0)
                lo, hi = lo - pad, hi + pad
            ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", zorder=0)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_title(str(claim), fontsize=9)
        ax.set_xlabel("predicted")
        ax.set_ylabel("measured")
        ax.grid(alpha=0.25, which="both")
    for ax in axes.ravel()[len(claims):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=color_for(a), marker="o", ls="", label=a)
               for a in activation_order(df["activation"].unique())] if len(df) else []
    handles += [Line2D([], [], color="k", marker="o", ls="", label="held"),
                Line2D([], [], color="k", marker="X", mfc="none", ls="", label="failed"),
                Line2D([], [], color="k", marker="s", mfc="none", ls="", label="inconclusive")]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7)
    return save(fig, out)


def sample_images(images, labels, out: str | Path, *, class_names: Sequence[str] | None = None,
                  n: int = 32, ncols: int = 8) -> list[Path]:
    """A grid of the first ``n`` images with their labels.

    ``images``: array-like (N, H, W), (N, 1|3, H, W) or (N, H, W, 1|3), any float/int range
    (each image is min-max scaled for display); ``labels``: N integers (or strings).
    """
    arr = np.asarray(getattr(images, "numpy", lambda: images)() if hasattr(images, "detach") else images,
                     dtype=float)
    labels = list(np.asarray(getattr(labels, "numpy", lambda: labels)() if hasattr(labels, "detach") else labels))
    if arr.ndim == 2:  # flattened square images
        side = int(round(math.sqrt(arr.shape[1])))
        arr = arr.reshape(len(arr), side, side)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    n = min(n, len(arr))
    ncols = min(ncols, n)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = _figure(ncols, nrows, w=1.2, h=1.35)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        img = arr[i]
        lo, hi = np.nanmin(img), np.nanmax(img)
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
        lab = labels[i]
        if class_names is not None and isinstance(lab, (int, np.integer)) and 0 <= lab < len(class_names):
            lab = class_names[lab]
        ax.set_title(str(lab), fontsize=8)
    return save(fig, out)


# ---------------------------------------------------------------------------------------------
# Curvature: sharpness against the stability threshold, plateaus; per-layer fractions.

def _legend_outside(fig, axes, fontsize: float) -> None:
    """One legend for all panels, right of them (never over the data); each label once."""
    handles: dict = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=fontsize)


def sharpness_curves(sf: pd.DataFrame, out: str | Path) -> list[Path]:
    """Sharpness against step (mean over seeds, band min–max) with the optimiser's stability threshold.

    ``sf``: ``claims.curvature.sharpness_frame`` (activation, seed, step, sharpness, threshold, kind, lr).
    """
    kinds = list(dict.fromkeys(sf["kind"]))
    fig, axes = _figure(len(kinds), 1, w=5.6, h=3.6)
    for ax, kind in zip(axes[0], kinds):
        d0 = sf[sf["kind"] == kind]
        for a in activation_order(d0["activation"].unique()):
            st = d0[d0["activation"] == a].groupby("step")["sharpness"].agg(["mean", "min", "max"]).reset_index()
            ax.plot(st["step"], st["mean"], color=color_for(a), ls=linestyle_for(a), lw=1.5, marker="o", ms=2.5,
                    label=a)
            ax.fill_between(st["step"], st["min"], st["max"], color=color_for(a), alpha=0.12, lw=0)
        tau, lr = float(d0["threshold"].iloc[0]), float(d0["lr"].iloc[0])
        adam = kind == "preconditioned_sharpness"
        ax.axhline(tau, color="black", lw=1.2, ls=":", label=(f"38/η = {tau:g}" if adam else f"2/η = {tau:g}"))
        if (d0["sharpness"].dropna() > 0).all():
            _log_axis(ax)
        ax.set_xlabel("step (full-batch updates)")
        ax.set_ylabel(r"$\lambda_{\max}(P^{-1}H)$, Adam-preconditioned (log scale)" if adam
                      else r"$\lambda_{\max}(H)$ (log scale)")
        ax.set_title(f"{'Adam' if adam else 'gradient descent'}, η = {lr:g}")
        ax.grid(alpha=0.25, which="both")
    _legend_outside(fig, axes[0], 7)
    return save(fig, out)


def plateau_runs(steps: pd.DataFrame, pf: pd.DataFrame, table: pd.DataFrame, out: str | Path) -> list[Path]:
    """Top: loss against step of the runs with a plateau, plateau spans shaded (log loss axis).
    Bottom: steps on plateaus against the first-layer gradient norm at init, one dot per run."""
    fig, axes = _figure(1, 2, w=7.0, h=3.0)
    ax = axes[0][0]
    for rid in table["run_id"].unique():
        r = pf[pf["run_id"] == rid].iloc[0]
        d = steps[steps["run_id"] == rid].sort_values("step")
        ax.plot(d["step"], d["loss"], color=color_for(r["activation"]), ls=linestyle_for(r["activation"]), lw=1,
                label=r["activation"])
        for _, p in table[table["run_id"] == rid].iterrows():
            ax.axvspan(p["start_step"], p["end_step"], color=color_for(r["activation"]), alpha=0.08, lw=0)
    if (steps["loss"].dropna() > 0).all():
        _log_axis(ax)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title("runs with a plateau (shaded: detected plateau)")
    ax.grid(alpha=0.25, which="both")
    ax = axes[1][0]
    for a in activation_order(pf["activation"].unique()):
        d = pf[pf["activation"] == a]
        ax.scatter(d["grad_w1_init"], d["plateau_steps"], color=color_for(a), s=18,
                   marker="s" if linestyle_for(a) == "--" else "o", label=a)
    if (pf["grad_w1_init"].dropna() > 0).all():
        ax.set_xscale("log")
    ax.set_xlabel("‖∂L/∂W₁‖ at initialisation (log scale)")
    ax.set_ylabel("steps on plateaus")
    ax.grid(alpha=0.25, which="both")
    _legend_outside(fig, axes.ravel(), 7)
    return save(fig, out)


def layer_fractions(layers: pd.DataFrame, runs: pd.DataFrame | None, out: str | Path, *,
                    predicted: pd.DataFrame | None = None) -> list[Path]:
    """Saturated and dead fraction per hidden layer at the first probe (init, solid) and the last (end,
    dashed), mean over seeds, one panel per metric and variant; the mean-field prediction at init dotted
    (``predicted``: activation, layer, value, optional variant)."""
    metrics = [m for m in ("saturated_frac", "dead_frac") if (layers["metric"] == m).any()]
    if not metrics:
        return []
    lay = with_variants(layers[layers["metric"].isin(metrics)], runs)
    lay = lay.assign(variant=variant_labels(lay))
    variants = sorted(lay["variant"].unique())
    fig, axes = _figure(len(metrics), len(variants), w=4.6, h=3.0)
    first = lay.groupby("run_id")["step"].transform("min")
    last = lay.groupby("run_id")["step"].transform("max")
    for i, v in enumerate(variants):
        for j, m in enumerate(metrics):
            ax = axes[i][j]
            d0 = lay[(lay["variant"] == v) & (lay["metric"] == m)]
            for a in activation_order(d0["activation"].unique()):
                for when, mask, ls in (("init", first, "-"), ("end", last, "--")):
                    d = d0[(d0["activation"] == a) & (d0["step"] == mask.loc[d0.index])]
                    st = d.groupby("layer")["value"].mean().reset_index()
                    ax.plot(st["layer"], st["value"], color=color_for(a), ls=ls, lw=1.4, marker="o", ms=2.5,
                            label=f"{a} ({when})")
                if predicted is not None and m == "saturated_frac":
                    p = predicted[(predicted["activation"] == a)
                                  & ((predicted["variant"] == v) if "variant" in predicted else True)]
                    if len(p):
                        ax.plot(p["layer"], p["value"], color=color_for(a), ls=":", lw=2.0,
                                label=f"{a} (predicted, init)")
            ax.set_xlabel("hidden layer l")
            ax.set_ylabel({"saturated_frac": "saturated fraction", "dead_frac": "dead fraction"}[m])
            ax.set_ylim(-0.02, 1.02)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if v:
                ax.set_title(str(v), fontsize=9)
            ax.grid(alpha=0.25)
    _legend_outside(fig, axes.ravel(), 6)
    return save(fig, out)


def layer_distributions(layers: pd.DataFrame, runs: pd.DataFrame | None, out: str | Path, *,
                        kind: str = "act") -> list[Path]:
    """Per-layer distribution at initialisation (the activation's colour) and at the end of training (grey):
    the median (line, end dashed), the 25–75 % band (darker) and the 5–95 % band (lighter), each quantile the
    mean over seeds; one panel per activation (columns) and variant (rows). ``kind``: ``act`` for the entries
    of h_l (hidden layers), ``wgrad`` for |∂L/∂W_l| (every layer, log scale)."""
    names = [f"{kind}_q{n}" for n in ("05", "25", "50", "75", "95")]
    lay = layers[layers["metric"].isin(names)]
    if lay.empty:
        return []
    lay = with_variants(lay, runs)
    lay = lay.assign(variant=variant_labels(lay))
    first = lay.groupby("run_id")["step"].transform("min")
    last = lay.groupby("run_id")["step"].transform("max")
    lay = lay.assign(when=np.where(lay["step"] == first, "init", np.where(lay["step"] == last, "end", "")))
    wide = (lay[lay["when"] != ""].groupby(["variant", "activation", "when", "layer", "metric"])["value"]
            .mean().unstack("metric"))
    variants = sorted(lay["variant"].unique())
    acts = activation_order(lay["activation"].unique())
    fig, axes = _figure(len(acts), len(variants), w=2.6, h=2.3, sharey="row" if kind == "act" else False)
    log = kind == "wgrad"
    for i, v in enumerate(variants):
        for j, a in enumerate(acts):
            ax = axes[i][j]
            for when, color, ls in (("init", color_for(a), "-"), ("end", "#555555", "--")):
                try:
                    d = wide.loc[(v, a, when)].sort_index()
                except KeyError:
                    continue
                if log:
                    d = d.where(d > 0)
                ax.fill_between(d.index, d[names[0]], d[names[4]], color=color, alpha=0.15, lw=0)
                ax.fill_between(d.index, d[names[1]], d[names[3]], color=color, alpha=0.35, lw=0)
                ax.plot(d.index, d[names[2]], color=color, ls=ls, lw=1.4, marker="o", ms=2,
                        label=("initialisation (the activation's colour)" if when == "init" else "end of training")
                        + ": median, 25–75 %, 5–95 %")
            ax.set_title(f"{a}" + (f" · {v}" if v else ""), fontsize=8)
            if not ax.has_data():
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            if log:
                _log_axis(ax)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.25)
            if i == len(variants) - 1:
                ax.set_xlabel("hidden layer l" if kind == "act" else "layer l (last: output)", fontsize=8)
            if j == 0:
                ax.set_ylabel(r"entries of $h_l$" if kind == "act" else r"entries of $|\partial L/\partial W_l|$ (log)",
                              fontsize=8)
    _legend_outside(fig, axes.ravel(), 7)
    return save(fig, out)


# ---------------------------------------------------------------------------------------------
# All figures of one study folder.

# Stem → (title, caption), in the order the report shows them.
FIGURES: dict[str, tuple[str, str]] = {
    "samples": ("Sample images", "Sample training images with their labels."),
    "training_curves": ("Loss and accuracy per epoch",
                        "Train/test loss and accuracy per epoch: mean over seeds, band ±1 std; dotted: the "
                        "least-squares line through each seed's per-epoch loss, averaged over seeds (seed 002's "
                        "regression lines; their slopes and intervals are in the flatness claims)."),
    "step_loss": ("Loss per batch",
                  "Every seed's raw per-batch training loss (thin), the mean over seeds of a running mean over "
                  "10 batches (thick), and single-batch spikes (×: batch loss > 3 × the median of the previous "
                  "20 and ≥ 0.1 nats above it)."),
    "final_accuracy": ("Final test accuracy", "Final test accuracy per activation; dots are seeds."),
    "time_per_epoch": ("Time per epoch",
                       "Seconds per epoch of each activation's model trained alone (whole training step: "
                       "forward, backward, optimiser; the smallest of interleaved rounds' medians) and of the "
                       "activation's own forward+backward at the model's hidden shapes. On a CPU, SELU and ELU "
                       "cost more than ReLU-like maps because they evaluate exp (and a select) per element in "
                       "forward and backward, where ReLU is a comparison; GELU evaluates erf. On a busy machine "
                       "these numbers are noisy."),
    "first_layer_grad": ("First-layer gradient",
                         "First-layer gradient magnitude, mean |∂L/∂W₁|, at initialisation and at the end "
                         "(log scale, geometric mean over seeds)."),
    "layer_heatmap": ("Gradient norm per layer during training",
                      r"$\lVert\partial L/\partial z_l\rVert$ per layer (rows) and probe step (columns), "
                      "log colour scale, mean over seeds."),
    "depth_profile": ("Gradient against depth at initialisation",
                      r"$\log\lVert\partial L/\partial z_l\rVert^2$ against hidden layer at the first probe "
                      "(initialisation): measured "
                      "(solid, band ±1 std over seeds) and, for MLPs, the mean-field prediction (dashed): "
                      r"$q_l$ iterated from $q_1 = \sigma_w^2\,\overline{x^2} + \sigma_b^2$ (measured input), "
                      r"$G_l = \sum_{k \ge l} \log \chi_1(q_k)$, "
                      "anchored at the last hidden layer. A measured line that stops: the gradient underflowed to 0 in float32."),
    "layer_fractions": ("Saturated and dead units per layer",
                        r"Per hidden layer: fraction of (unit, input) entries with $|\varphi'(z)| < \varepsilon$ (saturated) and "
                        "fraction of units that are 0 on every probe input (dead), at initialisation (solid) and "
                        "at the end of training (dashed), mean over seeds; dotted: the mean-field prediction "
                        r"at initialisation, $P(|\varphi'(\sqrt{q_l}\,u)| < \varepsilon)$ at the measured $q_l$."),
    "layer_activations": ("Activation distribution per layer",
                          r"Quantiles of the entries of $h_l = \varphi(z_l)$ on the probe batch, per hidden layer, at "
                          "initialisation (colour, solid median) and at the end of training (grey, dashed median): "
                          "the line is the median, the darker band 25–75 %, the lighter band 5–95 %; each quantile "
                          "is the mean over seeds. A band that collapses onto a bound (±1 for tanh, 0 and 1 for "
                          "sigmoid) is saturation; a median at 0 with a 75 % quantile at 0 means at least 3 in 4 "
                          "entries are exactly zero (ReLU's dead side)."),
    "layer_weight_grads": ("Weight-gradient distribution per layer",
                           r"Quantiles of the entries $|\partial L/\partial W_l|$ per layer (the last is the output "
                           "layer), log scale, at initialisation (colour) and at the end (grey), as in the figure "
                           "above. Vanishing gradients show as bands that fall layer by layer towards the input."),
    "sharpness": ("Sharpness against the edge of stability",
                  "Top eigenvalue of the training-loss Hessian (preconditioned by Adam's P for Adam) "
                  "against step, mean over seeds with the min–max band (log scale); dotted: the "
                  "optimiser's stability threshold."),
    "plateaus": ("Plateaus of the loss",
                 "Top: training loss (log scale) of the runs in which a plateau was detected, plateaus "
                 "shaded. Bottom: steps spent on plateaus against the first-layer gradient norm at "
                 "initialisation (log scale), one dot per run."),
    "predicted_vs_measured": ("Predicted against measured",
                              "Predicted against measured value for every claim; y = x dashed."),
}


def make_all(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Draw every figure that the files in ``results_dir`` allow into ``out_dir``.

    ``results_dir`` is one study folder (holding ``runs.csv`` …); a results root (a folder of
    study folders) is also accepted: figures go to ``out_dir/<study>/``, and a ``predictions.csv``
    in the root itself (``python -m empirical.predict`` writes one for all studies) is drawn as
    ``out_dir/predicted_vs_measured``. Returns the written paths (PNG and SVG).
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)

    def is_study(p: Path) -> bool:
        return any((p / f).is_file() for f in ("runs.csv", "epochs.csv", "study.json"))

    subs = sorted(p for p in results_dir.iterdir() if p.is_dir() and (is_study(p) or (p / "predictions.csv").is_file())) \
        if results_dir.is_dir() and not is_study(results_dir) else []
    if subs or not (is_study(results_dir) or (results_dir / "predictions.csv").is_file()):
        paths: list[Path] = []
        for sub in subs:
            paths += make_all(sub, out_dir / sub.name)
        root_pred = read_csv(results_dir / "predictions.csv")
        if root_pred is not None and len(root_pred):
            paths += predicted_vs_measured(root_pred, out_dir / "predicted_vs_measured")
        return paths
    runs = read_csv(results_dir / "runs.csv")
    epochs = read_csv(results_dir / "epochs.csv")
    steps = read_csv(results_dir / "steps.csv")
    layers = read_csv(results_dir / "layers.csv")
    pred = read_csv(results_dir / "predictions.csv")
    profile = read_csv(results_dir / "profile.csv")
    out: list[Path] = []
    samples = results_dir / "samples.npz"
    if samples.is_file():
        z = np.load(samples, allow_pickle=False)
        names = list(z["class_names"]) if "class_names" in z.files else None
        out += sample_images(z["images"], z["labels"], out_dir / "samples", class_names=names)
    if (results_dir / "trainability_cells.csv").is_file():
        # hundreds of (σ_w², depth) variants: the per-variant figures would be unreadable; the grid's own figures
        from empirical.analysis.trainability_figures import draw
        return out + draw(results_dir, out_dir)
    if epochs is not None and len(epochs):
        out += training_curves(with_variants(epochs, runs), out_dir / "training_curves")
    if steps is not None and len(steps):
        out += step_loss(with_variants(steps, runs), out_dir / "step_loss", smooth=10)
    if runs is not None and len(runs):
        if "final_test_acc" in runs.columns:
            out += final_accuracy_bars(runs, out_dir / "final_accuracy")
        if "time_per_epoch_s" in runs.columns:
            out += time_per_epoch_bars(runs, out_dir / "time_per_epoch")
        if "first_layer_grad_init" in runs.columns:
            out += first_layer_grad_bars(runs, out_dir / "first_layer_grad")
    if layers is not None and len(layers) and (layers["metric"] == "grad_norm_z").any():
        layers_v = with_variants(layers, runs)
        out += layer_heatmaps(layers_v, out_dir / "layer_heatmap", metric="grad_norm_z")
        if profile is not None and len(profile):
            prof = profile
        else:
            prof = measured_depth_profile(layers_v, runs)
            if runs is not None and {"sigma_w2", "sigma_b2", "depth"} <= set(runs.columns) \
                    and (layers["metric"] == "preact_q").any():
                prof = pd.concat([prof, predicted_depth_profile(runs, layers)], ignore_index=True)
        facet = "variant" if "variant" in prof.columns and prof["variant"].nunique() > 1 else None
        if facet is None:
            varied = variant_labels(prof)
            if varied.nunique() > 1:
                prof, facet = prof.assign(variant=varied), "variant"
        out += depth_profile(prof, out_dir / "depth_profile", facet=facet)
    if layers is not None and len(layers) and runs is not None and len(runs):
        out += _curvature_figures(results_dir, runs, layers, steps, out_dir)
    if pred is not None and len(pred):
        out += predicted_vs_measured(pred, out_dir / "predicted_vs_measured")
    return out


def _curvature_figures(folder: Path, runs, layers, steps, out_dir: Path) -> list[Path]:
    from empirical.analysis.claims.curvature import plateau_frame, sharpness_frame
    from empirical.analysis.plateaus import plateau_table
    from empirical.analysis.results_schema import load_study
    from empirical.analysis.theory_bridge import predicted_saturation

    from empirical.analysis.results_schema import ResultsError

    out: list[Path] = []
    try:
        study = load_study(str(folder))
    except ResultsError:
        return (layer_fractions(layers, runs, out_dir / "layer_fractions")
                + layer_distributions(layers, runs, out_dir / "layer_activations", kind="act")
                + layer_distributions(layers, runs, out_dir / "layer_weight_grads", kind="wgrad"))
    out += layer_fractions(layers, runs, out_dir / "layer_fractions", predicted=predicted_saturation(study))
    out += layer_distributions(layers, runs, out_dir / "layer_activations", kind="act")
    out += layer_distributions(layers, runs, out_dir / "layer_weight_grads", kind="wgrad")
    sf = sharpness_frame(study)
    if len(sf):
        out += sharpness_curves(sf, out_dir / "sharpness")
    if steps is not None and len(steps):
        table = pd.DataFrame(plateau_table(steps[["run_id", "step", "loss"]]))
        if len(table):
            out += plateau_runs(steps, plateau_frame(study), table, out_dir / "plateaus")
    return out
