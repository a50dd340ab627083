"""The seeds' summary table: model | accuracy ± CI | time per epoch | first-layer gradient at init and end | verdicts.

One row per (setting, activation) of a study: final test accuracy as the mean over seeds with its 95 %
t-interval half-width; time per epoch of that activation's model trained alone (``solo_time_per_epoch_s``,
see ``empirical.timing``; where a study predates it, the batched group's share, marked "share"); the mean
|∂L/∂W₁| at the first and last probe; and the verdicts of the claims that name the activation (sanity
checks left out), as held / failed / inconclusive / not applicable.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from empirical.analysis import stats as S
from empirical.analysis.results_schema import activation_order, setting_label
from empirical.analysis.verdicts import FAILED, HELD, INCONCLUSIVE, NOT_APPLICABLE

__all__ = ["summary_rows", "format_text", "format_markdown", "HEAD"]

HEAD = ["model", "activation", "runs", "test acc ± 95 % CI", "s / epoch (alone)", "|∂L/∂W₁| init → end",
        "verdicts h/f/i/na"]


def _mean_ci(x) -> tuple[float, float]:
    v = pd.to_numeric(pd.Series(list(x)), errors="coerce").dropna().to_numpy(float)
    if len(v) == 0:
        return math.nan, math.nan
    lo, hi = S.mean_ci(v)
    return float(v.mean()), (hi - lo) / 2 if np.isfinite(lo) else math.nan


def _names(label: str) -> set[str]:
    return {p.strip() for p in str(label).replace(" vs ", ",").split(",")}


def _label(r) -> str:
    try:
        return setting_label(r)
    except (KeyError, ValueError, TypeError):
        return str(r.get("model", ""))


def summary_rows(runs: pd.DataFrame, claims: Iterable | None = None) -> list[dict]:
    """One dict per (setting, activation) in the order of the runs table (see the module docstring)."""
    claims = pd.DataFrame([c.row() if hasattr(c, "row") else c for c in (claims or [])])
    runs = runs.copy()
    runs["_setting"] = [_label(r) for _, r in runs.iterrows()]
    by_setting = {}
    if len(claims):
        real = claims[claims["kind"] != "sanity"]
        real = real.assign(_names=real["activation"].map(_names))
        by_setting = dict(tuple(real.groupby("setting", sort=False)))
    out = []
    for setting in dict.fromkeys(runs["_setting"]):
        g = runs[runs["_setting"] == setting]
        for act in activation_order(g["activation"].unique()):
            d = g[g["activation"] == act]
            fin = d[d["status"] != "diverged"] if "status" in d else d
            acc, half = _mean_ci(fin.get("final_test_acc", []))
            solo = pd.to_numeric(d.get("solo_time_per_epoch_s", pd.Series(dtype=float)), errors="coerce").dropna()
            share = pd.to_numeric(d.get("time_per_epoch_s", pd.Series(dtype=float)), errors="coerce").dropna()
            g0 = pd.to_numeric(d.get("first_layer_grad_init", pd.Series(dtype=float)), errors="coerce").dropna()
            g1 = pd.to_numeric(fin.get("first_layer_grad_final", pd.Series(dtype=float)), errors="coerce").dropna()
            tally = {v: 0 for v in (HELD, FAILED, INCONCLUSIVE, NOT_APPLICABLE)}
            here = by_setting.get(setting)
            if here is not None:
                mine = here[here["_names"].map(lambda names: act in names)]
                for v, n in mine["verdict"].value_counts().items():
                    tally[v] = int(n)
            out.append({"setting": setting, "activation": act, "runs": len(d), "diverged": len(d) - len(fin),
                        "acc": acc, "acc_ci": half,
                        "time_per_epoch_s": float(solo.median()) if len(solo) else
                        (float(share.mean()) if len(share) else math.nan),
                        "time_source": "alone" if len(solo) else "share",
                        "grad_init": float(g0.mean()) if len(g0) else math.nan,
                        "grad_final": float(g1.mean()) if len(g1) else math.nan, "verdicts": tally})
    return out


def _cells(r: dict) -> list[str]:
    acc = "—" if not np.isfinite(r["acc"]) else (
        f"{100 * r['acc']:.2f} %" + (f" ± {100 * r['acc_ci']:.2f}" if np.isfinite(r["acc_ci"]) else ""))
    if r["diverged"]:
        acc += f" [{r['diverged']} diverged]"
    t = "—" if not np.isfinite(r["time_per_epoch_s"]) else (
        f"{r['time_per_epoch_s']:.4f}" + ("" if r["time_source"] == "alone" else " (share)"))
    g = f"{r['grad_init']:.2e} → {r['grad_final']:.2e}"
    v = r["verdicts"]
    return [r["setting"], r["activation"], str(r["runs"]), acc, t, g,
            f"{v[HELD]}/{v[FAILED]}/{v[INCONCLUSIVE]}/{v[NOT_APPLICABLE]}"]


def format_text(rows: list[dict]) -> str:
    """Aligned plain-text table for the terminal."""
    lines = [_cells(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(HEAD, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(HEAD), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines])


def format_markdown(rows: list[dict]) -> str:
    """Markdown table for a study page."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(esc(h) for h in HEAD) + " |", "|" + "---|" * len(HEAD)]
    out += ["| " + " | ".join(esc(c) for c in _cells(r)) + " |" for r in rows]
    return "\n".join(out) + "\n"
