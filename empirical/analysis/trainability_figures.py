"""Figures of the trainability study: accuracy over (σ_w², depth) with ξ_c and k·ξ_c, and the measured c_l, q_l
profiles at initialisation against the mean-field maps. Pure functions: frames in, ``out.png``/``out.svg`` out."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from empirical.analysis.figures import _figure, color_for, save


def _edges(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    mid = (v[1:] + v[:-1]) / 2
    first = v[0] - (mid[0] - v[0]) if len(v) > 1 else v[0] - 0.5
    last = v[-1] + (v[-1] - mid[-1]) if len(v) > 1 else v[-1] + 0.5
    return np.concatenate([[max(first, 0.0)], mid, [last]])


def accuracy_heatmaps(cells: pd.DataFrame, k: Mapping[str, float], critical: Mapping[str, tuple[float, str]],
                      out: str | Path, *, dataset: str = "MNIST-1D", chance: float = 0.1,
                      threshold: float | None = None) -> list[Path]:
    """One panel per activation: mean test accuracy over seeds per (σ_w², depth); ξ_c (dashed) and k·ξ_c (solid)
    over σ_w²; the critical σ_w² as a vertical dotted line; untrained cells (below ``threshold``) hatched."""
    acts = list(dict.fromkeys(cells["activation"]))
    ncols = min(len(acts), 2)
    nrows = math.ceil(len(acts) / ncols)
    fig, axes = _figure(ncols, nrows, w=4.4, h=3.5)
    mesh = None
    for i, act in enumerate(acts):
        ax = axes[i // ncols][i % ncols]
        g = cells[cells["activation"] == act]
        ws = np.sort(g["sigma_w2"].unique())
        ds = np.sort(g["depth"].unique())
        grid = g.pivot_table(index="depth", columns="sigma_w2", values="acc_mean").reindex(index=ds, columns=ws)
        mesh = ax.pcolormesh(_edges(ws), _edges(ds), grid.to_numpy(), cmap="viridis", vmin=chance,
                             vmax=max(float(cells["acc_mean"].max()), chance + 0.05), shading="flat")
        if threshold is not None:
            tr = g.pivot_table(index="depth", columns="sigma_w2", values="trained").reindex(index=ds, columns=ws)
            ax.contour(ws, ds, tr.to_numpy(dtype=float), levels=[0.5], colors="white", linewidths=0.8)
        xi = g.groupby("sigma_w2")["xi_c"].first().reindex(ws).to_numpy(float)
        fine = np.isfinite(xi)
        ax.plot(ws[fine], xi[fine], "w--", lw=1.2, label=r"$\xi_c$")
        kk = k.get(act, math.nan)
        if np.isfinite(kk):
            ax.plot(ws[fine], kk * xi[fine], "-", color="#ff4f4f", lw=1.6, label=f"{kk:.2g}" + r"$\cdot\xi_c$")
        crit, kind = critical.get(act, (math.nan, "none"))
        if np.isfinite(crit):
            ax.axvline(crit, color="white", ls=":", lw=1.4, label=r"critical $\sigma_w^2$" + f" = {crit:.3g}"
                       + (" (q*→∞)" if kind == "q-infinity-limit" else ""))
        ax.set_ylim(_edges(ds)[0], _edges(ds)[-1])
        ax.set_xlim(_edges(ws)[0], _edges(ws)[-1])
        ax.set_title(act, color=color_for(act))
        ax.set_xlabel(r"$\sigma_w^2$")
        ax.set_ylabel("depth L (hidden layers)")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.5)
    for j in range(len(acts), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    if mesh is not None:
        fig.colorbar(mesh, ax=axes, shrink=0.8, label=f"test accuracy ({dataset}, mean over seeds)")
    return save(fig, out)


def correlation_profiles(summary: pd.DataFrame, out: str | Path, *, sigma_w2s: Mapping[str, list[float]] | None = None,
                         quantity: str = "c") -> list[Path]:
    """Per activation: measured ``quantity`` (c or q) per layer (points, ± 2 SE) and the map's prediction (lines),
    for a few σ_w² (default: smallest, middle, largest) and every c₀ (c) or the first c₀ (q)."""
    acts = list(dict.fromkeys(summary["activation"]))
    ncols = min(len(acts), 4)
    nrows = math.ceil(len(acts) / ncols)
    fig, axes = _figure(ncols, nrows, w=3.4, h=3.0)
    for i, act in enumerate(acts):
        ax = axes[i // ncols][i % ncols]
        g = summary[summary["activation"] == act]
        ws = np.sort(g["sigma_w2"].unique())
        pick = (sigma_w2s or {}).get(act) or sorted({ws[0], ws[len(ws) // 2], ws[-1]})
        c0s = sorted(g["c0"].unique()) if quantity == "c" else [sorted(g["c0"].unique())[0]]
        for j, w in enumerate(pick):
            colour = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b"][j % 5]
            for c0 in c0s:
                h = g[(g["sigma_w2"] == w) & (g["c0"] == c0)].sort_values("layer")
                if len(h) == 0:
                    continue
                ax.plot(h["layer"], h[f"{quantity}_pred"], "-", color=colour, lw=1.2,
                        label=r"$\sigma_w^2$" + f" = {w:g}" if c0 == c0s[0] else None)
                ax.errorbar(h["layer"], h[quantity], yerr=2 * h[f"{quantity}_se"].fillna(0), fmt="o", ms=2.2,
                            color=colour, elinewidth=0.6, alpha=0.8)
        if quantity == "q":
            ax.set_yscale("log")
        ax.set_title(act, color=color_for(act))
        ax.set_xlabel("layer l")
        ax.set_ylabel(r"$c_l$" if quantity == "c" else r"$q_l$")
        ax.legend(fontsize=7)
    for j in range(len(acts), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    return save(fig, out)


DATASET_NAMES = {"mnist1d": "MNIST-1D", "digits": "digits (8×8)", "mnist": "MNIST", "fashion-mnist": "FashionMNIST",
                 "cifar10": "CIFAR-10"}
STEMS = ("trainability_heatmaps", "correlation_c", "correlation_q")


def dataset_name(runs: pd.DataFrame | None) -> str:
    if runs is None or "dataset" not in runs.columns or not len(runs):
        return "?"
    return ", ".join(DATASET_NAMES.get(str(d), str(d)) for d in runs["dataset"].unique())


def draw(study_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The trainability figures of a study folder from the tables ``python -m empirical.predict`` wrote there
    (``trainability_cells.csv``, ``correlation_profiles.csv``): ``STEMS`` in ``out_dir``."""
    from empirical.analysis.claims.trainability import TRAINED_MARGIN
    from empirical.analysis.results_schema import read_csv

    study_dir, out_dir = Path(study_dir), Path(out_dir)
    cells = read_csv(study_dir / "trainability_cells.csv")
    runs = read_csv(study_dir / "runs.csv")
    out: list[Path] = []
    if cells is not None and len(cells):
        k = cells.groupby("activation")["k"].first().to_dict() if "k" in cells.columns else {}
        crit = {a: (float(g["critical_sigma_w2"].iloc[0]), str(g["critical_kind"].iloc[0]))
                for a, g in cells.groupby("activation")} if "critical_sigma_w2" in cells.columns else {}
        out += accuracy_heatmaps(cells, k, crit, out_dir / "trainability_heatmaps", dataset=dataset_name(runs),
                                 chance=0.1, threshold=0.1 + TRAINED_MARGIN)
    prof = read_csv(study_dir / "correlation_profiles.csv")
    if prof is not None and len(prof):
        out += correlation_profiles(prof, out_dir / "correlation_c", quantity="c")
        out += correlation_profiles(prof, out_dir / "correlation_q", quantity="q")
    return out
